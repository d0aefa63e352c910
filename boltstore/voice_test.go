package boltstore

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/lichen-hs/lichen/core/voice"
)

// TestVoiceStore: records and both indexes on a real bbolt file, newest
// first; an update is atomic and a deleted record stays deleted (an
// update after the delete is ErrNotFound, not a resurrection); the data
// survives a reopen.
func TestVoiceStore(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(filepath.Join(dir, "lichen.db"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []voice.Message{
		{ID: "a", Owner: "@u:hub", MediaID: "m1", RoomID: "!r:hub", CreatedMs: 1000, DurationMs: 10},
		{ID: "b", Owner: "@u:hub", MediaID: "m2", CreatedMs: 3000, DurationMs: 20},
		{ID: "c", Owner: "@v:hub", MediaID: "m3", RoomID: "!r:hub", CreatedMs: 2000, DurationMs: 30},
	}
	for _, m := range msgs {
		if err := st.PutVoice(m); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(l []voice.Message, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, m := range l {
			s += m.ID
		}
		return s
	}
	if got := ids(st.VoiceByUser("@u:hub")); got != "ba" {
		t.Fatalf("by user %q", got)
	}
	if got := ids(st.VoiceByRoom("!r:hub")); got != "ca" {
		t.Fatalf("by room %q", got)
	}
	if err := st.UpdateVoice("a", func(m *voice.Message) error { m.EventID = "$e"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteVoice("c"); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateVoice("c", func(m *voice.Message) error { m.EventID = "$x"; return nil }); !errors.Is(err, voice.ErrNotFound) {
		t.Fatalf("update after delete: %v", err)
	}
	st.Close()
	st, err = Open(filepath.Join(dir, "lichen.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if m, err := st.Voice("a"); err != nil || m.EventID != "$e" || m.DurationMs != 10 {
		t.Fatalf("after reopen: %+v %v", m, err)
	}
	if got := ids(st.VoiceByRoom("!r:hub")); got != "a" {
		t.Fatalf("by room after delete %q", got)
	}
	if _, err := st.Voice("c"); !errors.Is(err, voice.ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
}
