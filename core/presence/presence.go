// Package presence keeps users' presence (online, unavailable, offline, a
// status message and the last active time) in memory, and turns changes
// into m.presence events for the users who share a room.
//
// Spec: client-server-api "Presence" (modules/presence.md),
// data/api/client-server/presence.yaml, event schema m.presence.
//
// The model, kept small for a board:
//   - PUT /presence sets the state explicitly; an explicit state is not
//     overridden by /sync's set_presence until a timeout clears it.
//   - /sync's set_presence (SetFromSync) counts as being connected: it
//     brings a user who is offline (or was set by a timeout) to the given
//     state, and "online" refreshes the last active time.
//   - Touch (a sent event) refreshes the last active time and brings an
//     unavailable-by-idleness user back online (spec "Idle timeout").
//   - A user online but not active for IdleAfter becomes unavailable; a
//     user not seen (no sync, PUT or Touch) for OfflineAfter becomes
//     offline.
//   - currently_active is true exactly while the state is online, so
//     clients get a state change whenever it would turn false, as the
//     spec requires ("Last active ago").
package presence

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

// Presence states.
const (
	Online      = "online"
	Unavailable = "unavailable"
	Offline     = "offline"
)

// Timeouts (spec "Idle timeout" suggests 5 minutes).
const (
	IdleAfter    = 5 * time.Minute
	OfflineAfter = 2 * time.Minute
)

// MaxStatusMsgBytes bounds status messages (the spec names no limit).
const MaxStatusMsgBytes = 1024

// Peers lists the users who share a room with user (wired by the server).
type Peers func(user string) []string

// Exists reports whether user is a local account; nil means every user.
type Exists func(user string) bool

// Status is a user's presence as GET /presence/{userId}/status returns it
// and as the content of m.presence.
type Status struct {
	Presence        string  `json:"presence"`
	LastActiveAgo   *int64  `json:"last_active_ago,omitempty"`
	StatusMsg       *string `json:"status_msg,omitempty"`
	CurrentlyActive *bool   `json:"currently_active,omitempty"`
}

// Service is the presence board. It is safe for concurrent use.
type Service struct {
	hub    *notify.Hub
	peers  Peers
	exists Exists
	now    func() time.Time
	// afterFunc schedules the timeouts; tests replace it.
	afterFunc func(d time.Duration, f func()) stopper

	mu    sync.Mutex
	users map[string]*entry
}

type stopper interface{ Stop() bool }

type entry struct {
	state      string
	statusMsg  *string
	explicit   bool      // set by PUT; sync does not override it
	lastActive time.Time // zero if never active
	lastSeen   time.Time // last sync, PUT or Touch
	pos        uint64    // ephemeral position of the last change
	timer      stopper
}

// New makes the service.
func New(hub *notify.Hub, peers Peers, exists Exists) *Service {
	return &Service{
		hub: hub, peers: peers, exists: exists, now: time.Now,
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		users:     map[string]*entry{},
	}
}

func validState(s string) bool { return s == Online || s == Unavailable || s == Offline }

// Set is PUT /presence/{userId}/status: only the caller's own presence
// (403). statusMsg nil keeps the current message; "" clears it.
func (s *Service) Set(caller, user, state string, statusMsg *string) error {
	if caller != user {
		return mxerr.Forbidden("cannot set the presence of another user")
	}
	if !validState(state) {
		return mxerr.InvalidParam("presence must be online, unavailable or offline")
	}
	if statusMsg != nil && len(*statusMsg) > MaxStatusMsgBytes {
		return mxerr.InvalidParam("status_msg is too long")
	}
	s.update(user, func(e *entry, now time.Time) bool {
		changed := e.state != state
		e.state, e.explicit, e.lastSeen = state, true, now
		if statusMsg != nil {
			var m *string
			if *statusMsg != "" {
				v := *statusMsg
				m = &v
			}
			if !sameMsg(e.statusMsg, m) {
				e.statusMsg, changed = m, true
			}
		}
		if state == Online {
			e.lastActive = now
		}
		return changed
	})
	return nil
}

func sameMsg(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// SetFromSync applies /sync's set_presence (default "online"): "offline"
// leaves the presence untouched (spec sync.yaml: the client is "not marked
// as being online").
func (s *Service) SetFromSync(user, state string) {
	// An explicit set_presence ("unavailable", "online") is the client
	// saying what it is; only the implicit default yields to a PUT.
	named := state != ""
	if state == "" {
		state = Online
	}
	if state == Offline || !validState(state) {
		return
	}
	s.update(user, func(e *entry, now time.Time) bool {
		e.lastSeen = now
		if state == Online {
			e.lastActive = now
		}
		if e.explicit && !named {
			return false // the user's own PUT stands
		}
		if named {
			e.explicit = false
		}
		changed := e.state != state
		e.state = state
		return changed
	})
}

// Touch records activity (the user sent an event): last active is now, and
// a user who went unavailable by idleness is online again.
func (s *Service) Touch(user string) {
	s.update(user, func(e *entry, now time.Time) bool {
		e.lastSeen, e.lastActive = now, now
		if e.state == Unavailable && !e.explicit {
			e.state = Online
			return true
		}
		if e.state == Offline && !e.explicit {
			e.state = Online
			return true
		}
		return false
	})
}

// update applies f to the user's entry; when f reports a change, the
// change gets a new ephemeral position and the user's peers are woken.
func (s *Service) update(user string, f func(e *entry, now time.Time) bool) {
	s.mu.Lock()
	e := s.users[user]
	if e == nil {
		e = &entry{state: Offline}
		s.users[user] = e
	}
	now := s.now()
	changed := f(e, now)
	if changed {
		// Allocated under the lock with the change: a sync that read the
		// ephemeral position after this sees the change.
		e.pos = s.hub.BumpEphemeral()
	}
	s.scheduleLocked(user, e, now)
	s.mu.Unlock()
	if changed {
		s.wake(user)
	}
}

// deadline is when the entry's next timeout transition is due (zero if
// none).
func (e *entry) deadline() time.Time {
	switch e.state {
	case Online:
		idle, off := e.lastActive.Add(IdleAfter), e.lastSeen.Add(OfflineAfter)
		if idle.Before(off) {
			return idle
		}
		return off
	case Unavailable:
		return e.lastSeen.Add(OfflineAfter)
	}
	return time.Time{}
}

// timeout applies the transitions due at now and reports a change.
func (e *entry) timeout(now time.Time) bool {
	switch {
	case e.state != Offline && !now.Before(e.lastSeen.Add(OfflineAfter)):
		e.state, e.explicit = Offline, false
		return true
	case e.state == Online && !now.Before(e.lastActive.Add(IdleAfter)):
		e.state, e.explicit = Unavailable, false
		return true
	}
	return false
}

func (s *Service) scheduleLocked(user string, e *entry, now time.Time) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	d := e.deadline()
	if d.IsZero() {
		return
	}
	e.timer = s.afterFunc(max(d.Sub(now), 0), func() { s.expire(user) })
}

// expire runs at an entry's deadline.
func (s *Service) expire(user string) {
	s.mu.Lock()
	e := s.users[user]
	if e == nil {
		s.mu.Unlock()
		return
	}
	e.timer = nil
	now := s.now()
	changed := e.timeout(now)
	if changed {
		e.pos = s.hub.BumpEphemeral()
	}
	s.scheduleLocked(user, e, now)
	s.mu.Unlock()
	if changed {
		s.wake(user)
	}
}

func (s *Service) wake(user string) {
	var users []string
	if s.peers != nil {
		users = s.peers(user)
	}
	s.hub.Wake(append(users, user)...)
}

func (e *entry) status(now time.Time) Status {
	st := Status{Presence: e.state, StatusMsg: e.statusMsg}
	if !e.lastActive.IsZero() {
		ago := max(now.Sub(e.lastActive).Milliseconds(), 0)
		st.LastActiveAgo = &ago
	}
	active := e.state == Online
	st.CurrentlyActive = &active
	return st
}

// Get is GET /presence/{userId}/status. Any local user's presence is
// visible to any local user (the spec requires at least those who share a
// room; a board's users are one household); unknown users are 404.
func (s *Service) Get(caller, user string) (Status, error) {
	if user != caller && s.exists != nil && !s.exists(user) {
		return Status{}, mxerr.NotFound("unknown user")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.users[user]
	if e == nil {
		return Status{Presence: Offline}, nil
	}
	return e.status(s.now()), nil
}

// event is an m.presence event.
type event struct {
	Type    string `json:"type"`
	Sender  string `json:"sender"`
	Content Status `json:"content"`
}

// Changes is the sync read: m.presence events for the users of peers whose
// presence changed after sinceEph (every known one when sinceEph is 0).
// Include the viewer in peers to report their own presence. Read the
// notifier's ephemeral position before calling it.
func (s *Service) Changes(viewer string, peers []string, sinceEph uint64) []json.RawMessage {
	s.mu.Lock()
	now := s.now()
	var evs []event
	seen := make(map[string]bool, len(peers))
	for _, u := range peers {
		if seen[u] {
			continue
		}
		seen[u] = true
		e := s.users[u]
		if e == nil || e.pos == 0 || e.pos <= sinceEph {
			continue
		}
		evs = append(evs, event{Type: "m.presence", Sender: u, Content: e.status(now)})
	}
	s.mu.Unlock()
	out := make([]json.RawMessage, 0, len(evs))
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err == nil {
			out = append(out, b)
		}
	}
	return out
}

// ParseStatusBody reads the body of PUT /presence/{userId}/status:
// "presence" is required (400 M_MISSING_PARAM); "status_msg" absent keeps
// the current message (nil), null or "" clears it.
func ParseStatusBody(body []byte) (state string, statusMsg *string, err error) {
	var obj map[string]json.RawMessage
	if len(body) == 0 || json.Unmarshal(body, &obj) != nil || obj == nil {
		return "", nil, mxerr.BadJSON("request body must be a JSON object")
	}
	raw, ok := obj["presence"]
	if !ok {
		return "", nil, mxerr.MissingParam("presence is required")
	}
	if json.Unmarshal(raw, &state) != nil || !validState(state) {
		return "", nil, mxerr.InvalidParam("presence must be online, unavailable or offline")
	}
	if raw, ok := obj["status_msg"]; ok {
		var m *string
		if err := json.Unmarshal(raw, &m); err != nil {
			return "", nil, mxerr.BadJSON("status_msg must be a string")
		}
		if m == nil {
			m = new(string)
		}
		statusMsg = m
	}
	return state, statusMsg, nil
}
