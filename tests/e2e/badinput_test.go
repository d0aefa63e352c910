package e2e

// Hostile and malformed input: every rejection must be a Matrix error
// object with the spec's status and errcode, and must leave the server's
// state exactly as it was. Plus the wire formats a client may negotiate:
// CORS, CBOR and gzip.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// rawDo sends a request with explicit headers through rt (nil = the
// shared client); a transport error is returned, not fatal.
func rawDo(s *server, rt http.RoundTripper, method, path string, hdr map[string]string, body []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := client
	if rt != nil {
		c = &http.Client{Transport: rt, Timeout: 60 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}

func toResponse(resp *http.Response, raw []byte) response {
	out := response{Status: resp.StatusCode, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// fixture is a room owned by alice with bob joined at power 0, and eve,
// who is in no room.
type fixture struct {
	s                *server
	alice, bob, eve  user
	room             string
	lastEvent        string
	stateBefore      map[string]string
	timelineBefore   []string
	aliceRoomsBefore []string
}

func newFixture(t *testing.T) *fixture {
	s := start(t)
	f := &fixture{s: s, alice: s.register(""), bob: s.register(""), eve: s.register("")}
	f.room = s.createRoom(f.alice, map[string]any{"preset": "public_chat", "name": "Original"})
	mustJoin(s, f.bob, f.room)
	f.lastEvent = sendText(s, f.alice, f.room, "fixture", "hello")
	return f
}

// snap records the room's state, timeline and alice's rooms.
func (f *fixture) snap() {
	f.stateBefore = stateSnapshot(f.s, f.alice, f.room)
	f.timelineBefore = timelineSnapshot(f.s, f.alice, f.room)
	f.aliceRoomsBefore = joinedRooms(f.s, f.alice)
}

// unchanged asserts that nothing changed since snap.
func (f *fixture) unchanged(t *testing.T) {
	t.Helper()
	sameSnapshot(t, "room state", f.stateBefore, stateSnapshot(f.s, f.alice, f.room))
	sameSnapshot(t, "room timeline", f.timelineBefore, timelineSnapshot(f.s, f.alice, f.room))
	sameSnapshot(t, "alice's joined rooms", f.aliceRoomsBefore, joinedRooms(f.s, f.alice))
}

// badCase is one request that must be refused.
type badCase struct {
	name        string
	method      string
	path        string // may use {room}
	token       string // "alice", "bob", "eve", "none", or a literal token
	body        any
	status      int      // 0: 400 or 413 M_TOO_LARGE
	codes       []string // acceptable errcodes; empty = any
	errContains string   // the error message must mention this
}

func (f *fixture) run(t *testing.T, cases []badCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.snap()
			tok := map[string]string{"alice": f.alice.Token, "bob": f.bob.Token, "eve": f.eve.Token, "none": ""}[c.token]
			if _, named := map[string]bool{"alice": true, "bob": true, "eve": true, "none": true}[c.token]; !named {
				tok = c.token
			}
			path := strings.ReplaceAll(c.path, "{room}", esc(f.room))
			r := f.s.do(c.method, path, tok, c.body)
			if c.status == 0 { // a size limit: 400 or 413 both describe it
				if r.Status == 413 {
					wantErr(t, r, 413, "M_TOO_LARGE")
				} else {
					wantErr(t, r, 400, c.codes...)
				}
			} else {
				wantErr(t, r, c.status, c.codes...)
			}
			if c.errContains != "" && !strings.Contains(r.str("error"), c.errContains) {
				t.Errorf("error message %q does not name %q", r.str("error"), c.errContains)
			}
			f.unchanged(t)
		})
	}
}

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

func TestBadInputMalformedJSON(t *testing.T) {
	f := newFixture(t)
	send := cs + "/rooms/{room}/send/m.room.message/"
	f.run(t, []badCase{
		{"createRoom truncated", "POST", cs + "/createRoom", "alice", `{"name": `, 400, []string{"M_NOT_JSON"}, ""},
		{"createRoom not json", "POST", cs + "/createRoom", "alice", `name=foo`, 400, []string{"M_NOT_JSON"}, ""},
		{"createRoom trailing garbage", "POST", cs + "/createRoom", "alice", `{"name":"x"} {}`, 400, []string{"M_NOT_JSON"}, ""},
		{"send truncated", "PUT", send + "nj1", "alice", `{"msgtype":"m.text","body":"x"`, 400, []string{"M_NOT_JSON"}, ""},
		{"send single quotes", "PUT", send + "nj2", "alice", `{'body':'x'}`, 400, []string{"M_NOT_JSON"}, ""},
		{"send empty body", "PUT", send + "nj3", "alice", ``, 400, []string{"M_NOT_JSON"}, ""},
		{"state not json", "PUT", cs + "/rooms/{room}/state/m.room.name/", "alice", `not json`, 400, []string{"M_NOT_JSON"}, ""},
		{"state truncated", "PUT", cs + "/rooms/{room}/state/m.room.topic/", "alice", `{"topic":`, 400, []string{"M_NOT_JSON"}, ""},
		{"send invalid utf-8", "PUT", send + "nj4", "alice", "{\"msgtype\":\"m.text\",\"body\":\"\xff\xfe\"}", 400, []string{"M_NOT_JSON", "M_BAD_JSON"}, ""},
	})
}

func TestBadInputWrongTypes(t *testing.T) {
	f := newFixture(t)
	create := cs + "/createRoom"
	f.run(t, []badCase{
		{"name is a number", "POST", create, "alice", `{"name": 5}`, 400, []string{"M_BAD_JSON"}, "name"},
		{"invite is a string", "POST", create, "alice", `{"invite": "x"}`, 400, []string{"M_BAD_JSON"}, "invite"},
		{"invite holds a number", "POST", create, "alice", `{"invite": [5]}`, 400, []string{"M_BAD_JSON"}, "invite"},
		{"topic is an object", "POST", create, "alice", `{"topic": {}}`, 400, []string{"M_BAD_JSON"}, "topic"},
		{"initial_state is a string", "POST", create, "alice", `{"initial_state": "x"}`, 400, []string{"M_BAD_JSON"}, "initial_state"},
		{"is_direct is a string", "POST", create, "alice", `{"is_direct": "yes"}`, 400, []string{"M_BAD_JSON"}, "is_direct"},
		{"createRoom body is an array", "POST", create, "alice", `[]`, 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
		{"unknown preset", "POST", create, "alice", `{"preset": "party"}`, 400, []string{"M_BAD_JSON", "M_INVALID_PARAM"}, ""},
		{"unknown visibility", "POST", create, "alice", `{"visibility": "sideways"}`, 400, []string{"M_BAD_JSON", "M_INVALID_PARAM"}, ""},
		{"invite user_id is a number", "POST", cs + "/rooms/{room}/invite", "alice", `{"user_id": 5}`, 400, []string{"M_BAD_JSON"}, "user_id"},
	})
}

func TestBadInputNonObjectContent(t *testing.T) {
	f := newFixture(t)
	cases := []badCase{}
	for i, body := range []string{`[1,2,3]`, `["m.text"]`, `"text"`, `5`, `null`, `true`} {
		cases = append(cases,
			badCase{"send " + body, "PUT", cs + "/rooms/{room}/send/m.room.message/arr" + fmt.Sprint(i), "alice", body, 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
			badCase{"state " + body, "PUT", cs + "/rooms/{room}/state/org.lichen.x/k" + fmt.Sprint(i), "alice", body, 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
		)
	}
	f.run(t, cases)
}

func TestBadInputSizeLimits(t *testing.T) {
	f := newFixture(t)
	big := func(n int) string {
		b, _ := json.Marshal(map[string]any{"msgtype": "m.text", "body": strings.Repeat("a", n)})
		return string(b)
	}
	long := strings.Repeat("k", 256)
	f.run(t, []badCase{
		// spec "Size limits": the PDU (federation format, canonical JSON)
		// MUST NOT exceed 65536 bytes.
		{"PDU over 64 KiB", "PUT", cs + "/rooms/{room}/send/m.room.message/big1", "alice", big(65000), 413, []string{"M_TOO_LARGE"}, ""},
		{"PDU exactly over by a little", "PUT", cs + "/rooms/{room}/send/m.room.message/big2", "alice", big(65536 - 100), 413, []string{"M_TOO_LARGE"}, ""},
		{"state PDU over 64 KiB", "PUT", cs + "/rooms/{room}/state/org.lichen.big/", "alice", `{"v":"` + strings.Repeat("b", 70000) + `"}`, 413, []string{"M_TOO_LARGE"}, ""},
		// state_key and type MUST NOT exceed 255 bytes.
		{"state_key over 255 bytes", "PUT", cs + "/rooms/{room}/state/org.lichen.x/" + long, "alice", `{}`, 0, nil, ""},
		{"event type over 255 bytes", "PUT", cs + "/rooms/{room}/send/" + long + "/t", "alice", `{}`, 0, nil, ""},
		{"state event type over 255 bytes", "PUT", cs + "/rooms/{room}/state/" + long + "/", "alice", `{}`, 0, nil, ""},
	})

	// Just under the limit is accepted.
	id := sendText(f.s, f.alice, f.room, "fits", strings.Repeat("c", 60000))
	g := f.s.must(200, "GET", rpath(f.room, "/event/"+esc(id)), f.alice.Token, nil)
	if len(objStr(g.Body, "content", "body")) != 60000 {
		t.Errorf("60000-byte body did not round-trip")
	}

	// A Content-Length over the 1 MiB limit is refused with 413
	// M_TOO_LARGE, and the client that keeps writing its body still reads
	// the answer (raw TCP: the body is written slowly, after the headers).
	t.Run("Content-Length over 1 MiB", func(t *testing.T) {
		f.snap()
		conn, err := net.Dial("tcp", f.s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			rpath(f.room, "/send/m.room.message/cl"), f.s.Addr, f.alice.Token, 2<<20)
		go func() {
			chunk := []byte(strings.Repeat("x", 64<<10))
			for i := 0; i < 32; i++ {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to an oversized Content-Length: %v", err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantErr(t, toResponse(resp, raw), 413, "M_TOO_LARGE")
		f.unchanged(t)
	})

	// A request body over the 1 MiB limit, fully sent: 413 M_TOO_LARGE.
	// A connection reset here means the server closed with the body unread
	// and no lingering close (RFC 9112 section 9.6), so a real client sees
	// a network error instead of the 413.
	for _, c := range []struct{ name, method, path string }{
		{"send", "PUT", rpath(f.room, "/send/m.room.message/huge")},
		{"createRoom", "POST", cs + "/createRoom"},
		{"state", "PUT", rpath(f.room, "/state/org.lichen.huge/")},
	} {
		t.Run("body over 1 MiB "+c.name, func(t *testing.T) {
			f.snap()
			body := []byte(big(1<<20 + 1024))
			resp, raw, err := rawDo(f.s, nil, c.method, c.path,
				map[string]string{"Authorization": "Bearer " + f.alice.Token, "Content-Type": "application/json"}, body)
			if err != nil {
				t.Errorf("no HTTP answer to an oversized body (want 413 M_TOO_LARGE): %v", err)
			} else {
				wantErr(t, toResponse(resp, raw), 413, "M_TOO_LARGE")
			}
			f.unchanged(t)
		})
	}
	// The server is still healthy.
	sendText(f.s, f.alice, f.room, "after-huge", "still alive")
}

func TestBadInputDeepNesting(t *testing.T) {
	f := newFixture(t)
	f.run(t, []badCase{
		{"send 100 levels", "PUT", cs + "/rooms/{room}/send/m.room.message/deep1", "alice", nested(100), 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
		{"send 100 levels of arrays", "PUT", cs + "/rooms/{room}/send/m.room.message/deep2", "alice",
			`{"a":` + strings.Repeat("[", 99) + strings.Repeat("]", 99) + `}`, 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
		{"state 100 levels", "PUT", cs + "/rooms/{room}/state/org.lichen.deep/", "alice", nested(100), 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
		{"createRoom 100 levels", "POST", cs + "/createRoom", "alice", `{"creation_content":` + nested(99) + `}`, 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
		{"send 10000 levels", "PUT", cs + "/rooms/{room}/send/m.room.message/deep3", "alice", nested(10000), 400, []string{"M_BAD_JSON", "M_NOT_JSON"}, ""},
	})
	// Modest nesting is fine.
	f.s.must(200, "PUT", rpath(f.room, "/send/org.lichen.nest/ok"), f.alice.Token, nested(10))
}

func TestBadInputNumbers(t *testing.T) {
	f := newFixture(t)
	// appendices "Canonical JSON": integers in [-(2**53)+1, (2**53)-1],
	// no exponents or decimal places. Sensors that send floats must be told
	// which field is wrong.
	send := cs + "/rooms/{room}/send/org.lichen.sensor/"
	f.run(t, []badCase{
		{"float", "PUT", send + "f1", "alice", `{"temp": 21.5}`, 400, []string{"M_BAD_JSON"}, "temp"},
		{"nested float", "PUT", send + "f2", "alice", `{"sensor": {"humidity": 0.5}}`, 400, []string{"M_BAD_JSON"}, "humidity"},
		{"float in array", "PUT", send + "f3", "alice", `{"samples": [1, 2.25]}`, 400, []string{"M_BAD_JSON"}, "samples"},
		{"exponent", "PUT", send + "f4", "alice", `{"watts": 1e3}`, 400, []string{"M_BAD_JSON"}, "watts"},
		{"2**53", "PUT", send + "f5", "alice", `{"count": 9007199254740992}`, 400, []string{"M_BAD_JSON"}, "count"},
		{"-(2**53)", "PUT", send + "f6", "alice", `{"count": -9007199254740992}`, 400, []string{"M_BAD_JSON"}, "count"},
		{"float in state", "PUT", cs + "/rooms/{room}/state/org.lichen.sensor/", "alice", `{"temp": 21.5}`, 400, []string{"M_BAD_JSON"}, "temp"},
	})
	// The extremes of the range are fine.
	r := f.s.must(200, "PUT", rpath(f.room, "/send/org.lichen.sensor/ok"), f.alice.Token, `{"max": 9007199254740991, "min": -9007199254740991, "temp": 21}`)
	g := f.s.must(200, "GET", rpath(f.room, "/event/"+esc(r.str("event_id"))), f.alice.Token, nil)
	if !strings.Contains(string(g.Raw), "9007199254740991") {
		t.Errorf("integer range extremes did not round-trip: %s", g.Raw)
	}
}

func TestBadInputAuth(t *testing.T) {
	f := newFixture(t)
	endpoints := []struct {
		method, path string
		body         any
	}{
		{"GET", cs + "/joined_rooms", nil},
		{"GET", cs + "/sync", nil},
		{"GET", cs + "/account/whoami", nil},
		{"POST", cs + "/createRoom", map[string]any{}},
		{"PUT", cs + "/rooms/{room}/send/m.room.message/auth1", map[string]any{"msgtype": "m.text", "body": "x"}},
		{"PUT", cs + "/rooms/{room}/state/m.room.name/", map[string]any{"name": "hijack"}},
		{"GET", cs + "/rooms/{room}/messages?dir=b", nil},
	}
	cases := []badCase{}
	for _, e := range endpoints {
		cases = append(cases,
			badCase{"missing token " + e.method + " " + e.path, e.method, e.path, "none", e.body, 401, []string{"M_MISSING_TOKEN"}, ""},
			badCase{"bogus token " + e.method + " " + e.path, e.method, e.path, "syt_bogus_token_0000", e.body, 401, []string{"M_UNKNOWN_TOKEN"}, ""},
		)
	}
	f.run(t, cases)

	// The deprecated query parameter is checked the same way.
	t.Run("bogus access_token query", func(t *testing.T) {
		f.snap()
		r := f.s.do("PUT", rpath(f.room, "/send/m.room.message/auth2?access_token=nope"), "", map[string]any{"msgtype": "m.text", "body": "x"})
		wantErr(t, r, 401, "M_UNKNOWN_TOKEN")
		f.unchanged(t)
	})
	t.Run("malformed Authorization header", func(t *testing.T) {
		f.snap()
		resp, raw, err := rawDo(f.s, nil, "GET", cs+"/joined_rooms", map[string]string{"Authorization": "Basic " + f.alice.Token}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := toResponse(resp, raw); r.Status != 401 || (r.str("errcode") != "M_MISSING_TOKEN" && r.str("errcode") != "M_UNKNOWN_TOKEN") {
			t.Errorf("Basic auth accepted as a token: %d %s", r.Status, raw)
		}
		f.unchanged(t)
	})
}

func TestBadInputRouting(t *testing.T) {
	f := newFixture(t)
	f.run(t, []badCase{
		// spec "Common error codes", M_UNRECOGNIZED: 404 when not implemented,
		// 405 when the endpoint exists under another method.
		{"unknown endpoint", "GET", cs + "/frobnicate", "alice", nil, 404, []string{"M_UNRECOGNIZED"}, ""},
		{"unknown endpoint without token", "GET", cs + "/frobnicate", "none", nil, 404, []string{"M_UNRECOGNIZED"}, ""},
		{"unknown room sub-endpoint", "POST", cs + "/rooms/{room}/frobnicate", "alice", map[string]any{}, 404, []string{"M_UNRECOGNIZED"}, ""},
		{"unknown version prefix", "GET", "/_matrix/client/v99/joined_rooms", "alice", nil, 404, []string{"M_UNRECOGNIZED"}, ""},
		{"unknown API", "GET", "/_matrix/frobnicate/v1/x", "alice", nil, 404, []string{"M_UNRECOGNIZED"}, ""},
		{"too many segments", "PUT", cs + "/rooms/{room}/send/m.room.message/t/extra", "alice", map[string]any{}, 404, []string{"M_UNRECOGNIZED"}, ""},
		{"GET createRoom", "GET", cs + "/createRoom", "alice", nil, 405, []string{"M_UNRECOGNIZED"}, ""},
		{"DELETE createRoom", "DELETE", cs + "/createRoom", "alice", nil, 405, []string{"M_UNRECOGNIZED"}, ""},
		{"POST joined_rooms", "POST", cs + "/joined_rooms", "alice", map[string]any{}, 405, []string{"M_UNRECOGNIZED"}, ""},
		{"GET send", "GET", cs + "/rooms/{room}/send/m.room.message/t1", "alice", nil, 405, []string{"M_UNRECOGNIZED"}, ""},
		{"POST send", "POST", cs + "/rooms/{room}/send/m.room.message/t1", "alice", map[string]any{"body": "x"}, 405, []string{"M_UNRECOGNIZED"}, ""},
		{"DELETE state", "DELETE", cs + "/rooms/{room}/state/m.room.name/", "alice", nil, 405, []string{"M_UNRECOGNIZED"}, ""},
		{"wrong method without token", "DELETE", cs + "/createRoom", "none", nil, 405, []string{"M_UNRECOGNIZED"}, ""},
	})
}

func TestBadInputPermissions(t *testing.T) {
	f := newFixture(t)
	carol := f.s.register("")
	send := cs + "/rooms/{room}/send/m.room.message/"
	msg := map[string]any{"msgtype": "m.text", "body": "intruder"}
	f.run(t, []badCase{
		{"non-member sends", "PUT", send + "eve1", "eve", msg, 403, []string{"M_FORBIDDEN"}, ""},
		{"non-member sets state", "PUT", cs + "/rooms/{room}/state/m.room.topic/", "eve", map[string]any{"topic": "x"}, 403, []string{"M_FORBIDDEN"}, ""},
		{"non-member invites", "POST", cs + "/rooms/{room}/invite", "eve", map[string]any{"user_id": carol.ID}, 403, []string{"M_FORBIDDEN"}, ""},
		{"non-member reads state", "GET", cs + "/rooms/{room}/state", "eve", nil, 403, []string{"M_FORBIDDEN"}, ""},
		{"non-member reads messages", "GET", cs + "/rooms/{room}/messages?dir=b", "eve", nil, 403, []string{"M_FORBIDDEN"}, ""},
		{"non-member redacts", "PUT", cs + "/rooms/{room}/redact/" + esc(f.lastEvent) + "/eve", "eve", map[string]any{}, 403, []string{"M_FORBIDDEN"}, ""},
		{"power 0 sets power_levels", "PUT", cs + "/rooms/{room}/state/m.room.power_levels/", "bob",
			map[string]any{"users": map[string]any{f.bob.ID: 100}}, 403, []string{"M_FORBIDDEN"}, ""},
		{"power 0 renames", "PUT", cs + "/rooms/{room}/state/m.room.name/", "bob", map[string]any{"name": "Hijacked"}, 403, []string{"M_FORBIDDEN"}, ""},
		{"power 0 changes topic", "PUT", cs + "/rooms/{room}/state/m.room.topic/", "bob", map[string]any{"topic": "x"}, 403, []string{"M_FORBIDDEN"}, ""},
		{"power 0 changes join rules", "PUT", cs + "/rooms/{room}/state/m.room.join_rules/", "bob", map[string]any{"join_rule": "invite"}, 403, []string{"M_FORBIDDEN"}, ""},
		{"power 0 sets custom state", "PUT", cs + "/rooms/{room}/state/org.lichen.x/", "bob", map[string]any{}, 403, []string{"M_FORBIDDEN"}, ""},
		{"power 0 sets another's member event", "PUT", cs + "/rooms/{room}/state/m.room.member/" + esc(f.alice.ID), "bob",
			map[string]any{"membership": "leave"}, 403, []string{"M_FORBIDDEN"}, ""},
	})
	// Sanity: bob may still talk, and the name is still the original.
	sendText(f.s, f.bob, f.room, "bob-ok", "hi")
	if n := f.s.must(200, "GET", rpath(f.room, "/state/m.room.name/"), f.alice.Token, nil).str("name"); n != "Original" {
		t.Errorf("room name is %q", n)
	}
}

func TestBadInputRoomIDs(t *testing.T) {
	f := newFixture(t)
	msg := map[string]any{"msgtype": "m.text", "body": "x"}
	cases := []badCase{}
	// A syntactically invalid room ID: 400 M_INVALID_PARAM (the spec's
	// wording for a bad roomId, account-data.yaml), or 404.
	for _, bad := range []string{"notaroom", "!", "@alice:localhost", "#alias:localhost"} {
		p := cs + "/rooms/" + esc(bad)
		cases = append(cases,
			badCase{"send to " + bad, "PUT", p + "/send/m.room.message/inv", "alice", msg, 400, []string{"M_INVALID_PARAM"}, ""},
			badCase{"state of " + bad, "GET", p + "/state", "alice", nil, 400, []string{"M_INVALID_PARAM"}, ""},
			badCase{"messages of " + bad, "GET", p + "/messages?dir=b", "alice", nil, 400, []string{"M_INVALID_PARAM"}, ""},
		)
	}
	cases = append(cases, badCase{"join notaroom", "POST", cs + "/join/notaroom", "alice", map[string]any{}, 400, []string{"M_INVALID_PARAM"}, ""})
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			f.snap()
			r := f.s.do(c.method, strings.ReplaceAll(c.path, "{room}", esc(f.room)), f.alice.Token, c.body)
			switch {
			case r.Status == 400 && r.str("errcode") == "M_INVALID_PARAM":
			case r.Status == 404 && r.str("errcode") == "M_NOT_FOUND":
				t.Logf("404 M_NOT_FOUND accepted (400 M_INVALID_PARAM preferred)")
			default:
				t.Errorf("invalid room ID: %d %s, want 400 M_INVALID_PARAM (or 404 M_NOT_FOUND)", r.Status, r.Raw)
			}
			f.unchanged(t)
		})
	}
	// A well-formed ID of a room that does not exist: 403 or 404.
	unknown := cs + "/rooms/" + esc("!doesnotexist:localhost")
	for _, c := range []badCase{
		{"send to unknown room", "PUT", unknown + "/send/m.room.message/u1", "alice", msg, 0, nil, ""},
		{"state of unknown room", "GET", unknown + "/state", "alice", nil, 0, nil, ""},
		{"state event of unknown room", "GET", unknown + "/state/m.room.name/", "alice", nil, 0, nil, ""},
		{"messages of unknown room", "GET", unknown + "/messages?dir=b", "alice", nil, 0, nil, ""},
		{"members of unknown room", "GET", unknown + "/members", "alice", nil, 0, nil, ""},
		{"join unknown room", "POST", cs + "/join/" + esc("!doesnotexist:localhost"), "alice", map[string]any{}, 0, nil, ""},
		{"join unknown alias", "POST", cs + "/join/" + esc("#doesnotexist:localhost"), "alice", map[string]any{}, 0, nil, ""},
		{"leave unknown room", "POST", unknown + "/leave", "alice", map[string]any{}, 0, nil, ""},
		{"invite into unknown room", "POST", unknown + "/invite", "alice", map[string]any{"user_id": "@x:localhost"}, 0, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.snap()
			r := f.s.do(c.method, c.path, f.alice.Token, c.body)
			if !((r.Status == 403 && r.str("errcode") == "M_FORBIDDEN") || (r.Status == 404 && r.str("errcode") == "M_NOT_FOUND")) {
				t.Errorf("unknown room: %d %s, want 403 M_FORBIDDEN or 404 M_NOT_FOUND", r.Status, r.Raw)
			}
			f.unchanged(t)
		})
	}
}

func TestBadInputInviteUserID(t *testing.T) {
	f := newFixture(t)
	members := func() map[string]string {
		out := map[string]string{}
		for _, e := range objList(f.s.must(200, "GET", rpath(f.room, "/members"), f.alice.Token, nil).Body, "chunk") {
			out[objStr(e, "state_key")] = objStr(e, "event_id")
		}
		return out
	}
	for _, bad := range []string{"notauser", "@", "@:localhost", "alice", "@alice", "!room:localhost", "@has space:localhost", "@" + strings.Repeat("a", 260) + ":localhost"} {
		t.Run(bad[:min(len(bad), 20)], func(t *testing.T) {
			f.snap()
			before := members()
			r := f.s.do("POST", rpath(f.room, "/invite"), f.alice.Token, map[string]any{"user_id": bad})
			wantErr(t, r, 400, "M_INVALID_PARAM", "M_BAD_JSON")
			sameSnapshot(t, "members", before, members())
			f.unchanged(t)
		})
	}
	t.Run("missing user_id", func(t *testing.T) {
		f.snap()
		r := f.s.do("POST", rpath(f.room, "/invite"), f.alice.Token, map[string]any{})
		wantErr(t, r, 400, "M_MISSING_PARAM", "M_BAD_JSON", "M_INVALID_PARAM")
		f.unchanged(t)
	})
	// Same for createRoom's invite list: no room is created.
	t.Run("createRoom invite list", func(t *testing.T) {
		f.snap()
		r := f.s.do("POST", cs+"/createRoom", f.alice.Token, map[string]any{"invite": []string{"notauser"}})
		wantErr(t, r, 400, "M_INVALID_PARAM", "M_BAD_JSON")
		f.unchanged(t)
	})
}

func TestBadInputCORS(t *testing.T) {
	f := newFixture(t)
	paths := []string{
		"/_matrix/client/versions",
		cs + "/createRoom",
		cs + "/sync",
		rpath(f.room, "/send/m.room.message/cors1"),
		rpath(f.room, "/state/m.room.name/"),
		cs + "/frobnicate",
		"/.well-known/matrix/client",
		"/_matrix/media/v3/config",
	}
	check := func(t *testing.T, h http.Header) {
		t.Helper()
		if h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("Access-Control-Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
		}
		methods := h.Get("Access-Control-Allow-Methods")
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"} {
			if !strings.Contains(methods, m) {
				t.Errorf("Access-Control-Allow-Methods %q lacks %s", methods, m)
			}
		}
		allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
		for _, hd := range []string{"authorization", "content-type", "x-requested-with"} {
			if !strings.Contains(allowed, hd) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, hd)
			}
		}
	}
	for _, p := range paths {
		t.Run("OPTIONS "+p, func(t *testing.T) {
			f.snap()
			resp, _, err := rawDo(f.s, nil, "OPTIONS", p, map[string]string{
				"Origin":                         "https://app.example",
				"Access-Control-Request-Method":  "PUT",
				"Access-Control-Request-Headers": "authorization, content-type",
			}, []byte(`{"msgtype":"m.text","body":"preflight must not send"}`))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				t.Errorf("OPTIONS status %d", resp.StatusCode)
			}
			check(t, resp.Header)
			// spec: the server MUST NOT perform any logic for OPTIONS.
			f.unchanged(t)
		})
	}
	// Ordinary answers and errors carry the headers too.
	for _, c := range []struct{ name, method, path, token string }{
		{"success", "GET", cs + "/joined_rooms", f.alice.Token},
		{"error", "GET", cs + "/joined_rooms", ""},
		{"not found", "GET", cs + "/frobnicate", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{"Origin": "https://app.example"}
			if c.token != "" {
				hdr["Authorization"] = "Bearer " + c.token
			}
			resp, _, err := rawDo(f.s, nil, c.method, c.path, hdr, nil)
			if err != nil {
				t.Fatal(err)
			}
			check(t, resp.Header)
		})
	}
}

func TestWireCBOR(t *testing.T) {
	f := newFixture(t)
	auth := "Bearer " + f.alice.Token
	body, err := cbor.Marshal(map[string]any{"name": "CBOR room", "preset": "private_chat", "topic": "binary"})
	if err != nil {
		t.Fatal(err)
	}
	resp, raw, err := rawDo(f.s, nil, "POST", cs+"/createRoom", map[string]string{"Authorization": auth, "Content-Type": "application/cbor"}, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("CBOR createRoom: %d %s", resp.StatusCode, raw)
	}
	var created map[string]any
	if err := json.Unmarshal(raw, &created); err != nil {
		t.Fatalf("response to a CBOR request without Accept: cbor should be JSON: %v %q", err, raw)
	}
	room, _ := created["room_id"].(string)
	if room == "" {
		t.Fatalf("no room_id: %s", raw)
	}
	if n := f.s.must(200, "GET", rpath(room, "/state/m.room.name/"), f.alice.Token, nil).str("name"); n != "CBOR room" {
		t.Errorf("name from CBOR body = %q", n)
	}
	if n := f.s.must(200, "GET", rpath(room, "/state/m.room.topic/"), f.alice.Token, nil).str("topic"); n != "binary" {
		t.Errorf("topic from CBOR body = %q", n)
	}

	// CBOR event content, CBOR response.
	content, _ := cbor.Marshal(map[string]any{"msgtype": "m.text", "body": "from cbor", "n": 42})
	resp, raw, err = rawDo(f.s, nil, "PUT", rpath(room, "/send/m.room.message/cb1"),
		map[string]string{"Authorization": auth, "Content-Type": "application/cbor", "Accept": "application/cbor"}, content)
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	if resp.StatusCode != 200 || cbor.Unmarshal(raw, &sent) != nil || sent["event_id"] == nil {
		t.Fatalf("CBOR send: %d %q", resp.StatusCode, raw)
	}
	ev := f.s.must(200, "GET", rpath(room, "/event/"+esc(sent["event_id"].(string))), f.alice.Token, nil)
	if objStr(ev.Body, "content", "body") != "from cbor" || obj(ev.Body, "content", "n") != float64(42) {
		t.Errorf("CBOR content round trip: %s", ev.Raw)
	}

	// Accept: application/cbor on GET /joined_rooms.
	resp, raw, err = rawDo(f.s, nil, "GET", cs+"/joined_rooms", map[string]string{"Authorization": auth, "Accept": "application/cbor"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cbor") {
		t.Errorf("Content-Type %q, want application/cbor", ct)
	}
	var jr struct {
		JoinedRooms []string `cbor:"joined_rooms"`
	}
	if err := cbor.Unmarshal(raw, &jr); err != nil {
		t.Fatalf("CBOR body does not decode: %v (%q)", err, raw)
	}
	if !slices.Contains(jr.JoinedRooms, room) || !slices.Contains(jr.JoinedRooms, f.room) {
		t.Errorf("CBOR joined_rooms = %v, want %s and %s", jr.JoinedRooms, room, f.room)
	}

	// Errors are CBOR too when asked for.
	resp, raw, err = rawDo(f.s, nil, "GET", cs+"/joined_rooms", map[string]string{"Accept": "application/cbor"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if resp.StatusCode != 401 || cbor.Unmarshal(raw, &e) != nil || e["errcode"] != "M_MISSING_TOKEN" {
		t.Errorf("CBOR error: %d %q", resp.StatusCode, raw)
	}

	// Malformed CBOR is refused and changes nothing.
	t.Run("malformed CBOR", func(t *testing.T) {
		f.snap()
		resp, raw, err := rawDo(f.s, nil, "POST", cs+"/createRoom",
			map[string]string{"Authorization": auth, "Content-Type": "application/cbor"}, []byte{0xa1, 0x64, 'n', 'a'})
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, toResponse(resp, raw), 400, "M_NOT_JSON", "M_BAD_JSON")
		f.unchanged(t)
	})
	t.Run("CBOR float content", func(t *testing.T) {
		f.snap()
		b, _ := cbor.Marshal(map[string]any{"temp": 21.5})
		resp, raw, err := rawDo(f.s, nil, "PUT", rpath(f.room, "/send/org.lichen.sensor/cbf"),
			map[string]string{"Authorization": auth, "Content-Type": "application/cbor"}, b)
		if err != nil {
			t.Fatal(err)
		}
		r := toResponse(resp, raw)
		wantErr(t, r, 400, "M_BAD_JSON")
		if !strings.Contains(r.str("error"), "temp") {
			t.Errorf("error does not name the field: %s", raw)
		}
		f.unchanged(t)
	})
}

func TestWireGzip(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 60; i++ {
		sendText(f.s, f.alice, f.room, fmt.Sprint("gz", i), fmt.Sprintf("message %d: %s", i, strings.Repeat("lorem ipsum ", 20)))
	}
	path := rpath(f.room, "/messages?dir=b&limit=60")
	plain := f.s.must(200, "GET", path, f.alice.Token, nil)

	rt := &http.Transport{DisableCompression: true}
	defer rt.CloseIdleConnections()
	resp, raw, err := rawDo(f.s, rt, "GET", path, map[string]string{"Authorization": "Bearer " + f.alice.Token, "Accept-Encoding": "gzip"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip (%d bytes)", ce, len(raw))
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip body does not decode: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(dec, &m); err != nil {
		t.Fatalf("decoded body is not JSON: %v", err)
	}
	if got, want := eventIDs(objList(m, "chunk")), eventIDs(objList(plain.Body, "chunk")); !slices.Equal(got, want) || len(got) != 60 {
		t.Errorf("gzip chunk (%d events) differs from plain (%d)", len(got), len(want))
	}
	if len(raw) >= len(plain.Raw) {
		t.Errorf("gzip body %d bytes, plain %d", len(raw), len(plain.Raw))
	}
	t.Logf("messages: %d bytes plain, %d gzip", len(plain.Raw), len(raw))

	// Without Accept-Encoding there is no Content-Encoding.
	resp, _, err = rawDo(f.s, rt, "GET", path, map[string]string{"Authorization": "Bearer " + f.alice.Token}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("unrequested Content-Encoding %q", ce)
	}
	// An encoding the server doesn't offer is ignored.
	resp, raw, err = rawDo(f.s, rt, "GET", path, map[string]string{"Authorization": "Bearer " + f.alice.Token, "Accept-Encoding": "x-unknown"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" || !json.Valid(raw) {
		t.Errorf("Accept-Encoding x-unknown: Content-Encoding %q", ce)
	}
}
