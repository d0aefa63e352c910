package pdu

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	gmsl "github.com/matrix-org/gomatrixserverlib"
)

// fuzzTypes are the event types the fuzzer builds content for: a message,
// and every type whose redaction keeps content keys in some version.
var fuzzTypes = []struct {
	typ      string
	stateKey *string
}{
	{"m.room.message", nil},
	{"m.room.member", sk("@alice:example.org")},
	{"m.room.create", sk("")},
	{"m.room.join_rules", sk("")},
	{"m.room.power_levels", sk("")},
	{"m.room.history_visibility", sk("")},
	{"m.room.aliases", sk("example.org")},
	{"m.room.redaction", nil},
	{"m.room.name", sk("")},
}

// FuzzBuild compares Build with gmsl's EventBuilder.Build on arbitrary
// content, in every supported room version and for every type whose
// redaction treats content specially. Whenever Build succeeds the bytes and
// event ID must be gmsl's and the event must verify; whenever it fails
// (other than ErrUnsupported / ErrUnverifiable) gmsl must fail too.
func FuzzBuild(f *testing.F) {
	seeds := []string{
		`{}`, `{"body":"hello","msgtype":"m.text"}`, ` { "b" : [1, 2.5, -0, "x\u00e9\ud83d\ude00"], "a": null } `,
		`{"membership":"join","join_authorised_via_users_server":"@a:example.org"}`,
		`{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!a:b"}]}`,
		`{"users":{"@a:b":100},"ban":50,"invite":0,"events":{"m.room.name":50}}`,
		`{"room_version":"12","creator":"@a:b","additional_creators":["@b:c"]}`,
		`{"redacts":"$abc","reason":"x"}`, `{"history_visibility":"joined"}`, `{"aliases":["#a:b"]}`,
		`{"a":"\ud800","b":"\udc00\ud800\u0041"}`, `{"k\u00e9y":1,"\u003c":2}`, `{"a":1e400}`, `{"a":9007199254740993}`,
		"{\"a\":\"\xff\xfe\"}", `{"a":{"a":1,"a":2},"a":3}`, `[]`, `null`, `"x"`, `{"a":-0.0}`, `{"\n":1}`,
	}
	for i, s := range seeds {
		f.Add(s, uint8(i), uint8(i*7))
	}
	f.Fuzz(func(t *testing.T, content string, verSel, typeSel uint8) {
		v := allVersions[int(verSel)%len(allVersions)]
		ft := fuzzTypes[int(typeSel)%len(fuzzTypes)]
		in := base(v, ft.typ, ft.stateKey, content)
		in.Content = json.RawMessage(content)
		if v == "12" && ft.typ == "m.room.create" {
			in.RoomID, in.PrevEvents, in.AuthEvents = "", nil, nil
		}
		got, gotErr := Build(in)
		if errors.Is(gotErr, ErrUnsupported) {
			return
		}
		if errors.Is(gotErr, ErrUnverifiable) {
			// gmsl may build it, but then its signature must fail.
			if want, ev, err := gmslBuild(in); err == nil && verifyGMSL(in, ev) == nil {
				t.Fatalf("Build refused content whose gmsl event verifies:\n%s", want.JSON)
			}
			return
		}
		if ok, _ := compare(t, in); ok {
			checkSigned(t, in, got)
		}
	})
}

// FuzzFields compares Build with gmsl on arbitrary top-level fields (type,
// state key, IDs, origin, key ID, depth, timestamp) with fixed content.
func FuzzFields(f *testing.F) {
	f.Add(uint8(0), "m.room.message", "", false, "@alice:example.org", "!r:example.org", "", "example.org", "ed25519:k", "$a,$b", int64(5), int64(1700000000000))
	f.Add(uint8(9), "m.room.create", "", true, "@alice:example.org", "", "", "example.org", "ed25519:k", "", int64(1), int64(1))
	f.Add(uint8(8), "m.room.redaction", "", false, "@a:b", "!r", "$x", "b", "ed25519:k", "$p", int64(-3), int64(-1))
	f.Add(uint8(3), "t<>&\u2028\x01\"\\", "k\n\"\\\x7f", true, "@a<:b&", "!r\u2029:b", "$\x00", "b<\u2028", "k&>", "$\t,", int64(1<<53), int64(1<<53-1))
	f.Add(uint8(5), "m.room.member", "\xff", true, "@\xfe:b", "!r:b", "", "b", "k", ",,", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, verSel uint8, typ, stateKey string, hasStateKey bool, sender, room, redacts, origin, keyID, ids string, depth, ts int64) {
		v := allVersions[int(verSel)%len(allVersions)]
		in := base(v, typ, nil, `{"membership":"join","body":"x","join_rule":"public"}`)
		if hasStateKey {
			in.StateKey = &stateKey
		}
		in.Sender, in.RoomID, in.Redacts, in.Origin, in.KeyID = sender, room, redacts, origin, keyID
		in.Depth, in.OriginServerTS = depth, ts
		if ids != "" {
			in.PrevEvents = strings.Split(ids, ",")
			in.AuthEvents = in.PrevEvents[len(in.PrevEvents)/2:]
		}
		got, err := Build(in)
		if errors.Is(err, ErrUnsupported) {
			return
		}
		if ok, _ := compare(t, in); !ok {
			return
		}
		ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(v))
		if ev, err := ver.NewEventFromUntrustedJSON(got.JSON); err == nil {
			if ev.Redacted() || ev.EventID() != got.EventID {
				t.Fatalf("gmsl reads it back redacted=%v id=%s", ev.Redacted(), ev.EventID())
			}
		}
		redacted, err := ver.RedactEventJSON(got.JSON)
		if err != nil {
			t.Fatal(err)
		}
		if err := gmsl.VerifyJSON(in.Origin, gmsl.KeyID(in.KeyID), in.PrivateKey.Public().(ed25519.PublicKey), redacted); err != nil {
			t.Fatalf("VerifyJSON: %v\n%s", err, got.JSON)
		}
	})
}
