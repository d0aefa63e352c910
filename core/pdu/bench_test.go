package pdu

import (
	"crypto/ed25519"
	"testing"
	"time"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// benchContent is a ~100-byte m.room.message, as a client sends it.
const benchContent = `{"msgtype": "m.text", "body": "Hello from the Lichen hub: sensor 42 reports 21.5 C and humidity 40%"}`

func benchInput(v string) Input { return base(v, "m.room.message", nil, benchContent) }

// BenchmarkBuildGMSL is what core/rooms does today: EventBuilder.Build,
// then EventID() (record() asks for it, which re-redacts and re-hashes).
func BenchmarkBuildGMSL(b *testing.B) {
	for _, v := range []string{"10", "12"} {
		b.Run("v"+v, func(b *testing.B) {
			in := benchInput(v)
			ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(v))
			now := time.UnixMilli(in.OriginServerTS)
			b.ReportAllocs()
			for b.Loop() {
				pe := gmsl.ProtoEvent{
					SenderID: in.Sender, RoomID: in.RoomID, Type: in.Type, Depth: in.Depth,
					Content: spec.RawJSON(in.Content), PrevEvents: in.PrevEvents, AuthEvents: in.AuthEvents,
				}
				ev, err := ver.NewEventBuilderFromProtoEvent(&pe).Build(now, spec.ServerName(in.Origin), gmsl.KeyID(in.KeyID), in.PrivateKey)
				if err != nil {
					b.Fatal(err)
				}
				_ = ev.EventID()
			}
		})
	}
}

// BenchmarkBuildFast is Build alone.
func BenchmarkBuildFast(b *testing.B) {
	for _, v := range []string{"10", "12"} {
		b.Run("v"+v, func(b *testing.B) {
			in := benchInput(v)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Build(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuildFastPDU is Build plus the parse back into a gmsl.PDU with
// the known event ID, which the room engine needs for gmsl.Allowed.
func BenchmarkBuildFastPDU(b *testing.B) {
	for _, v := range []string{"10", "12"} {
		b.Run("v"+v, func(b *testing.B) {
			in := benchInput(v)
			ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(v))
			b.ReportAllocs()
			for b.Loop() {
				out, err := Build(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ver.NewEventFromTrustedJSONWithEventID(out.EventID, out.JSON, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuildState compares both on a member event, whose redaction
// keeps content keys (the slower path of Build).
func BenchmarkBuildState(b *testing.B) {
	in := base("10", "m.room.member", sk("@alice:example.org"), `{"membership":"join","displayname":"Alice","avatar_url":"mxc://example.org/abc"}`)
	b.Run("gmsl", func(b *testing.B) {
		ver := gmsl.MustGetRoomVersion("10")
		now := time.UnixMilli(in.OriginServerTS)
		b.ReportAllocs()
		for b.Loop() {
			pe := gmsl.ProtoEvent{
				SenderID: in.Sender, RoomID: in.RoomID, Type: in.Type, StateKey: in.StateKey, Depth: in.Depth,
				Content: spec.RawJSON(in.Content), PrevEvents: in.PrevEvents, AuthEvents: in.AuthEvents,
			}
			ev, err := ver.NewEventBuilderFromProtoEvent(&pe).Build(now, spec.ServerName(in.Origin), gmsl.KeyID(in.KeyID), in.PrivateKey)
			if err != nil {
				b.Fatal(err)
			}
			_ = ev.EventID()
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Build(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEd25519Sign is the floor: one signature over a redacted
// message event's canonical JSON.
func BenchmarkEd25519Sign(b *testing.B) {
	msg := make([]byte, 420)
	b.ReportAllocs()
	for b.Loop() {
		_ = ed25519.Sign(testKey, msg)
	}
}
