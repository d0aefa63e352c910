package boltstore

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lichen-hs/lichen/core/accountdata"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/pushrules"
	"github.com/lichen-hs/lichen/core/receipts"
	"github.com/lichen-hs/lichen/core/rooms"
)

// Store tests for the user-data streams (account data, tags, push rules,
// filters, receipts) over a real bbolt file.

const (
	udAlice = "@a:test.local"
	udBob   = "@b:test.local"
	udCarol = "@c:test.local"
	udRoom1 = "!one:test.local"
)

func udOpenStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lichen.db")
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

// udWantErr checks that err is a Matrix error with the given status and code.
func udWantErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %d %s", what, status, code)
	}
	e := mxerr.As(err)
	if e.Status != status || e.Code != code {
		t.Fatalf("%s: got %d %s (%v), want %d %s", what, e.Status, e.Code, err, status, code)
	}
}

func udTypes(evs []accountdata.Event) string {
	var ts []string
	for _, e := range evs {
		ts = append(ts, e.Type)
	}
	return strings.Join(ts, ",")
}

func udContent(evs []accountdata.Event, typ string) json.RawMessage {
	for _, e := range evs {
		if e.Type == typ {
			return e.Content
		}
	}
	return nil
}

func TestAccountDataChanges(t *testing.T) {
	st, path := udOpenStore(t)
	hub := notify.New()
	ad := accountdata.New(st, hub)

	set := func(roomID, typ, content string) uint64 {
		t.Helper()
		if err := ad.Set(udAlice, udAlice, roomID, typ, []byte(content)); err != nil {
			t.Fatalf("set %s %s: %v", roomID, typ, err)
		}
		return st.Pos()
	}
	woken := hub.Watch(udAlice)
	p1 := set("", "a.one", `{"v": 1}`)
	select {
	case <-woken:
	default:
		t.Fatal("write did not wake the user")
	}
	p2 := set(udRoom1, "r.x", `{"v":2}`)
	p3 := set("", "a.two", `{"v":3}`)
	p4 := set("", "a.one", `{"v":4}`) // replaces p1
	if !(p1 < p2 && p2 < p3 && p3 < p4) {
		t.Fatalf("positions not increasing: %d %d %d %d", p1, p2, p3, p4)
	}
	// Bob's data never shows in Alice's changes.
	if err := ad.Set(udBob, udBob, "", "a.one", []byte(`{"udBob":true}`)); err != nil {
		t.Fatal(err)
	}
	upto := st.Pos()

	tests := []struct {
		name        string
		since, upto uint64
		global      string // types in order
		rooms       int    // number of room events
		one         string // content of a.one when present
	}{
		{"initial", 0, upto, "a.two,a.one,m.push_rules", 1, `{"v":4}`},
		{"first window", 0, p2, "m.push_rules", 1, ""},   // a.one moved to p4
		{"room only", p1, p2, "", 1, ""},                 // (p1, p2]
		{"middle", p2, p3, "a.two", 0, ""},               // (p2, p3]
		{"latest only", p3, upto, "a.one", 0, `{"v":4}`}, // (p3, upto]
		{"nothing new", upto, upto + 10, "", 0, ""},      // (upto, ...]
		{"empty window", p2, p2, "", 0, ""},              // (p2, p2]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			global, rooms, err := ad.Changes(udAlice, tc.since, tc.upto)
			if err != nil {
				t.Fatal(err)
			}
			if got := udTypes(global); got != tc.global {
				t.Fatalf("global types %q, want %q", got, tc.global)
			}
			if len(rooms[udRoom1]) != tc.rooms || len(rooms) > 1 {
				t.Fatalf("room events %v, want %d in %s", rooms, tc.rooms, udRoom1)
			}
			if tc.one != "" && string(udContent(global, "a.one")) != tc.one {
				t.Fatalf("a.one = %s, want %s", udContent(global, "a.one"), tc.one)
			}
		})
	}

	// Get, errors.
	if c, err := ad.Get(udAlice, udAlice, udRoom1, "r.x"); err != nil || string(c) != `{"v":2}` {
		t.Fatalf("get room data: %s %v", c, err)
	}
	_, err := ad.Get(udAlice, udAlice, "", "nope")
	udWantErr(t, "get missing", err, 404, "M_NOT_FOUND")
	_, err = ad.Get(udBob, udAlice, "", "a.one")
	udWantErr(t, "get other user's", err, 403, "M_FORBIDDEN")
	udWantErr(t, "set other user's", ad.Set(udBob, udAlice, "", "x", []byte(`{}`)), 403, "M_FORBIDDEN")
	udWantErr(t, "set m.fully_read", ad.Set(udAlice, udAlice, udRoom1, "m.fully_read", []byte(`{"event_id":"$x"}`)), 405, "M_BAD_JSON")
	udWantErr(t, "set m.push_rules", ad.Set(udAlice, udAlice, "", "m.push_rules", []byte(`{}`)), 405, "M_BAD_JSON")
	udWantErr(t, "set array", ad.Set(udAlice, udAlice, "", "x", []byte(`[1]`)), 400, "M_BAD_JSON")
	udWantErr(t, "set invalid JSON", ad.Set(udAlice, udAlice, "", "x", []byte(`{`)), 400, "M_NOT_JSON")
	udWantErr(t, "bad room ID", ad.Set(udAlice, udAlice, "not-a-room", "x", []byte(`{}`)), 400, "M_INVALID_PARAM")
	// m.push_rules reads as normal even though it was never written.
	if c, err := ad.Get(udAlice, udAlice, "", "m.push_rules"); err != nil || !strings.Contains(string(c), ".m.rule.master") {
		t.Fatalf("get m.push_rules: %.80s %v", c, err)
	}

	// Durable: a reopened file has the same data.
	st.Close()
	st2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if c, err := accountdata.New(st2, hub).Get(udAlice, udAlice, "", "a.one"); err != nil || string(c) != `{"v":4}` {
		t.Fatalf("after reopen: %s %v", c, err)
	}
}

func TestTags(t *testing.T) {
	st, _ := udOpenStore(t)
	ad := accountdata.New(st, notify.New())
	tags := func() map[string]map[string]any {
		t.Helper()
		c, err := ad.Tags(udAlice, udAlice, udRoom1)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Tags map[string]map[string]any `json:"tags"`
		}
		if err := json.Unmarshal(c, &v); err != nil || v.Tags == nil {
			t.Fatalf("tags content %s: %v", c, err)
		}
		return v.Tags
	}
	if len(tags()) != 0 {
		t.Fatal("new room has tags")
	}
	if err := ad.PutTag(udAlice, udAlice, udRoom1, "m.favourite", []byte(`{"order":0.25}`)); err != nil {
		t.Fatal(err)
	}
	if err := ad.PutTag(udAlice, udAlice, udRoom1, "u.work", nil); err != nil {
		t.Fatal(err)
	}
	got := tags()
	if len(got) != 2 || got["m.favourite"]["order"] != 0.25 {
		t.Fatalf("tags: %v", got)
	}
	// Tags are m.tag room account data on the stream.
	_, rooms, err := ad.Changes(udAlice, 0, st.Pos())
	if err != nil || len(rooms[udRoom1]) != 1 || rooms[udRoom1][0].Type != "m.tag" {
		t.Fatalf("m.tag in changes: %v %v", rooms, err)
	}
	before := st.Pos()
	if err := ad.DeleteTag(udAlice, udAlice, udRoom1, "u.work"); err != nil {
		t.Fatal(err)
	}
	if got := tags(); len(got) != 1 || got["u.work"] != nil {
		t.Fatalf("after delete: %v", got)
	}
	after := st.Pos()
	if after == before {
		t.Fatal("delete did not advance the stream")
	}
	if err := ad.DeleteTag(udAlice, udAlice, udRoom1, "u.absent"); err != nil {
		t.Fatal(err)
	}
	if st.Pos() != after {
		t.Fatal("deleting a missing tag wrote")
	}
	udWantErr(t, "order out of range", ad.PutTag(udAlice, udAlice, udRoom1, "x", []byte(`{"order":1.5}`)), 400, "M_INVALID_PARAM")
	udWantErr(t, "order not a number", ad.PutTag(udAlice, udAlice, udRoom1, "x", []byte(`{"order":"a"}`)), 400, "M_BAD_JSON")
	udWantErr(t, "long tag", ad.PutTag(udAlice, udAlice, udRoom1, strings.Repeat("t", 256), []byte(`{}`)), 400, "M_INVALID_PARAM")
	udWantErr(t, "other user's tags", ad.PutTag(udBob, udAlice, udRoom1, "x", []byte(`{}`)), 403, "M_FORBIDDEN")
	_, err = ad.Tags(udBob, udAlice, udRoom1)
	udWantErr(t, "read other user's tags", err, 403, "M_FORBIDDEN")
}

func TestPushRulesAsAccountData(t *testing.T) {
	st, _ := udOpenStore(t)
	hub := notify.New()
	ad := accountdata.New(st, hub)
	if rs, err := ad.Ruleset(udAlice); err != nil || len(rs.Override) == 0 {
		t.Fatalf("default ruleset: %v", err)
	}
	since := st.Pos()
	woken := hub.Watch(udAlice)
	if err := ad.SetPushRuleEnabled(udAlice, pushrules.KindOverride, pushrules.MasterRuleID, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	default:
		t.Fatal("push rule change did not wake the user")
	}
	if err := ad.PutPushRule(udAlice, pushrules.KindRoom, udRoom1, []byte(`{"actions":["notify"]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	global, _, err := ad.Changes(udAlice, since, st.Pos())
	if err != nil || udTypes(global) != "m.push_rules" {
		t.Fatalf("changes: %v %v", udTypes(global), err)
	}
	var c pushrules.Content
	if err := json.Unmarshal(global[0].Content, &c); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Global.Find(pushrules.KindOverride, pushrules.MasterRuleID); !m.Enabled {
		t.Fatal("master rule not enabled in m.push_rules")
	}
	if _, ok := c.Global.Find(pushrules.KindRoom, udRoom1); !ok {
		t.Fatal("room rule missing from m.push_rules")
	}
	// The cached ruleset follows the change.
	if rs, _ := ad.Ruleset(udAlice); rs.Override[0].RuleID != pushrules.MasterRuleID || !rs.Override[0].Enabled {
		t.Fatal("cached ruleset is stale")
	}
	if on, err := ad.PushRuleEnabled(udAlice, pushrules.KindOverride, pushrules.MasterRuleID); err != nil || !on {
		t.Fatalf("enabled: %v %v", on, err)
	}
	if err := ad.SetPushRuleActions(udAlice, pushrules.KindRoom, udRoom1, []pushrules.Action{pushrules.Notify(), pushrules.SetTweak("sound", "default")}); err != nil {
		t.Fatal(err)
	}
	if acts, err := ad.PushRuleActions(udAlice, pushrules.KindRoom, udRoom1); err != nil || len(acts) != 2 {
		t.Fatalf("actions: %v %v", acts, err)
	}
	if err := ad.DeletePushRule(udAlice, pushrules.KindRoom, udRoom1); err != nil {
		t.Fatal(err)
	}
	_, err = ad.PushRule(udAlice, pushrules.KindRoom, udRoom1)
	udWantErr(t, "deleted rule", err, 404, "M_NOT_FOUND")
	udWantErr(t, "delete default", ad.DeletePushRule(udAlice, pushrules.KindOverride, pushrules.MasterRuleID), 400, "M_INVALID_PARAM")
	udWantErr(t, "unknown kind", ad.SetPushRuleEnabled(udAlice, "nope", "x", true), 404, "M_NOT_FOUND")
	udWantErr(t, "put unknown kind", ad.PutPushRule(udAlice, "nope", "x", []byte(`{"actions":["notify"]}`), "", ""), 400, "M_INVALID_PARAM")
	udWantErr(t, "bad body", ad.PutPushRule(udAlice, pushrules.KindRoom, udRoom1, []byte(`{"actions":"x"}`), "", ""), 400, "M_BAD_JSON")
	// Bob is untouched.
	if rs, _ := ad.Ruleset(udBob); rs.Override[0].Enabled {
		t.Fatal("udBob's master rule changed")
	}
}

func TestFilters(t *testing.T) {
	st, _ := udOpenStore(t)
	f := accountdata.New(st, notify.New()).Filters()
	id0, err := f.Create(udAlice, udAlice, []byte(`{"room":{"timeline":{"limit":5}}}`))
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.Create(udAlice, udAlice, []byte(`{ "room": {"timeline": {"limit": 5}} }`))
	if err != nil || again != id0 {
		t.Fatalf("same filter got %q (%v), want %q", again, err, id0)
	}
	id1, err := f.Create(udAlice, udAlice, []byte(`{"presence":{"types":[]}}`))
	if err != nil || id1 == id0 {
		t.Fatalf("second filter: %q %v", id1, err)
	}
	bobID, err := f.Create(udBob, udBob, []byte(`{}`))
	if err != nil || bobID != "0" {
		t.Fatalf("udBob's first filter ID %q %v, want 0", bobID, err)
	}
	js, err := f.Get(udAlice, udAlice, id0)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatalf("stored filter %s: %v", js, err)
	}
	loaded, err := f.Load(udAlice, id0)
	if err != nil || loaded.TimelineLimit(10) != 5 {
		t.Fatalf("load: %v", err)
	}
	if again, _ := f.Load(udAlice, id0); again != loaded {
		t.Fatal("second load not cached")
	}

	_, err = f.Create(udAlice, udAlice, []byte(`{"room":{"timeline":{"limit":"x"}}}`))
	udWantErr(t, "bad limit", err, 400, "M_BAD_JSON")
	_, err = f.Create(udAlice, udAlice, []byte(`{nope`))
	udWantErr(t, "not JSON", err, 400, "M_NOT_JSON")
	_, err = f.Create(udAlice, udAlice, []byte(`[]`))
	udWantErr(t, "not an object", err, 400, "M_BAD_JSON")
	_, err = f.Create(udBob, udAlice, []byte(`{}`))
	udWantErr(t, "other user's filter", err, 403, "M_FORBIDDEN")
	_, err = f.Get(udAlice, udAlice, "99")
	udWantErr(t, "unknown filter", err, 404, "M_NOT_FOUND")
	_, err = f.Get(udAlice, udAlice, "abc")
	udWantErr(t, "malformed filter ID", err, 404, "M_NOT_FOUND")
	_, err = f.Get(udAlice, udBob, bobID)
	udWantErr(t, "read other user's filter", err, 403, "M_FORBIDDEN")
	_, err = f.Load(udBob, id1) // Bob has no filter 1
	udWantErr(t, "load unknown", err, 404, "M_NOT_FOUND")
}

type udMarkers struct {
	ad *accountdata.Service
}

func (m udMarkers) SetFullyRead(user, roomID, eventID string) error {
	return m.ad.SetFullyRead(user, roomID, eventID)
}

func TestReceipts(t *testing.T) {
	svc, st, _ := newRooms(t)
	hub := notify.New()
	ad := accountdata.New(st, hub)
	roomID, err := svc.CreateRoom(udAlice, rooms.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Invite(udAlice, roomID, udBob, "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Join(udBob, roomID, "", nil); err != nil {
		t.Fatal(err)
	}
	other, err := svc.CreateRoom(udAlice, rooms.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	send := func(roomID, txn string) string {
		id, err := svc.Send(rooms.Sender{User: udAlice, Device: "D"}, roomID, "m.room.message", txn, json.RawMessage(`{"body":"hi"}`))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ev1, ev2 := send(roomID, "1"), send(roomID, "2")
	evOther := send(other, "3")
	members := func(string) []string { return []string{udAlice, udBob} }
	rc := receipts.New(st, hub, receipts.RoomsOf(svc), members, udMarkers{ad})

	start := st.Pos()
	bobWoken := hub.Watch(udBob)
	if err := rc.Post(udAlice, roomID, receipts.TypeRead, ev1, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bobWoken:
	default:
		t.Fatal("public receipt did not wake the room")
	}
	afterPublic := st.Pos()
	aliceWoken := hub.Watch(udAlice)
	if err := rc.Post(udBob, roomID, receipts.TypeReadPrivate, ev2, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aliceWoken:
		t.Fatal("private receipt woke another user")
	default:
	}
	thread := "main"
	if err := rc.Post(udBob, roomID, receipts.TypeRead, ev2, &thread); err != nil {
		t.Fatal(err)
	}
	end := st.Pos()

	type entry = map[string]map[string]map[string]map[string]any
	read := func(viewer string, since, upto uint64) entry {
		t.Helper()
		raw, err := rc.RoomReceipts(viewer, roomID, since, upto)
		if err != nil {
			t.Fatal(err)
		}
		if raw == nil {
			return nil
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := read(udAlice, 0, end)
	if a[ev1]["m.read"][udAlice] == nil || a[ev2]["m.read.private"] != nil {
		t.Fatalf("udAlice sees %v", a)
	}
	if a[ev2]["m.read"][udBob]["thread_id"] != "main" {
		t.Fatalf("threaded receipt: %v", a[ev2])
	}
	b := read(udBob, 0, end)
	if b[ev2]["m.read.private"][udBob] == nil || b[ev1]["m.read"][udAlice] == nil {
		t.Fatalf("udBob sees %v", b)
	}
	if _, ok := b[ev1]["m.read"][udAlice]["ts"].(float64); !ok {
		t.Fatalf("receipt without ts: %v", b[ev1])
	}
	if w := read(udAlice, start, afterPublic); len(w) != 1 || w[ev1] == nil {
		t.Fatalf("first window: %v", w)
	}
	if w := read(udAlice, afterPublic, afterPublic+1); w != nil {
		t.Fatalf("private-only window shows %v to udAlice", w)
	}
	if w := read(udAlice, end, end+5); w != nil {
		t.Fatalf("empty window: %v", w)
	}

	// A newer receipt replaces the older one of the same (type, user, thread).
	if err := rc.Post(udAlice, roomID, receipts.TypeRead, ev2, nil); err != nil {
		t.Fatal(err)
	}
	a = read(udAlice, 0, st.Pos())
	if a[ev1] != nil || a[ev2]["m.read"][udAlice] == nil {
		t.Fatalf("after moving udAlice's receipt: %v", a)
	}

	// Fully read marker via /receipt and /read_markers.
	if err := rc.Post(udAlice, roomID, receipts.TypeFullyRead, ev1, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := ad.Get(udAlice, udAlice, roomID, "m.fully_read"); err != nil || !strings.Contains(string(c), ev1) {
		t.Fatalf("m.fully_read: %s %v", c, err)
	}
	if err := rc.SetReadMarkers(udBob, roomID, ev2, ev1, ""); err != nil {
		t.Fatal(err)
	}
	if c, _ := ad.Get(udBob, udBob, roomID, "m.fully_read"); !strings.Contains(string(c), ev2) {
		t.Fatalf("udBob's m.fully_read: %s", c)
	}
	if b := read(udBob, 0, st.Pos()); b[ev1]["m.read"][udBob] == nil {
		t.Fatalf("read marker's m.read missing: %v", b)
	}

	udWantErr(t, "not joined", rc.Post(udCarol, roomID, receipts.TypeRead, ev1, nil), 403, "M_FORBIDDEN")
	udWantErr(t, "unknown room", rc.Post(udAlice, "!nope:test.local", receipts.TypeRead, ev1, nil), 403, "M_FORBIDDEN")
	udWantErr(t, "event of another room", rc.Post(udAlice, roomID, receipts.TypeRead, evOther, nil), 404, "M_NOT_FOUND")
	udWantErr(t, "unknown event", rc.Post(udAlice, roomID, receipts.TypeRead, "$nope", nil), 404, "M_NOT_FOUND")
	udWantErr(t, "bad type", rc.Post(udAlice, roomID, "m.nope", ev1, nil), 400, "M_INVALID_PARAM")
	udWantErr(t, "thread on fully_read", rc.Post(udAlice, roomID, receipts.TypeFullyRead, ev1, &thread), 400, "M_INVALID_PARAM")
	udWantErr(t, "read marker in another room", rc.SetReadMarkers(udAlice, roomID, evOther, "", ""), 404, "M_NOT_FOUND")
	if _, err := receipts.ParseBody([]byte(`{"thread_id":""}`)); err == nil {
		t.Fatal("empty thread_id accepted")
	}
	if _, err := receipts.ParseBody([]byte(`{"thread_id":5}`)); err == nil {
		t.Fatal("numeric thread_id accepted")
	}
}
