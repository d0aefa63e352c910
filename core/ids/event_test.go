package ids

import "testing"

func TestValidEventID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		// Room versions 1–2.
		{"$randomstring:example.org", true},
		{"$1234567890abcdef:matrix.org:8448", true},
		{"$any thing\tgoes:[::1]", true},
		{idOfLen("$", 255), true},
		// Room version 3 (standard alphabet) and 4+ (URL-safe).
		{"$" + v3Hash, true},
		{"$" + v3Hash2, true},
		{"$" + v4Hash, true},

		{"", false},
		{"$", false},
		{"randomstring:example.org", false},
		{"!" + v4Hash, false},
		{"$:example.org", false},
		{"$abc:", false},
		{"$abc:bad_server", false},
		{"$nul\x00:example.org", false},
		{"$bad\xff:example.org", false},
		{"$shortid", false},
		{"$" + v4Hash[:42], false},
		{"$" + v4Hash + "A", false},
		{"$" + v4Hash[:42] + "h", false},               // non-zero trailing bits
		{"$" + v4Hash[:10] + "+" + v4Hash[11:], false}, // mixed alphabets
		{"$" + v4Hash[:42] + "=", false},               // padded
		{idOfLen("$", 256), false},
	}
	for _, tt := range tests {
		if got := ValidEventID(tt.in); got != tt.want {
			t.Errorf("ValidEventID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
