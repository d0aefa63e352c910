package rooms

import (
	"testing"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// TestAllowedFastPathMatchesGMSL: the message-event shortcut in allowed
// must decide exactly as gomatrixserverlib.Allowed for every sender,
// membership and power level combination.
func TestAllowedFastPathMatchesGMSL(t *testing.T) {
	for _, ver := range []string{"3", "6", "10", "11", "12"} {
		t.Run("v"+ver, func(t *testing.T) {
			m := newMemHead(t, ver, nil)
			a := "@a:test.local"
			users := map[string]int64{"@b:test.local": 10, "@c:test.local": 60, "@y:test.local": 9}
			if !m.h.ver.PrivilegedCreators() {
				users[a] = 100
			}
			m.mustState(a, spec.MRoomPowerLevels, "", map[string]any{
				"users": users, "events_default": 10, "state_default": 50,
				"events": map[string]int64{"m.custom": 60, "m.room.power_levels": 100},
			})
			m.mustState(a, spec.MRoomJoinRules, "", map[string]any{"join_rule": "public"})
			for _, u := range []string{"@b:test.local", "@c:test.local", "@y:test.local", "@z:test.local"} {
				m.mustState(u, spec.MRoomMember, u, map[string]any{"membership": "join"})
			}
			m.mustState(a, spec.MRoomMember, "@d:test.local", map[string]any{"membership": "invite"})
			m.mustState("@z:test.local", spec.MRoomMember, "@z:test.local", map[string]any{"membership": "leave"})
			senders := []string{a, "@b:test.local", "@c:test.local", "@y:test.local", "@d:test.local", "@e:test.local", "@z:test.local"}
			for _, sender := range senders {
				for _, typ := range []string{"m.room.message", "m.custom", "m.reaction", "m.room.encrypted"} {
					pe := gmsl.ProtoEvent{SenderID: sender, RoomID: m.h.meta.RoomID, Type: typ,
						Depth: m.h.depth + 1, Content: spec.RawJSON(`{"body":"x"}`), PrevEvents: []string{m.h.latest}}
					ev, err := m.s.sign(m.h, &pe)
					if err != nil {
						t.Fatal(err)
					}
					fast := m.s.allowed(m.h, ev) == nil
					slow := gmsl.Allowed(ev, m.h, userIDForSender) == nil
					if fast != slow {
						t.Errorf("%s sending %s: fast path allowed=%v, gmsl allowed=%v", sender, typ, fast, slow)
					}
				}
			}
		})
	}
}
