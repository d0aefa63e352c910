package e2e

// GET /sync against the Client-Server API "Syncing" section and sync.yaml:
// response shape, incremental and limited timelines, leave and invite
// sections, long-poll timeouts, transaction IDs and stored filters.

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"
)

// doSync runs /sync with query parameters (filter values are escaped).
func doSync(s *server, u user, params map[string]string) response {
	s.t.Helper()
	q := url.Values{}
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	p := cs + "/sync"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return s.must(200, "GET", p, u.Token, nil)
}

func syncRoom(r response, section, room string) map[string]any {
	return objMap(r.Body, "rooms", section, room)
}

func timelineOf(r response, room string) []any {
	return objList(syncRoom(r, "join", room), "timeline", "events")
}

func TestSyncInitialShape(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, map[string]any{"name": "Shape", "topic": "t"})
	sendText(s, alice, room, "s1", "first")

	r := doSync(s, alice, nil)
	if r.str("next_batch") == "" {
		t.Fatalf("no next_batch: %s", r.Raw)
	}
	jr := syncRoom(r, "join", room)
	if jr == nil {
		t.Fatalf("room missing from rooms.join: %s", r.Raw)
	}
	// sync.yaml: Joined Room has state, timeline, ephemeral, account_data
	// (each an object with an events array).
	for _, k := range []string{"state", "timeline", "ephemeral", "account_data"} {
		sec, ok := jr[k].(map[string]any)
		if !ok {
			t.Errorf("rooms.join[room].%s missing or not an object: %v", k, jr[k])
			continue
		}
		if _, ok := sec["events"].([]any); !ok {
			t.Errorf("rooms.join[room].%s.events missing or not an array: %v", k, sec)
		}
	}
	if _, ok := obj(jr, "timeline", "limited").(bool); !ok {
		t.Errorf("timeline.limited missing: %v", jr["timeline"])
	}
	tl := objList(jr, "timeline", "events")
	if len(tl) == 0 || objStr(tl[len(tl)-1], "content", "body") != "first" {
		t.Errorf("timeline does not end with the message: %v", bodies(tl))
	}
	// Every event is a client event.
	seen := map[string]string{}
	for _, sec := range []string{"state", "timeline"} {
		for _, e := range objList(jr, sec, "events") {
			for _, k := range []string{"event_id", "type", "sender", "origin_server_ts", "content"} {
				if obj(e, k) == nil {
					t.Errorf("%s event lacks %s: %v", sec, k, e)
				}
			}
			id := objStr(e, "event_id")
			if prev, dup := seen[id]; dup {
				t.Errorf("event %s in both %s and %s (state is up to the start of the timeline)", id, prev, sec)
			}
			seen[id] = sec
			if sk, ok := obj(e, "state_key").(string); ok {
				seen[objStr(e, "type")+"|"+sk] = sec
			}
		}
	}
	for _, want := range []string{"m.room.create|", "m.room.member|" + alice.ID, "m.room.power_levels|", "m.room.join_rules|", "m.room.name|", "m.room.topic|"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("state+timeline lacks %s", want)
		}
	}
	// Summary counts (required when changed, and everything changed).
	if n, _ := obj(jr, "summary", "m.joined_member_count").(float64); n != 1 {
		t.Errorf("summary.m.joined_member_count = %v", obj(jr, "summary", "m.joined_member_count"))
	}
	// unread_notifications is an object with integer counts.
	if _, ok := obj(jr, "unread_notifications", "notification_count").(float64); !ok {
		t.Errorf("unread_notifications.notification_count missing: %v", jr["unread_notifications"])
	}
}

func TestSyncIncremental(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, nil)
	quiet := s.createRoom(alice, nil)
	sendText(s, alice, room, "old", "old")
	since := doSync(s, alice, nil).str("next_batch")

	// Nothing happened: an immediate incremental sync has no room events.
	r := doSync(s, alice, map[string]string{"since": since})
	for id, v := range objMap(r.Body, "rooms", "join") {
		if len(objList(v, "timeline", "events")) > 0 || len(objList(v, "state", "events")) > 0 {
			t.Errorf("room %s has events though nothing happened: %v", id, v)
		}
	}

	sendText(s, alice, room, "new", "new")
	r = doSync(s, alice, map[string]string{"since": since})
	tl := timelineOf(r, room)
	if got := bodies(tl); len(tl) != 1 || !slices.Equal(got, []string{"new"}) {
		t.Errorf("incremental timeline = %v (%d events), want just [new]", got, len(tl))
	}
	if l, _ := obj(syncRoom(r, "join", room), "timeline", "limited").(bool); l {
		t.Errorf("timeline limited with one new event")
	}
	if st := objList(syncRoom(r, "join", room), "state", "events"); len(st) != 0 {
		t.Errorf("state delta not empty: %v", st)
	}
	if v := syncRoom(r, "join", quiet); v != nil && (len(objList(v, "timeline", "events")) > 0) {
		t.Errorf("unchanged room has timeline events: %v", v)
	}
	// Chained: from the new token, nothing.
	r2 := doSync(s, alice, map[string]string{"since": r.str("next_batch")})
	if tl := timelineOf(r2, room); len(tl) != 0 {
		t.Errorf("event delivered twice: %v", bodies(tl))
	}
	// A state change arrives in the timeline.
	s.must(200, "PUT", rpath(room, "/state/m.room.topic/"), alice.Token, map[string]any{"topic": "changed"})
	r3 := doSync(s, alice, map[string]string{"since": r2.str("next_batch")})
	tl = timelineOf(r3, room)
	if len(tl) != 1 || objStr(tl[0], "type") != "m.room.topic" || objStr(tl[0], "state_key") != "" {
		t.Errorf("state change not in timeline: %v", tl)
	}
}

func TestSyncLimitedTimeline(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, nil)
	f := `{"room":{"timeline":{"limit":3}}}`
	since := doSync(s, alice, map[string]string{"filter": f}).str("next_batch")
	for i := 0; i < 6; i++ {
		sendText(s, alice, room, fmt.Sprint("l", i), fmt.Sprint("l", i))
	}
	r := doSync(s, alice, map[string]string{"filter": f, "since": since})
	jr := syncRoom(r, "join", room)
	tl := objList(jr, "timeline", "events")
	if got := bodies(tl); !slices.Equal(got, []string{"l3", "l4", "l5"}) || len(tl) != 3 {
		t.Errorf("limited timeline = %v, want [l3 l4 l5]", got)
	}
	if l, _ := obj(jr, "timeline", "limited").(bool); !l {
		t.Errorf("timeline.limited is not true: %v", jr["timeline"])
	}
	prev := objStr(jr, "timeline", "prev_batch")
	if prev == "" {
		t.Fatalf("no prev_batch: %v", jr["timeline"])
	}
	m := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=3&from="+url.QueryEscape(prev)), alice.Token, nil)
	if got := bodies(objList(m.Body, "chunk")); !slices.Equal(got, []string{"l2", "l1", "l0"}) {
		t.Errorf("/messages from prev_batch = %v, want [l2 l1 l0]", got)
	}
	// Initial sync with the filter is limited too.
	r = doSync(s, alice, map[string]string{"filter": f})
	jr = syncRoom(r, "join", room)
	if tl := objList(jr, "timeline", "events"); len(tl) != 3 {
		t.Errorf("initial sync with limit 3: %d events", len(tl))
	}
	if l, _ := obj(jr, "timeline", "limited").(bool); !l {
		t.Errorf("initial timeline.limited is not true")
	}
	// The state section then covers what the timeline dropped.
	types := map[string]bool{}
	for _, e := range objList(jr, "state", "events") {
		types[objStr(e, "type")] = true
	}
	if !types["m.room.create"] || !types["m.room.member"] {
		t.Errorf("limited initial sync state lacks create/member: %v", types)
	}
}

func TestSyncLeave(t *testing.T) {
	s := start(t)
	alice, bob, carol := s.register(""), s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	kickRoom := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)
	mustJoin(s, carol, kickRoom)
	bobSince := doSync(s, bob, nil).str("next_batch")
	carolSince := doSync(s, carol, nil).str("next_batch")

	s.must(200, "POST", rpath(room, "/leave"), bob.Token, map[string]any{})
	s.must(200, "POST", rpath(kickRoom, "/kick"), alice.Token, map[string]any{"user_id": carol.ID})
	sendText(s, alice, room, "after", "after bob left")

	for _, c := range []struct {
		name  string
		u     user
		since string
		room  string
	}{{"leave", bob, bobSince, room}, {"kick", carol, carolSince, kickRoom}} {
		t.Run(c.name, func(t *testing.T) {
			r := doSync(s, c.u, map[string]string{"since": c.since})
			lr := syncRoom(r, "leave", c.room)
			if lr == nil {
				t.Fatalf("room not in rooms.leave: %s", r.Raw)
			}
			if syncRoom(r, "join", c.room) != nil {
				t.Errorf("room still in rooms.join")
			}
			found := false
			for _, e := range objList(lr, "timeline", "events") {
				if objStr(e, "type") == "m.room.member" && objStr(e, "state_key") == c.u.ID && objStr(e, "content", "membership") == "leave" {
					found = true
				}
				if objStr(e, "content", "body") == "after bob left" {
					t.Errorf("event after the leave leaked to the left user")
				}
			}
			if !found {
				t.Errorf("leave timeline lacks the user's leave event: %v", lr)
			}
			// Next incremental sync: the room no longer appears.
			r2 := doSync(s, c.u, map[string]string{"since": r.str("next_batch")})
			if syncRoom(r2, "leave", c.room) != nil || syncRoom(r2, "join", c.room) != nil {
				t.Errorf("left room reported again: %s", r2.Raw)
			}
		})
	}
}

func TestSyncInvite(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "private_chat", "name": "Secret Club"})
	sendText(s, alice, room, "x", "members only")
	since := doSync(s, bob, nil).str("next_batch")
	s.must(200, "POST", rpath(room, "/invite"), alice.Token, map[string]any{"user_id": bob.ID})

	r := doSync(s, bob, map[string]string{"since": since})
	ir := syncRoom(r, "invite", room)
	if ir == nil {
		t.Fatalf("room not in rooms.invite: %s", r.Raw)
	}
	evs := objList(ir, "invite_state", "events")
	byType := map[string]any{}
	for _, e := range evs {
		byType[objStr(e, "type")] = e
	}
	// Client-Server API "Stripped state": m.room.create is required in
	// invite_state (v1.16); name and join_rules should be there.
	for _, want := range []string{"m.room.create", "m.room.name", "m.room.join_rules", "m.room.member"} {
		if byType[want] == nil {
			t.Errorf("invite_state lacks %s", want)
		}
	}
	if objStr(byType["m.room.name"], "content", "name") != "Secret Club" {
		t.Errorf("invite_state name: %v", byType["m.room.name"])
	}
	inviteSeen := false
	for _, e := range evs {
		if objStr(e, "type") == "m.room.member" && objStr(e, "state_key") == bob.ID &&
			objStr(e, "content", "membership") == "invite" && objStr(e, "sender") == alice.ID {
			inviteSeen = true
		}
		if objStr(e, "content", "body") == "members only" {
			t.Errorf("invite_state leaks a timeline event")
		}
	}
	if !inviteSeen {
		t.Errorf("invite_state lacks bob's invite member event: %v", evs)
	}
	if syncRoom(r, "join", room) != nil {
		t.Errorf("invited room in rooms.join")
	}
	// Initial sync shows the invite too.
	if syncRoom(doSync(s, bob, nil), "invite", room) == nil {
		t.Errorf("invite missing from initial sync")
	}
	// After joining, the room moves to rooms.join.
	mustJoin(s, bob, room)
	r2 := doSync(s, bob, map[string]string{"since": r.str("next_batch")})
	if syncRoom(r2, "join", room) == nil || syncRoom(r2, "invite", room) != nil {
		t.Errorf("after join: join=%v invite=%v", syncRoom(r2, "join", room) != nil, syncRoom(r2, "invite", room) != nil)
	}
	// Rejecting an invite (leave) moves it to rooms.leave.
	room2 := s.createRoom(alice, map[string]any{"preset": "private_chat", "invite": []string{bob.ID}})
	r3 := doSync(s, bob, map[string]string{"since": r2.str("next_batch")})
	if syncRoom(r3, "invite", room2) == nil {
		t.Fatalf("invite via createRoom not synced: %s", r3.Raw)
	}
	s.must(200, "POST", rpath(room2, "/leave"), bob.Token, map[string]any{})
	r4 := doSync(s, bob, map[string]string{"since": r3.str("next_batch")})
	if syncRoom(r4, "leave", room2) == nil || syncRoom(r4, "invite", room2) != nil {
		t.Errorf("rejected invite: %s", r4.Raw)
	}
}

func TestSyncLongPollTimeout(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, nil)
	since := doSync(s, alice, nil).str("next_batch")

	t0 := time.Now()
	r := doSync(s, alice, map[string]string{"since": since, "timeout": "500"})
	d := time.Since(t0)
	if d < 450*time.Millisecond || d > 3*time.Second {
		t.Errorf("long-poll with timeout=500 returned after %v", d)
	}
	if r.str("next_batch") == "" {
		t.Errorf("empty long-poll lacks next_batch: %s", r.Raw)
	}
	for id, v := range objMap(r.Body, "rooms", "join") {
		if len(objList(v, "timeline", "events")) > 0 {
			t.Errorf("room %s has events though nothing happened: %v", id, v)
		}
	}
	// The returned token still works and catches the next message.
	sendText(s, alice, room, "m", "later")
	r2 := doSync(s, alice, map[string]string{"since": r.str("next_batch"), "timeout": "500"})
	if got := bodies(timelineOf(r2, room)); !slices.Equal(got, []string{"later"}) {
		t.Errorf("after empty long-poll: %v", got)
	}
	// timeout=0 returns at once.
	t0 = time.Now()
	doSync(s, alice, map[string]string{"since": r2.str("next_batch"), "timeout": "0"})
	if d := time.Since(t0); d > 400*time.Millisecond {
		t.Errorf("timeout=0 took %v", d)
	}
	// A long-poll wakes early on a new event.
	got := make(chan response, 1)
	go func() {
		got <- s.do("GET", cs+"/sync?timeout=5000&since="+url.QueryEscape(r2.str("next_batch")), alice.Token, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	sendText(s, alice, room, "wake", "wake")
	select {
	case w := <-got:
		if !slices.Contains(bodies(timelineOf(w, room)), "wake") {
			t.Errorf("woken long-poll lacks the event: %s", w.Raw)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("long-poll woke after %v", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("long-poll did not return")
	}
}

func TestSyncTransactionID(t *testing.T) {
	s := start(t)
	alice := s.register("txnsync")
	alice2 := loginDevice(s, "txnsync")
	bob := s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)
	since := map[string]string{}
	for _, u := range []user{alice, alice2, bob} {
		since[u.Device] = doSync(s, u, nil).str("next_batch")
	}
	id := sendText(s, alice, room, "my-txn-42", "tagged")

	find := func(events []any) map[string]any {
		for _, e := range events {
			if objStr(e, "event_id") == id {
				return e.(map[string]any)
			}
		}
		return nil
	}
	for _, c := range []struct {
		name string
		u    user
		want string
	}{{"sending device", alice, "my-txn-42"}, {"other device of sender", alice2, ""}, {"other user", bob, ""}} {
		t.Run(c.name, func(t *testing.T) {
			r := doSync(s, c.u, map[string]string{"since": since[c.u.Device]})
			e := find(timelineOf(r, room))
			if e == nil {
				t.Fatalf("event not synced: %s", r.Raw)
			}
			if got := objStr(e, "unsigned", "transaction_id"); got != c.want {
				t.Errorf("sync unsigned.transaction_id = %q, want %q", got, c.want)
			}
			// client_event.yaml: the same rule holds wherever the event is served.
			m := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=5"), c.u.Token, nil)
			if e := find(objList(m.Body, "chunk")); e == nil || objStr(e, "unsigned", "transaction_id") != c.want {
				t.Errorf("/messages unsigned.transaction_id = %q, want %q", objStr(e, "unsigned", "transaction_id"), c.want)
			}
			g := s.must(200, "GET", rpath(room, "/event/"+esc(id)), c.u.Token, nil)
			if got := objStr(g.Body, "unsigned", "transaction_id"); got != c.want {
				t.Errorf("/event unsigned.transaction_id = %q, want %q", got, c.want)
			}
		})
	}
}

func TestSyncStoredFilter(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"name": "Filtered"})
	for i := 0; i < 4; i++ {
		sendText(s, alice, room, fmt.Sprint("f", i), fmt.Sprint("f", i))
		s.must(200, "PUT", rpath(room, "/state/org.lichen.noise/"+fmt.Sprint(i)), alice.Token, map[string]any{})
	}
	fpath := cs + "/user/" + esc(alice.ID) + "/filter"
	def := map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 2, "types": []string{"m.room.message"}}}}
	c := s.must(200, "POST", fpath, alice.Token, def)
	id := c.str("filter_id")
	if id == "" {
		t.Fatalf("no filter_id: %s", c.Raw)
	}
	g := s.must(200, "GET", fpath+"/"+url.PathEscape(id), alice.Token, nil)
	if l, _ := obj(g.Body, "room", "timeline", "limit").(float64); l != 2 {
		t.Errorf("stored filter: %s", g.Raw)
	}
	if ty := objList(g.Body, "room", "timeline", "types"); len(ty) != 1 || ty[0] != "m.room.message" {
		t.Errorf("stored filter types: %s", g.Raw)
	}

	r := doSync(s, alice, map[string]string{"filter": id})
	tl := timelineOf(r, room)
	if got := bodies(tl); !slices.Equal(got, []string{"f2", "f3"}) || len(tl) != 2 {
		t.Errorf("sync with filter %s: %v (%d events), want [f2 f3]", id, got, len(tl))
	}
	for _, e := range tl {
		if objStr(e, "type") != "m.room.message" {
			t.Errorf("filter let %s through", objStr(e, "type"))
		}
	}
	if l, _ := obj(syncRoom(r, "join", room), "timeline", "limited").(bool); !l {
		t.Errorf("timeline.limited not true")
	}
	// Incremental with the same filter.
	sendText(s, alice, room, "f4", "f4")
	s.must(200, "PUT", rpath(room, "/state/org.lichen.noise/late"), alice.Token, map[string]any{})
	r2 := doSync(s, alice, map[string]string{"filter": id, "since": r.str("next_batch")})
	if got := bodies(timelineOf(r2, room)); !slices.Equal(got, []string{"f4"}) || len(timelineOf(r2, room)) != 1 {
		t.Errorf("incremental with filter: %v", got)
	}

	// Rejections (filter.yaml): another user's filter, unknown ID, bad body.
	before := string(g.Raw)
	wantErr(t, s.do("POST", fpath, bob.Token, def), 403, "M_FORBIDDEN")
	r3 := s.do("GET", fpath+"/"+url.PathEscape(id), bob.Token, nil)
	if r3.Status != 403 && r3.Status != 404 {
		t.Errorf("bob reads alice's filter: %d %s", r3.Status, r3.Raw)
	}
	wantErr(t, s.do("GET", fpath+"/999999", alice.Token, nil), 404, "M_NOT_FOUND")
	wantErr(t, s.do("POST", fpath, alice.Token, `{"room":{"timeline":{"limit":"two"}}}`), 400, "M_BAD_JSON", "M_INVALID_PARAM")
	wantErr(t, s.do("POST", fpath, alice.Token, `{"room":`), 400, "M_NOT_JSON")
	sameSnapshot(t, "stored filter", before, string(s.must(200, "GET", fpath+"/"+url.PathEscape(id), alice.Token, nil).Raw))
	// A sync with an unknown filter ID is an error, not an unfiltered sync.
	us := s.do("GET", cs+"/sync?filter=999999", alice.Token, nil)
	if us.Status != 400 && us.Status != 404 {
		t.Errorf("sync with unknown filter ID: %d", us.Status)
	}
}
