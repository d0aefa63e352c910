package boltstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/signing"
)

// The auth tests drive the room engine over a real bbolt file and check the
// room-version authorisation rules (spec: rooms/v1..v12 "Authorization
// rules"), the membership endpoints' rules (client-server-api "Room
// membership") and history visibility (client-server-api "Room History
// Visibility") for a spread of room versions: 1 (original rules), 6
// (stricter canonical JSON, notifications levels), 10 (knock_restricted,
// integer-only power levels), 11
// (redaction changes, no creator key) and 12 (privileged creators, MSC4289).

var authVersions = []string{"1", "6", "10", "11", "12"}

const (
	alice = "@alice:test.local" // creates every room
	bob   = "@bob:test.local"
	carol = "@carol:test.local"
	dave  = "@dave:test.local"
	eve   = "@eve:test.local" // never joins unless a row says so
)

// newAuthRooms opens a fresh store with the five test users.
func newAuthRooms(t *testing.T) *rooms.Service {
	t.Helper()
	st, err := Open(filepath.Join(t.TempDir(), "lichen.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return rooms.New(st, "test.local", key, nopNotifier{}, users{
		alice: "Alice", bob: "Bob", carol: "Carol", dave: "Dave", eve: "Eve",
	})
}

// authRoom describes the room a row starts from.
type authRoom struct {
	public   bool             // public_chat preset (else private_chat)
	levels   map[string]int64 // power levels of users other than alice
	override map[string]any   // further power_levels keys (replace the defaults)
	members  []string         // users joined after creation (invited first if private)
	invited  []string         // users left invited
	state    []rooms.StateEventInput
	creation json.RawMessage
}

// authEnv is a created room of one version.
type authEnv struct {
	t    *testing.T
	svc  *rooms.Service
	ver  string
	room string
	txn  atomic.Int64
}

// setup creates r in svc for version ver.
func setup(t *testing.T, svc *rooms.Service, ver string, r authRoom) *authEnv {
	t.Helper()
	req := rooms.CreateRequest{RoomVersion: ver, Preset: "private_chat", InitialState: r.state, CreationContent: r.creation}
	if r.public {
		req.Preset = "public_chat"
	}
	if r.levels != nil || r.override != nil {
		us := map[string]int64{}
		if ver != "12" {
			// Before v12 the creator holds its power through the users map
			// (spec: createRoom, "power_level_content_override").
			us[alice] = 100
		}
		maps.Copy(us, r.levels)
		pl := map[string]any{"users": us}
		maps.Copy(pl, r.override)
		b, err := json.Marshal(pl)
		if err != nil {
			t.Fatal(err)
		}
		req.PowerLevelContentOverride = b
	}
	room, err := svc.CreateRoom(alice, req)
	if err != nil {
		t.Fatalf("createRoom v%s: %v", ver, err)
	}
	e := &authEnv{t: t, svc: svc, ver: ver, room: room}
	for _, u := range r.members {
		if !r.public {
			if err := svc.Invite(alice, room, u, "", false); err != nil {
				t.Fatalf("invite %s: %v", u, err)
			}
		}
		if _, err := svc.Join(u, room, "", nil); err != nil {
			t.Fatalf("join %s: %v", u, err)
		}
	}
	for _, u := range r.invited {
		if err := svc.Invite(alice, room, u, "", false); err != nil {
			t.Fatalf("invite %s: %v", u, err)
		}
	}
	return e
}

func (e *authEnv) setState(user, typ, key string, content any) error {
	b, ok := content.(string)
	if !ok {
		raw, err := json.Marshal(content)
		if err != nil {
			e.t.Fatal(err)
		}
		b = string(raw)
	}
	_, err := e.svc.SetState(user, e.room, typ, key, json.RawMessage(b))
	return err
}

func (e *authEnv) send(user, body string) (string, error) {
	return e.svc.Send(rooms.Sender{User: user, Device: "DEV"}, e.room, "m.room.message",
		fmt.Sprintf("txn%d", e.txn.Add(1)), json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body)))
}

func (e *authEnv) mustSend(user, body string) string {
	e.t.Helper()
	id, err := e.send(user, body)
	if err != nil {
		e.t.Fatalf("send as %s: %v", user, err)
	}
	return id
}

func (e *authEnv) redact(user, eventID string) error {
	_, err := e.svc.Redact(rooms.Sender{User: user, Device: "DEV"}, e.room, eventID, fmt.Sprintf("r%d", e.txn.Add(1)), "")
	return err
}

// content is the content of the current state event (typ, key).
func (e *authEnv) content(typ, key string) map[string]any {
	e.t.Helper()
	rec, err := e.svc.StateEvent(alice, e.room, typ, key)
	if err != nil {
		e.t.Fatalf("state %s/%s: %v", typ, key, err)
	}
	var pdu struct {
		Content map[string]any `json:"content"`
	}
	if err := json.Unmarshal(rec.JSON, &pdu); err != nil {
		e.t.Fatal(err)
	}
	return pdu.Content
}

// powerLevels returns the current m.room.power_levels content changed by fn.
func (e *authEnv) powerLevels(fn func(pl map[string]any, users map[string]any)) map[string]any {
	pl := e.content("m.room.power_levels", "")
	us, _ := pl["users"].(map[string]any)
	if us == nil {
		us = map[string]any{}
		pl["users"] = us
	}
	fn(pl, us)
	return pl
}

func (e *authEnv) membership(user string) string {
	e.t.Helper()
	m, err := e.svc.Membership(user, e.room)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// snapshot is the room's current state as (type, state_key) -> event ID.
func (e *authEnv) snapshot() map[string]string {
	e.t.Helper()
	recs, err := e.svc.State(alice, e.room)
	if err != nil {
		e.t.Fatalf("state: %v", err)
	}
	out := make(map[string]string, len(recs))
	for _, r := range recs {
		out[r.Type+"|"+*r.StateKey] = r.EventID
	}
	return out
}

// wantErr checks err against the expected Matrix error; status 0 means success.
func wantErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	if status == 0 {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want %d %s, got success", status, code)
	}
	var me *mxerr.Error
	if !errors.As(err, &me) {
		t.Fatalf("want *mxerr.Error %d %s, got %T %v", status, code, err, err)
	}
	if me.Status != status || me.Code != code {
		t.Fatalf("want %d %s, got %d %s (%s)", status, code, me.Status, me.Code, me.Message)
	}
	if me.Message == "" {
		t.Fatalf("%s without a message", me.Code)
	}
}

// authCase is one row: a room, an action, and the expected outcome. A
// rejected action must leave the room's state exactly as it was.
type authCase struct {
	name     string
	versions []string // nil: every version in authVersions
	room     authRoom
	prep     func(e *authEnv) // optional, before the state snapshot
	act      func(e *authEnv) error
	status   int // 0: the action succeeds
	code     string
	check    func(e *authEnv) // optional, after the action
}

func runAuthCases(t *testing.T, cases []authCase) {
	t.Helper()
	for _, ver := range authVersions {
		t.Run("v"+ver, func(t *testing.T) {
			t.Parallel()
			svc := newAuthRooms(t) // one store per version, one room per row
			for _, c := range cases {
				if c.versions != nil && !slices.Contains(c.versions, ver) {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					e := setup(t, svc, ver, c.room)
					if c.prep != nil {
						c.prep(e)
					}
					before := e.snapshot()
					err := c.act(e)
					wantErr(t, err, c.status, c.code)
					if c.status != 0 {
						if after := e.snapshot(); !maps.Equal(before, after) {
							t.Fatalf("rejected action changed the state:\nbefore %v\nafter  %v", before, after)
						}
					}
					if c.check != nil {
						c.check(e)
					}
				})
			}
		})
	}
}

const forbidden = "M_FORBIDDEN"

// TestAuthPowerLevels: spec rooms/v*, auth rules "If the event type's
// required power level is greater than the sender's power level, reject"
// and the m.room.power_levels rules (v12: 10.1–10.10).
func TestAuthPowerLevels(t *testing.T) {
	member := authRoom{members: []string{bob}}
	mods := authRoom{
		members:  []string{bob, carol, dave},
		levels:   map[string]int64{carol: 50, dave: 50},
		override: map[string]any{"ban": 75, "kick": 50, "events": map[string]int64{"m.room.power_levels": 50}},
	}
	setLevel := func(sender, target string, level int64) func(e *authEnv) error {
		return func(e *authEnv) error {
			return e.setState(sender, "m.room.power_levels", "", e.powerLevels(func(_, us map[string]any) { us[target] = level }))
		}
	}
	cases := []authCase{
		{name: "users_default member cannot set m.room.name", room: member, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.setState(bob, "m.room.name", "", `{"name":"x"}`) }},
		{name: "users_default member cannot set m.room.topic", room: member, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.setState(bob, "m.room.topic", "", `{"topic":"x"}`) }},
		{name: "users_default member cannot set m.room.power_levels", room: member, status: 403, code: forbidden,
			act: setLevel(bob, bob, 0)},
		{name: "users_default member cannot set m.room.join_rules", room: member, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.setState(bob, "m.room.join_rules", "", `{"join_rule":"public"}`) }},
		{name: "users_default member cannot set custom state under state_default 50", room: member, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.setState(bob, "org.example.state", "", `{"a":1}`) }},
		{name: "users_default member can send messages at events_default 0", room: member,
			act: func(e *authEnv) error { _, err := e.send(bob, "hi"); return err }},
		{name: "creator can set m.room.name", room: member,
			act: func(e *authEnv) error { return e.setState(alice, "m.room.name", "", `{"name":"x"}`) },
			check: func(e *authEnv) {
				if n := e.content("m.room.name", "")["name"]; n != "x" {
					e.t.Errorf("name is %v", n)
				}
			}},
		{name: "state_default 0 lets members set custom state",
			room: authRoom{members: []string{bob}, override: map[string]any{"state_default": 0}},
			act:  func(e *authEnv) error { return e.setState(bob, "org.example.state", "", `{"a":1}`) }},
		{name: "state_default 0 does not lower an events entry",
			room:   authRoom{members: []string{bob}, override: map[string]any{"state_default": 0, "events": map[string]int64{"m.room.name": 50}}},
			act:    func(e *authEnv) error { return e.setState(bob, "m.room.name", "", `{"name":"x"}`) },
			status: 403, code: forbidden},
		{name: "events map lowers m.room.topic to 0",
			room: authRoom{members: []string{bob}, override: map[string]any{"events": map[string]int64{"m.room.topic": 0}}},
			act:  func(e *authEnv) error { return e.setState(bob, "m.room.topic", "", `{"topic":"t"}`) }},
		{name: "events map raises m.room.message above the sender",
			room: authRoom{members: []string{bob}, override: map[string]any{"events": map[string]int64{"m.room.message": 10}}},
			act:  func(e *authEnv) error { _, err := e.send(bob, "hi"); return err }, status: 403, code: forbidden},
		{name: "events_default above the sender blocks messages",
			room: authRoom{members: []string{bob}, override: map[string]any{"events_default": 10}},
			act:  func(e *authEnv) error { _, err := e.send(bob, "hi"); return err }, status: 403, code: forbidden},
		{name: "moderator at 50 can kick at kick 50", room: mods,
			act:   func(e *authEnv) error { return e.svc.SetMembership(carol, e.room, bob, "kick", "") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "leave") }},
		{name: "moderator at 50 cannot ban at ban 75", room: mods, status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.svc.SetMembership(carol, e.room, bob, "ban", "") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "join") }},
		{name: "moderator cannot kick a peer at equal power", room: mods, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.SetMembership(carol, e.room, dave, "kick", "") }},
		{name: "moderator cannot kick the higher-powered creator", room: mods, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.SetMembership(carol, e.room, alice, "kick", "") }},
		{name: "moderator cannot raise own level above own", room: mods, status: 403, code: forbidden,
			act: setLevel(carol, carol, 60)},
		{name: "moderator cannot raise another above own level", room: mods, status: 403, code: forbidden,
			act: setLevel(carol, bob, 51)},
		{name: "moderator can raise another up to own level", room: mods,
			act: setLevel(carol, bob, 50)},
		{name: "moderator cannot demote a peer at equal level", room: mods, status: 403, code: forbidden,
			act: setLevel(carol, dave, 0)},
		{name: "moderator can demote self", room: mods,
			act: setLevel(carol, carol, 0)},
		{name: "moderator cannot change a level that is above own (ban 75)", room: mods, status: 403, code: forbidden,
			act: func(e *authEnv) error {
				return e.setState(carol, "m.room.power_levels", "", e.powerLevels(func(pl, _ map[string]any) { pl["ban"] = 40 }))
			}},
		{name: "moderator cannot set an events entry above own level", room: mods, status: 403, code: forbidden,
			act: func(e *authEnv) error {
				return e.setState(carol, "m.room.power_levels", "", e.powerLevels(func(pl, _ map[string]any) {
					pl["events"] = map[string]any{"m.room.power_levels": 50, "m.room.topic": 60}
				}))
			}},
		{name: "non-member cannot send", room: member, status: 403, code: forbidden,
			act: func(e *authEnv) error { _, err := e.send(eve, "hi"); return err }},
		{name: "state key of another user is reserved to them",
			room: authRoom{members: []string{bob}, override: map[string]any{"state_default": 0}},
			act:  func(e *authEnv) error { return e.setState(bob, "org.example.state", alice, `{"a":1}`) }, status: 403, code: forbidden},
	}
	runAuthCases(t, cases)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantMembership(t *testing.T, e *authEnv, user, want string) {
	t.Helper()
	if got := e.membership(user); got != want {
		t.Errorf("membership of %s is %q, want %q", user, got, want)
	}
}

// TestAuthMembership: spec client-server-api "Room membership" and the
// m.room.member auth rules.
func TestAuthMembership(t *testing.T) {
	private := authRoom{}
	public := authRoom{public: true}
	joined := authRoom{members: []string{bob}}
	cases := []authCase{
		{name: "invite then join", room: private,
			act: func(e *authEnv) error {
				if err := e.svc.Invite(alice, e.room, bob, "", false); err != nil {
					return err
				}
				wantMembership(e.t, e, bob, "invite")
				_, err := e.svc.Join(bob, e.room, "", nil)
				return err
			},
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "join") }},
		{name: "join then leave", room: joined,
			act:   func(e *authEnv) error { return e.svc.Leave(bob, e.room, "") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "leave") }},
		{name: "reject an invite", room: authRoom{invited: []string{bob}},
			act:   func(e *authEnv) error { return e.svc.Leave(bob, e.room, "") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "leave") }},
		{name: "public room join works", room: public,
			act:   func(e *authEnv) error { _, err := e.svc.Join(bob, e.room, "", nil); return err },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "join") }},
		{name: "invite-only room join without invite", room: private, status: 403, code: forbidden,
			act:   func(e *authEnv) error { _, err := e.svc.Join(bob, e.room, "", nil); return err },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "") }},
		{name: "rejoin after leaving an invite-only room", room: joined, status: 403, code: forbidden,
			prep: func(e *authEnv) { must(e.t, e.svc.Leave(bob, e.room, "")) },
			act: func(e *authEnv) error {
				_, err := e.svc.Join(bob, e.room, "", nil)
				return err
			}},
		{name: "ban blocks join to a public room", room: public, status: 403, code: forbidden,
			prep:  func(e *authEnv) { must(e.t, e.svc.SetMembership(alice, e.room, bob, "ban", "")) },
			act:   func(e *authEnv) error { _, err := e.svc.Join(bob, e.room, "", nil); return err },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "ban") }},
		{name: "ban of a member", room: joined,
			act:   func(e *authEnv) error { return e.svc.SetMembership(alice, e.room, bob, "ban", "spam") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "ban") }},
		{name: "ban blocks invite", room: private, status: 403, code: forbidden,
			prep: func(e *authEnv) { must(e.t, e.svc.SetMembership(alice, e.room, bob, "ban", "")) },
			act: func(e *authEnv) error {
				return e.svc.Invite(alice, e.room, bob, "", false)
			},
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "ban") }},
		{name: "banned user cannot leave", room: joined, status: 403, code: forbidden,
			prep: func(e *authEnv) { must(e.t, e.svc.SetMembership(alice, e.room, bob, "ban", "")) },
			act: func(e *authEnv) error {
				return e.svc.Leave(bob, e.room, "")
			}},
		{name: "unban then re-invite and join", room: joined,
			act: func(e *authEnv) error {
				must(e.t, e.svc.SetMembership(alice, e.room, bob, "ban", ""))
				if err := e.svc.SetMembership(alice, e.room, bob, "unban", ""); err != nil {
					return err
				}
				wantMembership(e.t, e, bob, "leave")
				if err := e.svc.Invite(alice, e.room, bob, "", false); err != nil {
					return err
				}
				_, err := e.svc.Join(bob, e.room, "", nil)
				return err
			},
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "join") }},
		{name: "unban of a user who is not banned", room: joined, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.SetMembership(alice, e.room, bob, "unban", "") }},
		{name: "unban needs the ban level", room: authRoom{members: []string{bob, carol}, levels: map[string]int64{carol: 50}, override: map[string]any{"ban": 75, "kick": 50}},
			status: 403, code: forbidden,
			prep: func(e *authEnv) { must(e.t, e.svc.SetMembership(alice, e.room, bob, "ban", "")) },
			act: func(e *authEnv) error {
				return e.svc.SetMembership(carol, e.room, bob, "unban", "")
			},
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "ban") }},
		{name: "kick of a non-member", room: joined, status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.svc.SetMembership(alice, e.room, eve, "kick", "") },
			check: func(e *authEnv) { wantMembership(e.t, e, eve, "") }},
		{name: "kick of a user who already left", room: joined, status: 403, code: forbidden,
			prep: func(e *authEnv) { must(e.t, e.svc.Leave(bob, e.room, "")) },
			act: func(e *authEnv) error {
				return e.svc.SetMembership(alice, e.room, bob, "kick", "")
			}},
		{name: "kick revokes an invite", room: authRoom{invited: []string{bob}},
			act:   func(e *authEnv) error { return e.svc.SetMembership(alice, e.room, bob, "kick", "") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "leave") }},
		{name: "member at users_default cannot kick", room: authRoom{members: []string{bob, carol}}, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.SetMembership(bob, e.room, carol, "kick", "") }},
		{name: "non-member cannot invite", room: joined, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.Invite(eve, e.room, dave, "", false) }},
		{name: "invite level above the sender", room: authRoom{members: []string{bob}, override: map[string]any{"invite": 50}},
			status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.Invite(bob, e.room, dave, "", false) }},
		// Re-inviting an invited user must still check the inviter's
		// power: spec /invite answers 403 when "the inviter does not have
		// sufficient power level".
		{name: "re-invite by a member below the invite level", room: authRoom{members: []string{bob}, invited: []string{dave}, override: map[string]any{"invite": 50}},
			status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.svc.Invite(bob, e.room, dave, "", false) },
			check: func(e *authEnv) { wantMembership(e.t, e, dave, "invite") }},
		{name: "member can invite at invite level 0", room: joined,
			act: func(e *authEnv) error { return e.svc.Invite(bob, e.room, dave, "", false) }},
		{name: "invite of a joined member", room: joined, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.Invite(alice, e.room, bob, "", false) }},
		{name: "invite of an unknown local user", room: private, status: 404, code: "M_NOT_FOUND",
			act: func(e *authEnv) error { return e.svc.Invite(alice, e.room, "@nobody:test.local", "", false) }},
		{name: "leave when never joined", room: private, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.Leave(bob, e.room, "") }},
		{name: "membership of another user via state", room: joined, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.setState(bob, "m.room.member", alice, `{"membership":"leave"}`) }},
		{name: "unknown membership via state", room: joined, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.setState(bob, "m.room.member", bob, `{"membership":"sleep"}`) }},
		// Knocking (spec: "Knocking on rooms", added in room version 7).
		// The core has no knock operation; the membership action API
		// refuses it with a client error rather than treating it as a kick.
		{name: "knock is not a membership action", room: authRoom{state: []rooms.StateEventInput{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}},
			status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.svc.SetMembership(bob, e.room, bob, "knock", "") },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "") }},
		{name: "knock in a room version without knocking", versions: []string{"1", "6"},
			room:   authRoom{state: []rooms.StateEventInput{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}},
			status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.setState(bob, "m.room.member", bob, `{"membership":"knock"}`) },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "") }},
		{name: "knock on a room whose join rule is invite", versions: []string{"10", "11", "12"}, room: private,
			status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.setState(bob, "m.room.member", bob, `{"membership":"knock"}`) },
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "") }},
		// Auth rule 5.7 (v7+) allows a knock through PUT /state when the
		// join rule is knock; it is then answered with an invite, or
		// retracted with /leave ("Knocking on rooms").
		{name: "knock through state, then invite and join", versions: []string{"10", "11", "12"},
			room: authRoom{state: []rooms.StateEventInput{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}},
			act: func(e *authEnv) error {
				if err := e.setState(bob, "m.room.member", bob, `{"membership":"knock"}`); err != nil {
					return err
				}
				wantMembership(e.t, e, bob, "knock")
				if err := e.svc.Invite(alice, e.room, bob, "", false); err != nil {
					return err
				}
				_, err := e.svc.Join(bob, e.room, "", nil)
				return err
			},
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "join") }},
		{name: "knock retracted with leave", versions: []string{"10", "11", "12"},
			room: authRoom{state: []rooms.StateEventInput{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}},
			act: func(e *authEnv) error {
				if err := e.setState(bob, "m.room.member", bob, `{"membership":"knock"}`); err != nil {
					return err
				}
				return e.svc.Leave(bob, e.room, "")
			},
			check: func(e *authEnv) { wantMembership(e.t, e, bob, "leave") }},
		{name: "join of a knock room without invite", room: authRoom{state: []rooms.StateEventInput{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}},
			status: 403, code: forbidden,
			act: func(e *authEnv) error { _, err := e.svc.Join(bob, e.room, "", nil); return err }},
	}
	runAuthCases(t, cases)
}

// TestAuthCreators: spec rooms/v12 "Room creators have infinitely high
// power level and cannot be specified in the m.room.power_levels event, nor
// can they be changed after the room is created" (auth rule 10.4), and the
// same actions in earlier versions, where the creator is an ordinary
// user at 100.
func TestAuthCreators(t *testing.T) {
	admins := authRoom{members: []string{bob, carol}, levels: map[string]int64{carol: 100}}
	cases := []authCase{
		{name: "creator not listed still outranks everyone", versions: []string{"12"}, room: admins,
			act: func(e *authEnv) error {
				if _, ok := e.content("m.room.power_levels", "")["users"].(map[string]any)[alice]; ok {
					e.t.Fatal("v12 power levels list the creator")
				}
				return e.svc.SetMembership(alice, e.room, carol, "kick", "")
			},
			check: func(e *authEnv) { wantMembership(e.t, e, carol, "leave") }},
		{name: "admin cannot kick the creator", room: admins, status: 403, code: forbidden,
			act:   func(e *authEnv) error { return e.svc.SetMembership(carol, e.room, alice, "kick", "") },
			check: func(e *authEnv) { wantMembership(e.t, e, alice, "join") }},
		{name: "admin cannot ban the creator", room: admins, status: 403, code: forbidden,
			act: func(e *authEnv) error { return e.svc.SetMembership(carol, e.room, alice, "ban", "") }},
		{name: "admin cannot demote the creator", versions: []string{"1", "6", "10", "11"}, room: admins, status: 403, code: forbidden,
			act: func(e *authEnv) error {
				return e.setState(carol, "m.room.power_levels", "", e.powerLevels(func(_, us map[string]any) { us[alice] = 0 }))
			}},
		// v12: listing a creator at all is invalid content, refused before
		// the auth rules (which would also reject it) as the client's error.
		{name: "admin cannot demote the creator (v12: creators are not listed)", versions: []string{"12"}, room: admins,
			status: 400, code: "M_BAD_JSON",
			act: func(e *authEnv) error {
				return e.setState(carol, "m.room.power_levels", "", e.powerLevels(func(_, us map[string]any) { us[alice] = 0 }))
			}},
		{name: "creator listed in power_levels users is rejected", versions: []string{"12"}, room: admins,
			status: 400, code: "M_BAD_JSON",
			act: func(e *authEnv) error {
				return e.setState(alice, "m.room.power_levels", "", e.powerLevels(func(_, us map[string]any) { us[alice] = 100 }))
			}},
		{name: "creator listed in power_levels users is fine before v12", versions: []string{"1", "6", "10", "11"}, room: admins,
			act: func(e *authEnv) error {
				return e.setState(alice, "m.room.power_levels", "", e.powerLevels(func(_, us map[string]any) { us[alice] = 100; us[bob] = 1 }))
			}},
		{name: "additional creator listed in power_levels users is rejected", versions: []string{"12"},
			room:   authRoom{members: []string{bob}, creation: json.RawMessage(`{"additional_creators":["` + bob + `"]}`)},
			status: 400, code: "M_BAD_JSON",
			act: func(e *authEnv) error {
				return e.setState(alice, "m.room.power_levels", "", e.powerLevels(func(_, us map[string]any) { us[bob] = 50 }))
			}},
		{name: "additional creator outranks an admin", versions: []string{"12"},
			room: authRoom{members: []string{bob, carol}, levels: map[string]int64{carol: 100}, creation: json.RawMessage(`{"additional_creators":["` + bob + `"]}`)},
			act:  func(e *authEnv) error { return e.svc.SetMembership(bob, e.room, carol, "kick", "") }},
		{name: "creator can redact an admin's event", room: admins,
			act: func(e *authEnv) error { return e.redact(alice, e.mustSend(carol, "x")) }},
	}
	runAuthCases(t, cases)
}

// TestAuthCreateRoomV12Creators: spec createRoom (v1.16): in v12 the
// creator is not listed in power_levels, and with trusted_private_chat the
// invitees SHOULD be appended to additional_creators (deduplicated against
// creation_content's), not given a users entry that rule 10.4 rejects.
func TestAuthCreateRoomV12Creators(t *testing.T) {
	svc := newAuthRooms(t)
	for _, tc := range []struct {
		name     string
		creation string
	}{
		{"invitees become creators", ""},
		{"invitees merge with additional_creators", `{"additional_creators":["` + bob + `"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := rooms.CreateRequest{RoomVersion: "12", Preset: "trusted_private_chat", Invite: []string{bob}}
			if tc.creation != "" {
				req.CreationContent = json.RawMessage(tc.creation)
			}
			room, err := svc.CreateRoom(alice, req)
			if err != nil {
				t.Fatalf("createRoom: %v", err)
			}
			e := &authEnv{t: t, svc: svc, ver: "12", room: room}
			if us, _ := e.content("m.room.power_levels", "")["users"].(map[string]any); us[alice] != nil || us[bob] != nil {
				t.Errorf("power_levels users list a creator: %v", us)
			}
			ac, _ := e.content("m.room.create", "")["additional_creators"].([]any)
			if len(ac) != 1 || ac[0] != bob {
				t.Errorf("additional_creators = %v, want [%s]", ac, bob)
			}
		})
	}
}

// TestAuthCreateRoomContent: event content is always a JSON object (spec:
// "Room Events", content "type: object"; createRoom's creation_content and
// initial_state[].content are objects). A client sending null must get a
// client error or have null read as absent, never a panic or a PDU whose
// content is null.
func TestAuthCreateRoomContent(t *testing.T) {
	svc := newAuthRooms(t)
	create := func(req rooms.CreateRequest) (room string, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("createRoom panicked: %v", p)
			}
		}()
		return svc.CreateRoom(alice, req)
	}
	t.Run("creation_content null", func(t *testing.T) {
		room, err := create(rooms.CreateRequest{RoomVersion: "11", CreationContent: json.RawMessage(`null`)})
		if err != nil {
			wantErr(t, err, 400, "M_BAD_JSON")
			return
		}
		e := &authEnv{t: t, svc: svc, ver: "11", room: room}
		if v := e.content("m.room.create", "")["room_version"]; v != "11" {
			t.Fatalf("room_version %v", v)
		}
	})
	t.Run("initial_state content null", func(t *testing.T) {
		room, err := create(rooms.CreateRequest{RoomVersion: "11", InitialState: []rooms.StateEventInput{
			{Type: "org.example.state", Content: json.RawMessage(`null`)},
		}})
		if err != nil {
			wantErr(t, err, 400, "M_BAD_JSON")
			return
		}
		rec, err := svc.StateEvent(alice, room, "org.example.state", "")
		if err != nil {
			t.Fatal(err)
		}
		var pdu struct {
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(rec.JSON, &pdu); err != nil {
			t.Fatal(err)
		}
		if len(pdu.Content) == 0 || pdu.Content[0] != '{' {
			t.Fatalf("stored PDU content is %s, not an object", pdu.Content)
		}
	})
}

// TestAuthRedaction: spec client-server-api "Redactions" ("the redact
// level"), rooms/v* "Handling redactions", and m.room.create.
func TestAuthRedaction(t *testing.T) {
	mods := authRoom{members: []string{bob, carol}, levels: map[string]int64{carol: 50}}
	strict := authRoom{members: []string{bob, carol}, levels: map[string]int64{carol: 50}, override: map[string]any{"redact": 75}}
	type row struct {
		name   string
		room   authRoom
		author string
		by     string
		target func(e *authEnv) string // default: a message by author
		status int
		code   string
	}
	rows := []row{
		{name: "own event", room: mods, author: bob, by: bob},
		{name: "other's event below the redact level", room: mods, author: alice, by: bob, status: 403, code: forbidden},
		{name: "other's event at the redact level", room: mods, author: bob, by: carol},
		{name: "other's event with redact raised to 75", room: strict, author: bob, by: carol, status: 403, code: forbidden},
		{name: "own event with redact raised to 75", room: strict, author: bob, by: bob},
		{name: "m.room.create by its sender", room: mods, by: alice, status: 403, code: forbidden,
			target: func(e *authEnv) string { return e.stateID("m.room.create", "") }},
		{name: "m.room.create by a moderator", room: mods, by: carol, status: 403, code: forbidden,
			target: func(e *authEnv) string { return e.stateID("m.room.create", "") }},
		{name: "unknown event", room: mods, by: alice, status: 404, code: "M_NOT_FOUND",
			target: func(e *authEnv) string { return "$unknownunknownunknownunknownunknownunknown00" }},
		{name: "non-member", room: mods, author: bob, by: eve, status: 403, code: forbidden},
	}
	for _, ver := range authVersions {
		t.Run("v"+ver, func(t *testing.T) {
			t.Parallel()
			svc := newAuthRooms(t)
			for _, r := range rows {
				t.Run(r.name, func(t *testing.T) {
					e := setup(t, svc, ver, r.room)
					var target string
					if r.target != nil {
						target = r.target(e)
					} else {
						target = e.mustSend(r.author, "to redact")
					}
					before := e.snapshot()
					err := e.redact(r.by, target)
					wantErr(t, err, r.status, r.code)
					if r.status == 404 {
						return
					}
					rec, gerr := svc.Event(alice, e.room, target)
					if gerr != nil {
						t.Fatal(gerr)
					}
					if r.status != 0 {
						if rec.RedactedBy != "" {
							t.Errorf("rejected redaction applied: %s", rec.RedactedBy)
						}
						if after := e.snapshot(); !maps.Equal(before, after) {
							t.Errorf("rejected redaction changed the state")
						}
						return
					}
					if rec.RedactedBy == "" {
						t.Errorf("event not redacted")
					}
				})
			}
			t.Run("m.room.create cannot be changed", func(t *testing.T) {
				e := setup(t, svc, ver, mods)
				before := e.snapshot()
				err := e.setState(alice, "m.room.create", "", fmt.Sprintf(`{"room_version":%q}`, ver))
				wantErr(t, err, 400, "M_BAD_JSON")
				if after := e.snapshot(); !maps.Equal(before, after) {
					t.Errorf("state changed")
				}
			})
		})
	}
}

func (e *authEnv) stateID(typ, key string) string {
	e.t.Helper()
	rec, err := e.svc.StateEvent(alice, e.room, typ, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec.EventID
}

// visible reports what user can see of ids, through both GET /event and
// /messages, failing when the two disagree.
func (e *authEnv) visible(user string, ids ...string) []bool {
	e.t.Helper()
	resp, merr := e.svc.Messages(user, e.room, rooms.MessagesRequest{Backward: true, Limit: 1000})
	inChunk := map[string]bool{}
	for _, r := range resp.Chunk {
		inChunk[r.EventID] = true
	}
	out := make([]bool, len(ids))
	for i, id := range ids {
		_, err := e.svc.Event(user, e.room, id)
		switch {
		case err == nil:
			out[i] = true
		case merr != nil:
			// No read access at all: /messages answers 403, /event 404
			// (spec: GET /rooms/{roomId}/event/{eventId} "not found or you
			// do not have permission to read this event").
			wantErr(e.t, err, 404, "M_NOT_FOUND")
			wantErr(e.t, merr, 403, forbidden)
			continue
		default:
			// Hidden event: 404, as for an unknown one (spec: GET
			// /rooms/{roomId}/event/{eventId}).
			wantErr(e.t, err, 404, "M_NOT_FOUND")
		}
		if merr == nil && out[i] != inChunk[id] {
			e.t.Errorf("%s: /event says visible=%v, /messages says %v", id, out[i], inChunk[id])
		}
	}
	return out
}

// TestAuthHistoryVisibility: spec modules/history_visibility "Server
// behaviour", with a user invited late, joining late and leaving.
func TestAuthHistoryVisibility(t *testing.T) {
	type want struct {
		invited []bool // m1, m2 while invited
		joined  []bool // m1, m2, m3 after joining
		left    []bool // m1, m2, m3, m4, own leave event after leaving
		outside bool   // a non-member sees m1..m4
	}
	y, n := true, false
	rows := []struct {
		hv string
		want
	}{
		{"joined", want{[]bool{n, n}, []bool{n, n, y}, []bool{n, n, y, n, y}, n}},
		{"invited", want{[]bool{n, y}, []bool{n, y, y}, []bool{n, y, y, n, y}, n}},
		{"shared", want{[]bool{n, n}, []bool{y, y, y}, []bool{y, y, y, n, y}, n}},
		{"world_readable", want{[]bool{y, y}, []bool{y, y, y}, []bool{y, y, y, y, y}, y}},
	}
	for _, ver := range authVersions {
		t.Run("v"+ver, func(t *testing.T) {
			t.Parallel()
			svc := newAuthRooms(t)
			for _, r := range rows {
				t.Run(r.hv, func(t *testing.T) {
					e := setup(t, svc, ver, authRoom{state: []rooms.StateEventInput{{
						Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"` + r.hv + `"}`),
					}}})
					if hv := e.content("m.room.history_visibility", "")["history_visibility"]; hv != r.hv {
						t.Fatalf("history_visibility is %v", hv)
					}
					m1 := e.mustSend(alice, "before the invite")
					if err := svc.Invite(alice, e.room, bob, "", false); err != nil {
						t.Fatal(err)
					}
					m2 := e.mustSend(alice, "while bob is invited")
					checkVis(t, "invited", e.visible(bob, m1, m2), r.invited)
					if _, err := svc.Join(bob, e.room, "", nil); err != nil {
						t.Fatal(err)
					}
					m3 := e.mustSend(alice, "after bob joined")
					checkVis(t, "joined", e.visible(bob, m1, m2, m3), r.joined)
					if err := svc.Leave(bob, e.room, ""); err != nil {
						t.Fatal(err)
					}
					leave := e.stateID("m.room.member", bob)
					m4 := e.mustSend(alice, "after bob left")
					checkVis(t, "left", e.visible(bob, m1, m2, m3, m4, leave), r.left)
					checkVis(t, "outsider", e.visible(eve, m1, m2, m3, m4), []bool{r.outside, r.outside, r.outside, r.outside})
				})
			}
			// Spec: "For m.room.history_visibility events themselves, the
			// user should be allowed to see the event if the
			// history_visibility before or after the event would allow
			// them to see it."
			t.Run("change to joined is visible to a later joiner under shared", func(t *testing.T) {
				e := setup(t, svc, ver, authRoom{public: true})
				m1 := e.mustSend(alice, "shared")
				if err := e.setState(alice, "m.room.history_visibility", "", `{"history_visibility":"joined"}`); err != nil {
					t.Fatal(err)
				}
				change := e.stateID("m.room.history_visibility", "")
				m2 := e.mustSend(alice, "joined only")
				if _, err := svc.Join(bob, e.room, "", nil); err != nil {
					t.Fatal(err)
				}
				checkVis(t, "joined late", e.visible(bob, m1, change, m2), []bool{y, y, n})
			})
			t.Run("change to world_readable is visible to outsiders", func(t *testing.T) {
				e := setup(t, svc, ver, authRoom{public: true, state: []rooms.StateEventInput{{
					Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"joined"}`),
				}}})
				m1 := e.mustSend(alice, "joined only")
				if err := e.setState(alice, "m.room.history_visibility", "", `{"history_visibility":"world_readable"}`); err != nil {
					t.Fatal(err)
				}
				change := e.stateID("m.room.history_visibility", "")
				m2 := e.mustSend(alice, "world readable")
				checkVis(t, "outsider", e.visible(eve, m1, change, m2), []bool{n, y, y})
			})
		})
	}
}

func checkVis(t *testing.T, phase string, got, want []bool) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: visible = %v, want %v", phase, got, want)
	}
}
