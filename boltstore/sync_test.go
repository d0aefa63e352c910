package boltstore

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/signing"
	"github.com/lichen-hs/lichen/core/syncer"
)

// newSyncEnv is a room engine and a sync engine over a fresh bbolt file,
// with local users @a and @b.
func newSyncEnv(t *testing.T) (*rooms.Service, *syncer.Engine) {
	t.Helper()
	st, err := Open(t.TempDir() + "/l.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hub := notify.New()
	key, _ := signing.Generate()
	rs := rooms.New(st, "t.local", key, hub, users{"@a:t.local": "A", "@b:t.local": "B"})
	return rs, syncer.New(rs, st, hub, syncer.Sources{})
}

// TestSyncWindows checks initial, incremental, limited and long-poll syncs
// over a real store.
func TestSyncWindows(t *testing.T) {
	rs, eng := newSyncEnv(t)
	a, b := "@a:t.local", "@b:t.local"
	room, err := rs.CreateRoom(a, rooms.CreateRequest{Invite: []string{b}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := rs.Send(rooms.Sender{User: a, Device: "D"}, room, "m.room.message", "", json.RawMessage(fmt.Sprintf(`{"body":"m%d"}`, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := eng.Sync(syncer.Request{User: b})
	if err != nil {
		t.Fatal(err)
	}
	if r.Rooms.Invite[room] == nil || len(r.Rooms.Invite[room].InviteState.Events) == 0 {
		t.Fatalf("invite missing: %+v", r.Rooms)
	}
	if _, err := rs.Join(b, room, "", nil); err != nil {
		t.Fatal(err)
	}
	r2, _ := eng.Sync(syncer.Request{User: b, Since: r.NextBatch})
	jr := r2.Rooms.Join[room]
	// A newly joined room is sent whole: state before the timeline plus
	// the timeline cover the room from its create event.
	if jr == nil || jr.Summary == nil || jr.Summary.Joined != 2 {
		t.Fatalf("newly joined room needs a summary: %+v", jr)
	}
	if len(jr.State.Events)+len(jr.Timeline.Events) < 8 || (len(jr.State.Events) == 0 && jr.Timeline.Events[0].Type != "m.room.create") {
		t.Fatalf("newly joined room not complete: %d state, %d timeline", len(jr.State.Events), len(jr.Timeline.Events))
	}
	send(3)
	r3, _ := eng.Sync(syncer.Request{User: b, Since: r2.NextBatch})
	jr = r3.Rooms.Join[room]
	if jr == nil || len(jr.Timeline.Events) != 3 || jr.Timeline.Limited || len(jr.State.Events) != 0 {
		t.Fatalf("incremental: %+v", jr)
	}
	// More than the limit: limited, with a prev_batch that pages back.
	send(8)
	lim := 3
	f := &filter.Filter{Room: &filter.RoomFilter{Timeline: &filter.RoomEventFilter{EventFilter: filter.EventFilter{Limit: &lim}}}}
	r4, _ := eng.Sync(syncer.Request{User: b, Since: r3.NextBatch, Filter: f})
	jr = r4.Rooms.Join[room]
	if jr == nil || len(jr.Timeline.Events) != 3 || !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
		t.Fatalf("limited: %+v", jr)
	}
	if got := string(jr.Timeline.Events[2].Content); got != `{"body":"m7"}` {
		t.Fatalf("last event %s", got)
	}
	page, err := rs.Messages(b, room, rooms.MessagesRequest{From: jr.Timeline.PrevBatch, Backward: true, Limit: 5})
	if err != nil || len(page.Chunk) != 5 || string(rs.ClientEvents(page.Chunk, rooms.Viewer{})[0].Content) != `{"body":"m4"}` {
		t.Fatalf("page back from prev_batch: %v %d", err, len(page.Chunk))
	}
	// Nothing new: a long-poll waits, then wakes on a message.
	done := make(chan *syncer.Response)
	go func() {
		r, _ := eng.Sync(syncer.Request{User: b, Since: r4.NextBatch, Timeout: 5 * time.Second})
		done <- r
	}()
	select {
	case <-done:
		t.Fatal("long-poll returned with nothing new")
	case <-time.After(100 * time.Millisecond):
	}
	send(1)
	select {
	case r := <-done:
		if r.Rooms.Join[room] == nil {
			t.Fatal("woken sync without the room")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("long-poll not woken")
	}
	// Leaving shows the room once in leave.
	r5, _ := eng.Sync(syncer.Request{User: b, Since: r4.NextBatch})
	if err := rs.Leave(b, room, ""); err != nil {
		t.Fatal(err)
	}
	r6, _ := eng.Sync(syncer.Request{User: b, Since: r5.NextBatch})
	if r6.Rooms.Leave[room] == nil || r6.Rooms.Join[room] != nil {
		t.Fatalf("leave: %+v", r6.Rooms)
	}
	r7, _ := eng.Sync(syncer.Request{User: b, Since: r6.NextBatch})
	if r7.Rooms.Leave[room] != nil {
		t.Fatal("left room repeated")
	}
}

// TestSyncProfileChangeIsNotARejoin: a display name change is a new
// m.room.member join event; the next incremental sync must carry just that
// event, not the room again as if newly joined.
func TestSyncProfileChangeIsNotARejoin(t *testing.T) {
	rs, eng := newSyncEnv(t)
	room, err := rs.CreateRoom("@a:t.local", rooms.CreateRequest{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Join("@b:t.local", room, "", nil); err != nil {
		t.Fatal(err)
	}
	r1, _ := eng.Sync(syncer.Request{User: "@b:t.local"})
	if err := rs.UpdateProfile("@b:t.local"); err != nil {
		t.Fatal(err)
	}
	r2, err := eng.Sync(syncer.Request{User: "@b:t.local", Since: r1.NextBatch})
	if err != nil {
		t.Fatal(err)
	}
	jr := r2.Rooms.Join[room]
	if jr == nil || len(jr.Timeline.Events) != 1 || jr.Timeline.Events[0].Type != "m.room.member" || len(jr.State.Events) != 0 || jr.Timeline.Limited {
		t.Fatalf("profile change resent the room: %+v", jr)
	}
}
