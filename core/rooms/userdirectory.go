package rooms

import (
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// DirectoryScope returns whom searcher may find in the user directory.
// users.yaml (searchUserDirectory) lets the server choose, but it MUST at
// least consider users who share a room with the searcher and users
// joined to rooms with a public join rule or world_readable history. Lichen
// searches exactly those: anyone else is a stranger whose existence the
// directory should not reveal (a home hub's users are a household). As in
// Synapse, searchers find themselves only through a public room.
func (s *Service) DirectoryScope(searcher string) func(user string) bool {
	peers := map[string]bool{}
	for _, u := range s.Peers(searcher) {
		if u != searcher {
			peers[u] = true
		}
	}
	open := map[string]bool{} // room ID -> public or world-readable
	return func(user string) bool {
		if peers[user] {
			return true
		}
		ms, err := s.store.Memberships(user)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Membership != spec.Join {
				continue
			}
			o, ok := open[m.RoomID]
			if !ok {
				o = s.openToAll(m.RoomID)
				open[m.RoomID] = o
			}
			if o {
				return true
			}
		}
		return false
	}
}

// openToAll reports whether anyone may join the room or read its history.
func (s *Service) openToAll(roomID string) bool {
	h, err := s.lockHead(roomID)
	if err != nil {
		return false
	}
	defer h.mu.Unlock()
	field := func(typ, name string) string {
		ev := h.get(typ, "")
		if ev == nil {
			return ""
		}
		var m map[string]json.RawMessage
		var v string
		if json.Unmarshal(ev.Content(), &m) == nil {
			_ = json.Unmarshal(m[name], &v)
		}
		return v
	}
	return field(spec.MRoomJoinRules, "join_rule") == spec.Public ||
		field(spec.MRoomHistoryVisibility, "history_visibility") == "world_readable"
}
