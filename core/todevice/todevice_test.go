package todevice

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

const (
	alice = "@alice:hub.local"
	bob   = "@bob:hub.local"
	carol = "@carol:hub.local"
	dave  = "@dave:remote.example" // on another server
)

// memStore is the Store contract in memory: queues per device, applied
// transactions, and the devices that exist (messages to others dropped).
type memStore struct {
	pos     uint64
	devices map[string][]string // user -> devices
	queue   []queued
	txns    map[Txn]bool
	puts    int // PutToDevice calls
	deleted []string
}

type queued struct {
	Message
	pos uint64
}

func newMemStore() *memStore {
	return &memStore{
		devices: map[string][]string{alice: {"A1"}, bob: append(make([]string, 0, 8), "B1", "B2", "B3"), carol: {"C1"}},
		txns:    map[Txn]bool{},
	}
}

func (m *memStore) PutToDevice(txn Txn, msgs []Message) (bool, []string, error) {
	m.puts++
	if m.txns[txn] {
		return true, nil, nil
	}
	m.txns[txn] = true
	var users []string
	for _, msg := range msgs {
		if !slices.Contains(m.devices[msg.User], msg.Device) {
			continue
		}
		m.pos++
		m.queue = append(m.queue, queued{msg, m.pos})
		if !slices.Contains(users, msg.User) {
			users = append(users, msg.User)
		}
	}
	return false, users, nil
}

func (m *memStore) ToDevice(user, device string, since, upto uint64, limit int) ([]json.RawMessage, uint64, bool, error) {
	var evs []json.RawMessage
	last := since
	for _, q := range m.queue {
		if q.User != user || q.Device != device || q.pos <= since || q.pos > upto {
			continue
		}
		if len(evs) == limit {
			return evs, last, true, nil
		}
		evs, last = append(evs, q.Event), q.pos
	}
	return evs, last, false, nil
}

func (m *memStore) DeleteDeviceInbox(user, device string) error {
	m.deleted = append(m.deleted, user+" "+device)
	return nil
}

// stored renders the queue as "user device event" lines, in position order.
func (m *memStore) stored() []string {
	var out []string
	for _, q := range m.queue {
		out = append(out, q.User+" "+q.Device+" "+string(q.Event))
	}
	return out
}

func newService(st *memStore) (*Service, *notify.Hub) {
	hub := notify.New()
	return New(st, hub, "hub.local", func(user string) ([]string, error) { return st.devices[user], nil }), hub
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	return mxerr.As(err).Code
}

// ev is the delivered form of a message of type m.test from alice.
func ev(content string) string {
	return `{"content":` + content + `,"sender":"` + alice + `","type":"m.test"}`
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		name, body string
		code       string // "" for success
		users      int
	}{
		{"one device", `{"messages":{"@bob:hub.local":{"B1":{"a":1}}}}`, "", 1},
		{"all devices", `{"messages":{"@bob:hub.local":{"*":{}}}}`, "", 1},
		{"no messages for a user", `{"messages":{"@bob:hub.local":{}}}`, "", 1},
		{"no users", `{"messages":{}}`, "", 0},
		{"other keys ignored", `{"messages":{},"extra":true}`, "", 0},
		{"remote user", `{"messages":{"@dave:remote.example":{"D1":{}}}}`, "", 1},
		{"empty body", ``, "M_NOT_JSON", 0},
		{"blank body", "  \n", "M_NOT_JSON", 0},
		{"not JSON", `{"messages":`, "M_NOT_JSON", 0},
		{"body is an array", `[]`, "M_BAD_JSON", 0},
		{"body is null", `null`, "M_BAD_JSON", 0},
		{"messages missing", `{}`, "M_MISSING_PARAM", 0},
		{"messages null", `{"messages":null}`, "M_BAD_JSON", 0},
		{"messages an array", `{"messages":[]}`, "M_BAD_JSON", 0},
		{"messages a string", `{"messages":"x"}`, "M_BAD_JSON", 0},
		{"user value null", `{"messages":{"@bob:hub.local":null}}`, "M_BAD_JSON", 0},
		{"user value an array", `{"messages":{"@bob:hub.local":[{}]}}`, "M_BAD_JSON", 0},
		{"content null", `{"messages":{"@bob:hub.local":{"B1":null}}}`, "M_BAD_JSON", 0},
		{"content a string", `{"messages":{"@bob:hub.local":{"B1":"hi"}}}`, "M_BAD_JSON", 0},
		{"content an array", `{"messages":{"@bob:hub.local":{"B1":[]}}}`, "M_BAD_JSON", 0},
		{"one bad content among good", `{"messages":{"@bob:hub.local":{"B1":{},"B2":1}}}`, "M_BAD_JSON", 0},
		{"key is not a user ID", `{"messages":{"bob":{"B1":{}}}}`, "M_INVALID_PARAM", 0},
		{"user ID without server", `{"messages":{"@bob":{"B1":{}}}}`, "M_INVALID_PARAM", 0},
	}
	for _, tc := range tests {
		msgs, err := ParseBody([]byte(tc.body))
		if got := errCode(err); got != tc.code {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.code)
			continue
		}
		if err == nil && len(msgs) != tc.users {
			t.Errorf("%s: %d users, want %d", tc.name, len(msgs), tc.users)
		}
	}
}

func TestSend(t *testing.T) {
	big := `{"k":"` + strings.Repeat("x", MaxEventBytes) + `"}`
	bigOK := `{"k":"` + strings.Repeat("x", MaxEventBytes-len(ev(`{"k":""}`))) + `"}`
	tests := []struct {
		name, typ, body string
		code            string   // "" for success
		want            []string // stored, in position order
	}{
		{"one device", "m.test", `{"messages":{"@bob:hub.local":{"B2":{"n":1}}}}`, "",
			[]string{bob + " B2 " + ev(`{"n":1}`)}},
		{"content is compacted", "m.test", `{"messages":{"@bob:hub.local":{"B1":{ "n" : [ 1, 2 ] }}}}`, "",
			[]string{bob + " B1 " + ev(`{"n":[1,2]}`)}},
		{"all devices of a user", "m.test", `{"messages":{"@bob:hub.local":{"*":{"n":1}}}}`, "",
			[]string{bob + " B1 " + ev(`{"n":1}`), bob + " B2 " + ev(`{"n":1}`), bob + " B3 " + ev(`{"n":1}`)}},
		{"a named device beats *", "m.test", `{"messages":{"@bob:hub.local":{"*":{"n":1},"B2":{"n":2}}}}`, "",
			[]string{bob + " B1 " + ev(`{"n":1}`), bob + " B2 " + ev(`{"n":2}`), bob + " B3 " + ev(`{"n":1}`)}},
		{"several users, ordered by recipient", "m.test",
			`{"messages":{"@carol:hub.local":{"C1":{"n":3}},"@alice:hub.local":{"A1":{"n":1}},"@bob:hub.local":{"B1":{"n":2}}}}`, "",
			[]string{alice + " A1 " + ev(`{"n":1}`), bob + " B1 " + ev(`{"n":2}`), carol + " C1 " + ev(`{"n":3}`)}},
		{"unknown device dropped", "m.test", `{"messages":{"@bob:hub.local":{"NOPE":{},"B1":{}}}}`, "",
			[]string{bob + " B1 " + ev(`{}`)}},
		{"unknown local user dropped", "m.test", `{"messages":{"@nobody:hub.local":{"*":{},"X":{}}}}`, "", nil},
		{"remote user dropped", "m.test", `{"messages":{"@dave:remote.example":{"*":{},"D1":{}},"@carol:hub.local":{"C1":{}}}}`, "",
			[]string{carol + " C1 " + ev(`{}`)}},
		{"empty device ID dropped", "m.test", `{"messages":{"@bob:hub.local":{"":{}}}}`, "", nil},
		{"no messages", "m.test", `{"messages":{}}`, "", nil},
		{"largest message", "m.test", `{"messages":{"@bob:hub.local":{"B1":` + bigOK + `}}}`, "",
			[]string{bob + " B1 " + ev(bigOK)}},
		{"message too large", "m.test", `{"messages":{"@bob:hub.local":{"B1":` + big + `}}}`, "M_TOO_LARGE", nil},
		{"too large even for a remote user", "m.test", `{"messages":{"@dave:remote.example":{"D1":` + big + `}}}`, "M_TOO_LARGE", nil},
		{"empty type", "", `{"messages":{"@bob:hub.local":{"B1":{}}}}`, "M_INVALID_PARAM", nil},
		{"type of 255 bytes", strings.Repeat("t", 255), `{"messages":{}}`, "", nil},
		{"type over 255 bytes", strings.Repeat("t", 256), `{"messages":{"@bob:hub.local":{"B1":{}}}}`, "M_INVALID_PARAM", nil},
	}
	for _, tc := range tests {
		st := newMemStore()
		s, _ := newService(st)
		msgs, err := ParseBody([]byte(tc.body))
		if err == nil {
			err = s.Send(Sender{User: alice, Device: "A1"}, tc.typ, "txn1", msgs)
		}
		if got := errCode(err); got != tc.code {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.code)
		}
		// Reformat the expected events the way the type is encoded.
		var want []string
		for _, w := range tc.want {
			want = append(want, strings.Replace(w, `"type":"m.test"`, `"type":"`+tc.typ+`"`, 1))
		}
		if got := st.stored(); !slices.Equal(got, want) {
			t.Errorf("%s: stored\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if tc.code != "" && st.puts != 0 {
			t.Errorf("%s: refused, but the store was written", tc.name)
		}
		if !slices.Equal(st.devices[bob], []string{"B1", "B2", "B3"}) {
			t.Errorf("%s: the device list handed to Send was modified: %v", tc.name, st.devices[bob])
		}
	}
}

// Fan-out is bounded by messages and by bytes, before anything is stored.
func TestSendFanOutLimits(t *testing.T) {
	tests := []struct {
		name    string
		devices int
		content string
		code    string
	}{
		{"many devices", MaxSendMessages, `{}`, ""},
		{"too many devices", MaxSendMessages + 1, `{}`, "M_TOO_LARGE"},
		{"too many bytes", MaxSendBytes/(MaxEventBytes/2) + 1, `{"k":"` + strings.Repeat("x", MaxEventBytes/2) + `"}`, "M_TOO_LARGE"},
	}
	for _, tc := range tests {
		const erin = "@erin:hub.local"
		st := newMemStore()
		for i := range tc.devices {
			st.devices[erin] = append(st.devices[erin], fmt.Sprintf("D%05d", i))
		}
		s, _ := newService(st)
		msgs := Messages{erin: {AllDevices: json.RawMessage(tc.content)}}
		err := s.Send(Sender{User: alice, Device: "A1"}, "m.test", "t", msgs)
		if got := errCode(err); got != tc.code {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.code)
		}
		if want := tc.devices; tc.code != "" {
			if st.puts != 0 {
				t.Errorf("%s: refused, but the store was written", tc.name)
			}
		} else if len(st.queue) != want {
			t.Errorf("%s: stored %d, want %d", tc.name, len(st.queue), want)
		}
	}
}

// A retry of a transaction stores nothing and wakes nobody; the same
// transaction ID from another device, or another user, is a new send
// (spec "Transaction identifiers").
func TestSendTransactions(t *testing.T) {
	st := newMemStore()
	s, hub := newService(st)
	msgs := Messages{bob: {"B1": json.RawMessage(`{}`)}}
	send := func(from Sender, txn string) {
		t.Helper()
		if err := s.Send(from, "m.test", txn, msgs); err != nil {
			t.Fatal(err)
		}
	}
	bobWoken, carolWoken := hub.Watch(bob), hub.Watch(carol)
	send(Sender{alice, "A1"}, "t1")
	if len(st.queue) != 1 {
		t.Fatalf("stored %d", len(st.queue))
	}
	select {
	case <-bobWoken:
	default:
		t.Error("the recipient's sync was not woken")
	}
	select {
	case <-carolWoken:
		t.Error("a user who got nothing was woken")
	default:
	}

	bobWoken = hub.Watch(bob)
	send(Sender{alice, "A1"}, "t1")
	if len(st.queue) != 1 {
		t.Errorf("a retry stored again: %d", len(st.queue))
	}
	select {
	case <-bobWoken:
		t.Error("a retry woke the recipient")
	default:
	}

	send(Sender{alice, "A2"}, "t1")
	send(Sender{carol, "A1"}, "t1")
	send(Sender{alice, "A1"}, "t2")
	if len(st.queue) != 4 {
		t.Errorf("distinct transactions: stored %d, want 4", len(st.queue))
	}
	if err := s.Send(Sender{alice, "A1"}, "m.test", "", msgs); errCode(err) != "M_INVALID_PARAM" {
		t.Errorf("empty transaction ID: %v", err)
	}
}

func TestInbox(t *testing.T) {
	st := newMemStore()
	s, _ := newService(st)
	for i := range 3 {
		msgs := Messages{bob: {"B1": json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}}
		if err := s.Send(Sender{alice, "A1"}, "m.test", fmt.Sprint(i), msgs); err != nil {
			t.Fatal(err)
		}
	}
	evs, last, more, err := s.Inbox(bob, "B1", 0, 10, 2)
	if err != nil || len(evs) != 2 || string(evs[0]) != ev(`{"n":0}`) || last != 2 || !more {
		t.Errorf("Inbox: %s last %d more %v err %v", evs, last, more, err)
	}
	if evs, last, more, _ := s.Inbox(bob, "", 5, 10, 2); evs != nil || last != 5 || more {
		t.Errorf("a session without a device: %s %d %v", evs, last, more)
	}
}

func TestDevicesDeleted(t *testing.T) {
	st := newMemStore()
	s, _ := newService(st)
	s.DeviceAdded(bob, "B4")
	s.DevicesDeleted(bob, []string{"B1", "B2"})
	if want := []string{bob + " B1", bob + " B2"}; !slices.Equal(st.deleted, want) {
		t.Errorf("deleted %v, want %v", st.deleted, want)
	}
}
