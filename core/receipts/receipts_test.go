package receipts

import (
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

type memStore struct{ rs []Receipt }

func (m *memStore) PutReceipt(roomID string, r Receipt) (uint64, error) {
	r.Pos = uint64(len(m.rs) + 1)
	m.rs = append(m.rs, r)
	return r.Pos, nil
}

func (m *memStore) Receipts(roomID string, since, upto uint64) ([]Receipt, error) {
	var out []Receipt
	for _, r := range m.rs {
		if r.Pos > since && r.Pos <= upto {
			out = append(out, r)
		}
	}
	return out, nil
}

type fakeRooms struct{}

func (fakeRooms) Membership(user, roomID string) (string, error) {
	if user == "@a:x" || user == "@b:x" {
		return "join", nil
	}
	return "leave", nil
}

func (fakeRooms) EventRoom(eventID string) (string, error) {
	switch eventID {
	case "$1", "$2":
		return "!r:x", nil
	case "$other":
		return "!o:x", nil
	}
	return "", ErrNotFound
}

type markers map[string]string

func (m markers) SetFullyRead(user, roomID, eventID string) error { m[user] = eventID; return nil }

func str(s string) *string { return &s }

func TestPost(t *testing.T) {
	st, mk := &memStore{}, markers{}
	s := New(st, notify.New(), fakeRooms{}, func(string) []string { return nil }, mk)
	s.now = func() time.Time { return time.UnixMilli(42) }
	tests := []struct {
		name, user, typ, event string
		thread                 *string
		code                   string // "" for success
	}{
		{"read", "@a:x", TypeRead, "$1", nil, ""},
		{"private, threaded", "@b:x", TypeReadPrivate, "$2", str("main"), ""},
		{"fully read", "@a:x", TypeFullyRead, "$2", nil, ""},
		{"fully read with thread", "@a:x", TypeFullyRead, "$2", str("main"), "M_INVALID_PARAM"},
		{"empty thread", "@a:x", TypeRead, "$1", str(""), "M_INVALID_PARAM"},
		{"unknown type", "@a:x", "m.nope", "$1", nil, "M_INVALID_PARAM"},
		{"not joined", "@c:x", TypeRead, "$1", nil, "M_FORBIDDEN"},
		{"other room's event", "@a:x", TypeRead, "$other", nil, "M_NOT_FOUND"},
		{"unknown event", "@a:x", TypeRead, "$nope", nil, "M_NOT_FOUND"},
	}
	for _, tc := range tests {
		err := s.Post(tc.user, "!r:x", tc.typ, tc.event, tc.thread)
		if got := ""; err != nil {
			got = mxerr.As(err).Code
			if got != tc.code {
				t.Errorf("%s: got %v, want %q", tc.name, err, tc.code)
			}
		} else if tc.code != "" {
			t.Errorf("%s: succeeded, want %s", tc.name, tc.code)
		}
	}
	if len(st.rs) != 2 || mk["@a:x"] != "$2" {
		t.Fatalf("stored %+v, markers %v", st.rs, mk)
	}
	for viewer, want := range map[string]string{
		"@a:x": `{"$1":{"m.read":{"@a:x":{"ts":42}}}}`,
		"@b:x": `{"$1":{"m.read":{"@a:x":{"ts":42}}},"$2":{"m.read.private":{"@b:x":{"ts":42,"thread_id":"main"}}}}`,
	} {
		got, err := s.RoomReceipts(viewer, "!r:x", 0, 10)
		if err != nil || string(got) != want {
			t.Errorf("viewer %s: %s %v, want %s", viewer, got, err, want)
		}
	}
	if got, _ := s.RoomReceipts("@a:x", "!r:x", 1, 10); got != nil {
		t.Errorf("only a private receipt of another user in the window: %s", got)
	}
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		body   string
		thread string
		code   string
	}{
		{"", "", ""},
		{`{}`, "", ""},
		{`{"thread_id":"main"}`, "main", ""},
		{`{"thread_id":"$root"}`, "$root", ""},
		{`{"thread_id":""}`, "", "M_INVALID_PARAM"},
		{`{"thread_id":5}`, "", "M_INVALID_PARAM"},
		{`{"thread_id":null}`, "", "M_INVALID_PARAM"},
		{`[]`, "", "M_BAD_JSON"},
	}
	for _, tc := range tests {
		th, err := ParseBody([]byte(tc.body))
		code := ""
		if err != nil {
			code = mxerr.As(err).Code
		}
		got := ""
		if th != nil {
			got = *th
		}
		if code != tc.code || got != tc.thread {
			t.Errorf("%s: thread %q err %v, want %q %q", tc.body, got, err, tc.thread, tc.code)
		}
	}

}
