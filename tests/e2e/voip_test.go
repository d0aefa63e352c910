package e2e

import (
	"strings"
	"testing"
)

// TestVoIPOff: with no TURN configured, /voip/turnServer answers {} (as
// Synapse does; clients read it as "no TURN"), the guest endpoint the
// seed's M_NOT_FOUND, and /voip/config nulls.
func TestVoIPOff(t *testing.T) {
	s := start(t)
	u := s.register("voipoff")
	r := s.must(200, "GET", "/_matrix/client/v3/voip/turnServer", u.Token, nil)
	if len(r.Body) != 0 {
		t.Fatalf("turnServer = %s, want {}", r.Raw)
	}
	s.must(401, "GET", "/_matrix/client/v3/voip/turnServer", "", nil)
	if r := s.must(404, "GET", "/_matrix/client/v3/voip/turnServer/guest", "", nil); r.str("errcode") != "M_NOT_FOUND" {
		t.Fatalf("guest: %s", r.Raw)
	}
	r = s.must(200, "GET", "/_matrix/client/v3/voip/config", "", nil)
	if r.Body["turn_servers"] != nil || r.Body["stun_servers"] != nil {
		t.Fatalf("config: %s", r.Raw)
	}
}

// TestVoIPEmbedded: the embedded relay starts with the process and the
// endpoint hands out REST credentials for it.
func TestVoIPEmbedded(t *testing.T) {
	s := start(t, "LICHEN_TURN_ENABLED=true", "LICHEN_TURN_LISTEN_ADDRESS=127.0.0.1", "LICHEN_TURN_PORT=0",
		"LICHEN_TURN_MIN_PORT=41000", "LICHEN_TURN_MAX_PORT=41099")
	u := s.register("voipon")
	r := s.must(200, "GET", "/_matrix/client/r0/voip/turnServer", u.Token, nil)
	if !strings.HasSuffix(r.str("username"), ":"+u.ID) || r.str("password") == "" || r.Body["ttl"] != float64(86400) {
		t.Fatalf("turnServer = %s", r.Raw)
	}
	uris, _ := r.Body["uris"].([]any)
	if len(uris) != 2 || !strings.HasPrefix(uris[0].(string), "turn:localhost:") ||
		!strings.HasSuffix(uris[0].(string), "?transport=udp") || !strings.HasSuffix(uris[1].(string), "?transport=tcp") {
		t.Fatalf("uris = %v", uris)
	}
	s.must(404, "GET", "/_matrix/client/v3/voip/turnServer/guest", "", nil)
}

// TestVoIPExternal: uris + shared secret point clients at another TURN
// server; guests are served when allowed.
func TestVoIPExternal(t *testing.T) {
	s := start(t, "LICHEN_TURN_URIS=turn:turn.example.org:3478?transport=udp", "LICHEN_TURN_SHARED_SECRET=s3cret",
		"LICHEN_TURN_ALLOW_GUESTS=true", "LICHEN_TURN_STUN_URIS=stun:turn.example.org:3478")
	u := s.register("voipext")
	r := s.must(200, "GET", "/_matrix/client/v3/voip/turnServer", u.Token, nil)
	if uris, _ := r.Body["uris"].([]any); len(uris) != 1 || uris[0] != "turn:turn.example.org:3478?transport=udp" {
		t.Fatalf("turnServer = %s", r.Raw)
	}
	if r := s.must(200, "GET", "/_matrix/client/v3/voip/turnServer/guest", "", nil); !strings.HasSuffix(r.str("username"), ":guest") {
		t.Fatalf("guest = %s", r.Raw)
	}
	r = s.must(200, "GET", "/_matrix/client/v3/voip/config", "", nil)
	if ts, _ := r.Body["turn_servers"].([]any); len(ts) != 1 {
		t.Fatalf("config = %s", r.Raw)
	}
}
