package main

import (
	"encoding/json"

	"github.com/lichen-hs/lichen/core/accountdata"
	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/presence"
	"github.com/lichen-hs/lichen/core/pushrules"
	"github.com/lichen-hs/lichen/core/receipts"
	"github.com/lichen-hs/lichen/core/syncer"
	"github.com/lichen-hs/lichen/core/typing"
	"github.com/lichen-hs/lichen/transport"
)

// userData is the wiring of the per-user streams the sync engine reads.
type userData struct {
	sources    syncer.Sources
	loadFilter func(user, idOrJSON string) (*filter.Filter, error)
}

// mountUserData wires account data, receipts, typing and presence, mounts
// their endpoints and returns what the sync engine reads from them.
func mountUserData(a *app) userData {
	st := a.store
	ad := accountdata.New(st, a.hub)
	members := receipts.Members(a.rooms.JoinedUsers)
	rc := receipts.New(st, a.hub, receipts.RoomsOf(a.rooms), members, ad)
	ty := typing.New(a.hub, a.rooms, typing.Members(a.rooms.JoinedUsers))
	pr := presence.New(a.hub, presence.Peers(a.rooms.Peers), func(u string) bool {
		_, _, ok := a.accounts.Profile(u)
		return ok
	})
	a.http.MountUserData(ad, accountdata.NewDirectory(a.listProfiles, a.rooms.DirectoryScope))
	a.http.MountEphemeral(rc, ty, pr)
	eventPos := func(id string) (uint64, bool) {
		rec, err := st.Event(id)
		return rec.Pos, err == nil
	}
	return userData{
		loadFilter: transport.FilterLoader(ad.Filters()),
		sources: syncer.Sources{
			AccountData: func(user string, since, upto uint64) ([]json.RawMessage, map[string][]json.RawMessage, error) {
				global, perRoom, err := ad.Changes(user, since, upto)
				if err != nil {
					return nil, nil, err
				}
				out := make(map[string][]json.RawMessage, len(perRoom))
				for room, evs := range perRoom {
					out[room] = marshalEvents(evs)
				}
				return marshalEvents(global), out, nil
			},
			Receipts:    rc.RoomReceipts,
			Typing:      ty.Typing,
			Presence:    pr.Changes,
			SetPresence: pr.SetFromSync,
			Rules: func(user string) *pushrules.Ruleset {
				rs, err := ad.Ruleset(user)
				if err != nil {
					return nil
				}
				return rs
			},
			ReadPos: func(user, roomID string) uint64 { return rc.ReadPos(user, roomID, eventPos) },
			Ignored: func(user string) map[string]bool {
				c, err := ad.Get(user, user, "", "m.ignored_user_list")
				if err != nil {
					return nil
				}
				var l struct {
					IgnoredUsers map[string]json.RawMessage `json:"ignored_users"`
				}
				if json.Unmarshal(c, &l) != nil || len(l.IgnoredUsers) == 0 {
					return nil
				}
				out := make(map[string]bool, len(l.IgnoredUsers))
				for u := range l.IgnoredUsers {
					out[u] = true
				}
				return out
			},
		},
	}
}

func marshalEvents(evs []accountdata.Event) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(evs))
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err == nil {
			out = append(out, b)
		}
	}
	return out
}

// listProfiles feeds the user directory from the accounts.
func (a *app) listProfiles() []accountdata.Profile {
	users, err := a.accounts.LocalUsers()
	if err != nil {
		return nil
	}
	out := make([]accountdata.Profile, 0, len(users))
	for _, u := range users {
		out = append(out, accountdata.Profile{UserID: u.UserID, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL})
	}
	return out
}
