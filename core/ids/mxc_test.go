package ids

import "testing"

func TestValidMXC(t *testing.T) {
	for s, want := range map[string]bool{
		"mxc://example.org/abc-DEF_123": true,
		"mxc://[::1]:8448/x":            true,
		"mxc://example.org/":            false,
		"mxc://example.org":             false,
		"mxc:///abc":                    false,
		"mxc://example.org/a/b":         false,
		"https://example.org/abc":       false,
	} {
		if ValidMXC(s) != want {
			t.Errorf("ValidMXC(%q) = %v", s, !want)
		}
	}
}
