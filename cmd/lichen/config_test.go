package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestConfigPrecedence: defaults < file < env < flags.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lichen.toml")
	os.WriteFile(file, []byte("server_name = \"file.example\"\nlisten = \"127.0.0.1:1\"\nregistration = \"token\"\n"), 0o600)
	t.Setenv("LICHEN_LISTEN", "127.0.0.1:2")
	t.Setenv("LICHEN_REGISTRATION", "")
	cfg, err := configure("t", []string{"--config", file, "--data-dir", dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "file.example" || cfg.Listen != "127.0.0.1:2" || cfg.DataDir != dir || cfg.Registration != "token" {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	cfg, err = configure("t", []string{"--config", file, "--listen", "127.0.0.1:3"}, nil)
	if err != nil || cfg.Listen != "127.0.0.1:3" {
		t.Fatalf("flag did not win: %+v %v", cfg, err)
	}
	// The example config must load as is.
	if _, err := configure("t", []string{"--config", "../../configs/lichen.toml"}, nil); err != nil {
		t.Fatalf("example config: %v", err)
	}
	os.WriteFile(file, []byte("registration = \"maybe\"\n"), 0o600)
	if _, err := configure("t", []string{"--config", file}, nil); err == nil {
		t.Fatal("bad registration mode accepted")
	}
	os.WriteFile(file, []byte("unknown_key = 1\n"), 0o600)
	if _, err := configure("t", []string{"--config", file}, nil); err == nil {
		t.Fatal("unknown key accepted")
	}
}
