package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// Config is the server configuration: defaults, then the TOML file, then
// LICHEN_* environment variables, then flags (configs/lichen.toml documents
// every key).
type Config struct {
	ServerName    string `toml:"server_name"`
	Listen        string `toml:"listen"`
	DataDir       string `toml:"data_dir"`
	PublicBaseURL string `toml:"public_base_url"`
	// Registration is closed, token or open.
	Registration string `toml:"registration"`
	// RegistrationSharedSecret enables Synapse-compatible shared-secret
	// registration at /_synapse/admin/v1/register.
	RegistrationSharedSecret string `toml:"registration_shared_secret"`
	MaxBodyBytes             int    `toml:"max_body_bytes"`
	RateLimit                bool   `toml:"rate_limit"`
	LogLevel                 string `toml:"log_level"`
}

func defaultConfig() Config {
	return Config{
		ServerName:   "localhost",
		Listen:       "127.0.0.1:8008",
		DataDir:      "./lichen-data",
		Registration: "closed",
		MaxBodyBytes: 1 << 20,
		RateLimit:    true,
		LogLevel:     "info",
	}
}

func loadFile(cfg *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	d := toml.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			// Name the unknown keys: a typo in a hand-edited file on a
			// board is when the key name matters most.
			var keys []string
			for _, e := range strict.Errors {
				row, _ := e.Position()
				keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
			}
			return fmt.Errorf("%s: unknown key %s (see configs/lichen.toml)", path, strings.Join(keys, ", "))
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// applyEnv overrides cfg from LICHEN_* variables.
func applyEnv(cfg *Config, getenv func(string) string) error {
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	// SERVER_NAME is what container setups (and Complement) pass; the
	// LICHEN_ name wins when both are set.
	str("SERVER_NAME", &cfg.ServerName)
	str("LICHEN_SERVER_NAME", &cfg.ServerName)
	str("LICHEN_LISTEN", &cfg.Listen)
	str("LICHEN_DATA_DIR", &cfg.DataDir)
	str("LICHEN_PUBLIC_BASE_URL", &cfg.PublicBaseURL)
	str("LICHEN_REGISTRATION", &cfg.Registration)
	str("LICHEN_REGISTRATION_SHARED_SECRET", &cfg.RegistrationSharedSecret)
	str("LICHEN_LOG_LEVEL", &cfg.LogLevel)
	if v := getenv("LICHEN_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("LICHEN_MAX_BODY_BYTES: want a positive integer")
		}
		cfg.MaxBodyBytes = n
	}
	if v := getenv("LICHEN_RATE_LIMIT"); v != "" {
		switch v {
		case "on", "true", "1":
			cfg.RateLimit = true
		case "off", "false", "0":
			cfg.RateLimit = false
		default:
			return fmt.Errorf("LICHEN_RATE_LIMIT: want on or off")
		}
	}
	return nil
}

func (c *Config) validate() error {
	switch c.Registration {
	case "closed", "token", "open":
	default:
		return fmt.Errorf("registration must be closed, token or open (got %q)", c.Registration)
	}
	if c.ServerName == "" {
		return fmt.Errorf("server_name is empty")
	}
	return nil
}
