package main

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/lichen-hs/lichen/transport"
	"github.com/lichen-hs/lichen/turn"
)

// startTURN starts the embedded relay when cfg enables it and mounts the
// VoIP endpoints: for the embedded relay, for an external TURN server
// (cfg.URIs), or answering "not configured". The returned Closer stops the
// relay (a no-op when none runs); call it on shutdown.
func startTURN(a *app, cfg TURNConfig) (io.Closer, error) {
	serverName := a.accounts.ServerName()
	ttl := time.Duration(cfg.CredentialTTLSeconds) * time.Second
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	v := &transport.VoIP{URIs: cfg.URIs, STUNURIs: cfg.STUNURIs, TTL: ttl, AllowGuests: cfg.AllowGuests,
		Secret: []byte(cfg.SharedSecret)}
	if !cfg.Enabled {
		if len(cfg.URIs) > 0 && cfg.SharedSecret == "" {
			return nil, errors.New("turn: uris of an external TURN server need shared_secret")
		}
		if len(cfg.URIs) == 0 && len(cfg.STUNURIs) == 0 {
			v = nil
		}
		a.http.MountVoIP(v)
		return io.NopCloser(nil), nil
	}
	if len(v.Secret) == 0 {
		v.Secret = make([]byte, 32)
		if _, err := rand.Read(v.Secret); err != nil {
			return nil, err
		}
	}
	realm := cfg.Realm
	if realm == "" {
		realm = serverName
	}
	srv, err := turn.Start(turn.Config{
		ListenIP: cfg.ListenAddress, Port: cfg.Port, ExternalIP: cfg.ExternalAddress,
		MinPort: cfg.MinPort, MaxPort: cfg.MaxPort, Realm: realm, Secret: v.Secret,
		AllowPrivatePeers:     cfg.AllowPrivatePeers,
		MaxAllocationsPerUser: cfg.MaxAllocationsPerUser, MaxAllocations: cfg.MaxAllocations,
		AllocationBytesPerSec: cfg.AllocationKbps * 1000 / 8, TotalBytesPerSec: cfg.TotalKbps * 1000 / 8,
	})
	if err != nil {
		return nil, err
	}
	if len(v.URIs) == 0 {
		host := cfg.Host
		if host == "" {
			host = serverName
			if h, _, err := net.SplitHostPort(serverName); err == nil {
				host = h
			}
		}
		hp := net.JoinHostPort(host, strconv.Itoa(srv.UDPAddr().Port))
		v.URIs = []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
		if len(v.STUNURIs) == 0 {
			v.STUNURIs = []string{"stun:" + hp}
		}
	}
	a.http.MountVoIP(v)
	return srv, nil
}
