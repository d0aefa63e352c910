package e2e

import (
	"net/url"
	"slices"
	"testing"
)

// presenceSenders syncs from since and returns the next token and the
// senders of the m.presence events.
func presenceSenders(s *server, u user, since string) (string, []string) {
	s.t.Helper()
	q := "?timeout=0"
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	r := s.must(200, "GET", cs+"/sync"+q, u.Token, nil)
	var senders []string
	for _, ev := range objList(r.Body, "presence", "events") {
		senders = append(senders, objStr(ev, "sender"))
	}
	return r.str("next_batch"), senders
}

// A new room peer's presence arrives in the next incremental sync even
// though it did not change, for both sides of the join, and only once.
func TestPresenceOfNewPeers(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	// Both go online (a sync sets presence to online by default).
	aliceTok, _ := presenceSenders(s, alice, "")
	bobTok, _ := presenceSenders(s, bob, "")
	// Drain their own presence changes.
	aliceTok, _ = presenceSenders(s, alice, aliceTok)
	bobTok, _ = presenceSenders(s, bob, bobTok)

	mustJoin(s, bob, room)

	aliceTok, got := presenceSenders(s, alice, aliceTok)
	if !slices.Contains(got, bob.ID) {
		t.Errorf("alice's sync after bob joined: presence from %v, want %s", got, bob.ID)
	}
	bobTok, got = presenceSenders(s, bob, bobTok)
	if !slices.Contains(got, alice.ID) {
		t.Errorf("bob's sync after joining: presence from %v, want %s", got, alice.ID)
	}
	// Unchanged presence is not sent again.
	if _, got = presenceSenders(s, alice, aliceTok); slices.Contains(got, bob.ID) {
		t.Errorf("alice's next sync repeats bob's presence: %v", got)
	}
	if _, got = presenceSenders(s, bob, bobTok); slices.Contains(got, alice.ID) {
		t.Errorf("bob's next sync repeats alice's presence: %v", got)
	}
}
