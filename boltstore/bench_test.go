package boltstore

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/syncer"
)

// BenchmarkSend measures the room engine's send path over a real bbolt
// file: build, sign, authorise, group-commit (run with -cpu to vary senders).
func BenchmarkSend(b *testing.B) {
	svc, st, _ := newRoomsB(b)
	room, err := svc.CreateRoom("@a:test.local", rooms.CreateRequest{})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	content := json.RawMessage(`{"msgtype":"m.text","body":"a typical short chat message of about a hundred bytes, give or take"}`)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := svc.Send(rooms.Sender{User: "@a:test.local", Device: "D"}, room, "m.room.message", strconv.FormatInt(i, 10), content); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(st.Size())/float64(b.N), "dbbytes/msg")
}

// BenchmarkInitialSync: a user in 50 rooms of 100 messages each, timeline
// limit 20 (the DESIGN.md budget case).
func BenchmarkInitialSync(b *testing.B) {
	svc, st, _ := newRoomsB(b)
	hub := notify.New()
	eng := syncer.New(svc, st, hub, syncer.Sources{})
	content := json.RawMessage(`{"msgtype":"m.text","body":"hello there"}`)
	for r := 0; r < 50; r++ {
		room, err := svc.CreateRoom("@a:test.local", rooms.CreateRequest{Invite: []string{"@b:test.local"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Join("@b:test.local", room, "", nil); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, err := svc.Send(rooms.Sender{User: "@a:test.local", Device: "D"}, room, "m.room.message", "", content); err != nil {
				b.Fatal(err)
			}
		}
	}
	lim := 20
	f := &filter.Filter{Room: &filter.RoomFilter{Timeline: &filter.RoomEventFilter{EventFilter: filter.EventFilter{Limit: &lim}}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := eng.Sync(syncer.Request{User: "@b:test.local", Device: "X", Filter: f})
		if err != nil || len(r.Rooms.Join) != 50 {
			b.Fatal(err, len(r.Rooms.Join))
		}
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncrementalSync: one new message in a room, synced by a member
// (what each of 50 long-polling receivers does per message).
func BenchmarkIncrementalSync(b *testing.B) {
	svc, st, _ := newRoomsB(b)
	hub := notify.New()
	eng := syncer.New(svc, st, hub, syncer.Sources{})
	room, err := svc.CreateRoom("@a:test.local", rooms.CreateRequest{Invite: []string{"@b:test.local"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Join("@b:test.local", room, "", nil); err != nil {
		b.Fatal(err)
	}
	content := json.RawMessage(`{"msgtype":"m.text","body":"hello there"}`)
	for i := 0; i < 200; i++ {
		if _, err := svc.Send(rooms.Sender{User: "@a:test.local", Device: "D"}, room, "m.room.message", "", content); err != nil {
			b.Fatal(err)
		}
	}
	r0, err := eng.Sync(syncer.Request{User: "@b:test.local", Device: "X"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Send(rooms.Sender{User: "@a:test.local", Device: "D"}, room, "m.room.message", "", content); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := eng.Sync(syncer.Request{User: "@b:test.local", Device: "X", Since: r0.NextBatch})
		if err != nil || len(r.Rooms.Join[room].Timeline.Events) != 1 {
			b.Fatal(err)
		}
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
