package accounts

import (
	"strings"
	"testing"
)

func TestFlows(t *testing.T) {
	flows := [][]string{{AuthDummy}, {AuthRegistrationToken, AuthPassword}}
	tests := []struct {
		completed []string
		typ       string
		allowed   bool
		complete  bool
	}{
		{nil, AuthDummy, true, false},
		{nil, AuthRegistrationToken, true, false},
		{nil, AuthPassword, false, false}, // out of order
		{[]string{AuthRegistrationToken}, AuthPassword, true, false},
		{[]string{AuthRegistrationToken, AuthPassword}, "", false, true},
		{[]string{AuthDummy}, "", false, true},
		{nil, "m.login.sso", false, false},
	}
	for _, tt := range tests {
		if got := stageAllowed(flows, tt.completed, tt.typ); got != tt.allowed {
			t.Errorf("stageAllowed(%v, %s) = %v", tt.completed, tt.typ, got)
		}
		if got := flowComplete(flows, tt.completed); got != tt.complete {
			t.Errorf("flowComplete(%v) = %v", tt.completed, got)
		}
	}
}

func TestRegistrationTokenUsable(t *testing.T) {
	one, zero := 1, 0
	tests := []struct {
		name string
		tok  RegistrationToken
		has  bool
		want bool
	}{
		{"unlimited", RegistrationToken{}, true, true},
		{"uses left", RegistrationToken{UsesAllowed: &one}, true, true},
		{"used up", RegistrationToken{UsesAllowed: &one, Completed: 1}, true, false},
		{"zero uses", RegistrationToken{UsesAllowed: &zero}, false, false},
		{"expired", RegistrationToken{ExpiryTS: 1000}, false, false},
		{"not yet expired", RegistrationToken{ExpiryTS: 1001}, false, true},
		{"bootstrap, empty server", RegistrationToken{Bootstrap: true, UsesAllowed: &one}, false, true},
		{"bootstrap, accounts exist", RegistrationToken{Bootstrap: true, UsesAllowed: &one}, true, false},
	}
	for _, tt := range tests {
		if got := tt.tok.Usable(1000, tt.has); got != tt.want {
			t.Errorf("%s: Usable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidators(t *testing.T) {
	for s, want := range map[string]bool{"abc": true, "A-z_0.9~": true, "": false, "a b": false, strings.Repeat("a", 65): false} {
		if validRegistrationTokenSyntax(s) != want {
			t.Errorf("validRegistrationTokenSyntax(%q) = %v", s, !want)
		}
	}
	for key, code := range map[string]string{
		"displayname": "", "avatar_url": "", "m.tz": "", "org.example.x_1": "",
		"Displayname": "M_INVALID_PARAM", "custom": "M_INVALID_PARAM", "org..x": "M_INVALID_PARAM",
		"a." + strings.Repeat("b", 300): "M_KEY_TOO_LARGE",
	} {
		err := checkProfileKey(key)
		if (code == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), code)) {
			t.Errorf("checkProfileKey(%q) = %v, want %q", key, err, code)
		}
	}
	for id, ok := range map[string]bool{"": true, "ABCDEF": true, "phone 2": true, "a\x00b": false, "a\nb": false, strings.Repeat("x", 256): false} {
		if (validDeviceID(id) == nil) != ok {
			t.Errorf("validDeviceID(%q) ok = %v", id, !ok)
		}
	}
	long := strings.Repeat("é", 60) // 120 bytes
	if got := clampDeviceName(long); len(got) != 100 || got != strings.Repeat("é", 50) {
		t.Errorf("clampDeviceName cut to %d bytes: %q", len(got), got)
	}
}
