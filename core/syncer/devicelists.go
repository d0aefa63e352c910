package syncer

import (
	"sort"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/lichen-hs/lichen/core/rooms"
)

// DeviceLists computes device_lists for a window (since, upto] (spec
// "Tracking the device list for a user"; keys.yaml getKeysChanges):
// changed holds the users sharing a room with user now whose device list
// changed in the window, plus those who started sharing a room with user
// in it (user's client must fetch keys it never had); left holds those
// who shared a room at since and share none now. user is in changed when
// their own devices changed (other devices of theirs must refetch).
//
// Membership is only re-examined in rooms with member events in the
// window, so a sync that brings messages costs one timeline scan that the
// sync already warmed.
func (e *Engine) DeviceLists(user string, since, upto uint64) (changed, left []string, err error) {
	ms, err := e.store.Memberships(user)
	if err != nil {
		return nil, nil, err
	}
	return e.deviceLists(user, ms, since, upto)
}

// deviceLists is DeviceLists over the user's memberships ms.
func (e *Engine) deviceLists(user string, ms []rooms.MemberEntry, since, upto uint64) (changed, left []string, err error) {
	if since == 0 || e.src.DeviceListChanges == nil {
		return []string{}, []string{}, nil
	}
	// Users whose sharing with user may have changed in the window, and
	// the rooms user was joined to at since.
	candidates := map[string]bool{}
	var joinedAtSince []string
	for _, m := range ms {
		wasJoined := m.Membership == spec.Join && m.Pos <= since
		if m.Pos > since {
			wasJoined = e.memberAt(m.RoomID, since, user) == spec.Join
		}
		if wasJoined {
			joinedAtSince = append(joinedAtSince, m.RoomID)
		}
		if m.Pos <= since && !e.rooms.MembershipChangedSince(m.RoomID, since) {
			continue // no member event in the window: nobody came or went
		}
		if m.Pos > since && m.Pos <= upto {
			// user's own membership changed: everyone in the room then
			// and now is a candidate.
			for _, u := range e.rooms.JoinedUsers(m.RoomID) {
				candidates[u] = true
			}
			if wasJoined {
				for _, u := range e.membersAt(m.RoomID, since) {
					candidates[u] = true
				}
			}
			continue
		}
		if m.Membership != spec.Join {
			continue
		}
		err = e.store.Timeline(m.RoomID, since, rooms.Forward, func(rec rooms.EventRecord) bool {
			if rec.Pos > upto {
				return false
			}
			if rec.Type == spec.MRoomMember && rec.StateKey != nil {
				candidates[*rec.StateKey] = true
			}
			return true
		})
		if err != nil {
			return nil, nil, err
		}
	}
	delete(candidates, user)
	devChanged, err := e.src.DeviceListChanges(since, upto)
	if err != nil {
		return nil, nil, err
	}
	if len(candidates) == 0 && len(devChanged) == 0 {
		return []string{}, []string{}, nil // the common sync: nothing to compute
	}
	now := map[string]bool{}
	for _, u := range e.rooms.Peers(user) {
		now[u] = true
	}
	set := map[string]bool{}
	for u := range candidates {
		before := false
		for _, r := range joinedAtSince {
			if e.memberAt(r, since, u) == spec.Join {
				before = true
				break
			}
		}
		switch {
		case now[u] && !before:
			set[u] = true
		case !now[u] && before:
			left = append(left, u)
		}
	}
	for _, u := range devChanged {
		if now[u] || u == user {
			set[u] = true
		}
	}
	changed = make([]string, 0, len(set))
	for u := range set {
		changed = append(changed, u)
	}
	sort.Strings(changed)
	sort.Strings(left)
	if left == nil {
		left = []string{}
	}
	return changed, left, nil
}

// memberAt is u's membership in the room at position pos ("" if none).
func (e *Engine) memberAt(roomID string, pos uint64, u string) string {
	rec, err := e.store.StateEventAt(roomID, pos, spec.MRoomMember, u)
	if err != nil {
		return ""
	}
	return membership(&rec)
}

// membersAt lists the room's joined members at pos.
func (e *Engine) membersAt(roomID string, pos uint64) []string {
	state, err := e.store.StateAt(roomID, pos)
	if err != nil {
		return nil
	}
	var out []string
	for i := range state {
		if state[i].Type == spec.MRoomMember && state[i].StateKey != nil && membership(&state[i]) == spec.Join {
			out = append(out, *state[i].StateKey)
		}
	}
	return out
}
