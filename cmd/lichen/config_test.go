package main

import (
	"os"
	"path/filepath"
	"strings"
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

// Settings that cannot work are refused at start, naming the setting.
func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"room version unknown", `default_room_version = "13"`, "default_room_version"},
		{"room version empty", `default_room_version = ""`, "default_room_version"},
		{"cert without key", `tls_cert = "a.pem"`, "tls_cert and tls_key"},
		{"CA without key", `tls_ca_cert = "ca.pem"`, "tls_ca_cert and tls_ca_key"},
		{"both certificate kinds", "tls_cert = \"a\"\ntls_key = \"b\"\ntls_ca_cert = \"c\"\ntls_ca_key = \"d\"", "either"},
		{"room version 10 is fine", `default_room_version = "10"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "lichen.toml")
			if err := os.WriteFile(file, []byte(tt.file+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := configure("t", []string{"--config", file}, nil)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}
