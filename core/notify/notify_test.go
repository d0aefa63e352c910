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
	before := h.EphemeralPos()
	if p := h.BumpEphemeral("@b:x"); p != before+1 || h.EphemeralPos() != p {
		t.Fatalf("ephemeral pos %d after %d", p, before)
	}
	// A new hub (a restart) starts beyond any position the old one gave out.
	if New().EphemeralPos() <= h.EphemeralPos() {
		t.Fatal("restarted ephemeral stream went backwards")
	}
	<-b
	if h.Watch("@a:x") == a {
		t.Fatal("closed channel handed out again")
	}
}
