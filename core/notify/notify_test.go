package notify

import (
	"testing"
	"time"
)

func TestWakeOnlyConcernedUsers(t *testing.T) {
	h := New()
	a, b := h.Watch("@a:x"), h.Watch("@b:x")
	h.Wake("@a:x")
	select {
	case <-a:
	case <-time.After(time.Second):
		t.Fatal("a not woken")
	}
	select {
	case <-b:
		t.Fatal("b woken")
	default:
	}
	if p := h.BumpEphemeral("@b:x"); p != 1 || h.EphemeralPos() != 1 {
		t.Fatalf("ephemeral pos %d", p)
	}
	<-b
	if h.Watch("@a:x") == a {
		t.Fatal("closed channel handed out again")
	}
}
