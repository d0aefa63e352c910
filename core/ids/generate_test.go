package ids

import (
	"strings"
	"testing"
)

func TestNewDeviceID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewDeviceID()
		if len(id) != 10 || strings.Trim(id, upperLetters) != "" {
			t.Fatalf("NewDeviceID() = %q, want 10 upper-case letters", id)
		}
		if seen[id] {
			t.Fatalf("NewDeviceID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestNewOpaqueID(t *testing.T) {
	for _, n := range []int{1, 2, 16, 32, 255, 1000} {
		id := NewOpaqueID(n)
		if len(id) != n || strings.Trim(id, urlSafe) != "" {
			t.Fatalf("NewOpaqueID(%d) = %q", n, id)
		}
	}
	if id := NewOpaqueID(0); id != "" {
		t.Fatalf("NewOpaqueID(0) = %q, want \"\"", id)
	}
	if NewOpaqueID(32) == NewOpaqueID(32) {
		t.Fatal("NewOpaqueID(32) repeated")
	}
}

func TestNewRoomIDV1(t *testing.T) {
	for _, server := range []string{"example.org", "example.org:8448", "[::1]:8448"} {
		id := NewRoomIDV1(server)
		opaque, got, err := ParseRoomID(id)
		if err != nil || got != server {
			t.Fatalf("ParseRoomID(NewRoomIDV1(%q) = %q) = %q, %q, %v", server, id, opaque, got, err)
		}
		if len(opaque) != 18 || strings.Trim(opaque, letters) != "" {
			t.Fatalf("NewRoomIDV1(%q) = %q, want 18 letters", server, id)
		}
	}
	if NewRoomIDV1("a") == NewRoomIDV1("a") {
		t.Fatal("NewRoomIDV1 repeated")
	}
}

// TestRandomStringUniform checks that rejection sampling leaves every symbol
// of a 26-letter alphabet (256 % 26 != 0) about equally likely.
func TestRandomStringUniform(t *testing.T) {
	const n = 260000
	counts := map[rune]int{}
	for _, c := range randomString(upperLetters, n) {
		counts[c]++
	}
	if len(counts) != 26 {
		t.Fatalf("saw %d distinct symbols, want 26", len(counts))
	}
	for c, k := range counts {
		// Expected 10000 each; a plain modulo would give ~9140 for W–Z.
		if k < 9500 || k > 10500 {
			t.Errorf("symbol %c drawn %d times out of %d", c, k, n)
		}
	}
}

func TestAlphanumericAndToken(t *testing.T) {
	for i := 0; i < 200; i++ {
		id := NewAlphanumericID(24)
		if len(id) != 24 || !ValidToken(id, 24) || strings.ContainsAny(id, "-_") {
			t.Fatalf("NewAlphanumericID gave %q", id)
		}
	}
	for _, c := range []struct {
		s    string
		max  int
		want bool
	}{
		{"abcXYZ019_-", 64, true},
		{"", 64, false},
		{"a/b", 64, false},
		{"..", 64, false},
		{"a.b", 64, false},
		{"é", 64, false},
		{strings.Repeat("a", 64), 64, true},
		{strings.Repeat("a", 65), 64, false},
	} {
		if got := ValidToken(c.s, c.max); got != c.want {
			t.Errorf("ValidToken(%q, %d) = %v", c.s, c.max, got)
		}
	}
}
