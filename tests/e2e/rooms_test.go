package e2e

// Room endpoints against the Client-Server API: createRoom presets,
// versions and initial state, aliases and the public directory, state
// GET/PUT, transaction idempotency, redaction, membership transitions,
// member lists, /context, /messages and history visibility.
//
// The helpers at the top are shared by badinput_test.go and sync_test.go.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// ---- shared helpers -------------------------------------------------------

const cs = "/_matrix/client/v3"

// rpath is a path under /rooms/{roomId}.
func rpath(room, rest string) string { return cs + "/rooms/" + esc(room) + rest }

// obj walks nested JSON objects; nil when a key is missing.
func obj(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func objMap(v any, keys ...string) map[string]any { m, _ := obj(v, keys...).(map[string]any); return m }
func objList(v any, keys ...string) []any         { l, _ := obj(v, keys...).([]any); return l }
func objStr(v any, keys ...string) string         { s, _ := obj(v, keys...).(string); return s }

// sendText sends an m.text message and returns its event ID.
func sendText(s *server, u user, room, txn, body string) string {
	s.t.Helper()
	r := s.must(200, "PUT", rpath(room, "/send/m.room.message/"+url.PathEscape(txn)), u.Token,
		map[string]any{"msgtype": "m.text", "body": body})
	id := r.str("event_id")
	if id == "" {
		s.t.Fatalf("send: no event_id: %s", r.Raw)
	}
	return id
}

// bodies lists content.body of the events that have one, in order.
func bodies(events []any) []string {
	out := []string{}
	for _, e := range events {
		if b, ok := obj(e, "content", "body").(string); ok {
			out = append(out, b)
		}
	}
	return out
}

// eventIDs lists event_id of events, in order.
func eventIDs(events []any) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, objStr(e, "event_id"))
	}
	return out
}

// timelineSnapshot is every event ID u can page through backwards from
// the newest, plus each event's raw JSON, for "nothing changed" checks.
func timelineSnapshot(s *server, u user, room string) []string {
	s.t.Helper()
	r := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=1000"), u.Token, nil)
	out := []string{}
	for _, e := range objList(r.Body, "chunk") {
		// unsigned.age moves with the clock; everything else must not.
		if u := objMap(e, "unsigned"); u != nil {
			delete(u, "age")
		}
		j, _ := json.Marshal(e)
		out = append(out, string(j))
	}
	return out
}

// stateSnapshot maps "type|state_key" to the event ID and content of the
// room's current state.
func stateSnapshot(s *server, u user, room string) map[string]string {
	s.t.Helper()
	r := s.must(200, "GET", rpath(room, "/state"), u.Token, nil)
	var evs []map[string]any
	if err := json.Unmarshal(r.Raw, &evs); err != nil {
		s.t.Fatalf("GET /state: not an array: %s", r.Raw)
	}
	out := map[string]string{}
	for _, e := range evs {
		c, _ := json.Marshal(e["content"])
		out[fmt.Sprint(e["type"], "|", e["state_key"])] = fmt.Sprint(e["event_id"], " ", string(c))
	}
	return out
}

func joinedRooms(s *server, u user) []string {
	s.t.Helper()
	r := s.must(200, "GET", cs+"/joined_rooms", u.Token, nil)
	out := []string{}
	for _, v := range objList(r.Body, "joined_rooms") {
		out = append(out, v.(string))
	}
	sort.Strings(out)
	return out
}

// sameSnapshot fails when before and after differ.
func sameSnapshot(t *testing.T, what string, before, after any) {
	t.Helper()
	if reflect.DeepEqual(before, after) {
		return
	}
	// Report only the difference: whole snapshots are unreadable.
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	var bl, al []string
	if json.Unmarshal(b, &bl) == nil && json.Unmarshal(a, &al) == nil {
		var gone, added []string
		for _, x := range bl {
			if !slices.Contains(al, x) {
				gone = append(gone, x)
			}
		}
		for _, x := range al {
			if !slices.Contains(bl, x) {
				added = append(added, x)
			}
		}
		t.Errorf("%s changed after a rejected request:\nremoved: %v\nadded:   %v", what, gone, added)
		return
	}
	var bm, am map[string]string
	if json.Unmarshal(b, &bm) == nil && json.Unmarshal(a, &am) == nil {
		for k, v := range am {
			if bm[k] != v {
				t.Errorf("%s changed after a rejected request: %s: %q -> %q", what, k, bm[k], v)
			}
		}
		for k, v := range bm {
			if _, ok := am[k]; !ok {
				t.Errorf("%s changed after a rejected request: %s removed (was %q)", what, k, v)
			}
		}
		return
	}
	t.Errorf("%s changed after a rejected request:\nbefore: %s\nafter:  %s", what, b, a)
}

// wantErr asserts status and errcode (errcode "" = any, several = one of).
func wantErr(t *testing.T, r response, status int, codes ...string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status %d, want %d: %s", r.Status, status, r.Raw)
		return
	}
	if r.str("error") == "" && r.Body["error"] == nil {
		t.Errorf("error object lacks an \"error\" field: %s", r.Raw)
	}
	if len(codes) == 0 {
		if r.str("errcode") == "" {
			t.Errorf("no errcode: %s", r.Raw)
		}
		return
	}
	if !slices.Contains(codes, r.str("errcode")) {
		t.Errorf("errcode %q, want one of %v: %s", r.str("errcode"), codes, r.Raw)
	}
}

// loginDevice logs name in again, creating a new device.
func loginDevice(s *server, name string) user {
	s.t.Helper()
	r := s.must(200, "POST", cs+"/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": name},
		"password":   "correct horse battery",
	})
	return user{ID: r.str("user_id"), Token: r.str("access_token"), Device: r.str("device_id")}
}

func membershipOf(s *server, viewer user, room, target string) string {
	s.t.Helper()
	r := s.do("GET", rpath(room, "/state/m.room.member/"+esc(target)), viewer.Token, nil)
	if r.Status == 404 {
		return ""
	}
	if r.Status != 200 {
		s.t.Fatalf("member state of %s: %d %s", target, r.Status, r.Raw)
	}
	return r.str("membership")
}

func mustJoin(s *server, u user, roomOrAlias string) {
	s.t.Helper()
	s.must(200, "POST", cs+"/join/"+esc(roomOrAlias), u.Token, map[string]any{})
}

// ---- createRoom ------------------------------------------------------------

func TestRoomCreatePresets(t *testing.T) {
	s := start(t)
	alice := s.register("")
	cases := []struct {
		name       string
		body       map[string]any
		joinRule   string
		history    string // "" = don't check
		inDir      bool
		guestCheck bool
	}{
		{"public_chat published", map[string]any{"preset": "public_chat", "visibility": "public", "name": "Pub"}, "public", "shared", true, false},
		{"public_chat unlisted", map[string]any{"preset": "public_chat"}, "public", "shared", false, false},
		{"private_chat", map[string]any{"preset": "private_chat"}, "invite", "shared", false, true},
		{"trusted_private_chat", map[string]any{"preset": "trusted_private_chat"}, "invite", "shared", false, true},
		{"default private visibility", map[string]any{}, "invite", "", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			room := s.createRoom(alice, c.body)
			jr := s.must(200, "GET", rpath(room, "/state/m.room.join_rules/"), alice.Token, nil)
			if jr.str("join_rule") != c.joinRule {
				t.Errorf("join_rule %q, want %q", jr.str("join_rule"), c.joinRule)
			}
			if c.history != "" {
				hv := s.must(200, "GET", rpath(room, "/state/m.room.history_visibility/"), alice.Token, nil)
				if hv.str("history_visibility") != c.history {
					t.Errorf("history_visibility %q, want %q", hv.str("history_visibility"), c.history)
				}
			}
			if c.guestCheck {
				ga := s.must(200, "GET", rpath(room, "/state/m.room.guest_access/"), alice.Token, nil)
				if ga.str("guest_access") != "can_join" {
					t.Errorf("guest_access %q, want can_join (spec: private_chat preset)", ga.str("guest_access"))
				}
			}
			found := false
			for _, path := range []string{cs + "/publicRooms", cs + "/publicRooms?limit=100"} {
				pr := s.must(200, "GET", path, "", nil)
				for _, e := range objList(pr.Body, "chunk") {
					if objStr(e, "room_id") == room {
						found = true
						if c.inDir && objStr(e, "name") != "Pub" {
							t.Errorf("publicRooms entry lacks name: %v", e)
						}
					}
				}
			}
			if found != c.inDir {
				t.Errorf("in /publicRooms = %v, want %v", found, c.inDir)
			}
			vis := s.must(200, "GET", cs+"/directory/list/room/"+esc(room), "", nil)
			want := "private"
			if c.inDir {
				want = "public"
			}
			if vis.str("visibility") != want {
				t.Errorf("directory visibility %q, want %q", vis.str("visibility"), want)
			}
		})
	}

	// trusted_private_chat gives every invitee the creator's power level
	// (before v12: users[invitee] = 100; v12: the invitee SHOULD be an
	// additional creator, create_room.yaml).
	bob := s.register("")
	for _, v := range []string{"11", "12"} {
		room := s.createRoom(alice, map[string]any{"preset": "trusted_private_chat", "invite": []string{bob.ID}, "room_version": v})
		pl := s.must(200, "GET", rpath(room, "/state/m.room.power_levels/"), alice.Token, nil)
		cr := s.must(200, "GET", rpath(room, "/state/m.room.create/"), alice.Token, nil)
		p, _ := obj(pl.Body, "users", bob.ID).(float64)
		creator := slices.Contains(objList(cr.Body, "additional_creators"), any(bob.ID))
		if p != 100 && !(v == "12" && creator) {
			t.Errorf("v%s trusted_private_chat: invitee power %v, additional creator %v: %s %s", v, p, creator, pl.Raw, cr.Raw)
		}
		if m := membershipOf(s, alice, room, bob.ID); m != "invite" {
			t.Errorf("invitee membership %q, want invite", m)
		}
	}
}

func TestRoomAliases(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat", "room_alias_name": "lobby"})
	alias := "#lobby:localhost"

	r := s.must(200, "GET", cs+"/directory/room/"+esc(alias), "", nil)
	if r.str("room_id") != room {
		t.Fatalf("alias resolves to %q, want %q", r.str("room_id"), room)
	}
	if l := objList(r.Body, "servers"); len(l) == 0 || !slices.Contains(l, any("localhost")) {
		t.Errorf("servers should list localhost: %s", r.Raw)
	}
	ca := s.must(200, "GET", rpath(room, "/state/m.room.canonical_alias/"), alice.Token, nil)
	if ca.str("alias") != alias {
		t.Errorf("canonical alias %q, want %q", ca.str("alias"), alias)
	}

	// Join by alias.
	j := s.must(200, "POST", cs+"/join/"+esc(alias), bob.Token, map[string]any{})
	if j.str("room_id") != room {
		t.Errorf("join by alias returned %q, want %q", j.str("room_id"), room)
	}
	if m := membershipOf(s, alice, room, bob.ID); m != "join" {
		t.Errorf("bob membership %q after joining by alias", m)
	}

	// Duplicate alias: 400 M_ROOM_IN_USE, no room created, alias unchanged.
	before := joinedRooms(s, bob)
	d := s.do("POST", cs+"/createRoom", bob.Token, map[string]any{"room_alias_name": "lobby"})
	wantErr(t, d, 400, "M_ROOM_IN_USE")
	sameSnapshot(t, "bob's joined rooms", before, joinedRooms(s, bob))
	r = s.must(200, "GET", cs+"/directory/room/"+esc(alias), "", nil)
	if r.str("room_id") != room {
		t.Errorf("alias now points to %q", r.str("room_id"))
	}

	// Unknown alias: 404 M_NOT_FOUND (directory.yaml).
	wantErr(t, s.do("GET", cs+"/directory/room/"+esc("#nope:localhost"), "", nil), 404, "M_NOT_FOUND")
}

// The join body's extra keys land in the member event; membership and
// join_authorised_via_users_server stay the server's; a non-string reason
// is refused with nothing joined.
func TestRoomJoinCustomContent(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})

	wantErr(t, s.do("POST", cs+"/join/"+esc(room), bob.Token, map[string]any{"reason": 7}), 400, "M_BAD_JSON")
	if m := membershipOf(s, alice, room, bob.ID); m != "" {
		t.Fatalf("refused join left membership %q", m)
	}
	s.must(200, "POST", cs+"/join/"+esc(room), bob.Token, map[string]any{
		"foo": "bar", "displayname": "Bob here", "membership": "leave",
		"join_authorised_via_users_server": alice.ID, "reason": "hi",
		"third_party_signed": map[string]any{"x": "y"},
	})
	m := s.must(200, "GET", rpath(room, "/state/m.room.member/"+esc(bob.ID)), alice.Token, nil)
	want := map[string]any{"membership": "join", "foo": "bar", "displayname": "Bob here", "reason": "hi"}
	if c := m.Body; !reflect.DeepEqual(c, want) {
		t.Errorf("member content = %v, want %v", c, want)
	}
}

func TestRoomVersions(t *testing.T) {
	s := start(t)
	alice := s.register("")
	for _, v := range []string{"10", "11", "12"} {
		t.Run("v"+v, func(t *testing.T) {
			room := s.createRoom(alice, map[string]any{"room_version": v})
			c := s.must(200, "GET", rpath(room, "/state/m.room.create/"), alice.Token, nil)
			if c.str("room_version") != v {
				t.Errorf("m.room.create room_version %q, want %q: %s", c.str("room_version"), v, c.Raw)
			}
			// The room is usable.
			sendText(s, alice, room, "v"+v, "hello")
		})
	}
	t.Run("unsupported", func(t *testing.T) {
		before := joinedRooms(s, alice)
		r := s.do("POST", cs+"/createRoom", alice.Token, map[string]any{"room_version": "99"})
		wantErr(t, r, 400, "M_UNSUPPORTED_ROOM_VERSION")
		sameSnapshot(t, "joined rooms", before, joinedRooms(s, alice))
	})
	t.Run("default is the advertised default", func(t *testing.T) {
		room := s.createRoom(alice, nil)
		c := s.must(200, "GET", rpath(room, "/state/m.room.create/"), alice.Token, nil)
		caps := s.must(200, "GET", cs+"/capabilities", alice.Token, nil)
		def := objStr(caps.Body, "capabilities", "m.room_versions", "default")
		if def != "12" || c.str("room_version") != def {
			t.Errorf("created version %q, capabilities default %q, want 12", c.str("room_version"), def)
		}
	})
}

// Room version 12 content the client got wrong is a 400 M_BAD_JSON and
// creates nothing (MSC4289: creators are not listed in power levels;
// additional_creators is an array of user IDs).
func TestRoomV12InvalidCreatorContent(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	cases := []struct {
		name string
		body map[string]any
	}{
		{"additional_creators not an array", map[string]any{"creation_content": map[string]any{"additional_creators": bob.ID}}},
		{"additional_creators not strings", map[string]any{"creation_content": map[string]any{"additional_creators": []any{7}}}},
		{"additional_creators not user IDs", map[string]any{"creation_content": map[string]any{"additional_creators": []any{"not-a-user"}}}},
		{"additional_creators bad domain", map[string]any{"creation_content": map[string]any{"additional_creators": []any{"@x:dom$ain"}}}},
		{"override lists the creator", map[string]any{"power_level_content_override": map[string]any{"users": map[string]any{alice.ID: 100}}}},
		{"override lists an additional creator", map[string]any{"creation_content": map[string]any{"additional_creators": []any{bob.ID}},
			"power_level_content_override": map[string]any{"users": map[string]any{bob.ID: 50}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := joinedRooms(s, alice)
			c.body["room_version"] = "12"
			wantErr(t, s.do("POST", cs+"/createRoom", alice.Token, c.body), 400, "M_BAD_JSON")
			sameSnapshot(t, "joined rooms", before, joinedRooms(s, alice))
		})
	}
	// A valid additional creator is fine, and a later power levels event
	// may not list either creator; m.room.create cannot be sent again.
	room := s.createRoom(alice, map[string]any{"room_version": "12", "creation_content": map[string]any{"additional_creators": []any{bob.ID}}})
	for _, who := range []string{alice.ID, bob.ID} {
		wantErr(t, s.do("PUT", rpath(room, "/state/m.room.power_levels/"), alice.Token, map[string]any{"users": map[string]any{who: 100}}), 400, "M_BAD_JSON")
	}
	wantErr(t, s.do("PUT", rpath(room, "/state/m.room.create/"), alice.Token, map[string]any{"room_version": "12", "x": 1}), 400, "M_BAD_JSON")
}

// The operator's default_room_version is what createRoom uses without a
// version, and what /capabilities advertises.
func TestRoomDefaultVersionSetting(t *testing.T) {
	s := start(t, "LICHEN_DEFAULT_ROOM_VERSION=10")
	alice := s.register("")
	room := s.createRoom(alice, nil)
	c := s.must(200, "GET", rpath(room, "/state/m.room.create/"), alice.Token, nil)
	caps := s.must(200, "GET", cs+"/capabilities", alice.Token, nil)
	if def := objStr(caps.Body, "capabilities", "m.room_versions", "default"); def != "10" || c.str("room_version") != "10" {
		t.Errorf("created version %q, capabilities default %q, want 10", c.str("room_version"), def)
	}
}

func TestRoomInitialStateNameTopic(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, map[string]any{
		"name":  "The Name",
		"topic": "explicit topic",
		"initial_state": []any{
			// spec (createRoom initial_state): name/topic keys override initial_state.
			map[string]any{"type": "m.room.topic", "state_key": "", "content": map[string]any{"topic": "from initial_state"}},
			map[string]any{"type": "org.lichen.custom", "state_key": "k1", "content": map[string]any{"v": 1}},
			// initial_state overrides the preset.
			map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}},
		},
	})
	checks := []struct{ typ, key, field, want string }{
		{"m.room.name", "", "name", "The Name"},
		{"m.room.topic", "", "topic", "explicit topic"},
		{"m.room.history_visibility", "", "history_visibility", "joined"},
	}
	for _, c := range checks {
		r := s.must(200, "GET", rpath(room, "/state/"+c.typ+"/"+c.key), alice.Token, nil)
		if r.str(c.field) != c.want {
			t.Errorf("%s %s = %q, want %q", c.typ, c.field, r.str(c.field), c.want)
		}
	}
	r := s.must(200, "GET", rpath(room, "/state/org.lichen.custom/k1"), alice.Token, nil)
	if v, _ := r.Body["v"].(float64); v != 1 {
		t.Errorf("custom initial state: %s", r.Raw)
	}
	// ?format=event returns the whole event.
	r = s.must(200, "GET", rpath(room, "/state/m.room.name/?format=event"), alice.Token, nil)
	if r.str("type") != "m.room.name" || r.str("event_id") == "" || objStr(r.Body, "content", "name") != "The Name" {
		t.Errorf("format=event: %s", r.Raw)
	}
}

// ---- state -----------------------------------------------------------------

func TestRoomStateGetPut(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, nil)
	cases := []struct {
		name, typ, key string // key is the raw state key
	}{
		{"empty key", "org.lichen.s", ""},
		{"plain key", "org.lichen.s", "plain"},
		{"slash key", "org.lichen.s", "a/b"},
		{"leading slash", "org.lichen.s", "/lead"},
		// A key that starts with '@' must be the sender's own ID (auth
		// rules), so the user-ID-like key here does not start with one.
		{"user id like key", "org.lichen.s", "x@y:localhost"},
		{"percent and space", "org.lichen.s", "50% off ?&#"},
		{"unicode", "org.lichen.s", "ключ✓"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := rpath(room, "/state/"+c.typ+"/"+url.PathEscape(c.key))
			if c.key == "" {
				p = rpath(room, "/state/"+c.typ)
			}
			put := s.must(200, "PUT", p, alice.Token, map[string]any{"n": i})
			if put.str("event_id") == "" {
				t.Fatalf("no event_id: %s", put.Raw)
			}
			get := s.must(200, "GET", p, alice.Token, nil)
			if v, _ := get.Body["n"].(float64); int(v) != i || len(get.Body) != 1 {
				t.Errorf("GET returned %s, want {\"n\":%d}", get.Raw, i)
			}
			ev := s.must(200, "GET", p+"?format=event", alice.Token, nil)
			if ev.str("state_key") != c.key || ev.str("event_id") != put.str("event_id") {
				t.Errorf("format=event: state_key %q event_id %q, want %q %q", ev.str("state_key"), ev.str("event_id"), c.key, put.str("event_id"))
			}
			snap := stateSnapshot(s, alice, room)
			if _, ok := snap[c.typ+"|"+c.key]; !ok {
				t.Errorf("GET /state lacks %s|%s", c.typ, c.key)
			}
		})
	}
	// An encoded slash is not a path separator: "a/b" and "a" are different keys.
	wantErr(t, s.do("GET", rpath(room, "/state/org.lichen.s/a"), alice.Token, nil), 404, "M_NOT_FOUND")
	// Overwrite replaces.
	p := rpath(room, "/state/org.lichen.s/a%2Fb")
	s.must(200, "PUT", p, alice.Token, map[string]any{"n": "second"})
	if r := s.must(200, "GET", p, alice.Token, nil); r.str("n") != "second" {
		t.Errorf("overwrite: %s", r.Raw)
	}
	// Missing state: 404 M_NOT_FOUND (room_state.yaml).
	wantErr(t, s.do("GET", rpath(room, "/state/m.room.topic/"), alice.Token, nil), 404, "M_NOT_FOUND")
}

// ---- transactions ----------------------------------------------------------

func TestRoomTxnIdempotency(t *testing.T) {
	s := start(t)
	alice := s.register("txnalice")
	room := s.createRoom(alice, nil)
	p := rpath(room, "/send/m.room.message/same-txn")
	body := map[string]any{"msgtype": "m.text", "body": "once"}
	a := s.must(200, "PUT", p, alice.Token, body)
	b := s.must(200, "PUT", p, alice.Token, body)
	if a.str("event_id") == "" || a.str("event_id") != b.str("event_id") {
		t.Fatalf("retransmission: %s then %s", a.Raw, b.Raw)
	}
	count := func(want string) int {
		r := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=100"), alice.Token, nil)
		n := 0
		for _, x := range bodies(objList(r.Body, "chunk")) {
			if x == want {
				n++
			}
		}
		return n
	}
	if n := count("once"); n != 1 {
		t.Errorf("%d events after a retransmission, want 1", n)
	}

	// Spec "Transaction identifiers": scoped to a device. A second device
	// of the same user with the same txnId makes a new event.
	alice2 := loginDevice(s, "txnalice")
	if alice2.Device == alice.Device {
		t.Fatalf("login reused device %s", alice.Device)
	}
	c := s.must(200, "PUT", p, alice2.Token, body)
	if c.str("event_id") == a.str("event_id") {
		t.Errorf("another device's txn was treated as a retransmission")
	}
	if n := count("once"); n != 2 {
		t.Errorf("%d events, want 2 (one per device)", n)
	}
	// Same txnId in another room is a different request path.
	room2 := s.createRoom(alice, nil)
	d := s.must(200, "PUT", rpath(room2, "/send/m.room.message/same-txn"), alice.Token, body)
	if d.str("event_id") == a.str("event_id") {
		t.Errorf("same txnId in another room (a different request path) returned the first room's event %s", a.str("event_id"))
	}
	m2 := s.must(200, "GET", rpath(room2, "/messages?dir=b&limit=100"), alice.Token, nil)
	if !slices.Contains(bodies(objList(m2.Body, "chunk")), "once") {
		t.Errorf("the message was never sent to the second room: %v", bodies(objList(m2.Body, "chunk")))
	}
}

// ---- redaction -------------------------------------------------------------

func TestRoomRedaction(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)
	ev := sendText(s, alice, room, "r1", "secret words")

	// Bob (power 0, redact needs 50) cannot redact alice's event.
	getEv := func() string {
		b := s.must(200, "GET", rpath(room, "/event/"+esc(ev)), alice.Token, nil).Body
		delete(objMap(b, "unsigned"), "age")
		j, _ := json.Marshal(b)
		return string(j)
	}
	beforeEv := getEv()
	beforeTL := timelineSnapshot(s, alice, room)
	r := s.do("PUT", rpath(room, "/redact/"+esc(ev)+"/bobtry"), bob.Token, map[string]any{"reason": "nope"})
	wantErr(t, r, 403, "M_FORBIDDEN")
	sameSnapshot(t, "event", beforeEv, getEv())
	sameSnapshot(t, "timeline", beforeTL, timelineSnapshot(s, alice, room))

	// Bob can redact his own.
	own := sendText(s, bob, room, "b1", "oops")
	s.must(200, "PUT", rpath(room, "/redact/"+esc(own)+"/b-redact"), bob.Token, map[string]any{})

	// Alice redacts hers.
	red := s.must(200, "PUT", rpath(room, "/redact/"+esc(ev)+"/a-redact"), alice.Token, map[string]any{"reason": "spoiler"})
	redID := red.str("event_id")
	if redID == "" {
		t.Fatalf("redact: %s", red.Raw)
	}
	for _, viewer := range []user{alice, bob} {
		g := s.must(200, "GET", rpath(room, "/event/"+esc(ev)), viewer.Token, nil)
		if c := objMap(g.Body, "content"); len(c) != 0 {
			t.Errorf("redacted content still present: %s", g.Raw)
		}
		rb := objMap(g.Body, "unsigned", "redacted_because")
		if rb == nil || objStr(rb, "event_id") != redID || objStr(rb, "type") != "m.room.redaction" {
			t.Errorf("unsigned.redacted_because missing or wrong: %s", g.Raw)
		}
		if strings.Contains(string(g.Raw), "secret words") {
			t.Errorf("redacted text still served")
		}
	}
	// /messages shows it redacted too.
	m := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=50"), bob.Token, nil)
	if strings.Contains(string(m.Raw), "secret words") {
		t.Errorf("/messages still serves the redacted text")
	}
	// Redaction is idempotent by txn.
	again := s.must(200, "PUT", rpath(room, "/redact/"+esc(ev)+"/a-redact"), alice.Token, map[string]any{"reason": "spoiler"})
	if again.str("event_id") != redID {
		t.Errorf("redaction retransmission gave %s, want %s", again.str("event_id"), redID)
	}
}

// ---- membership ------------------------------------------------------------

func TestRoomKickBanUnban(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)

	// Bob (power 0; kick and ban need 50) cannot kick or ban alice.
	for _, action := range []string{"kick", "ban"} {
		before := stateSnapshot(s, alice, room)
		r := s.do("POST", rpath(room, "/"+action), bob.Token, map[string]any{"user_id": alice.ID})
		wantErr(t, r, 403, "M_FORBIDDEN")
		sameSnapshot(t, "state after bob's "+action, before, stateSnapshot(s, alice, room))
	}

	steps := []struct {
		name   string
		do     func() response
		status int
		want   string // bob's membership afterwards
	}{
		{"kick", func() response {
			return s.do("POST", rpath(room, "/kick"), alice.Token, map[string]any{"user_id": bob.ID, "reason": "out"})
		}, 200, "leave"},
		{"rejoin after kick", func() response { return s.do("POST", cs+"/join/"+esc(room), bob.Token, map[string]any{}) }, 200, "join"},
		{"ban", func() response {
			return s.do("POST", rpath(room, "/ban"), alice.Token, map[string]any{"user_id": bob.ID, "reason": "spam"})
		}, 200, "ban"},
		{"banned join refused", func() response { return s.do("POST", cs+"/join/"+esc(room), bob.Token, map[string]any{}) }, 403, "ban"},
		{"banned rooms/join refused", func() response { return s.do("POST", rpath(room, "/join"), bob.Token, map[string]any{}) }, 403, "ban"},
		{"invite of banned refused", func() response {
			return s.do("POST", rpath(room, "/invite"), alice.Token, map[string]any{"user_id": bob.ID})
		}, 403, "ban"},
		{"unban", func() response {
			return s.do("POST", rpath(room, "/unban"), alice.Token, map[string]any{"user_id": bob.ID})
		}, 200, "leave"},
		{"join after unban", func() response { return s.do("POST", cs+"/join/"+esc(room), bob.Token, map[string]any{}) }, 200, "join"},
	}
	for _, st := range steps {
		var before map[string]string
		if st.status != 200 {
			before = stateSnapshot(s, alice, room)
		}
		r := st.do()
		if r.Status != st.status {
			t.Errorf("%s: status %d, want %d: %s", st.name, r.Status, st.status, r.Raw)
		}
		if st.status == 403 && r.str("errcode") != "M_FORBIDDEN" {
			t.Errorf("%s: errcode %q, want M_FORBIDDEN", st.name, r.str("errcode"))
		}
		if m := membershipOf(s, alice, room, bob.ID); m != st.want {
			t.Errorf("%s: bob's membership %q, want %q", st.name, m, st.want)
		}
		if before != nil {
			sameSnapshot(t, st.name+": state", before, stateSnapshot(s, alice, room))
		}
	}
	// The kick reason is recorded.
	m := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=50&filter="+url.QueryEscape(`{"types":["m.room.member"]}`)), alice.Token, nil)
	if !strings.Contains(string(m.Raw), `"spam"`) || !strings.Contains(string(m.Raw), `"out"`) {
		t.Errorf("kick/ban reasons not in membership events: %s", m.Raw)
	}
}

func TestRoomLeaveForget(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)
	sendText(s, alice, room, "f1", "before leave")

	// Forget while joined: 400 (leaving.yaml), nothing changes.
	before := stateSnapshot(s, alice, room)
	wantErr(t, s.do("POST", rpath(room, "/forget"), bob.Token, map[string]any{}), 400)
	sameSnapshot(t, "state", before, stateSnapshot(s, alice, room))
	if !slices.Contains(joinedRooms(s, bob), room) {
		t.Fatalf("bob no longer joined after refused forget")
	}

	s.must(200, "POST", rpath(room, "/leave"), bob.Token, map[string]any{})
	if m := membershipOf(s, alice, room, bob.ID); m != "leave" {
		t.Errorf("after leave: %q", m)
	}
	if slices.Contains(joinedRooms(s, bob), room) {
		t.Errorf("room still in bob's joined_rooms after leave")
	}
	// Sending after leaving is refused.
	wantErr(t, s.do("PUT", rpath(room, "/send/m.room.message/late"), bob.Token, map[string]any{"msgtype": "m.text", "body": "x"}), 403, "M_FORBIDDEN")

	s.must(200, "POST", rpath(room, "/forget"), bob.Token, map[string]any{})
	// spec (forget): "the user will no longer be able to retrieve history".
	wantErr(t, s.do("GET", rpath(room, "/messages?dir=b"), bob.Token, nil), 403, "M_FORBIDDEN")
	// A forgotten room is gone from sync, even with include_leave.
	f := url.QueryEscape(`{"room":{"include_leave":true}}`)
	r := s.must(200, "GET", cs+"/sync?filter="+f, bob.Token, nil)
	if objMap(r.Body, "rooms", "leave", room) != nil {
		t.Errorf("forgotten room still in rooms.leave")
	}
	// Bob can come back.
	mustJoin(s, bob, room)
}

func TestRoomMembersLists(t *testing.T) {
	s := start(t)
	alice, bob, carol, dave := s.register(""), s.register(""), s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	// Tokens for ?at=: the initial sync's timeline reaches back to the
	// create event, so its prev_batch precedes the room; next_batch is
	// the room as created.
	sy := s.must(200, "GET", cs+"/sync", alice.Token, nil)
	prevBatch := objStr(sy.Body, "rooms", "join", room, "timeline", "prev_batch")
	created := sy.str("next_batch")
	mustJoin(s, bob, room)
	afterBob := s.must(200, "GET", cs+"/sync", bob.Token, nil).str("next_batch")
	mustJoin(s, carol, room)
	s.must(200, "POST", rpath(room, "/leave"), carol.Token, map[string]any{})
	s.must(200, "POST", rpath(room, "/invite"), alice.Token, map[string]any{"user_id": dave.ID})
	if prevBatch == "" || created == "" || afterBob == "" {
		t.Fatalf("missing sync tokens: prev_batch %q, next_batch %q, %q", prevBatch, created, afterBob)
	}

	members := func(query string) map[string]string {
		r := s.must(200, "GET", rpath(room, "/members"+query), bob.Token, nil)
		out := map[string]string{}
		for _, e := range objList(r.Body, "chunk") {
			if objStr(e, "type") != "m.room.member" {
				t.Errorf("non-member event in /members: %v", e)
			}
			out[objStr(e, "state_key")] = objStr(e, "content", "membership")
		}
		return out
	}
	cases := []struct {
		query string
		want  map[string]string
	}{
		{"", map[string]string{alice.ID: "join", bob.ID: "join", carol.ID: "leave", dave.ID: "invite"}},
		{"?membership=join", map[string]string{alice.ID: "join", bob.ID: "join"}},
		{"?membership=invite", map[string]string{dave.ID: "invite"}},
		{"?not_membership=leave", map[string]string{alice.ID: "join", bob.ID: "join", dave.ID: "invite"}},
		{"?membership=join&not_membership=leave", map[string]string{alice.ID: "join", bob.ID: "join"}},
		{"?at=" + url.QueryEscape(prevBatch), map[string]string{alice.ID: "join"}},
		{"?at=" + url.QueryEscape(created), map[string]string{alice.ID: "join"}},
		{"?at=" + url.QueryEscape(afterBob), map[string]string{alice.ID: "join", bob.ID: "join"}},
		{"?at=" + url.QueryEscape(afterBob) + "&membership=join", map[string]string{alice.ID: "join", bob.ID: "join"}},
	}
	for _, c := range cases {
		if got := members(c.query); !reflect.DeepEqual(got, c.want) {
			t.Errorf("/members%s = %v, want %v", c.query, got, c.want)
		}
	}

	jm := s.must(200, "GET", rpath(room, "/joined_members"), bob.Token, nil)
	joined := objMap(jm.Body, "joined")
	keys := []string{}
	for k := range joined {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{alice.ID, bob.ID}
	sort.Strings(want)
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("/joined_members = %v, want %v", keys, want)
	}
	wantErr(t, s.do("GET", rpath(room, "/members?at=bogus"), bob.Token, nil), 400)
	// A non-member (never joined) cannot list members.
	eve := s.register("")
	wantErr(t, s.do("GET", rpath(room, "/members"), eve.Token, nil), 403, "M_FORBIDDEN")
	wantErr(t, s.do("GET", rpath(room, "/joined_members"), eve.Token, nil), 403, "M_FORBIDDEN")
}

// ---- reading history -------------------------------------------------------

func TestRoomContext(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, map[string]any{"name": "Ctx"})
	ids := []string{}
	for i := 0; i < 10; i++ {
		ids = append(ids, sendText(s, alice, room, fmt.Sprint("c", i), fmt.Sprint("m", i)))
	}
	r := s.must(200, "GET", rpath(room, "/context/"+esc(ids[5])+"?limit=4"), alice.Token, nil)
	if objStr(r.Body, "event", "event_id") != ids[5] {
		t.Errorf("event: %v", r.Body["event"])
	}
	before, after := objList(r.Body, "events_before"), objList(r.Body, "events_after")
	if n := len(before) + len(after); n > 4 || len(before) == 0 || len(after) == 0 {
		t.Errorf("limit=4: %d before + %d after (limit applies to the sum)", len(before), len(after))
	}
	// events_before is reverse-chronological, events_after chronological.
	if len(before) > 0 && objStr(before[0], "event_id") != ids[4] {
		t.Errorf("events_before[0] = %v, want m4", bodies(before))
	}
	if len(after) > 0 && objStr(after[0], "event_id") != ids[6] {
		t.Errorf("events_after[0] = %v, want m6", bodies(after))
	}
	if r.str("start") == "" || r.str("end") == "" {
		t.Errorf("start/end tokens missing: %s", r.Raw)
	}
	types := map[string]bool{}
	for _, e := range objList(r.Body, "state") {
		types[objStr(e, "type")] = true
	}
	for _, want := range []string{"m.room.create", "m.room.member", "m.room.name"} {
		if !types[want] {
			t.Errorf("context state lacks %s", want)
		}
	}
	// Paging on from the context's end token continues after the window.
	m := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=100&from="+url.QueryEscape(r.str("end"))), alice.Token, nil)
	got := bodies(objList(m.Body, "chunk"))
	if len(got) == 0 || got[len(got)-1] != "m9" || slices.Contains(got, "m5") {
		t.Errorf("forward from context end: %v", got)
	}
	// limit=0 still returns the event.
	z := s.must(200, "GET", rpath(room, "/context/"+esc(ids[5])+"?limit=0"), alice.Token, nil)
	if objStr(z.Body, "event", "event_id") != ids[5] || len(objList(z.Body, "events_before"))+len(objList(z.Body, "events_after")) != 0 {
		t.Errorf("limit=0: %s", z.Raw)
	}
	// Unknown event: 404.
	wantErr(t, s.do("GET", rpath(room, "/context/"+esc("$nosuchevent")), alice.Token, nil), 404, "M_NOT_FOUND")
}

func TestRoomMessagesPagination(t *testing.T) {
	s := start(t)
	alice := s.register("")
	room := s.createRoom(alice, nil)
	for i := 0; i < 10; i++ {
		sendText(s, alice, room, fmt.Sprint("m", i), fmt.Sprint("m", i))
		s.must(200, "PUT", rpath(room, "/state/org.lichen.noise/"+fmt.Sprint(i)), alice.Token, map[string]any{"i": i})
	}
	onlyMsgs := "&filter=" + url.QueryEscape(`{"types":["m.room.message"]}`)
	all := []string{}
	for i := 0; i < 10; i++ {
		all = append(all, fmt.Sprint("m", i))
	}

	// dir=f with no from starts at the beginning of the room.
	r := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=100"+onlyMsgs), alice.Token, nil)
	for _, e := range objList(r.Body, "chunk") {
		if objStr(e, "type") != "m.room.message" {
			t.Fatalf("filter types [m.room.message] let through %s", objStr(e, "type"))
		}
	}
	if got := bodies(objList(r.Body, "chunk")); !reflect.DeepEqual(got, all) {
		t.Errorf("dir=f filtered = %v, want %v", got, all)
	}
	// Unfiltered, dir=f begins with m.room.create.
	u := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=1"), alice.Token, nil)
	if c := objList(u.Body, "chunk"); len(c) != 1 || objStr(c[0], "type") != "m.room.create" {
		t.Errorf("first event forward is not m.room.create: %s", u.Raw)
	}

	// Forward pages of 3.
	p1 := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=3"+onlyMsgs), alice.Token, nil)
	t1 := p1.str("end")
	p2 := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=3&from="+url.QueryEscape(t1)+onlyMsgs), alice.Token, nil)
	t2 := p2.str("end")
	if a, b := bodies(objList(p1.Body, "chunk")), bodies(objList(p2.Body, "chunk")); !reflect.DeepEqual(a, all[:3]) || !reflect.DeepEqual(b, all[3:6]) {
		t.Errorf("forward pages: %v then %v", a, b)
	}
	if p2.str("start") != t1 {
		t.Errorf("page 2 start %q, want the from token %q", p2.str("start"), t1)
	}
	// from/to bounds the same window.
	w := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=100&from="+url.QueryEscape(t1)+"&to="+url.QueryEscape(t2)+onlyMsgs), alice.Token, nil)
	if got := bodies(objList(w.Body, "chunk")); !reflect.DeepEqual(got, all[3:6]) {
		t.Errorf("from=%s to=%s: %v, want %v", t1, t2, got, all[3:6])
	}
	// Backwards from t2 returns the same events reversed, up to the start.
	bk := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=100&from="+url.QueryEscape(t2)+onlyMsgs), alice.Token, nil)
	if got := bodies(objList(bk.Body, "chunk")); !reflect.DeepEqual(got, []string{"m5", "m4", "m3", "m2", "m1", "m0"}) {
		t.Errorf("dir=b from page-2 end: %v", got)
	}
	// Backwards with to: from t2 back to t1.
	bt := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=100&from="+url.QueryEscape(t2)+"&to="+url.QueryEscape(t1)+onlyMsgs), alice.Token, nil)
	if got := bodies(objList(bt.Body, "chunk")); !reflect.DeepEqual(got, []string{"m5", "m4", "m3"}) {
		t.Errorf("dir=b from t2 to t1: %v", got)
	}
	// Forward from t2 runs to the newest message.
	last := s.must(200, "GET", rpath(room, "/messages?dir=f&limit=100&from="+url.QueryEscape(t2)+onlyMsgs), alice.Token, nil)
	if got := bodies(objList(last.Body, "chunk")); !reflect.DeepEqual(got, all[6:]) {
		t.Errorf("dir=f from t2: %v, want %v", got, all[6:])
	}
	// Backwards to the start of the room: the last page has no end token
	// (message_pagination.yaml: "If no further events are available
	// (... reached the start of the timeline ...), this property is omitted").
	start := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=1000"), alice.Token, nil)
	chunk := objList(start.Body, "chunk")
	if len(chunk) == 0 || objStr(chunk[len(chunk)-1], "type") != "m.room.create" {
		t.Errorf("dir=b limit=1000 does not reach m.room.create")
	} else if _, has := start.Body["end"]; has {
		if more := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=10&from="+url.QueryEscape(start.str("end"))), alice.Token, nil); len(objList(more.Body, "chunk")) != 0 {
			t.Errorf("events before m.room.create: %s", more.Raw)
		} else {
			t.Errorf("page reaching m.room.create still has an end token %q (spec: omitted)", start.str("end"))
		}
	}
	// Bad dir.
	wantErr(t, s.do("GET", rpath(room, "/messages?dir=x"), alice.Token, nil), 400, "M_INVALID_PARAM")
}

func TestRoomHistoryVisibility(t *testing.T) {
	for _, c := range []struct {
		visibility string
		seesEarly  bool
	}{
		{"joined", false},
		{"invited", false},
		{"shared", true},
		{"world_readable", true},
	} {
		t.Run(c.visibility, func(t *testing.T) {
			s := start(t)
			alice, bob := s.register(""), s.register("")
			room := s.createRoom(alice, map[string]any{"preset": "private_chat"})
			s.must(200, "PUT", rpath(room, "/state/m.room.history_visibility/"), alice.Token,
				map[string]any{"history_visibility": c.visibility})
			early := sendText(s, alice, room, "early", "before bob")
			s.must(200, "POST", rpath(room, "/invite"), alice.Token, map[string]any{"user_id": bob.ID})
			mustJoin(s, bob, room)
			sendText(s, alice, room, "late", "after bob")

			m := s.must(200, "GET", rpath(room, "/messages?dir=b&limit=100"), bob.Token, nil)
			got := bodies(objList(m.Body, "chunk"))
			if !slices.Contains(got, "after bob") {
				t.Errorf("bob cannot see a message sent after his join: %v", got)
			}
			if slices.Contains(got, "before bob") != c.seesEarly {
				t.Errorf("history_visibility %s: bob sees the pre-join message = %v, want %v (%v)",
					c.visibility, !c.seesEarly, c.seesEarly, got)
			}
			// /event and /context agree with /messages.
			ev := s.do("GET", rpath(room, "/event/"+esc(early)), bob.Token, nil)
			if c.seesEarly && ev.Status != 200 {
				t.Errorf("GET /event of visible event: %d %s", ev.Status, ev.Raw)
			}
			if !c.seesEarly && ev.Status != 404 {
				t.Errorf("GET /event of hidden event: %d %s, want 404", ev.Status, ev.Raw)
			}
			ctx := s.do("GET", rpath(room, "/context/"+esc(early)), bob.Token, nil)
			if !c.seesEarly && ctx.Status == 200 {
				t.Errorf("/context reveals a hidden event: %s", ctx.Raw)
			}
		})
	}
}

// Restricted rooms (spec "Restricted rooms", room versions 8+): members
// of an allowed room may join without an invite, vouched for by a local
// member who may invite; others are refused and nothing changes.
func TestRoomRestrictedJoin(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	allowed := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	for _, rule := range []string{"restricted", "knock_restricted"} {
		t.Run(rule, func(t *testing.T) {
			room := s.createRoom(alice, map[string]any{"preset": "private_chat", "room_version": "10",
				"initial_state": []map[string]any{{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
					"join_rule": rule, "allow": []map[string]any{{"type": "m.room_membership", "room_id": allowed}}}}}})

			wantErr(t, s.do("POST", cs+"/join/"+esc(room), bob.Token, map[string]any{}), 403, "M_FORBIDDEN")
			if m := membershipOf(s, alice, room, bob.ID); m != "" {
				t.Fatalf("refused join left membership %q", m)
			}

			mustJoin(s, bob, allowed)
			mustJoin(s, bob, room)
			m := s.must(200, "GET", rpath(room, "/state/m.room.member/"+esc(bob.ID)), alice.Token, nil)
			if m.str("membership") != "join" || m.str("join_authorised_via_users_server") != alice.ID {
				t.Fatalf("restricted join content: %s", m.Raw)
			}
			// A later join->join (profile change) cannot carry a made-up
			// authorisation: it is dropped, and the change goes through.
			s.must(200, "PUT", rpath(room, "/state/m.room.member/"+esc(bob.ID)), bob.Token,
				map[string]any{"membership": "join", "displayname": "Bobby", "join_authorised_via_users_server": "unused"})
			m = s.must(200, "GET", rpath(room, "/state/m.room.member/"+esc(bob.ID)), alice.Token, nil)
			if m.str("displayname") != "Bobby" || m.Body["join_authorised_via_users_server"] != nil {
				t.Errorf("profile change content: %s", m.Raw)
			}

			// Having left the allowed room, bob cannot come back...
			s.must(200, "POST", rpath(room, "/leave"), bob.Token, map[string]any{})
			s.must(200, "POST", rpath(allowed, "/leave"), bob.Token, map[string]any{})
			wantErr(t, s.do("POST", cs+"/join/"+esc(room), bob.Token, map[string]any{}), 403, "M_FORBIDDEN")
			// ...unless invited, and then no authorisation is needed.
			s.must(200, "POST", rpath(room, "/invite"), alice.Token, map[string]any{"user_id": bob.ID})
			mustJoin(s, bob, room)
			if m := s.must(200, "GET", rpath(room, "/state/m.room.member/"+esc(bob.ID)), alice.Token, nil); m.Body["join_authorised_via_users_server"] != nil {
				t.Errorf("invited join carries an authorisation: %s", m.Raw)
			}
		})
	}
}
