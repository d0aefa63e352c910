package filter

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
)

func ptr[T any](v T) *T { return &v }

func TestParseValid(t *testing.T) {
	specExample := `{
	  "room": {
	    "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
	    "timeline": {"limit": 10, "types": ["m.room.message"],
	      "not_rooms": ["!726s6s6q:example.com"], "not_senders": ["@spam:example.com"]},
	    "ephemeral": {"types": ["m.receipt", "m.typing"],
	      "not_rooms": ["!726s6s6q:example.com"], "not_senders": ["@spam:example.com"]}
	  },
	  "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
	  "event_format": "client",
	  "event_fields": ["type", "content", "sender"]
	}`
	tests := []struct {
		name string
		in   string
		want *Filter
	}{
		{"empty", `{}`, &Filter{}},
		{"surrounding whitespace", " \n\t{\"event_format\":\"client\"} \n", &Filter{EventFormat: "client"}},
		{"spec example", specExample, &Filter{
			EventFields: []string{"type", "content", "sender"},
			EventFormat: "client",
			Presence:    &EventFilter{Types: []string{"m.presence"}, NotSenders: []string{"@alice:example.com"}},
			Room: &RoomFilter{
				State: &StateFilter{EventFilter: EventFilter{Types: []string{"m.room.*"}}, NotRooms: []string{"!726s6s6q:example.com"}},
				Timeline: &RoomEventFilter{
					EventFilter: EventFilter{Limit: ptr(10), Types: []string{"m.room.message"}, NotSenders: []string{"@spam:example.com"}},
					NotRooms:    []string{"!726s6s6q:example.com"},
				},
				Ephemeral: &RoomEventFilter{
					EventFilter: EventFilter{Types: []string{"m.receipt", "m.typing"}, NotSenders: []string{"@spam:example.com"}},
					NotRooms:    []string{"!726s6s6q:example.com"},
				},
			},
		}},
		{"empty lists kept", `{"room":{"rooms":[],"timeline":{"types":[]}}}`, &Filter{
			Room: &RoomFilter{Rooms: []string{}, Timeline: &RoomEventFilter{EventFilter: EventFilter{Types: []string{}}}},
		}},
		{"unknown keys and nulls ignored", `{"x":1,"presence":null,"room":{"y":[1],"timeline":{"types":null,"z":{}}}}`,
			&Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{}}}},
		{"room flags", `{"event_format":"federation","account_data":{"limit":0},"room":{"include_leave":true,
			"account_data":{"senders":["@a:x"]},"timeline":{"contains_url":false,"lazy_load_members":true,
			"include_redundant_members":true,"unread_thread_notifications":true,"rooms":["!r:x"],"limit":5.0}}}`,
			&Filter{EventFormat: "federation", AccountData: &EventFilter{Limit: ptr(0)}, Room: &RoomFilter{
				IncludeLeave: true,
				AccountData:  &RoomEventFilter{EventFilter: EventFilter{Senders: []string{"@a:x"}}},
				Timeline: &RoomEventFilter{EventFilter: EventFilter{Limit: ptr(5)}, ContainsURL: ptr(false),
					LazyLoadMembers: true, IncludeRedundantMembers: true, UnreadThreadNotifications: true, Rooms: []string{"!r:x"}},
			}}},
		{"huge limit saturates", `{"presence":{"limit":1e12}}`, &Filter{Presence: &EventFilter{Limit: ptr(1<<31 - 1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %s\nwant %s", Canonical(got), Canonical(tc.want))
			}
			// Canonical round-trips exactly.
			again, err := Parse(Canonical(got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip: %v\n%s", err, Canonical(got))
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct{ name, in, code string }{
		{"not json", `{"room":`, "M_NOT_JSON"},
		{"empty body", ``, "M_NOT_JSON"},
		{"array", `[]`, "M_BAD_JSON"},
		{"null", `null`, "M_BAD_JSON"},
		{"string", `"{}"`, "M_BAD_JSON"},
		{"limit string", `{"room":{"timeline":{"limit":"10"}}}`, "M_BAD_JSON"},
		{"limit negative", `{"presence":{"limit":-1}}`, "M_BAD_JSON"},
		{"limit fraction", `{"room":{"state":{"limit":1.5}}}`, "M_BAD_JSON"},
		{"limit bool", `{"account_data":{"limit":true}}`, "M_BAD_JSON"},
		{"types not array", `{"presence":{"types":"m.presence"}}`, "M_BAD_JSON"},
		{"types number", `{"presence":{"types":[1]}}`, "M_BAD_JSON"},
		{"types null item", `{"room":{"ephemeral":{"types":[null]}}}`, "M_BAD_JSON"},
		{"event_format bad", `{"event_format":"raw"}`, "M_BAD_JSON"},
		{"event_format number", `{"event_format":1}`, "M_BAD_JSON"},
		{"event_fields not strings", `{"event_fields":[{}]}`, "M_BAD_JSON"},
		{"room not object", `{"room":[]}`, "M_BAD_JSON"},
		{"presence not object", `{"presence":"x"}`, "M_BAD_JSON"},
		{"rooms not array", `{"room":{"rooms":"!a:x"}}`, "M_BAD_JSON"},
		{"include_leave string", `{"room":{"include_leave":"true"}}`, "M_BAD_JSON"},
		{"contains_url number", `{"room":{"timeline":{"contains_url":1}}}`, "M_BAD_JSON"},
		{"lazy string", `{"room":{"state":{"lazy_load_members":"yes"}}}`, "M_BAD_JSON"},
		{"not_rooms object", `{"room":{"timeline":{"not_rooms":{}}}}`, "M_BAD_JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			e, ok := err.(*mxerr.Error)
			if !ok {
				t.Fatalf("err = %v (%T), want *mxerr.Error", err, err)
			}
			if e.Code != tc.code || e.Status != 400 {
				t.Fatalf("got %d %s (%s), want 400 %s", e.Status, e.Code, e.Message, tc.code)
			}
			q := QueryError(err).(*mxerr.Error)
			if q.Code != "M_INVALID_PARAM" || q.Status != 400 {
				t.Fatalf("QueryError: %d %s", q.Status, q.Code)
			}
		})
	}
}

func TestParseRoomEventFilter(t *testing.T) {
	f, err := ParseRoomEventFilter([]byte(`{"contains_url":true,"lazy_load_members":true,"limit":3,"not_types":["m.*"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &RoomEventFilter{EventFilter: EventFilter{Limit: ptr(3), NotTypes: []string{"m.*"}}, ContainsURL: ptr(true), LazyLoadMembers: true}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got %+v", f)
	}
	if _, err := ParseRoomEventFilter([]byte(`{"rooms":[true]}`)); mxerr.As(err).Code != "M_BAD_JSON" {
		t.Fatalf("err = %v", err)
	}
}

func TestIsInlineJSON(t *testing.T) {
	for s, want := range map[string]bool{`{"room":{}}`: true, `{`: true, `66696p746572`: false, ``: false, ` {}`: false} {
		if IsInlineJSON(s) != want {
			t.Errorf("IsInlineJSON(%q) = %v", s, !want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.room.*", "m.room.member", true},
		{"m.room.*", "m.room.", true},
		{"m.room.*", "m.roo", false},
		{"*", "", true},
		{"*", "anything", true},
		{"*.member", "m.room.member", true},
		{"*.member", "m.room.members", false},
		{"m.*.member", "m.room.member", true},
		{"m.*.member", "m.member", false},
		{"m.*e*", "m.room.message", true},
		{"**", "x", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"m.room.?", "m.room.x", false}, // only '*' is special
		{"", "", true},
		{"", "x", false},
	}
	for _, tc := range tests {
		if got := Match(tc.pat, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pat, tc.s, got, tc.want)
		}
	}
}

func TestEventFilterAllows(t *testing.T) {
	tests := []struct {
		name        string
		f           *EventFilter
		sender, typ string
		want        bool
	}{
		{"nil allows", nil, "@a:x", "m.presence", true},
		{"zero allows", &EventFilter{}, "@a:x", "m.presence", true},
		{"types match", &EventFilter{Types: []string{"m.presence"}}, "@a:x", "m.presence", true},
		{"types miss", &EventFilter{Types: []string{"m.typing"}}, "@a:x", "m.presence", false},
		{"types empty matches nothing", &EventFilter{Types: []string{}}, "@a:x", "m.presence", false},
		{"not_types empty excludes nothing", &EventFilter{NotTypes: []string{}}, "@a:x", "m.presence", true},
		{"not_types wildcard", &EventFilter{NotTypes: []string{"*"}}, "@a:x", "m.presence", false},
		{"not_types beats types", &EventFilter{Types: []string{"m.*"}, NotTypes: []string{"m.room.*"}}, "@a:x", "m.room.member", false},
		{"types wildcard survives not_types", &EventFilter{Types: []string{"m.*"}, NotTypes: []string{"m.room.*"}}, "@a:x", "m.presence", true},
		{"senders match", &EventFilter{Senders: []string{"@a:x"}}, "@a:x", "t", true},
		{"senders miss", &EventFilter{Senders: []string{"@b:x"}}, "@a:x", "t", false},
		{"senders empty", &EventFilter{Senders: []string{}}, "@a:x", "t", false},
		{"senders no wildcard", &EventFilter{Senders: []string{"@*"}}, "@a:x", "t", false},
		{"not_senders beats senders", &EventFilter{Senders: []string{"@a:x"}, NotSenders: []string{"@a:x"}}, "@a:x", "t", false},
	}
	for _, tc := range tests {
		if got := tc.f.Allows(tc.sender, tc.typ); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestRoomEventFilterAllows(t *testing.T) {
	ev := EventInfo{Sender: "@a:x", Type: "m.room.message", RoomID: "!r:x"}
	withURL := ev
	withURL.HasURL = true
	tests := []struct {
		name string
		f    *RoomEventFilter
		ev   EventInfo
		want bool
	}{
		{"nil", nil, ev, true},
		{"zero", &RoomEventFilter{}, withURL, true},
		{"contains_url true, has url", &RoomEventFilter{ContainsURL: ptr(true)}, withURL, true},
		{"contains_url true, no url", &RoomEventFilter{ContainsURL: ptr(true)}, ev, false},
		{"contains_url false, has url", &RoomEventFilter{ContainsURL: ptr(false)}, withURL, false},
		{"contains_url false, no url", &RoomEventFilter{ContainsURL: ptr(false)}, ev, true},
		{"rooms match", &RoomEventFilter{Rooms: []string{"!r:x"}}, ev, true},
		{"rooms miss", &RoomEventFilter{Rooms: []string{"!s:x"}}, ev, false},
		{"rooms empty", &RoomEventFilter{Rooms: []string{}}, ev, false},
		{"not_rooms beats rooms", &RoomEventFilter{Rooms: []string{"!r:x"}, NotRooms: []string{"!r:x"}}, ev, false},
		{"not_rooms other", &RoomEventFilter{NotRooms: []string{"!s:x"}}, ev, true},
		{"event filter applies", &RoomEventFilter{EventFilter: EventFilter{NotSenders: []string{"@a:x"}}}, ev, false},
		{"types wildcard", &RoomEventFilter{EventFilter: EventFilter{Types: []string{"m.room.*"}}}, ev, true},
	}
	for _, tc := range tests {
		if got := tc.f.Allows(tc.ev); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestAllowsRoom(t *testing.T) {
	tests := []struct {
		name string
		f    *RoomFilter
		want bool
	}{
		{"nil", nil, true},
		{"absent", &RoomFilter{}, true},
		{"rooms has", &RoomFilter{Rooms: []string{"!r:x"}}, true},
		{"rooms lacks", &RoomFilter{Rooms: []string{"!s:x"}}, false},
		{"rooms empty", &RoomFilter{Rooms: []string{}}, false},
		{"not_rooms has", &RoomFilter{NotRooms: []string{"!r:x"}}, false},
		{"not_rooms empty", &RoomFilter{NotRooms: []string{}}, true},
		{"not_rooms beats rooms", &RoomFilter{Rooms: []string{"!r:x"}, NotRooms: []string{"!r:x"}}, false},
	}
	for _, tc := range tests {
		if got := tc.f.AllowsRoom("!r:x"); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
		if got := (&Filter{Room: tc.f}).AllowsRoom("!r:x"); got != tc.want {
			t.Errorf("%s via Filter: got %v", tc.name, got)
		}
	}
	if !(*Filter)(nil).AllowsRoom("!r:x") {
		t.Error("nil Filter must allow every room")
	}
}

func TestContentHasURL(t *testing.T) {
	for in, want := range map[string]bool{
		`{"url":"mxc://x/y"}`: true, `{"url":1}`: false, `{"body":"x"}`: false,
		`{}`: false, `[]`: false, `not json`: false, `{"url":null}`: false,
	} {
		if ContentHasURL([]byte(in)) != want {
			t.Errorf("ContentHasURL(%s) = %v", in, !want)
		}
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		f    *Filter
		def  int
		want int
	}{
		{"nil filter", nil, DefaultTimelineLimit, 10},
		{"no room", &Filter{}, 20, 20},
		{"no timeline", &Filter{Room: &RoomFilter{}}, 20, 20},
		{"no limit", &Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{}}}, 7, 7},
		{"set", &Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{EventFilter: EventFilter{Limit: ptr(3)}}}}, 10, 3},
		{"zero", &Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{EventFilter: EventFilter{Limit: ptr(0)}}}}, 10, 0},
		{"clamped", &Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{EventFilter: EventFilter{Limit: ptr(5000)}}}}, 10, MaxLimit},
		{"default clamped", nil, 1 << 20, MaxLimit},
		{"negative default", nil, -5, 0},
	}
	for _, tc := range tests {
		if got := tc.f.TimelineLimit(tc.def); got != tc.want {
			t.Errorf("%s: TimelineLimit = %d, want %d", tc.name, got, tc.want)
		}
	}
	var ef *EventFilter
	var ref *RoomEventFilter
	if ef.LimitOr(DefaultMessagesLimit) != 10 || ref.LimitOr(DefaultMessagesLimit) != 10 {
		t.Error("nil filters must give the default")
	}
	if (&EventFilter{Limit: ptr(1 << 40)}).LimitOr(10) != MaxLimit {
		t.Error("huge limit not clamped")
	}
	if ClampLimit(-1) != 0 || ClampLimit(50) != 50 || ClampLimit(MaxLimit+1) != MaxLimit {
		t.Error("ClampLimit")
	}
}

func TestAccessors(t *testing.T) {
	var nilF *Filter
	if nilF.Timeline() != nil || nilF.State() != nil || nilF.Ephemeral() != nil || nilF.RoomAccountData() != nil ||
		nilF.IncludeLeave() || nilF.Format() != FormatClient {
		t.Fatal("nil Filter accessors")
	}
	f, err := Parse([]byte(`{"event_format":"federation","room":{"include_leave":true,"state":{"lazy_load_members":true},
		"timeline":{"include_redundant_members":true},"ephemeral":{"limit":1},"account_data":{"limit":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Format() != FormatFederation || !f.IncludeLeave() || f.Ephemeral().LimitOr(0) != 1 || f.RoomAccountData().LimitOr(0) != 2 {
		t.Fatal("accessors")
	}
	if lazy, red := f.State().LazyLoad(); !lazy || red {
		t.Fatal("state lazy load")
	}
	// include_redundant_members does not apply without lazy_load_members.
	if lazy, red := f.Timeline().LazyLoad(); lazy || red {
		t.Fatal("timeline lazy load")
	}
	if lazy, red := (&RoomEventFilter{LazyLoadMembers: true, IncludeRedundantMembers: true}).LazyLoad(); !lazy || !red {
		t.Fatal("lazy+redundant")
	}
}

func TestCanonical(t *testing.T) {
	if got := string(Canonical(nil)); got != `{}` {
		t.Fatalf("nil: %s", got)
	}
	a, _ := Parse([]byte(`{ "room" : { "timeline": {"types":[], "limit": 4, "contains_url": false}, "rooms": ["!<r>:x"] },
		"event_fields": ["content.body"], "unknown": 1 }`))
	b, _ := Parse([]byte(`{"event_fields":["content.body"],"room":{"rooms":["!<r>:x"],"timeline":{"contains_url":false,"limit":4,"types":[]}}}`))
	want := `{"event_fields":["content.body"],"room":{"rooms":["!<r>:x"],"timeline":{"limit":4,"types":[],"contains_url":false}}}`
	if got := string(Canonical(a)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if string(Canonical(a)) != string(Canonical(b)) {
		t.Fatal("not deterministic")
	}
	if !json.Valid(Canonical(a)) {
		t.Fatal("invalid JSON")
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"content.body", []string{"content", "body"}},
		{`content.m\.relates_to`, []string{"content", "m.relates_to"}},
		{`content.m\\foo`, []string{"content", `m\foo`}},
		{`content.m\\.x`, []string{"content", `m\`, "x"}},
		{`content.\x`, []string{"content", `\x`}},
		{`a\`, []string{`a\`}},
		{"type", []string{"type"}},
		{"", []string{""}},
	}
	for _, tc := range tests {
		if got := SplitPath(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProjectFields(t *testing.T) {
	ev := `{"type":"m.room.message","sender":"@a:x","event_id":"$e",
	  "content":{"body":"hi <b>","msgtype":"m.text","m.relates_to":{"rel_type":"m.thread","event_id":"$t"},"m\\foo":1},
	  "unsigned":{"age":5}}`
	tests := []struct {
		name   string
		fields []string
		want   string
	}{
		{"absent keeps all", nil, ev},
		{"empty keeps all", []string{}, ev},
		{"top level", []string{"type", "sender"}, `{"sender":"@a:x","type":"m.room.message"}`},
		{"nested", []string{"content.body"}, `{"content":{"body":"hi <b>"}}`},
		{"escaped dot", []string{`content.m\.relates_to.rel_type`}, `{"content":{"m.relates_to":{"rel_type":"m.thread"}}}`},
		{"escaped backslash", []string{`content.m\\foo`}, `{"content":{"m\\foo":1}}`},
		{"unescaped dot is a path", []string{"content.m.relates_to"}, `{}`},
		{"missing", []string{"content.nope", "nope"}, `{}`},
		{"through a scalar", []string{"type.x", "sender"}, `{"sender":"@a:x"}`},
		{"whole parent wins", []string{"content.body", "content", "unsigned.age"},
			`{"content":{"body":"hi <b>","m.relates_to":{"event_id":"$t","rel_type":"m.thread"},"m\\foo":1,"msgtype":"m.text"},"unsigned":{"age":5}}`},
		{"mixed", []string{"content.msgtype", "content.nope", "event_id"}, `{"content":{"msgtype":"m.text"},"event_id":"$e"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProjectFields([]byte(ev), tc.fields)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if !jsonEqual(t, got, []byte(tc.want)) {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// Kept values are copied as they are, not re-escaped.
	got, _ := ProjectFields([]byte(ev), []string{"content.body"})
	if string(got) != `{"content":{"body":"hi <b>"}}` {
		t.Fatalf("bytes: %s", got)
	}
	for _, bad := range []string{`[]`, `"x"`, `{"a":`, ``} {
		if _, err := ProjectFields([]byte(bad), []string{"a"}); mxerr.As(err).Code != "M_BAD_JSON" {
			t.Errorf("ProjectFields(%q): err = %v", bad, err)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"room":{"timeline":{"limit":10,"types":["m.*"]}}}`, `{"presence":{"limit":-1}}`,
		`{"event_fields":["content.m\\.x"],"event_format":"federation"}`, `[`, `null`, `{"room":{"rooms":[1]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		flt, err := Parse(js)
		if err != nil {
			if e, ok := err.(*mxerr.Error); !ok || e.Status != 400 {
				t.Fatalf("error %v is not a 400 *mxerr.Error", err)
			}
			return
		}
		c := Canonical(flt)
		again, err := Parse(c)
		if err != nil || !reflect.DeepEqual(again, flt) {
			t.Fatalf("canonical round trip failed: %v\n%s", err, c)
		}
		flt.Timeline().Allows(EventInfo{Sender: "@a:x", Type: "m.room.message", RoomID: "!r:x"})
		flt.Presence.Allows("@a:x", "m.presence")
		flt.AllowsRoom("!r:x")
		_ = flt.TimelineLimit(DefaultTimelineLimit)
		if out, err := ProjectFields([]byte(`{"type":"t","content":{"a.b":{"c":1}}}`), flt.EventFields); err != nil || !json.Valid(out) {
			t.Fatalf("ProjectFields: %v %s", err, out)
		}
		ParseRoomEventFilter(js)
	})
}

// TestParseRejectsNonIDs: room and sender lists must hold IDs.
func TestParseRejectsNonIDs(t *testing.T) {
	for _, js := range []string{
		`{"room":{"rooms":["not_a_room_id"]}}`,
		`{"room":{"not_rooms":["@user:x"]}}`,
		`{"room":{"timeline":{"rooms":["x"]}}}`,
		`{"room":{"timeline":{"senders":["not_a_sender_id"]}}}`,
		`{"presence":{"not_senders":["!room:x"]}}`,
	} {
		if _, err := Parse([]byte(js)); err == nil {
			t.Errorf("Parse(%s) accepted", js)
		}
	}
	if _, err := Parse([]byte(`{"room":{"rooms":["!r:x"],"timeline":{"senders":["@u:x"]}}}`)); err != nil {
		t.Errorf("valid IDs refused: %v", err)
	}
}
