package typing

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

type fakeRooms map[string]string // user\0room -> membership

func (f fakeRooms) Membership(user, roomID string) (string, error) {
	if roomID == "!gone:x" {
		return "", mxerr.NotFound("unknown room")
	}
	return f[user+"\x00"+roomID], nil
}

// fakeTimer records the scheduled expiry; tests fire it by hand.
type fakeTimer struct {
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { t.stopped = true; return true }

type clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fire runs the live timers, as the runtime would once they are due.
func (c *clock) fire() {
	c.mu.Lock()
	ts := c.timers
	c.timers = nil
	c.mu.Unlock()
	for _, t := range ts {
		if !t.stopped {
			t.f()
		}
	}
}

func newTest() (*Service, *clock, *notify.Hub) {
	hub := notify.New()
	rooms := fakeRooms{"@a:x\x00!r:x": "join", "@b:x\x00!r:x": "join", "@c:x\x00!r:x": "leave"}
	s := New(hub, rooms, func(string) []string { return []string{"@a:x", "@b:x"} })
	c := &clock{now: time.Unix(1000, 0)}
	s.now = c.Now
	s.afterFunc = func(d time.Duration, f func()) stopper {
		t := &fakeTimer{f: f}
		c.mu.Lock()
		c.timers = append(c.timers, t)
		c.mu.Unlock()
		return t
	}
	return s, c, hub
}

func TestSetErrors(t *testing.T) {
	s, _, _ := newTest()
	tests := []struct {
		name, caller, user, room string
		code                     string
	}{
		{"other user", "@a:x", "@b:x", "!r:x", "M_FORBIDDEN"},
		{"left the room", "@c:x", "@c:x", "!r:x", "M_FORBIDDEN"},
		{"never joined", "@d:x", "@d:x", "!r:x", "M_FORBIDDEN"},
		{"unknown room", "@a:x", "@a:x", "!gone:x", "M_FORBIDDEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Set(tc.caller, tc.user, tc.room, true, 0)
			if err == nil || mxerr.As(err).Code != tc.code || mxerr.As(err).Status != 403 {
				t.Fatalf("got %v, want 403 %s", err, tc.code)
			}
		})
	}
	if users, pos := s.Typing("!r:x"); users != nil || pos != 0 {
		t.Fatalf("refused requests changed state: %v %d", users, pos)
	}
}

func TestTypingLifecycle(t *testing.T) {
	s, c, hub := newTest()
	type step struct {
		name    string
		do      func()
		want    []string
		changed bool // the room's position moved
	}
	set := func(user string, typing bool, d time.Duration) func() {
		return func() {
			if err := s.Set(user, user, "!r:x", typing, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []step{
		{"a starts", set("@a:x", true, 10*time.Second), []string{"@a:x"}, true},
		{"a renews", set("@a:x", true, 10*time.Second), []string{"@a:x"}, false},
		{"b starts, long timeout capped", set("@b:x", true, time.Hour), []string{"@a:x", "@b:x"}, true},
		{"9s later", func() { c.advance(9 * time.Second) }, []string{"@a:x", "@b:x"}, false},
		{"a's claim runs out, read lazily", func() { c.advance(2 * time.Second) }, []string{"@b:x"}, false},
		{"timer fires", c.fire, []string{"@b:x"}, true},
		{"b stops", set("@b:x", false, 0), nil, true},
		{"b stops again", set("@b:x", false, 0), nil, false},
		{"default timeout", set("@a:x", true, 0), []string{"@a:x"}, true},
		{"29s later", func() { c.advance(29 * time.Second); c.fire() }, []string{"@a:x"}, false},
		{"30s later", func() { c.advance(time.Second); c.fire() }, nil, true},
	}
	_, last := s.Typing("!r:x")
	for _, st := range steps {
		watch := hub.Watch("@b:x")
		st.do()
		users, pos := s.Typing("!r:x")
		if !slices.Equal(users, st.want) {
			t.Fatalf("%s: typing %v, want %v", st.name, users, st.want)
		}
		if (pos != last) != st.changed {
			t.Fatalf("%s: position %d -> %d, changed want %v", st.name, last, pos, st.changed)
		}
		if st.changed {
			if pos != hub.EphemeralPos() {
				t.Fatalf("%s: room position %d is not the ephemeral position %d", st.name, pos, hub.EphemeralPos())
			}
			select {
			case <-watch:
			default:
				t.Fatalf("%s: members not woken", st.name)
			}
		}
		last = pos
	}
}

// A claim that ran out before its timer counts as a change when the next
// request for the room comes in.
func TestExpiredBeforeTimer(t *testing.T) {
	s, c, _ := newTest()
	_ = s.Set("@a:x", "@a:x", "!r:x", true, time.Second)
	c.advance(2 * time.Second)
	_, before := s.Typing("!r:x")
	_ = s.Set("@b:x", "@b:x", "!r:x", false, 0) // b was not typing
	users, after := s.Typing("!r:x")
	if users != nil || after == before {
		t.Fatalf("typing %v, pos %d -> %d", users, before, after)
	}
}

func TestRealTimer(t *testing.T) {
	hub := notify.New()
	s := New(hub, fakeRooms{"@a:x\x00!r:x": "join"}, nil)
	w := hub.Watch("@a:x")
	if err := s.Set("@a:x", "@a:x", "!r:x", true, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	<-w
	w = hub.Watch("@a:x")
	select {
	case <-w:
	case <-time.After(5 * time.Second):
		t.Fatal("expiry did not wake the room")
	}
	if users, _ := s.Typing("!r:x"); users != nil {
		t.Fatalf("still typing: %v", users)
	}
}
