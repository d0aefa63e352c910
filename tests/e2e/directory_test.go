package e2e

import (
	"reflect"
	"sort"
	"testing"
)

// The user directory finds exactly the users the spec says the searcher
// may know about (users.yaml searchUserDirectory): those sharing a joined
// room with the searcher and those joined to public or world-readable
// rooms. Everyone else stays hidden, the searcher included unless in a
// public room.
func TestUserDirectoryScope(t *testing.T) {
	s := start(t)
	alice, bob, carol := s.register("dir_alice"), s.register("dir_bob"), s.register("dir_carol")
	eve, walt := s.register("dir_eve"), s.register("dir_walt")
	s.createRoom(alice, map[string]any{"preset": "public_chat"})
	private := s.createRoom(bob, map[string]any{"preset": "private_chat", "invite": []string{carol.ID}})
	mustJoin(s, carol, private)
	s.createRoom(walt, map[string]any{"preset": "private_chat",
		"initial_state": []map[string]any{{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "world_readable"}}}})

	search := func(u user) []string {
		r := s.must(200, "POST", cs+"/user_directory/search", u.Token, map[string]any{"search_term": "dir_", "limit": 50})
		var ids []string
		for _, e := range objList(r.Body, "results") {
			ids = append(ids, objStr(e, "user_id"))
		}
		sort.Strings(ids)
		return ids
	}
	sorted := func(ids ...string) []string { sort.Strings(ids); return ids }
	cases := []struct {
		who  user
		want []string
	}{
		{eve, sorted(alice.ID, walt.ID)},
		{bob, sorted(alice.ID, carol.ID, walt.ID)},
		{carol, sorted(alice.ID, bob.ID, walt.ID)},
		{alice, sorted(alice.ID, walt.ID)},
	}
	for _, c := range cases {
		if got := search(c.who); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s finds %v, want %v", c.who.ID, got, c.want)
		}
	}

	// Leaving the shared room hides bob from carol again.
	s.must(200, "POST", rpath(private, "/leave"), bob.Token, map[string]any{})
	if got, want := search(carol), sorted(alice.ID, walt.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("after bob left, carol finds %v, want %v", got, want)
	}
}
