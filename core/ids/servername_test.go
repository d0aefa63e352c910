package ids

import (
	"strings"
	"testing"
)

func TestValidServerName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		// The appendix's examples.
		{"matrix.org", true},
		{"matrix.org:8888", true},
		{"1.2.3.4", true},
		{"1.2.3.4:1234", true},
		{"[1234:5678::abcd]", true},
		{"[1234:5678::abcd]:5678", true},
		// More valid shapes.
		{"localhost", true},
		{"MATRIX.ORG", true}, // case-sensitive, but upper case is legal
		{"my-server.example.com:1", true},
		{"example.org:65535", true},
		{"example.org:99999", true}, // grammar: port = 1*5DIGIT
		{"0.0.0.0", true},
		{"255.255.255.255:8448", true},
		{"010.001.000.1", true}, // 1*3DIGIT allows leading zeros
		{"1.2.3.1234", true},    // not a dotted quad, so a dns-name
		{"1.2.3", true},         // likewise
		{"[::1]", true},
		{"[::ffff:1.2.3.4]:80", true}, // RFC 3513 embedded IPv4
		{"[FE80::1]", true},
		{"[1:2:3:4:5:6:7:8]", true},
		{"a", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 255) + ":8448", true},

		// Invalid.
		{"", false},
		{":8448", false},
		{"matrix.org:", false},
		{"matrix.org:123456", false},
		{"matrix.org:80a", false},
		{"matrix.org:-1", false},
		{"matrix.org:80:80", false},
		{"matrix_org", false},
		{"matrix.org/", false},
		{"mätrix.org", false},
		{"matrix org", false},
		{"1.2.3.256", false},
		{"256.1.1.1:80", false},
		{"1234:5678::abcd", false}, // IPv6 needs brackets
		{"[1234:5678::abcd", false},
		{"[1234:5678::abcd]8448", false},
		{"[1234:5678::abcd]:", false},
		{"[]", false},
		{"[:]", false},
		{"[1.2.3.4]", false},      // not an IPv6 address
		{"[fe80::1%eth0]", false}, // zones are outside IPv6char
		{"[12345::]", false},
		{"[1:2:3:4:5:6:7:8:9]", false},
		{"[g::1]", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		if got := ValidServerName(tt.in); got != tt.want {
			t.Errorf("ValidServerName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
