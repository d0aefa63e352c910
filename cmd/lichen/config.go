package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/transport/tlscert"
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
	// FederationListen is the TLS listener for other homeservers (usually
	// port 8448); it starts only when a certificate is configured: TLSCert
	// and TLSKey, or a CA (TLSCACert, TLSCAKey) to issue one from.
	FederationListen string `toml:"federation_listen"`
	TLSCert          string `toml:"tls_cert"`
	TLSKey           string `toml:"tls_key"`
	TLSCACert        string `toml:"tls_ca_cert"`
	TLSCAKey         string `toml:"tls_ca_key"`
	MaxBodyBytes     int    `toml:"max_body_bytes"`
	// DefaultRoomVersion is the version of rooms created without one.
	DefaultRoomVersion string `toml:"default_room_version"`
	// Media is the content repository (config_media.go).
	Media MediaConfig `toml:"media"`
	// Voice is the voice-message API (config_voice.go).
	Voice VoiceConfig `toml:"voice"`
	// TURN is the embedded relay or an external one (config_turn.go).
	TURN      TURNConfig `toml:"turn"`
	RateLimit bool       `toml:"rate_limit"`
	LogLevel  string     `toml:"log_level"`
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
		TURN:         defaultTURNConfig(),

		DefaultRoomVersion: rooms.DefaultRoomVersion,
		Media:              defaultMediaConfig(),
		Voice:              defaultVoiceConfig(),
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
	str("LICHEN_DEFAULT_ROOM_VERSION", &cfg.DefaultRoomVersion)
	str("LICHEN_FEDERATION_LISTEN", &cfg.FederationListen)
	str("LICHEN_TLS_CERT", &cfg.TLSCert)
	str("LICHEN_TLS_KEY", &cfg.TLSKey)
	str("LICHEN_TLS_CA_CERT", &cfg.TLSCACert)
	str("LICHEN_TLS_CA_KEY", &cfg.TLSCAKey)
	if v := getenv("LICHEN_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("LICHEN_MAX_BODY_BYTES: want a positive integer")
		}
		cfg.MaxBodyBytes = n
	}
	if err := cfg.Media.applyEnv(getenv); err != nil {
		return err
	}
	if err := cfg.Voice.applyEnv(getenv); err != nil {
		return err
	}
	if err := cfg.TURN.applyEnv(getenv); err != nil {
		return err
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
	if err := c.Voice.validate(); err != nil {
		return err
	}
	if !slices.Contains(rooms.SupportedVersions, c.DefaultRoomVersion) {
		return fmt.Errorf("default_room_version %q is not one of %s", c.DefaultRoomVersion, strings.Join(rooms.SupportedVersions, ", "))
	}
	// Half a pair is a typo, not a choice: say so at start.
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("tls_cert and tls_key must be set together")
	}
	if (c.TLSCACert == "") != (c.TLSCAKey == "") {
		return fmt.Errorf("tls_ca_cert and tls_ca_key must be set together")
	}
	if c.TLSCert != "" && c.TLSCACert != "" {
		return fmt.Errorf("set either tls_cert/tls_key or tls_ca_cert/tls_ca_key, not both")
	}
	return nil
}

// federationTLS is the federation listener's certificate source, or nil
// when no certificate is configured.
func (c *Config) federationTLS() (*tlscert.Source, error) {
	switch {
	case c.TLSCert != "":
		return tlscert.FromFiles(c.TLSCert, c.TLSKey)
	case c.TLSCACert != "":
		return tlscert.FromCA(c.TLSCACert, c.TLSCAKey, c.ServerName)
	}
	return nil, nil
}
