// Package typing keeps who is typing in which room, in memory only (typing
// notifications are ephemeral: spec "Typing Notifications",
// data/api/client-server/typing.yaml, event m.typing). Each change of a
// room's typing set advances the notifier's ephemeral stream and wakes the
// room's members; a timer ends typing that was not renewed.
package typing

import (
	"sort"
	"sync"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

// Timeouts. The spec names neither a default nor a maximum; clients renew
// every 20-30 s (spec "Client behaviour" recommends N of 20-30 seconds),
// so a longer claim buys nothing but a stale indicator.
const (
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = 30 * time.Second
)

// Rooms answers membership (satisfied by *rooms.Service).
type Rooms interface {
	Membership(user, roomID string) (string, error)
}

// Members lists the users joined to a room (wired by the server).
type Members func(roomID string) []string

// Service is the typing board. It is safe for concurrent use.
type Service struct {
	hub     *notify.Hub
	rooms   Rooms
	members Members
	now     func() time.Time
	// afterFunc schedules expiry; tests replace it.
	afterFunc func(d time.Duration, f func()) stopper

	mu    sync.Mutex
	byRID map[string]*room
}

type stopper interface{ Stop() bool }

// room is one room's typing set. It stays after the last typist stops so
// that pos still tells syncs behind it that the set changed.
type room struct {
	users map[string]time.Time // user -> expiry
	pos   uint64               // ephemeral position of the last change
	timer stopper
	at    time.Time // when timer fires
}

// New makes the service.
func New(hub *notify.Hub, rooms Rooms, members Members) *Service {
	return &Service{
		hub: hub, rooms: rooms, members: members, now: time.Now,
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		byRID:     map[string]*room{},
	}
}

// Set is PUT /rooms/{roomId}/typing/{userId}: only for the caller's own
// user (403) who is joined to the room (403). timeout is the requested
// duration (0 for the default), capped at MaxTimeout.
func (s *Service) Set(caller, user, roomID string, typing bool, timeout time.Duration) error {
	if caller != user {
		return mxerr.Forbidden("cannot set the typing state of another user")
	}
	m, err := s.rooms.Membership(user, roomID)
	if err != nil {
		if e := mxerr.As(err); e.Status == 404 {
			return mxerr.Forbidden("you are not joined to this room")
		}
		return err
	}
	if m != "join" {
		return mxerr.Forbidden("you are not joined to this room")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	timeout = min(timeout, MaxTimeout)

	s.mu.Lock()
	rt := s.byRID[roomID]
	if rt == nil {
		rt = &room{users: map[string]time.Time{}}
		s.byRID[roomID] = rt
	}
	now := s.now()
	// Claims that ended before their timer ran count as changes here.
	dropped := s.sweepLocked(rt, now)
	changed := len(dropped) > 0
	if _, was := rt.users[user]; was != typing {
		changed = true
	}
	if typing {
		rt.users[user] = now.Add(timeout)
	} else {
		delete(rt.users, user)
	}
	if changed {
		// Allocate the position with the change, under the lock, so a sync
		// that read the ephemeral position after this sees the change.
		rt.pos = s.hub.BumpEphemeral()
	}
	s.scheduleLocked(roomID, rt)
	s.mu.Unlock()
	if changed {
		s.wake(roomID, append(dropped, user)...)
	}
	return nil
}

// Typing is the sync read: who is typing in the room (sorted) and the
// ephemeral position of the room's last typing change (0 if never). Read
// the notifier's ephemeral position before calling it.
func (s *Service) Typing(roomID string) (users []string, changedPos uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := s.byRID[roomID]
	if rt == nil {
		return nil, 0
	}
	now := s.now()
	for u, exp := range rt.users {
		if exp.After(now) {
			users = append(users, u)
		}
	}
	sort.Strings(users)
	return users, rt.pos
}

// sweepLocked drops expired typists and returns them.
func (s *Service) sweepLocked(rt *room, now time.Time) []string {
	var dropped []string
	for u, exp := range rt.users {
		if !exp.After(now) {
			delete(rt.users, u)
			dropped = append(dropped, u)
		}
	}
	return dropped
}

// scheduleLocked arms the room's timer for its earliest expiry.
func (s *Service) scheduleLocked(roomID string, rt *room) {
	var next time.Time
	for _, exp := range rt.users {
		if next.IsZero() || exp.Before(next) {
			next = exp
		}
	}
	if rt.timer != nil && rt.at.Equal(next) {
		return
	}
	if rt.timer != nil {
		rt.timer.Stop()
		rt.timer = nil
	}
	if next.IsZero() {
		return
	}
	rt.at = next
	rt.timer = s.afterFunc(max(next.Sub(s.now()), 0), func() { s.expire(roomID) })
}

// expire runs when a room's earliest typing claim ends.
func (s *Service) expire(roomID string) {
	s.mu.Lock()
	rt := s.byRID[roomID]
	if rt == nil {
		s.mu.Unlock()
		return
	}
	rt.timer = nil
	dropped := s.sweepLocked(rt, s.now())
	if len(dropped) > 0 {
		rt.pos = s.hub.BumpEphemeral()
	}
	s.scheduleLocked(roomID, rt)
	s.mu.Unlock()
	if len(dropped) > 0 {
		s.wake(roomID, dropped...)
	}
}

// wake wakes the room's members and also (in case they just left) the
// users whose typing changed.
func (s *Service) wake(roomID string, users ...string) {
	if s.members != nil {
		users = append(users, s.members(roomID)...)
	}
	s.hub.Wake(users...)
}
