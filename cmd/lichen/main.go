// Command lichen is the Lichen homeserver: `lichen` serves, `lichen user
// add` creates an account offline, `lichen version` prints the version.
// This file only parses flags, loads configuration and wires packages.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lichen-hs/lichen/boltstore"
	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/media"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/signing"
	"github.com/lichen-hs/lichen/core/syncer"
	"github.com/lichen-hs/lichen/transport"
)

// version is set at link time (-X main.version=...).
var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lichen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "version":
			fmt.Println("lichen", version)
			return nil
		case "user":
			return runUser(args[1:])
		case "serve":
			args = args[1:]
		default:
			return fmt.Errorf("unknown command %q (commands: serve, user add, version)", args[0])
		}
	}
	cfg, err := configure("lichen", args, nil)
	if err != nil {
		return err
	}
	return serve(cfg)
}

// configure builds the configuration: defaults < file < env < flags.
// extra registers subcommand flags on the same set.
func configure(name string, args []string, extra func(*flag.FlagSet)) (Config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfgFile := fs.String("config", os.Getenv("LICHEN_CONFIG"), "TOML configuration file")
	dataDir := fs.String("data-dir", "", "data directory (LICHEN_DATA_DIR)")
	listen := fs.String("listen", "", "listen address (LICHEN_LISTEN)")
	serverName := fs.String("server-name", "", "Matrix server name (LICHEN_SERVER_NAME)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *cfgFile != "" {
		if err := loadFile(&cfg, *cfgFile); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, os.Getenv); err != nil {
		return cfg, err
	}
	for flagVal, dst := range map[*string]*string{dataDir: &cfg.DataDir, listen: &cfg.Listen, serverName: &cfg.ServerName} {
		if *flagVal != "" {
			*dst = *flagVal
		}
	}
	return cfg, cfg.validate()
}

// app is the wired server.
type app struct {
	store    *boltstore.Store
	accounts *accounts.Service
	rooms    *rooms.Service
	hub      *notify.Hub
	http     *transport.Server
	media    *media.Service
}

func open(cfg Config) (*app, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.DataDir, "signing.key"))
	if err != nil {
		return nil, err
	}
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "lichen.db"))
	if err != nil {
		return nil, err
	}
	a := &app{store: st, hub: notify.New()}
	profiles := &profileBridge{}
	a.rooms = rooms.New(st, cfg.ServerName, key, a.hub, profiles)
	if err := a.rooms.SetDefaultVersion(cfg.DefaultRoomVersion); err != nil {
		st.Close()
		return nil, err
	}
	a.accounts = accounts.New(st, accounts.Config{
		ServerName:   cfg.ServerName,
		Registration: cfg.Registration,
		SharedSecret: cfg.RegistrationSharedSecret,
	}, a.rooms)
	profiles.a = a.accounts
	rl := transport.DefaultRateLimits()
	rl.Enabled = cfg.RateLimit
	a.http = transport.NewServer(transport.Config{
		ServerName: cfg.ServerName, PublicBaseURL: cfg.PublicBaseURL,
		MaxBodyBytes: cfg.MaxBodyBytes, RateLimit: rl, DefaultRoomVersion: cfg.DefaultRoomVersion,
	}, transport.AccountsAuth{A: a.accounts})
	a.http.MountAccounts(a.accounts)
	a.http.MountRooms(a.rooms)
	ud := mountUserData(a)
	keys, finishKeys := mountKeys(a, &ud.sources)
	ud.sources.ToDevice = mountToDevice(a)
	a.accounts.SetDeviceObserver(deviceObservers{keys})
	eng := syncer.New(a.rooms, st, a.hub, ud.sources)
	finishKeys(eng)
	a.http.MountSync(eng, ud.loadFilter)
	mountKeyBackup(a)
	if err := mountMedia(a, cfg.Media); err != nil {
		st.Close()
		return nil, err
	}
	mountVoice(a, a.media, cfg.Voice)
	a.http.MountFederation(key, "Lichen", version, time.Now)
	return a, nil
}

// profileBridge breaks the accounts <-> rooms construction cycle.
type profileBridge struct{ a *accounts.Service }

func (p *profileBridge) Profile(userID string) (string, string, bool) { return p.a.Profile(userID) }

func serve(cfg Config) error {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	// A soft memory limit keeps the heap near the board budget during
	// bursts (password hashing, big syncs) instead of growing to 2x live.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(40 << 20)
	}
	start := time.Now()
	// Signals are caught before serving starts, so a SIGTERM that arrives
	// right after the first request still shuts down cleanly.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	a, err := open(cfg)
	if err != nil {
		return err
	}
	turnSrv, err := startTURN(a, cfg.TURN)
	if err != nil {
		a.store.Close()
		return err
	}
	defer turnSrv.Close()
	if tok, created, err := a.accounts.EnsureBootstrap(); err != nil {
		return err
	} else if tok != "" {
		verb := "is still unused"
		if created {
			verb = "was created"
		}
		fmt.Fprintf(os.Stderr, "\nNo account exists yet. A one-time registration token %s:\n\n    %s\n\nRegister the first (admin) account with it (m.login.registration_token), e.g. from Element.\n\n", verb, tok)
	}
	// The federation socket opens first: a client port that answers
	// means the whole server is up (container health checks and test
	// suites probe /versions, then federate at once).
	fed, err := listenFederation(cfg)
	if err != nil {
		a.store.Close()
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if fed != nil {
			fed.Close()
		}
		a.store.Close()
		return err
	}
	slog.Info("lichen serving", "version", version, "server_name", cfg.ServerName, "listen", ln.Addr().String(),
		"data_dir", cfg.DataDir, "registration", cfg.Registration, "startup", time.Since(start).Round(time.Microsecond))
	errc := make(chan error, 2)
	if fed != nil {
		go func() { errc <- a.http.Serve(fed) }()
	}
	go func() { errc <- a.http.Serve(ln) }()
	select {
	case sig := <-sigs:
		slog.Info("shutting down", "signal", sig.String())
	case err := <-errc:
		if err != nil {
			a.store.Close()
			return err
		}
	}
	// Stop accepting, answer parked long-polls, finish in-flight requests,
	// then close bbolt.
	a.hub.Shutdown()
	done := make(chan struct{})
	go func() { _ = a.http.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		slog.Warn("in-flight requests did not finish in 10s")
	}
	return a.store.Close()
}

// listenFederation opens the TLS listener for other homeservers when one
// is configured with a certificate (nil otherwise). The same handler
// serves it: today it answers the key server and version endpoints, and
// M_UNRECOGNIZED for the federation API not built yet.
func listenFederation(cfg Config) (net.Listener, error) {
	if cfg.FederationListen == "" {
		return nil, nil
	}
	src, err := cfg.federationTLS()
	if err != nil {
		return nil, err
	}
	if src == nil {
		slog.Warn("federation listener not started: no TLS certificate (set tls_cert/tls_key, or tls_ca_cert/tls_ca_key to issue one)",
			"federation_listen", cfg.FederationListen)
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.FederationListen)
	if err != nil {
		return nil, err
	}
	attrs := []any{"listen", ln.Addr().String()}
	if cert, _ := src.Certificate(); cert != nil && cert.Leaf != nil {
		names := slices.Clone(cert.Leaf.DNSNames)
		for _, ip := range cert.Leaf.IPAddresses {
			names = append(names, ip.String())
		}
		attrs = append(attrs, "certificate_for", strings.Join(names, ","), "expires", cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	slog.Info("federation listening", attrs...)
	return tls.NewListener(ln, src.TLSConfig()), nil
}

func loadOrCreateKey(path string) (signing.Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return signing.Parse(b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return signing.Key{}, err
	}
	k, err := signing.Generate()
	if err != nil {
		return k, err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return k, err
	}
	if _, err := f.Write(k.Marshal()); err != nil {
		f.Close()
		return k, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return k, err
	}
	f.Close()
	return k, os.Rename(tmp, path)
}

func runUser(args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return fmt.Errorf("usage: lichen user add NAME [--admin] [--password-file F]")
	}
	args = args[1:]
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	var admin bool
	var pwFile string
	cfg, err := configure("lichen user add", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&admin, "admin", false, "make the user a server admin")
		fs.StringVar(&pwFile, "password-file", "", "read the password from this file (else from standard input)")
	})
	if err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("usage: lichen user add NAME [--admin] [--password-file F]")
	}
	var pw []byte
	if pwFile != "" {
		pw, err = os.ReadFile(pwFile)
	} else {
		fmt.Fprint(os.Stderr, "password: ")
		var line string
		_, err = fmt.Fscanln(os.Stdin, &line)
		pw = []byte(line)
	}
	if err != nil {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(string(pw), "\r\n")
	if password == "" {
		return fmt.Errorf("empty password")
	}
	a, err := open(cfg)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if err := a.accounts.CreateUser(name, password, admin); err != nil {
		return err
	}
	fmt.Printf("created @%s:%s\n", name, cfg.ServerName)
	return nil
}
