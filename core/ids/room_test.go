package ids

import (
	"strings"
	"testing"
)

// Reference-hash IDs from the spec: a room version 4+ event ID (URL-safe) and
// two room version 3 event IDs (standard alphabet, one with '/').
const (
	v4Hash  = "Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
	v3Hash  = "acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk"
	v3Hash2 = "CD66HAED5npg6074c6pDtLKalHjVfYb2q4Q3LZgrW6o"
)

func TestParseRoomID(t *testing.T) {
	tests := []struct {
		in             string
		opaque, server string
		ok             bool
	}{
		{"!CeUyQRqMxuBnjcxiIr:matrix.org", "CeUyQRqMxuBnjcxiIr", "matrix.org", true},
		{"!abc:example.org:8448", "abc", "example.org:8448", true},
		{"!abc:[::1]:8448", "abc", "[::1]:8448", true},
		{"!any thing\tgoes~é:example.org", "any thing\tgoes~é", "example.org", true},
		// Room version 12: the create event's ID with '!' as sigil.
		{"!" + v4Hash, v4Hash, "", true},
		{idOfLen("!", 255), strings.Repeat("a", 255-1-len(":example.org")), "example.org", true},

		{"", "", "", false},
		{"CeUyQRqMxuBnjcxiIr:matrix.org", "", "", false},
		{"$CeUyQRqMxuBnjcxiIr:matrix.org", "", "", false},
		{"!", "", "", false},
		{"!:matrix.org", "", "", false},
		{"!abc:", "", "", false},
		{"!abc:bad_server", "", "", false},
		{"!nul\x00:matrix.org", "", "", false},
		{"!bad\xff:matrix.org", "", "", false},
		{"!notahash", "", "", false},
		{"!" + v3Hash, "", "", false},            // room IDs use the URL-safe alphabet
		{"!" + v4Hash[:42], "", "", false},       // 42 characters
		{"!" + v4Hash + "A", "", "", false},      // 44 characters
		{"!" + v4Hash[:42] + "h", "", "", false}, // non-zero trailing bits
		{idOfLen("!", 256), "", "", false},
	}
	for _, tt := range tests {
		opaque, server, err := ParseRoomID(tt.in)
		if tt.ok {
			if err != nil || opaque != tt.opaque || server != tt.server {
				t.Errorf("ParseRoomID(%q) = %q, %q, %v; want %q, %q, nil", tt.in, opaque, server, err, tt.opaque, tt.server)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseRoomID(%q) = %q, %q, nil; want an error", tt.in, opaque, server)
			continue
		}
		wantMxErr(t, err, 400, "M_INVALID_PARAM")
	}
}

func TestParseRoomAlias(t *testing.T) {
	tests := []struct {
		in            string
		local, server string
		ok            bool
	}{
		{"#room_alias:matrix.org", "room_alias", "matrix.org", true},
		{"#Room Alias!é:example.org:8448", "Room Alias!é", "example.org:8448", true},
		{"#x:1.2.3.4", "x", "1.2.3.4", true},
		{idOfLen("#", 255), strings.Repeat("a", 255-1-len(":example.org")), "example.org", true},

		{"", "", "", false},
		{"room:matrix.org", "", "", false},
		{"!room:matrix.org", "", "", false},
		{"#room", "", "", false},
		{"#:matrix.org", "", "", false},
		{"#room:", "", "", false},
		{"#room:bad server", "", "", false},
		{"#nul\x00:matrix.org", "", "", false},
		{"#bad\xff:matrix.org", "", "", false},
		{idOfLen("#", 256), "", "", false},
	}
	for _, tt := range tests {
		local, server, err := ParseRoomAlias(tt.in)
		if tt.ok {
			if err != nil || local != tt.local || server != tt.server {
				t.Errorf("ParseRoomAlias(%q) = %q, %q, %v; want %q, %q, nil", tt.in, local, server, err, tt.local, tt.server)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseRoomAlias(%q) = %q, %q, nil; want an error", tt.in, local, server)
			continue
		}
		wantMxErr(t, err, 400, "M_INVALID_PARAM")
	}
}

func TestRoomAliasOrID(t *testing.T) {
	tests := []struct {
		in      string
		isAlias bool
		ok      bool
	}{
		{"#room:matrix.org", true, true},
		{"!room:matrix.org", false, true},
		{"!" + v4Hash, false, true},
		{"#room", false, false},
		{"!room", false, false},
		{"@user:matrix.org", false, false},
		{"room:matrix.org", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		isAlias, err := RoomAliasOrID(tt.in)
		if isAlias != tt.isAlias || (err == nil) != tt.ok {
			t.Errorf("RoomAliasOrID(%q) = %v, %v; want %v, ok=%v", tt.in, isAlias, err, tt.isAlias, tt.ok)
		}
		if err != nil {
			wantMxErr(t, err, 400, "M_INVALID_PARAM")
		}
	}
}
