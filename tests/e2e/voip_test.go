package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pturn "github.com/pion/turn/v4"
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

// TestCallEventsPassThrough: m.call.* events are ordinary room events
// (spec "Voice over IP"): every type is delivered to the other member by
// /sync with its content unchanged, and an invite notifies (the
// .m.rule.call push rule).
func TestCallEventsPassThrough(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"invite": []string{bob.ID}, "preset": "trusted_private_chat"})
	s.must(200, "POST", "/_matrix/client/v3/join/"+esc(room), bob.Token, map[string]any{})
	since := doSync(s, bob, nil).str("next_batch")

	offer := map[string]any{"type": "offer", "sdp": "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}
	events := []struct {
		typ     string
		content map[string]any
	}{
		{"m.call.invite", map[string]any{"call_id": "c1", "party_id": "pa", "version": "1", "lifetime": 60000, "offer": offer,
			"org.matrix.msc2746.invitee": bob.ID}},
		{"m.call.candidates", map[string]any{"call_id": "c1", "party_id": "pa", "version": "1",
			"candidates": []any{map[string]any{"candidate": "candidate:1 1 UDP 2130706431 192.168.1.5 50000 typ host", "sdpMLineIndex": 0, "sdpMid": "0"}}}},
		{"m.call.answer", map[string]any{"call_id": "c1", "party_id": "pb", "version": "1", "answer": map[string]any{"type": "answer", "sdp": "v=0\r\n"}}},
		{"m.call.select_answer", map[string]any{"call_id": "c1", "party_id": "pa", "version": "1", "selected_party_id": "pb"}},
		{"m.call.negotiate", map[string]any{"call_id": "c1", "party_id": "pa", "version": "1", "lifetime": 10000, "description": offer}},
		{"m.call.sdp_stream_metadata_changed", map[string]any{"call_id": "c1", "party_id": "pa", "version": "1", "sdp_stream_metadata": map[string]any{}}},
		{"m.call.reject", map[string]any{"call_id": "c2", "party_id": "pb", "version": "1"}},
		{"m.call.hangup", map[string]any{"call_id": "c1", "party_id": "pa", "version": "1", "reason": "user_hangup"}},
	}
	for i, e := range events {
		sender := alice
		if e.content["party_id"] == "pb" {
			sender = bob
		}
		s.must(200, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/%s/t%d", esc(room), e.typ, i), sender.Token, e.content)
	}
	r := doSync(s, bob, map[string]string{"since": since})
	var got []map[string]any
	for _, ev := range timelineOf(r, room) {
		m := ev.(map[string]any)
		if strings.HasPrefix(m["type"].(string), "m.call.") {
			got = append(got, m)
		}
	}
	if len(got) != len(events) {
		t.Fatalf("bob got %d call events, want %d", len(got), len(events))
	}
	for i, e := range events {
		want, _ := json.Marshal(e.content)
		have, _ := json.Marshal(got[i]["content"])
		if got[i]["type"] != e.typ || string(want) != string(have) {
			t.Errorf("%s: content changed:\n got %s\nwant %s", e.typ, have, want)
		}
	}
	// The invite is a notification for bob (.m.rule.call, before the
	// one-to-one rule).
	n := objMap(syncRoom(r, "join", room), "unread_notifications")
	if n["notification_count"].(float64) < 1 {
		t.Errorf("call invite did not notify: %v", n)
	}
}

// hostIPv4 is a non-loopback IPv4 address of this machine (the relay and
// its clients use it: the relay refuses loopback peers, as in production).
func hostIPv4(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to run a relay on")
	return ""
}

// TestVoIPRelayWithServerCredentials: the credentials /voip/turnServer
// hands out allocate relays on the embedded TURN server of the real
// binary, two clients exchange UDP through them, and a forged password is
// refused.
func TestVoIPRelayWithServerCredentials(t *testing.T) {
	ip := hostIPv4(t)
	s := start(t, "LICHEN_TURN_ENABLED=true", "LICHEN_TURN_LISTEN_ADDRESS="+ip, "LICHEN_TURN_EXTERNAL_ADDRESS="+ip,
		"LICHEN_TURN_PORT=0", "LICHEN_TURN_MIN_PORT=41100", "LICHEN_TURN_MAX_PORT=41199")
	alice, bob := s.register(""), s.register("")
	relay := func(u user, forge bool) (net.PacketConn, error) {
		r := s.must(200, "GET", "/_matrix/client/v3/voip/turnServer", u.Token, nil)
		uri := r.Body["uris"].([]any)[0].(string) // turn:host:port?transport=udp
		port := strings.TrimSuffix(uri[strings.LastIndex(uri, ":")+1:], "?transport=udp")
		pass := r.str("password")
		if forge {
			pass = "AAAA" + pass[4:]
		}
		conn, err := net.ListenPacket("udp4", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c, err := pturn.NewClient(&pturn.ClientConfig{
			STUNServerAddr: ip + ":" + port, TURNServerAddr: ip + ":" + port,
			Username: r.str("username"), Password: pass, Realm: "localhost", Conn: conn, RTO: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c.Allocate()
	}
	if _, err := relay(alice, true); err == nil {
		t.Fatal("a forged password allocated a relay")
	}
	ra, err := relay(alice, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := relay(bob, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	// Each side writes first, which installs its permission for the other.
	if _, err := ra.WriteTo([]byte("ping"), rb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.WriteTo([]byte("pong"), ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = ra.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := ra.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "pong" || from.String() != rb.LocalAddr().String() {
		t.Fatalf("alice read %q from %v (%v), want pong from %v", buf[:n], from, err, rb.LocalAddr())
	}
	if !strings.HasPrefix(ra.LocalAddr().String(), ip+":411") {
		t.Fatalf("relayed address %v is not in the configured range on %s", ra.LocalAddr(), ip)
	}
}
