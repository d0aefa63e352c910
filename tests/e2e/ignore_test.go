package e2e

import (
	"strings"
	"testing"
)

// TestIgnoredUsers: spec "Ignoring users": no invites and no timeline
// events (except state) from ignored users reach the ignoring user's sync.
func TestIgnoredUsers(t *testing.T) {
	s := start(t)
	alice, bob, eve := s.register("ign_alice"), s.register("ign_bob"), s.register("ign_eve")
	s.must(200, "PUT", "/_matrix/client/v3/user/"+esc(alice.ID)+"/account_data/m.ignored_user_list", alice.Token,
		map[string]any{"ignored_users": map[string]any{eve.ID: map[string]any{}}})

	// An invite from eve does not show; one from bob does.
	evesRoom := s.createRoom(eve, map[string]any{"invite": []string{alice.ID}})
	bobsRoom := s.createRoom(bob, map[string]any{"preset": "public_chat", "invite": []string{alice.ID}})
	r := s.must(200, "GET", "/_matrix/client/v3/sync", alice.Token, nil)
	if strings.Contains(string(r.Raw), evesRoom) {
		t.Fatalf("invite from an ignored user reached sync")
	}
	if !strings.Contains(string(r.Raw), bobsRoom) {
		t.Fatalf("invite from bob missing")
	}

	// In a shared room, eve's messages are dropped, her join (state) is not.
	s.must(200, "POST", "/_matrix/client/v3/join/"+esc(bobsRoom), alice.Token, map[string]any{})
	since := s.must(200, "GET", "/_matrix/client/v3/sync", alice.Token, nil).str("next_batch")
	s.must(200, "POST", "/_matrix/client/v3/join/"+esc(bobsRoom), eve.Token, map[string]any{})
	s.must(200, "PUT", "/_matrix/client/v3/rooms/"+esc(bobsRoom)+"/send/m.room.message/e1", eve.Token, map[string]any{"msgtype": "m.text", "body": "from eve"})
	s.must(200, "PUT", "/_matrix/client/v3/rooms/"+esc(bobsRoom)+"/send/m.room.message/b1", bob.Token, map[string]any{"msgtype": "m.text", "body": "from bob"})
	r = s.must(200, "GET", "/_matrix/client/v3/sync?since="+since, alice.Token, nil)
	raw := string(r.Raw)
	if strings.Contains(raw, "from eve") || !strings.Contains(raw, "from bob") || !strings.Contains(raw, `"state_key":"`+eve.ID+`"`) {
		t.Fatalf("ignored user's events: %s", raw)
	}
}
