// Package notify wakes /sync long-polls. After a commit (or an ephemeral
// change such as typing) the writer names the users concerned; only their
// waiting syncs wake, so a message in one room never touches the others.
package notify

import (
	"sync"
	"sync/atomic"
	"time"
)

// Hub is the in-memory wake-up board. It is safe for concurrent use.
type Hub struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
	eph   atomic.Uint64 // ephemeral stream position (typing, presence)
	done  chan struct{}
	once  sync.Once
}

// New makes a hub.
//
// The ephemeral position is not stored, so it starts from the clock (in
// microseconds): tokens handed out before a restart then never run ahead
// of the new counter, which would hide the first typing and presence
// changes after the restart.
func New() *Hub {
	h := &Hub{chans: map[string]chan struct{}{}, done: make(chan struct{})}
	h.eph.Store(uint64(time.Now().UnixMicro()))
	return h
}

// Shutdown releases every waiting long-poll for good (server stopping),
// so in-flight /sync requests answer at once instead of holding shutdown.
func (h *Hub) Shutdown() { h.once.Do(func() { close(h.done) }) }

// Done is closed by Shutdown.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Watch returns a channel that is closed at the user's next wake-up. Take
// it before looking for changes, so a change between the look and the wait
// is not missed.
func (h *Hub) Watch(user string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.chans[user]
	if !ok {
		ch = make(chan struct{})
		h.chans[user] = ch
	}
	return ch
}

// Wake wakes the users' waiting syncs.
func (h *Hub) Wake(users ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range users {
		if ch, ok := h.chans[u]; ok {
			close(ch)
			delete(h.chans, u)
		}
	}
}

// RoomEvent implements rooms.Notifier.
func (h *Hub) RoomEvent(users []string, _ uint64) { h.Wake(users...) }

// EphemeralPos is the current ephemeral stream position.
func (h *Hub) EphemeralPos() uint64 { return h.eph.Load() }

// BumpEphemeral advances the ephemeral stream and wakes users; it returns
// the new position, which the change should be recorded under.
func (h *Hub) BumpEphemeral(users ...string) uint64 {
	p := h.eph.Add(1)
	h.Wake(users...)
	return p
}
