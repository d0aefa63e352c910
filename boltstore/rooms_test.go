package boltstore

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/signing"
)

type nopNotifier struct{}

func (nopNotifier) RoomEvent([]string, uint64) {}

type users map[string]string

func (u users) Profile(id string) (string, string, bool) { d, ok := u[id]; return d, "", ok }

func newRoomsB(b *testing.B) (*rooms.Service, *Store, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "lichen.db")
	st, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key, _ := signing.Generate()
	return rooms.New(st, "test.local", key, nopNotifier{}, users{"@a:test.local": "A", "@b:test.local": "B"}), st, path
}

func newRooms(t *testing.T) (*rooms.Service, *Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lichen.db")
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := signing.Generate()
	return rooms.New(st, "test.local", key, nopNotifier{}, users{"@a:test.local": "A", "@b:test.local": "B"}), st, path
}

// TestRoomLifecycle drives the room engine over a real bbolt file for each
// supported room version: create, invite, join, send, state, redact, read.
func TestRoomLifecycle(t *testing.T) {
	for _, ver := range []string{"1", "6", "10", "11", "12"} {
		t.Run("v"+ver, func(t *testing.T) {
			svc, st, _ := newRooms(t)
			name := "Room"
			roomID, err := svc.CreateRoom("@a:test.local", rooms.CreateRequest{RoomVersion: ver, Name: &name, RoomAliasName: "r" + ver})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Invite("@a:test.local", roomID, "@b:test.local", "", false); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Join("@b:test.local", "#r"+ver+":test.local", "", nil); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					from := rooms.Sender{User: "@b:test.local", Device: "D"}
					if _, err := svc.Send(from, roomID, "m.room.message", string(rune('a'+i)), json.RawMessage(`{"body":"hi","msgtype":"m.text"}`)); err != nil {
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			// idempotent txn
			id1, _ := svc.Send(rooms.Sender{User: "@b:test.local", Device: "D"}, roomID, "m.room.message", "a", json.RawMessage(`{"body":"x"}`))
			if id2, _ := svc.Send(rooms.Sender{User: "@b:test.local", Device: "D"}, roomID, "m.room.message", "a", json.RawMessage(`{"body":"y"}`)); id1 != id2 {
				t.Fatalf("txn not idempotent: %s vs %s", id1, id2)
			}
			// b (power 0) cannot change the name; a can.
			if _, err := svc.SetState("@b:test.local", roomID, "m.room.name", "", json.RawMessage(`{"name":"x"}`)); err == nil {
				t.Fatal("unprivileged name change allowed")
			}
			if _, err := svc.SetState("@a:test.local", roomID, "m.room.topic", "", json.RawMessage(`{"topic":"t"}`)); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Redact(rooms.Sender{User: "@a:test.local", Device: "X"}, roomID, id1, "r1", "spam"); err != nil {
				t.Fatal(err)
			}
			red, err := svc.Event("@b:test.local", roomID, id1)
			if err != nil || red.RedactedBy == "" {
				t.Fatalf("event not redacted: %v %+v", err, red)
			}
			resp, err := svc.Messages("@b:test.local", roomID, rooms.MessagesRequest{Backward: true, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range resp.Chunk {
				if r.Type == "m.room.message" {
					n++
				}
			}
			if n != 20 {
				t.Fatalf("got %d messages, want 20", n)
			}
			state, err := svc.State("@b:test.local", roomID)
			if err != nil || len(state) < 6 {
				t.Fatalf("state: %v, %d events", err, len(state))
			}
			members, _ := svc.JoinedMembers("@a:test.local", roomID)
			if len(members) != 2 || *members["@b:test.local"].DisplayName != "B" {
				t.Fatalf("joined members: %+v", members)
			}
			if st.Pos() == 0 {
				t.Fatal("stream position not advanced")
			}
		})
	}
}

// TestCreateRoomAliasRace: two rooms created at once with one alias: one
// wins, the other gets M_ROOM_IN_USE, and the alias points at the winner.
func TestCreateRoomAliasRace(t *testing.T) {
	svc, st, _ := newRooms(t)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ids[i], errs[i] = svc.CreateRoom("@a:test.local", rooms.CreateRequest{RoomAliasName: "same"})
		}(i)
	}
	wg.Wait()
	won := ""
	for i, err := range errs {
		if err == nil {
			if won != "" {
				t.Fatalf("two rooms got the alias: %s and %s", won, ids[i])
			}
			won = ids[i]
			continue
		}
		var me *mxerr.Error
		if !errors.As(err, &me) || me.Code != "M_ROOM_IN_USE" {
			t.Errorf("loser got %v, want M_ROOM_IN_USE", err)
		}
	}
	if got, _, err := st.Alias("#same:test.local"); err != nil || got != won {
		t.Fatalf("alias points at %q (%v), want %q", got, err, won)
	}
}

// TestAppendCompareAndAppend: a batch built on an event that is not the
// room's newest stored one (an earlier queued write failed) is refused
// whole, and nothing of it is stored.
func TestAppendCompareAndAppend(t *testing.T) {
	svc, st, _ := newRooms(t)
	room, err := svc.CreateRoom("@a:test.local", rooms.CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := st.Latest(room)
	if err != nil {
		t.Fatal(err)
	}
	ev := rooms.EventRecord{RoomID: room, EventID: "$orphan", Type: "m.room.message", Sender: "@a:test.local",
		JSON: []byte(`{"content":{},"room_id":"` + room + `","sender":"@a:test.local","type":"m.room.message"}`)}
	if _, err := st.AppendEvents(room, []rooms.Append{{Event: ev, BuiltOn: "$never-committed"}})(); !errors.Is(err, rooms.ErrConflict) {
		t.Fatalf("append on a missing event: %v, want ErrConflict", err)
	}
	if _, err := st.Event("$orphan"); err == nil {
		t.Fatal("refused event was stored")
	}
	if _, err := st.AppendEvents(room, []rooms.Append{{Event: ev, BuiltOn: latest.EventID}})(); err != nil {
		t.Fatalf("append on the newest event: %v", err)
	}
	// The engine still works on top (its head reloads from the store).
	if _, err := svc.Send(rooms.Sender{User: "@a:test.local", Device: "D"}, room, "m.room.message", "x", json.RawMessage(`{"body":"after"}`)); err == nil {
		// The head was built before the direct append, so this send is
		// refused as a conflict; the next one succeeds on the reloaded head.
		t.Fatal("send on a stale head was accepted")
	}
	if _, err := svc.Send(rooms.Sender{User: "@a:test.local", Device: "D"}, room, "m.room.message", "y", json.RawMessage(`{"body":"after"}`)); err != nil {
		t.Fatalf("send after reload: %v", err)
	}
}

// TestDeleteCanonicalAlias: deleting the alias a room advertises updates
// m.room.canonical_alias so the room stops advertising it.
func TestDeleteCanonicalAlias(t *testing.T) {
	svc, _, _ := newRooms(t)
	room, err := svc.CreateRoom("@a:test.local", rooms.CreateRequest{RoomAliasName: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.PutAlias("@a:test.local", "#alt:test.local", room); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetState("@a:test.local", room, "m.room.canonical_alias", "",
		json.RawMessage(`{"alias":"#main:test.local","alt_aliases":["#alt:test.local"]}`)); err != nil {
		t.Fatal(err)
	}
	content := func() string {
		rec, err := svc.StateEvent("@a:test.local", room, "m.room.canonical_alias", "")
		if err != nil {
			t.Fatal(err)
		}
		return string(rs(rec))
	}
	if err := svc.DeleteAlias("@a:test.local", false, "#alt:test.local"); err != nil {
		t.Fatal(err)
	}
	if got := content(); got != `{"alias":"#main:test.local"}` {
		t.Fatalf("after deleting the alt alias: %s", got)
	}
	if err := svc.DeleteAlias("@a:test.local", false, "#main:test.local"); err != nil {
		t.Fatal(err)
	}
	if got := content(); got != `{}` {
		t.Fatalf("after deleting the main alias: %s", got)
	}
}

func rs(rec rooms.EventRecord) []byte {
	var f struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(rec.JSON, &f)
	return f.Content
}
