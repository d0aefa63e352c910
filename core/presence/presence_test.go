package presence

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

type fakeTimer struct {
	f       func()
	at      time.Time
	stopped bool
}

func (t *fakeTimer) Stop() bool { t.stopped = true; return true }

type clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// advance moves time on and fires the timers that fall due, in order.
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(now):
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func newTest() (*Service, *clock, *notify.Hub) {
	hub := notify.New()
	known := map[string]bool{"@a:x": true, "@b:x": true}
	s := New(hub, func(u string) []string {
		if u == "@a:x" {
			return []string{"@b:x"}
		}
		return []string{"@a:x"}
	}, func(u string) bool { return known[u] })
	c := &clock{now: time.Unix(1000, 0)}
	s.now = c.Now
	s.afterFunc = func(d time.Duration, f func()) stopper {
		c.mu.Lock()
		defer c.mu.Unlock()
		t := &fakeTimer{f: f, at: c.now.Add(d)}
		c.timers = append(c.timers, t)
		return t
	}
	return s, c, hub
}

func str(s string) *string { return &s }

func TestPresenceTransitions(t *testing.T) {
	s, c, hub := newTest()
	type step struct {
		name    string
		do      func()
		want    string // a's presence after the step
		changed bool   // a's presence event moved on the stream
	}
	steps := []step{
		{"unknown user is offline", func() {}, Offline, false},
		{"sync online", func() { s.SetFromSync("@a:x", "") }, Online, true},
		{"sync again", func() { s.SetFromSync("@a:x", Online) }, Online, false},
		{"sync offline leaves it", func() { s.SetFromSync("@a:x", Offline) }, Online, false},
		{"PUT unavailable", func() { _ = s.Set("@a:x", "@a:x", Unavailable, nil) }, Unavailable, true},
		{"default sync does not override PUT", func() { s.SetFromSync("@a:x", "") }, Unavailable, false},
		{"explicit set_presence overrides PUT", func() { s.SetFromSync("@a:x", Online) }, Online, true},
		{"not seen for OfflineAfter", func() { c.advance(OfflineAfter) }, Offline, true},
		{"sync brings back online", func() { s.SetFromSync("@a:x", Online) }, Online, true},
		{"status message", func() { _ = s.Set("@a:x", "@a:x", Online, str("lunch")) }, Online, true},
		{"same status again", func() { _ = s.Set("@a:x", "@a:x", Online, str("lunch")) }, Online, false},
		{"explicit set_presence=unavailable overrides PUT", func() {
			s.SetFromSync("@a:x", Unavailable) // spec sync.yaml: "marked as being idle"
		}, Unavailable, true},
		{"syncing as unavailable is not activity", func() {
			for i := 0; i < 5; i++ {
				c.advance(time.Minute)
				s.SetFromSync("@a:x", Unavailable)
			}
		}, Unavailable, false},
		{"activity brings back online", func() { s.Touch("@a:x") }, Online, true},
		{"PUT offline", func() { _ = s.Set("@a:x", "@a:x", Offline, nil) }, Offline, true},
		{"default sync does not override explicit offline", func() { s.SetFromSync("@a:x", "") }, Offline, false},
		{"touch does not either", func() { s.Touch("@a:x") }, Offline, false},
	}
	var last uint64
	for _, st := range steps {
		w := hub.Watch("@b:x")
		st.do()
		got, err := s.Get("@b:x", "@a:x")
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got.Presence != st.want {
			t.Fatalf("%s: presence %s, want %s", st.name, got.Presence, st.want)
		}
		evs := s.Changes("@b:x", []string{"@a:x"}, last)
		if (len(evs) == 1) != st.changed {
			t.Fatalf("%s: %d events since %d, changed want %v", st.name, len(evs), last, st.changed)
		}
		if st.changed {
			select {
			case <-w:
			default:
				t.Fatalf("%s: peer not woken", st.name)
			}
			last = hub.EphemeralPos()
		}
	}
}

func TestPresenceEvent(t *testing.T) {
	s, c, _ := newTest()
	if err := s.Set("@a:x", "@a:x", Online, str("here")); err != nil {
		t.Fatal(err)
	}
	c.advance(1500 * time.Millisecond)
	evs := s.Changes("@b:x", []string{"@a:x", "@b:x", "@a:x"}, 0)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1 (b has no presence yet, a listed twice)", len(evs))
	}
	var ev struct {
		Type    string `json:"type"`
		Sender  string `json:"sender"`
		Content struct {
			Presence        string `json:"presence"`
			LastActiveAgo   int64  `json:"last_active_ago"`
			CurrentlyActive bool   `json:"currently_active"`
			StatusMsg       string `json:"status_msg"`
		} `json:"content"`
	}
	if err := json.Unmarshal(evs[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "m.presence" || ev.Sender != "@a:x" || ev.Content.Presence != Online ||
		ev.Content.LastActiveAgo != 1500 || !ev.Content.CurrentlyActive || ev.Content.StatusMsg != "here" {
		t.Fatalf("event %s", evs[0])
	}
	// A null status_msg clears the message.
	st, msg, err := ParseStatusBody([]byte(`{"presence":"unavailable","status_msg":null}`))
	if err != nil || st != Unavailable || msg == nil || *msg != "" {
		t.Fatalf("parse: %q %v %v", st, msg, err)
	}
	_ = s.Set("@a:x", "@a:x", st, msg)
	got, _ := s.Get("@a:x", "@a:x")
	if got.StatusMsg != nil || *got.CurrentlyActive {
		t.Fatalf("after clearing: %+v", got)
	}
}

func TestPresenceErrors(t *testing.T) {
	s, _, _ := newTest()
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"set other user", s.Set("@a:x", "@b:x", Online, nil), 403, "M_FORBIDDEN"},
		{"bad state", s.Set("@a:x", "@a:x", "busy", nil), 400, "M_INVALID_PARAM"},
		{"unknown user", func() error { _, err := s.Get("@a:x", "@nobody:x"); return err }(), 404, "M_NOT_FOUND"},
		{"missing presence", func() error { _, _, err := ParseStatusBody([]byte(`{}`)); return err }(), 400, "M_MISSING_PARAM"},
		{"not an object", func() error { _, _, err := ParseStatusBody([]byte(`[]`)); return err }(), 400, "M_BAD_JSON"},
		{"bad status_msg", func() error { _, _, err := ParseStatusBody([]byte(`{"presence":"online","status_msg":1}`)); return err }(), 400, "M_BAD_JSON"},
	}
	for _, tc := range tests {
		e := mxerr.As(tc.err)
		if tc.err == nil || e.Status != tc.status || e.Code != tc.code {
			t.Errorf("%s: got %v, want %d %s", tc.name, tc.err, tc.status, tc.code)
		}
	}
	if st, err := s.Get("@a:x", "@b:x"); err != nil || st.Presence != Offline {
		t.Fatalf("known user without presence: %+v %v", st, err)
	}
}
