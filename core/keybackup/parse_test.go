package keybackup

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
)

const room = "!room:example.org"

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return mxerr.As(err).Code
}

func TestParseVersionBody(t *testing.T) {
	tests := []struct {
		body string
		code string
	}{
		{`{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"abc","signatures":{}}}`, ""},
		{`  {"algorithm":"org.example.other","auth_data":{}}`, ""}, // other algorithms are opaque
		{`{"algorithm":"x","auth_data":{},"version":"1"}`, ""},
		{``, "M_NOT_JSON"},
		{`[]`, "M_BAD_JSON"},
		{`{"auth_data":{}}`, "M_MISSING_PARAM"},
		{`{"algorithm":"x"}`, "M_MISSING_PARAM"},
		{`{"algorithm":5,"auth_data":{}}`, "M_BAD_JSON"},
		{`{"algorithm":"","auth_data":{}}`, "M_INVALID_PARAM"},
		{`{"algorithm":"x","auth_data":"abc"}`, "M_BAD_JSON"},
		{`{"algorithm":"x","auth_data":null}`, "M_BAD_JSON"},
		{`{"algorithm":"x","auth_data":{},"version":1}`, "M_BAD_JSON"},
		{`{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{}}`, "M_MISSING_PARAM"},
		{`{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":1}}`, "M_BAD_JSON"},
	}
	for _, tc := range tests {
		_, err := parseVersionBody([]byte(tc.body))
		if got := codeOf(err); got != tc.code {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.code)
		}
	}
	v, err := parseVersionBody([]byte(`{"algorithm":"x","auth_data":{ "public_key" : "k" },"version":"7"}`))
	if err != nil || string(v.authData) != `{"public_key":"k"}` || v.version == nil || *v.version != "7" {
		t.Fatalf("parsed %+v %v", v, err)
	}
}

// keyList renders parsed keys in a stable order for comparison.
func keyList(keys []RoomKey) string {
	var out []string
	for _, k := range keys {
		b, _ := json.Marshal(k.KeyBackupData)
		out = append(out, k.RoomID+"/"+k.SessionID+"="+string(b))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func parseAll(b string) ([]RoomKey, error) { return ParseKeysBody([]byte(b)) }

func TestParseKeyBodies(t *testing.T) {
	const good = `{"first_message_index":1,"forwarded_count":0,"is_verified":true,"session_data":{"ciphertext":"c"}}`
	const goodParsed = `{"first_message_index":1,"forwarded_count":0,"is_verified":true,"session_data":{"ciphertext":"c"}}`
	with := func(field, value string) string {
		var m map[string]json.RawMessage
		_ = json.Unmarshal([]byte(good), &m)
		if value == "" {
			delete(m, field)
		} else {
			m[field] = json.RawMessage(value)
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	all := func(session string) string { return `{"rooms":{"` + room + `":{"sessions":{"s1":` + session + `}}}}` }
	tests := []struct {
		name  string
		parse func(string) ([]RoomKey, error)
		body  string
		code  string
		want  string
	}{
		{"all", parseAll, all(good), "", room + "/s1=" + goodParsed},
		{"all, empty rooms", parseAll, `{"rooms":{}}`, "", ""},
		{"all, no rooms", parseAll, `{}`, "M_MISSING_PARAM", ""},
		{"all, rooms not an object", parseAll, `{"rooms":[]}`, "M_BAD_JSON", ""},
		{"all, bad room ID", parseAll, `{"rooms":{"room":{"sessions":{}}}}`, "M_INVALID_PARAM", ""},
		{"all, no sessions", parseAll, `{"rooms":{"` + room + `":{}}}`, "M_MISSING_PARAM", ""},
		{"all, sessions an array", parseAll, `{"rooms":{"` + room + `":{"sessions":[]}}}`, "M_BAD_JSON", ""},
		{"index missing", parseAll, all(with("first_message_index", "")), "M_MISSING_PARAM", ""},
		{"index a string", parseAll, all(with("first_message_index", `"1"`)), "M_BAD_JSON", ""},
		{"index a float", parseAll, all(with("first_message_index", `1.5`)), "M_BAD_JSON", ""},
		{"index negative", parseAll, all(with("first_message_index", `-1`)), "M_INVALID_PARAM", ""},
		{"index too big", parseAll, all(with("first_message_index", `9007199254740992`)), "M_INVALID_PARAM", ""},
		{"index overflowing int64", parseAll, all(with("first_message_index", `99999999999999999999`)), "M_INVALID_PARAM", ""},
		{"forwarded missing", parseAll, all(with("forwarded_count", "")), "M_MISSING_PARAM", ""},
		{"forwarded null", parseAll, all(with("forwarded_count", "null")), "M_BAD_JSON", ""},
		{"verified missing", parseAll, all(with("is_verified", "")), "M_MISSING_PARAM", ""},
		{"verified a string", parseAll, all(with("is_verified", `"true"`)), "M_BAD_JSON", ""},
		{"verified null", parseAll, all(with("is_verified", `null`)), "M_BAD_JSON", ""},
		{"session_data missing", parseAll, all(with("session_data", "")), "M_MISSING_PARAM", ""},
		{"session_data a string", parseAll, all(with("session_data", `"x"`)), "M_BAD_JSON", ""},
		{"session not an object", parseAll, all(`5`), "M_BAD_JSON", ""},
		{"empty session ID", parseAll, `{"rooms":{"` + room + `":{"sessions":{"":` + good + `}}}}`, "M_INVALID_PARAM", ""},
		{"long session ID", parseAll, `{"rooms":{"` + room + `":{"sessions":{"` + strings.Repeat("s", 256) + `":` + good + `}}}}`, "M_INVALID_PARAM", ""},
		{"empty body", parseAll, ``, "M_NOT_JSON", ""},

		{"room", func(b string) ([]RoomKey, error) { return ParseRoomBody(room, []byte(b)) },
			`{"sessions":{"a":` + good + `,"b":` + with("is_verified", "false") + `}}`, "",
			room + "/a=" + goodParsed + " " + room + "/b=" + strings.Replace(goodParsed, "true", "false", 1)},
		{"room, bad room ID", func(b string) ([]RoomKey, error) { return ParseRoomBody("nope", []byte(b)) },
			`{"sessions":{}}`, "M_INVALID_PARAM", ""},
		{"room, no sessions", func(b string) ([]RoomKey, error) { return ParseRoomBody(room, []byte(b)) },
			`{}`, "M_MISSING_PARAM", ""},

		{"session", func(b string) ([]RoomKey, error) { return ParseSessionBody(room, "s9", []byte(b)) },
			good, "", room + "/s9=" + goodParsed},
		{"session, bad room ID", func(b string) ([]RoomKey, error) { return ParseSessionBody("!", "s9", []byte(b)) },
			good, "M_INVALID_PARAM", ""},
		{"session, field missing", func(b string) ([]RoomKey, error) { return ParseSessionBody(room, "s9", []byte(b)) },
			with("is_verified", ""), "M_MISSING_PARAM", ""},

		// The seed's shapes (legacy.go).
		{"legacy room", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"room_id":"` + room + `","sessions":[{"session_id":"a","session_data":{}},{"session_id":"b","session_data":{"x":1},"is_verified":true,"first_message_index":2}]}`, "",
			room + `/a={"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}} ` +
				room + `/b={"first_message_index":2,"forwarded_count":0,"is_verified":true,"session_data":{"x":1}}`},
		{"legacy room, spec sessions object", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"room_id":"` + room + `","sessions":{"a":{"session_data":{}}}}`, "",
			room + `/a={"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}}`},
		{"legacy room, nothing", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"sessions":[ ]}`, "", ""},
		{"legacy room, sessions without room", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"sessions":[{"session_id":"a","session_data":{}}]}`, "M_MISSING_PARAM", ""},
		{"legacy room, no session_id", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"room_id":"` + room + `","sessions":[{"session_data":{}}]}`, "M_MISSING_PARAM", ""},
		{"legacy room, no session_data", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"room_id":"` + room + `","sessions":[{"session_id":"a"}]}`, "M_MISSING_PARAM", ""},
		{"legacy room, item not an object", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"room_id":"` + room + `","sessions":["a"]}`, "M_BAD_JSON", ""},
		{"legacy room, wrong type", func(b string) ([]RoomKey, error) { return ParseLegacyRoomBody([]byte(b)) },
			`{"room_id":"` + room + `","sessions":[{"session_id":"a","session_data":{},"forwarded_count":"2"}]}`, "M_BAD_JSON", ""},
		{"legacy batch", func(b string) ([]RoomKey, error) { return ParseLegacyBatchBody([]byte(b)) },
			`{"` + room + `":{"sessions":[{"session_id":"a","session_data":{}}]}}`, "",
			room + `/a={"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}}`},
		{"legacy batch, bad room", func(b string) ([]RoomKey, error) { return ParseLegacyBatchBody([]byte(b)) },
			`{"rooms":{"sessions":[]}}`, "M_INVALID_PARAM", ""},
		{"legacy batch, room not an object", func(b string) ([]RoomKey, error) { return ParseLegacyBatchBody([]byte(b)) },
			`{"` + room + `":[]}`, "M_BAD_JSON", ""},
	}
	for _, tc := range tests {
		keys, err := tc.parse(tc.body)
		if got := codeOf(err); got != tc.code {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
			continue
		}
		if err == nil && keyList(keys) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, keyList(keys), tc.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]uint64{"1": 1, "42": 42, "18446744073709551615": 1<<64 - 1} {
		if v, ok := ParseVersion(s); !ok || v != want {
			t.Errorf("%q: %d %v", s, v, ok)
		}
	}
	for _, s := range []string{"", "0", "01", "+1", "-1", "1a", "18446744073709551616", " 1"} {
		if _, ok := ParseVersion(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}
