package ids

import (
	"errors"
	"strings"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// idOfLen returns sigil + localpart + ":example.org" padded with 'a' in the
// localpart to exactly n bytes.
func idOfLen(sigil string, n int) string {
	const domain = ":example.org"
	return sigil + strings.Repeat("a", n-len(sigil)-len(domain)) + domain
}

func wantMxErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *mxerr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *mxerr.Error", err, err)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("got %d %s, want %d %s", e.Status, e.Code, status, code)
	}
}

func TestParseUserID(t *testing.T) {
	tests := []struct {
		in            string
		local, server string
		ok            bool
	}{
		{"@user:matrix.org", "user", "matrix.org", true},
		{"@alice:example.com:8448", "alice", "example.com:8448", true},
		{"@a.b_c=d-e/f+g:1.2.3.4:1234", "a.b_c=d-e/f+g", "1.2.3.4:1234", true},
		{"@bob:[1234:5678::abcd]:5678", "bob", "[1234:5678::abcd]:5678", true},
		{"@user:MATRIX.ORG", "user", "MATRIX.ORG", true},
		// Historical user IDs: any non-surrogate code point but ':' and NUL,
		// including control characters and the empty string.
		{"@Alice:matrix.org", "Alice", "matrix.org", true},
		{"@a!b#c$d%e*f[g]~h:matrix.org", "a!b#c$d%e*f[g]~h", "matrix.org", true},
		{"@:matrix.org", "", "matrix.org", true},
		{"@with space:matrix.org", "with space", "matrix.org", true},
		{"@tab\there:matrix.org", "tab\there", "matrix.org", true},
		{"@日本:matrix.org", "日本", "matrix.org", true},
		{idOfLen("@", 255), strings.Repeat("a", 255-1-len(":example.org")), "example.org", true},

		{"", "", "", false},
		{"user:matrix.org", "", "", false},
		{"#user:matrix.org", "", "", false},
		{"@user", "", "", false},
		{"@user:", "", "", false},
		{"@user:matrix_org", "", "", false},
		{"@user:1.2.3.256", "", "", false},
		{"@nul\x00:matrix.org", "", "", false},
		{"@bad\xff:matrix.org", "", "", false},
		{"@surrogate\xed\xa0\x80:matrix.org", "", "", false},
		{idOfLen("@", 256), "", "", false},
	}
	for _, tt := range tests {
		local, server, err := ParseUserID(tt.in)
		if tt.ok {
			if err != nil || local != tt.local || server != tt.server {
				t.Errorf("ParseUserID(%q) = %q, %q, %v; want %q, %q, nil", tt.in, local, server, err, tt.local, tt.server)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseUserID(%q) = %q, %q, nil; want an error", tt.in, local, server)
			continue
		}
		wantMxErr(t, err, 400, "M_INVALID_PARAM")
	}
}

func TestIsCompliantLocalpart(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"alice", true},
		{"Alice", true},
		{"a!b~c", true},
		{"", false},
		{"with space", false},
		{"del\x7f", false},
		{"日本", false},
	}
	for _, tt := range tests {
		if got := IsCompliantLocalpart(tt.in); got != tt.want {
			t.Errorf("IsCompliantLocalpart(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidNewLocalpart(t *testing.T) {
	const server = "example.org"
	maxLocal := strings.Repeat("a", 255-len("@:"+server))
	tests := []struct {
		in string
		ok bool
	}{
		{"alice", true},
		{"0123456789", true},
		{"a.b_c=d-e/f+g", true},
		{"_underscore", true}, // grammar allows it; reserving '_' is policy
		{maxLocal, true},      // "@" + local + ":example.org" is 255 bytes

		{"", false},
		{"Alice", false}, // upper case is refused, not folded
		{"ALICE", false},
		{"a b", false},
		{"a:b", false},
		{"a*b", false},
		{"a#b", false},
		{"a!b", false},
		{"a~b", false},
		{"é", false},
		{"a\x00", false},
		{maxLocal + "a", false}, // 256 bytes
	}
	for _, tt := range tests {
		err := ValidNewLocalpart(tt.in, server)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidNewLocalpart(%q) = %v, want nil", tt.in, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ValidNewLocalpart(%q) = nil, want an error", tt.in)
			continue
		}
		wantMxErr(t, err, 400, "M_INVALID_USERNAME")
	}
}
