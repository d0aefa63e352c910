package rooms

import (
	"sync"
	"sync/atomic"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// tuple keys a state entry.
type tuple struct{ typ, key string }

// head is a room's in-memory tip: its version, newest event and current
// state. It is the AuthEventProvider for new local events. Every change
// happens under mu, so events of one room are built and queued in order.
type head struct {
	mu      sync.Mutex
	meta    RoomMeta
	ver     gmsl.IRoomVersion
	latest  string // newest event ID (prev_events of the next event)
	depth   int64
	state   map[tuple]gmsl.PDU
	records map[tuple]*EventRecord // the stored records of state, for prev_content
	broken  atomic.Bool            // a queued write failed: reload before use

	// Derived from state, kept so hot paths (every send wakes the
	// members, every sync asks for push context) parse no JSON.
	memberships map[string]string // user -> membership
	creators    map[string]bool
	pl          *gmsl.PowerLevelContent // parsed on first use after a change

	// memberPos is at least the position of the room's newest committed
	// member event; memberPending counts member events applied but not yet
	// committed. Syncs read both without h.mu to skip membership work in
	// the common case of a room that only got messages (see
	// Service.MembershipChangedSince).
	memberPos     atomic.Uint64
	memberPending atomic.Int64
}

func (h *head) get(typ, key string) gmsl.PDU { return h.state[tuple{typ, key}] }

// AuthEventProvider over the current state.
func (h *head) Create() (gmsl.PDU, error)      { return h.get(spec.MRoomCreate, ""), nil }
func (h *head) JoinRules() (gmsl.PDU, error)   { return h.get(spec.MRoomJoinRules, ""), nil }
func (h *head) PowerLevels() (gmsl.PDU, error) { return h.get(spec.MRoomPowerLevels, ""), nil }
func (h *head) Member(k spec.SenderID) (gmsl.PDU, error) {
	return h.get(spec.MRoomMember, string(k)), nil
}
func (h *head) ThirdPartyInvite(k string) (gmsl.PDU, error) {
	return h.get(spec.MRoomThirdPartyInvite, k), nil
}
func (h *head) Valid() bool { return true }

// membership of user in current state ("" when none).
func (h *head) membership(user string) string { return h.memberships[user] }

// members lists users with the given membership.
func (h *head) members(membership string) []string {
	var out []string
	for u, m := range h.memberships {
		if m == membership {
			out = append(out, u)
		}
	}
	return out
}

// derive updates the derived fields for a state event now current.
func (h *head) derive(ev gmsl.PDU) {
	if h.memberships == nil {
		h.memberships = map[string]string{}
	}
	switch ev.Type() {
	case spec.MRoomPowerLevels:
		h.pl = nil
	case spec.MRoomMember:
		m, _ := ev.Membership()
		h.memberships[*ev.StateKey()] = m
	case spec.MRoomCreate:
		h.pl = nil
		h.creators = map[string]bool{}
		if !h.ver.PrivilegedCreators() {
			return
		}
		h.creators[string(ev.SenderID())] = true
		var content struct {
			AdditionalCreators []string `json:"additional_creators"`
		}
		_ = jsonUnmarshal(ev.Content(), &content)
		for _, u := range content.AdditionalCreators {
			h.creators[u] = true
		}
	}
}

// powerLevels is the current power levels (defaults when absent), parsed
// once per change. Callers must not modify the maps inside.
func (h *head) powerLevels() gmsl.PowerLevelContent {
	if h.pl != nil {
		return *h.pl
	}
	var pl gmsl.PowerLevelContent
	parsed := false
	if ev := h.get(spec.MRoomPowerLevels, ""); ev != nil {
		if p, err := ev.PowerLevels(); err == nil {
			pl, parsed = *p, true
		}
	}
	if !parsed {
		creator := ""
		if c := h.get(spec.MRoomCreate, ""); c != nil {
			creator = string(c.SenderID())
		}
		pl, _ = gmsl.NewPowerLevelContentFromAuthEvents(h, creator)
	}
	h.pl = &pl
	return pl
}

// userLevel is the user's power level; room creators of versions with
// privileged creators (v12, MSC4289) outrank everyone.
func (h *head) userLevel(user string) int64 {
	if h.isCreator(user) {
		return 1 << 53
	}
	pl := h.powerLevels()
	return pl.UserLevel(spec.SenderID(user))
}

func (h *head) isCreator(user string) bool { return h.creators[user] }

// creatorList lists the privileged creators (v12), in no order.
func (h *head) creatorList() []string {
	out := make([]string, 0, len(h.creators))
	for u := range h.creators {
		out = append(out, u)
	}
	return out
}

// apply records an accepted event in the head.
func (h *head) apply(ev gmsl.PDU, rec *EventRecord) {
	h.latest = ev.EventID()
	h.depth = ev.Depth()
	if sk := ev.StateKey(); sk != nil {
		t := tuple{ev.Type(), *sk}
		h.state[t] = ev
		h.records[t] = rec
		h.derive(ev)
	}
}
