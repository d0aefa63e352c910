package pdu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

const (
	testOrigin = "example.org"
	testKeyID  = "ed25519:a_Test"
	testTS     = int64(1735689600123)
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var allVersions = []string{"3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

func sk(s string) *string { return &s }

// roomID is a room ID of the right shape for v: v12 room IDs are the
// create event's hash; older ones are !opaque:server.
func roomID(v string) string {
	if v == "12" {
		return "!7w9Jd0Jw0m6sHgGWd1u3uKf3C0sQGZl3KEXWm4cCQoU"
	}
	return "!abcdefgh:example.org"
}

// base is an event of the usual shape for version v.
func base(v, typ string, stateKey *string, content string) Input {
	return Input{
		RoomVersion:    v,
		RoomID:         roomID(v),
		Sender:         "@alice:example.org",
		Type:           typ,
		StateKey:       stateKey,
		Content:        json.RawMessage(content),
		PrevEvents:     []string{"$KZRYbmj0oFo3U8VdpNfVKcSRwd7s0Vm3QmZkBbBz5nM"},
		AuthEvents:     []string{"$Zx1nDx4hXJxJ6k2z0hB8nZ4Y0XXs3bqkq4x6Ck1eI8A", "$Ln0YmEo3mOlQzEEo3Qk9y8sXuQ0r7a3bLm6xKDU4yZw"},
		Depth:          42,
		Origin:         testOrigin,
		OriginServerTS: testTS,
		KeyID:          testKeyID,
		PrivateKey:     testKey,
	}
}

// gmslBuild builds in with gomatrixserverlib's EventBuilder, as
// core/rooms does. A panic inside gmsl counts as an error.
func gmslBuild(in Input) (out Output, ev gmsl.PDU, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gmsl panicked: %v", r)
		}
	}()
	ver, err := gmsl.GetRoomVersion(gmsl.RoomVersion(in.RoomVersion))
	if err != nil {
		return Output{}, nil, err
	}
	pe := gmsl.ProtoEvent{
		SenderID: in.Sender,
		RoomID:   in.RoomID,
		Type:     in.Type,
		StateKey: in.StateKey,
		Redacts:  in.Redacts,
		Depth:    in.Depth,
		Content:  spec.RawJSON(in.Content),
	}
	// A nil []string in the interface would marshal as null; the unset
	// field is what makes gmsl write [].
	if in.PrevEvents != nil {
		pe.PrevEvents = in.PrevEvents
	}
	if in.AuthEvents != nil {
		pe.AuthEvents = in.AuthEvents
	}
	eb := ver.NewEventBuilderFromProtoEvent(&pe)
	ev, err = eb.Build(time.UnixMilli(in.OriginServerTS), spec.ServerName(in.Origin), gmsl.KeyID(in.KeyID), in.PrivateKey)
	if err != nil {
		return Output{}, nil, err
	}
	return Output{JSON: ev.JSON(), EventID: ev.EventID()}, ev, nil
}

// keyVerifier verifies signatures of one server with one known key.
type keyVerifier struct {
	server string
	keyID  gmsl.KeyID
	pub    ed25519.PublicKey
}

func (k keyVerifier) VerifyJSONs(_ context.Context, reqs []gmsl.VerifyJSONRequest) ([]gmsl.VerifyJSONResult, error) {
	res := make([]gmsl.VerifyJSONResult, len(reqs))
	for i, r := range reqs {
		if string(r.ServerName) != k.server {
			res[i].Error = fmt.Errorf("no key for %s", r.ServerName)
			continue
		}
		res[i].Error = gmsl.VerifyJSON(k.server, k.keyID, k.pub, r.Message)
	}
	return res, nil
}

// verifyGMSL checks ev's signature with gmsl's VerifyEventSignatures.
func verifyGMSL(in Input, ev gmsl.PDU) error {
	pub := in.PrivateKey.Public().(ed25519.PublicKey)
	userIDForSender := func(_ spec.RoomID, s spec.SenderID) (*spec.UserID, error) {
		return spec.NewUserID(string(s), true)
	}
	return gmsl.VerifyEventSignatures(context.Background(), ev, keyVerifier{in.Origin, gmsl.KeyID(in.KeyID), pub}, userIDForSender)
}

// checkValid parses out as a received event would be and verifies its
// content hash and signature with gmsl's own code, including
// VerifyEventSignatures (which also checks which servers must have signed).
func checkValid(t testing.TB, in Input, out Output) {
	t.Helper()
	checkSigned(t, in, out)
	ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(in.RoomVersion))
	ev, err := ver.NewEventFromUntrustedJSON(out.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyGMSL(in, ev); err != nil {
		t.Fatalf("VerifyEventSignatures: %v\n%s", err, out.JSON)
	}
}

// checkSigned checks the content hash, event ID and signature only: what
// holds for any content, however meaningless (VerifyEventSignatures also
// interprets membership content, e.g. an empty
// join_authorised_via_users_server fails it).
func checkSigned(t testing.TB, in Input, out Output) {
	t.Helper()
	ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(in.RoomVersion))
	ev, err := ver.NewEventFromUntrustedJSON(out.JSON)
	if err != nil {
		t.Fatalf("NewEventFromUntrustedJSON: %v\n%s", err, out.JSON)
	}
	if ev.Redacted() {
		t.Fatalf("content hash does not match: gmsl redacted the event\n%s", out.JSON)
	}
	if ev.EventID() != out.EventID {
		t.Fatalf("event ID: gmsl computes %s, Build gave %s", ev.EventID(), out.EventID)
	}
	redacted, err := ver.RedactEventJSON(out.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := gmsl.VerifyJSON(in.Origin, gmsl.KeyID(in.KeyID), in.PrivateKey.Public().(ed25519.PublicKey), redacted); err != nil {
		t.Fatalf("VerifyJSON: %v\n%s", err, out.JSON)
	}
}

// compare builds in both ways and requires the same outcome: identical
// bytes and event ID, or both failing. It reports whether both succeeded.
// ErrUnsupported is reported to the caller through unsupported.
func compare(t testing.TB, in Input) (ok, unsupported bool) {
	t.Helper()
	got, gotErr := Build(in)
	if errors.Is(gotErr, ErrUnsupported) {
		return false, true
	}
	want, _, wantErr := gmslBuild(in)
	switch {
	case gotErr != nil && wantErr != nil:
		return false, false
	case gotErr != nil:
		t.Fatalf("Build failed but gmsl succeeded: %v\ngmsl: %s", gotErr, want.JSON)
	case wantErr != nil:
		t.Fatalf("gmsl failed (%v) but Build succeeded:\n%s", wantErr, got.JSON)
	}
	if !bytes.Equal(got.JSON, want.JSON) {
		t.Fatalf("JSON differs\n got: %s\nwant: %s", got.JSON, want.JSON)
	}
	if got.EventID != want.EventID {
		t.Fatalf("event ID: got %s, want %s\n%s", got.EventID, want.EventID, got.JSON)
	}
	return true, false
}

type testCase struct {
	name string
	in   func(v string) Input
	// minVersion/maxVersion bound the versions the case applies to (0 = all).
	minVersion, maxVersion int
}

func messageCase(name, content string) testCase {
	return testCase{name: name, in: func(v string) Input { return base(v, "m.room.message", nil, content) }}
}

func stateCase(name, typ, stateKey, content string) testCase {
	return testCase{name: name, in: func(v string) Input { return base(v, typ, sk(stateKey), content) }}
}

var longBody = strings.Repeat("lichen grows on rock, slowly; ", 2000) // ~60 kB

var successCases = []testCase{
	messageCase("message", `{"msgtype":"m.text","body":"hello world"}`),
	messageCase("message/unicode+escapes", "{ \"msgtype\" : \"m.text\",\n \"body\": \"h\u00e9llo \\u00e9 \\ud83d\\ude00 \U0001F600 <b>&amp;</b> \\\"q\\\" \\\\ \\/ \\n\\t\\b\\f\\r \\u0001\\u001f\\u007f \\u2028 \u2028 \\u003c\" }"),
	messageCase("message/nested", `{"msgtype":"m.text","body":"> quoted\n\nreply","format":"org.matrix.custom.html",
		"formatted_body":"<mx-reply><blockquote><a href=\"https://matrix.to/#/!r:e/$e\">In reply to</a></blockquote></mx-reply>reply",
		"m.relates_to":{"m.in_reply_to":{"event_id":"$abc"},"rel_type":"m.thread","is_falling_back":true},
		"m.mentions":{"user_ids":["@bob:example.org","@carol:example.com"]},
		"z":[1,-2,0,[],{},null,false,{"b":{"a":[{"d":1,"c":2}]}}], "a": 9007199254740991, "n": -9007199254740991}`),
	messageCase("message/empty content", `{}`),
	messageCase("message/empty content with spaces", " \n{ \t}\r\n "),
	messageCase("message/unicode keys", `{"é":1,"e":2,"z":3,"\u00e8":4,"<&>":5,"😀":6,"A":7,"":8,"\ud83d\ude00x":9,"\/":10,"\u003c":11}`),
	messageCase("message/duplicate keys", `{"body":"one","msgtype":"m.text","body":"two"}`),
	messageCase("message/long", `{"msgtype":"m.text","body":"`+longBody+`"}`),
	{name: "message/no prev events", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{"body":"x"}`)
		in.PrevEvents, in.AuthEvents = nil, []string{}
		return in
	}},
	{name: "message/many prev and auth events, deep depth", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{"body":"x"}`)
		in.PrevEvents = nil
		for i := 0; i < 20; i++ {
			in.PrevEvents = append(in.PrevEvents, "$prev"+strconv.Itoa(i)+"_-+/=")
		}
		in.Depth = 1 << 52
		return in
	}},
	{name: "message/odd type", in: func(v string) Input {
		return base(v, "com.example.<type>&\"quoted\"\u2028\x01", nil, `{"body":"x"}`)
	}},
	{name: "message/zero timestamp and depth", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{"body":"x"}`)
		in.OriginServerTS, in.Depth = 0, 0
		return in
	}},
	{name: "create", maxVersion: 11, in: func(v string) Input {
		in := base(v, "m.room.create", sk(""), `{"creator":"@alice:example.org","room_version":"9","m.federate":false,"predecessor":{"room_id":"!old:example.org","event_id":"$x"}}`)
		in.PrevEvents, in.AuthEvents, in.Depth = nil, nil, 1
		return in
	}},
	stateCase("member/join restricted", "m.room.member", "@alice:example.org",
		`{"membership":"join","displayname":"Alice <A>","avatar_url":"mxc://example.org/abc","join_authorised_via_users_server":"@admin:example.org","reason":"hi"}`),
	stateCase("member/leave", "m.room.member", "@alice:example.org", `{"membership":"leave"}`),
	stateCase("join_rules/restricted", "m.room.join_rules", "",
		`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!space:example.org"}],"extra":1}`),
	stateCase("power_levels", "m.room.power_levels", "",
		`{"users":{"@alice:example.org":100,"@bob:example.org":50},"users_default":0,"events":{"m.room.name":50,"m.room.power_levels":100},
		"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"notifications":{"room":50},"historical":100}`),
	stateCase("history_visibility", "m.room.history_visibility", "", `{"history_visibility":"shared","other":"x"}`),
	stateCase("aliases", "m.room.aliases", "example.org", `{"aliases":["#a:example.org"]}`),
	stateCase("name", "m.room.name", "", `{"name":"Lichen \"test\" room ☘"}`),
	stateCase("topic with escapes", "m.room.topic", "", `{"topic":"line1\nline2\t\u0000end"}`),
	stateCase("custom state/odd state key", "com.example.state", "key \"with\" \\ escapes\n\u00e9\x7f", `{"a":{"b":[1,2,3]}}`),
	stateCase("power_levels/duplicate keys", "m.room.power_levels", "", `{"ban":50,"kick":0,"ban":100,"users":{"@a:b":1,"@a:b":2}}`),
	{name: "redaction", in: func(v string) Input {
		in := base(v, "m.room.redaction", nil, `{"reason":"spam","redacts":"$KZRYbmj0oFo3U8VdpNfVKcSRwd7s0Vm3QmZkBbBz5nM"}`)
		in.Redacts = "$KZRYbmj0oFo3U8VdpNfVKcSRwd7s0Vm3QmZkBbBz5nM"
		return in
	}},
	{name: "redaction/content only", in: func(v string) Input {
		return base(v, "m.room.redaction", nil, `{"reason":"spam","redacts":"$KZRYbmj0oFo3U8VdpNfVKcSRwd7s0Vm3QmZkBbBz5nM"}`)
	}},
	{name: "v12 create", minVersion: 12, in: func(v string) Input {
		in := base(v, "m.room.create", sk(""), `{"room_version":"12","additional_creators":["@bob:example.org"],"m.federate":true,"type":"m.space"}`)
		in.RoomID, in.PrevEvents, in.AuthEvents, in.Depth = "", nil, nil, 1
		return in
	}},
	// Only canonical in versions without enforced canonical JSON.
	{name: "floats and big numbers", maxVersion: 5, in: func(v string) Input {
		return base(v, "m.room.message", nil, `{"f":1.50,"e":1e5,"E":2E-3,"big":123456789012345678901234567890,"neg":-12.5,"z":-0,"zf":-0.25}`)
	}},
	{name: "power_levels/floats", maxVersion: 5, in: func(v string) Input {
		return base(v, "m.room.power_levels", sk(""), `{"ban":50.0,"kick":1e2,"users":{"@a:b":9007199254740993},"redact":-0.5,"kick":-0,"state_default":1e-7,"events":{"x":-0}}`)
	}},
	{name: "member/lone surrogate outside kept keys", in: func(v string) Input {
		return base(v, "m.room.member", sk("@alice:example.org"), `{"membership":"join","displayname":"\udc00x\ud800\u0041"}`)
	}},
	{name: "message/lone surrogate", in: func(v string) Input {
		return base(v, "m.room.message", nil, `{"body":"a\ud800b\ud83d\u0041c\udc00"}`)
	}},
	{name: "message/lone surrogate before an HTML character", in: func(v string) Input {
		// encoding/json escapes & < > U+2028 before gmsl's CompactJSON
		// decodes the surrogate together with the next escape.
		return base(v, "m.room.message", nil, "{\"a\":\"\\ud800&x\",\"b\":\"\\udbff<\",\"c\":\"\\udc00\u2028\",\"\\ud800>\":1}")
	}},
	{name: "message/invalid UTF-8 in content", in: func(v string) Input {
		return base(v, "m.room.message", nil, "{\"body\":\"a\xffb\xc3\",\"k\xfe\":1}")
	}},
	{name: "member/invalid UTF-8 in content", in: func(v string) Input {
		return base(v, "m.room.member", sk("@alice:example.org"), "{\"membership\":\"jo\xffin\"}")
	}},
}

func versionNumber(v string) int { n, _ := strconv.Atoi(v); return n }

func TestMatchesGMSL(t *testing.T) {
	for _, v := range allVersions {
		for _, tc := range successCases {
			n := versionNumber(v)
			if (tc.minVersion != 0 && n < tc.minVersion) || (tc.maxVersion != 0 && n > tc.maxVersion) {
				continue
			}
			t.Run("v"+v+"/"+tc.name, func(t *testing.T) {
				in := tc.in(v)
				ok, unsupported := compare(t, in)
				if unsupported {
					t.Fatalf("Build returned ErrUnsupported")
				}
				if !ok {
					_, err := Build(in)
					t.Fatalf("both failed, want success: %v", err)
				}
				out, _ := Build(in)
				checkValid(t, in, out)
			})
		}
	}
}

// errorCases must fail in both (in every version unless bounded).
var errorCases = []testCase{
	messageCase("invalid JSON", `{"body":`),
	messageCase("trailing garbage", `{"body":"x"} x`),
	messageCase("two values", `{} {}`),
	messageCase("raw control character", "{\"body\":\"a\x01b\"}"),
	messageCase("leading zero", `{"n":01}`),
	messageCase("array content", `[1,2]`),
	messageCase("string content", `"hello"`),
	messageCase("number content", `12`),
	messageCase("empty content", ``),
	messageCase("float overflow", `{"n":1e400}`),
	messageCase("integer overflowing float64", `{"n":1`+strings.Repeat("0", 400)+`}`),
	messageCase("too long", `{"body":"`+strings.Repeat("x", 65536)+`"}`),
	{name: "float", minVersion: 6, in: func(v string) Input { return base(v, "m.room.message", nil, `{"n":1.5}`) }},
	{name: "exponent", minVersion: 6, in: func(v string) Input { return base(v, "m.room.message", nil, `{"n":1e3}`) }},
	{name: "minus zero", minVersion: 6, in: func(v string) Input { return base(v, "m.room.message", nil, `{"n":-0}`) }},
	{name: "int too big", minVersion: 6, in: func(v string) Input {
		return base(v, "m.room.message", nil, `{"a":[{"n":9007199254740992}]}`)
	}},
	{name: "int too small", minVersion: 6, in: func(v string) Input {
		return base(v, "m.room.message", nil, `{"n":-9007199254740992}`)
	}},
	{name: "depth too big", minVersion: 6, in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.Depth = 1 << 53
		return in
	}},
	{name: "negative timestamp", minVersion: 6, in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.OriginServerTS = -1
		return in
	}},
	{name: "sender without server", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.Sender = "@alice"
		return in
	}},
	{name: "sender wrong sigil", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.Sender = "alice:example.org"
		return in
	}},
	{name: "sender too long", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.Sender = "@" + strings.Repeat("a", 250) + ":example.org"
		return in
	}},
	{name: "room ID wrong sigil", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.RoomID = "#abc:example.org"
		return in
	}},
	{name: "room ID empty", in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.RoomID = ""
		return in
	}},
	{name: "room ID without server", maxVersion: 11, in: func(v string) Input {
		in := base(v, "m.room.message", nil, `{}`)
		in.RoomID = "!abc"
		return in
	}},
	{name: "type too long", in: func(v string) Input {
		return base(v, strings.Repeat("t", 256), nil, `{}`)
	}},
	{name: "type too many bytes", in: func(v string) Input {
		return base(v, strings.Repeat("é", 128), nil, `{}`)
	}},
	{name: "state key too long", in: func(v string) Input {
		return base(v, "m.room.name", sk(strings.Repeat("é", 256)), `{}`)
	}},
	{name: "v12 create with room ID", minVersion: 12, in: func(v string) Input {
		in := base(v, "m.room.create", sk(""), `{"room_version":"12"}`)
		in.PrevEvents, in.AuthEvents = nil, nil
		return in
	}},
	{name: "v12 create with state key and no room ID", minVersion: 12, in: func(v string) Input {
		in := base(v, "m.room.create", sk("x"), `{"room_version":"12"}`)
		in.RoomID = ""
		return in
	}},
}

// TestOddFields: top-level strings with characters that need escaping or
// that encoding/json escapes and gmsl's canonicaliser unescapes.
func TestOddFields(t *testing.T) {
	for _, v := range allVersions {
		in := base(v, "t<>&\u2028\x01\"\\", sk("k\n\"\\\x7f\u2029"), `{"membership":"join"}`)
		in.Sender, in.RoomID, in.Redacts, in.Origin, in.KeyID = "@a<:b&", "!r\u2029:b", "$\x00\b\f", "b<\u2028", "k&>"
		in.PrevEvents = []string{"$\t", ""}
		if ok, _ := compare(t, in); !ok {
			t.Fatalf("v%s: both failed", v)
		}
		out, _ := Build(in)
		ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(v))
		redacted, err := ver.RedactEventJSON(out.JSON)
		if err != nil {
			t.Fatal(err)
		}
		if err := gmsl.VerifyJSON(in.Origin, gmsl.KeyID(in.KeyID), in.PrivateKey.Public().(ed25519.PublicKey), redacted); err != nil {
			t.Fatalf("v%s: VerifyJSON: %v", v, err)
		}
	}
}

// TestSizeLimit: an event of exactly 65536 bytes is built, one byte more
// is refused, by both.
func TestSizeLimit(t *testing.T) {
	for _, v := range []string{"3", "10", "12"} {
		in := base(v, "m.room.message", nil, `{"body":""}`)
		small, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		room := maxEventLength - len(small.JSON)
		in.Content = json.RawMessage(`{"body":"` + strings.Repeat("x", room) + `"}`)
		if ok, _ := compare(t, in); !ok {
			t.Fatalf("v%s: event of exactly %d bytes refused", v, maxEventLength)
		}
		if out, _ := Build(in); len(out.JSON) != maxEventLength {
			t.Fatalf("v%s: calibration off: %d bytes", v, len(out.JSON))
		}
		in.Content = json.RawMessage(`{"body":"` + strings.Repeat("x", room+1) + `"}`)
		if ok, _ := compare(t, in); ok {
			t.Fatalf("v%s: event of %d bytes accepted", v, maxEventLength+1)
		}
		if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "too long") {
			t.Fatalf("v%s: got %v, want a too long error", v, err)
		}
	}
}

func TestFailsLikeGMSL(t *testing.T) {
	for _, v := range allVersions {
		for _, tc := range errorCases {
			n := versionNumber(v)
			if (tc.minVersion != 0 && n < tc.minVersion) || (tc.maxVersion != 0 && n > tc.maxVersion) {
				continue
			}
			t.Run("v"+v+"/"+tc.name, func(t *testing.T) {
				in := tc.in(v)
				_, gotErr := Build(in)
				_, _, wantErr := gmslBuild(in)
				if wantErr == nil {
					t.Fatalf("gmsl accepted the case; the table is wrong")
				}
				if gotErr == nil || errors.Is(gotErr, ErrUnsupported) {
					t.Fatalf("Build: got %v, want an error like gmsl's %v", gotErr, wantErr)
				}
				// core/rooms maps "too long" to M_TOO_LARGE.
				if strings.Contains(wantErr.Error(), "too long") != strings.Contains(gotErr.Error(), "too long") {
					t.Fatalf("Build: %v; gmsl: %v", gotErr, wantErr)
				}
			})
		}
	}
}

// TestRejectsUnverifiable: content on which gmsl's Build succeeds but emits
// an event whose signature gmsl itself then rejects. Build refuses it.
func TestRejectsUnverifiable(t *testing.T) {
	cases := []testCase{
		{name: "member/lone surrogate", in: func(v string) Input {
			return base(v, "m.room.member", sk("@alice:example.org"), `{"membership":"jo\ud800in"}`)
		}},
		{name: "power_levels/duplicate keys in a long object", in: func(v string) Input {
			// gmsl's unstable sort reorders the duplicates, so "last wins"
			// picks another value in the canonical content than in the
			// content gmsl signed.
			var parts []string
			for i := 0; i < 60; i++ {
				parts = append(parts, fmt.Sprintf(`"@u%d:b":%d`, i*7%9, i))
			}
			return base(v, "m.room.power_levels", sk(""), `{"users":{`+strings.Join(parts, ",")+`}}`)
		}},
		{name: "join_rules/surrogate pair broken", in: func(v string) Input {
			return base(v, "m.room.join_rules", sk(""), `{"join_rule":"public\ud83d\u0041"}`)
		}},
	}
	for _, v := range allVersions {
		for _, tc := range cases {
			if tc.maxVersion != 0 && versionNumber(v) > tc.maxVersion {
				continue
			}
			t.Run("v"+v+"/"+tc.name, func(t *testing.T) {
				in := tc.in(v)
				if _, err := Build(in); !errors.Is(err, ErrUnverifiable) {
					t.Fatalf("Build: got %v, want ErrUnverifiable", err)
				}
				want, ev, err := gmslBuild(in)
				if err != nil {
					t.Skipf("gmsl fails too: %v", err)
				}
				if verifyGMSL(in, ev) == nil {
					t.Fatalf("gmsl's event verifies after all:\n%s", want.JSON)
				}
			})
		}
	}
}

func TestUnsupported(t *testing.T) {
	cases := []Input{
		base("1", "m.room.message", nil, `{}`),
		base("2", "m.room.message", nil, `{}`),
		base("org.matrix.msc4014", "m.room.message", nil, `{}`),
		base("", "m.room.message", nil, `{}`),
		base("10", "m.room.message", nil, `null`),
		base("10", "m.room.message", nil, `{"a\"b":1}`),
		base("10", "m.room.message", nil, `{"a":{"\n" :1}}`),
		base("10", "m.room.message", nil, `{"a":{"x\\" :1}}`),
		base("10", "m.room.message", nil, `{"a":{"\u0001" :1}}`),
		base("10", "m.room.message\xff", nil, `{}`),
	}
	in := base("10", "m.room.message", nil, `{}`)
	in.Origin = "exa\"mple.org"
	cases = append(cases, in)
	for i, in := range cases {
		if _, err := Build(in); !errors.Is(err, ErrUnsupported) {
			t.Errorf("case %d: got %v, want ErrUnsupported", i, err)
		}
	}
	for _, v := range allVersions {
		if !Supported(v) {
			t.Errorf("version %s not supported", v)
		}
	}
}

// TestVersionTable checks the per-version table against gmsl.
func TestVersionTable(t *testing.T) {
	types := map[string]bool{"m.room.message": true, "m.room.name": true}
	keys := map[string]bool{"x": true}
	for _, tbl := range []map[string][]string{keepV1, keepV2, keepV3, keepV4, keepV5} {
		for typ, ks := range tbl {
			types[typ] = true
			for _, k := range ks {
				keys[k] = true
			}
		}
	}
	content := map[string]int{}
	for k := range keys {
		content[k] = 1
	}
	contentJSON, _ := json.Marshal(content)

	for _, name := range allVersions {
		v := versions[name]
		ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(name))
		if ver.EventFormat() != gmsl.EventFormatV2 {
			t.Errorf("v%s: not event format V2", name)
		}
		if got := ver.EventIDFormat() == gmsl.EventIDFormatV3; got != v.urlSafeID {
			t.Errorf("v%s: urlSafeID %v, gmsl says %v", name, v.urlSafeID, got)
		}
		if got := ver.DomainlessRoomIDs(); got != v.domainless {
			t.Errorf("v%s: domainless %v, gmsl says %v", name, v.domainless, got)
		}
		if got := ver.CheckCanonicalJSON([]byte(`{"a":1.5}`)) != nil; got != v.enforced {
			t.Errorf("v%s: enforced %v, gmsl says %v", name, v.enforced, got)
		}
		for typ := range types {
			ev := fmt.Sprintf(`{"type":%q,"content":%s,"origin":"o","prev_state":[],"redacts":"$r","room_id":"!r:o"}`, typ, contentJSON)
			red, err := ver.RedactEventJSON([]byte(ev))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Content   json.RawMessage `json:"content"`
				Origin    *string         `json:"origin"`
				PrevState json.RawMessage `json:"prev_state"`
				Redacts   *string         `json:"redacts"`
			}
			if err := json.Unmarshal(red, &got); err != nil {
				t.Fatal(err)
			}
			wantContent, _ := gmsl.CanonicalJSON(got.Content)
			mine := emptyObject
			if keep, ok := v.keep[typ]; ok {
				mine, _ = redactContent(contentJSON, keep)
			}
			if !bytes.Equal(mine, wantContent) {
				t.Errorf("v%s %s: redacted content %s, gmsl %s", name, typ, mine, wantContent)
			}
			if (got.Origin == nil) != v.redactV2 || (got.PrevState == nil) != v.redactV2 {
				t.Errorf("v%s: redactV2 %v but gmsl keeps origin=%v prev_state=%v", name, v.redactV2, got.Origin != nil, got.PrevState != nil)
			}
			if got.Redacts != nil {
				t.Errorf("v%s: gmsl keeps top-level redacts", name)
			}
		}
	}
}

// TestPDUFromOutput shows the cheap way back to a gmsl.PDU for the auth
// checks: the event ID is already known, so nothing is re-hashed.
func TestPDUFromOutput(t *testing.T) {
	for _, v := range allVersions {
		in := base(v, "m.room.member", sk("@alice:example.org"), `{"membership":"join"}`)
		out, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(v))
		ev, err := ver.NewEventFromTrustedJSONWithEventID(out.EventID, out.JSON, false)
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := ev.Membership(); m != "join" || ev.EventID() != out.EventID || ev.Depth() != 42 {
			t.Fatalf("v%s: parsed %v %v %v", v, m, ev.EventID(), ev.Depth())
		}
	}
}

func TestConcurrent(t *testing.T) {
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func(g int) {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				in := base(allVersions[(g+i)%len(allVersions)], "m.room.message", nil, fmt.Sprintf(`{"body":"%d/%d"}`, g, i))
				var a, b Output
				if a, err = Build(in); err == nil {
					b, err = Build(in)
					if err == nil && (!bytes.Equal(a.JSON, b.JSON) || a.EventID != b.EventID) {
						err = errors.New("not deterministic")
					}
				}
			}
			done <- err
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
