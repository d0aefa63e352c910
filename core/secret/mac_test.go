package secret

import (
	"errors"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
)

func TestHMACSHA1Hex(t *testing.T) {
	tests := []struct{ key, msg, want string }{
		{"key", "The quick brown fox jumps over the lazy dog", "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"},
		// RFC 2202 test case 2.
		{"Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
	}
	for _, tt := range tests {
		if got := HMACSHA1Hex([]byte(tt.key), []byte(tt.msg)); got != tt.want {
			t.Errorf("HMACSHA1Hex(%q, %q) = %s, want %s", tt.key, tt.msg, got, tt.want)
		}
	}
}

func TestConstantTimeEqualHex(t *testing.T) {
	const mac = "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
	tests := []struct {
		a, b string
		want bool
	}{
		{mac, mac, true},
		{mac, "DE7C9B85B8B78AA6BC8A7A36F70A90701C9DB4D9", true},
		{mac, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d8", false},
		{mac, mac[:38], false},
		{mac, mac + "00", false},
		{mac, "zz7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9", false},
		{mac, mac[:39], false}, // odd length
		{"", "", false},
		{mac, "", false},
	}
	for _, tt := range tests {
		if got := ConstantTimeEqualHex(tt.a, tt.b); got != tt.want {
			t.Errorf("ConstantTimeEqualHex(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSharedSecretRegistrationMAC(t *testing.T) {
	// Expected values computed independently with Python's hmac module and
	// openssl dgst -sha1 -hmac.
	tests := []struct {
		nonce, user, pw string
		admin           bool
		userType, want  string
	}{
		{"abcdef", "alice", "hunter2", true, "", "9019a6e6130bc03090d694c6293a57c0bbe7b9f8"},
		{"abcdef", "bob", "pw", false, "bot", "b3ccff2a9db5fdf8a62ca5baee5d0bbd927a2fcf"},
	}
	for _, tt := range tests {
		got, err := SharedSecretRegistrationMAC([]byte("shared"), tt.nonce, tt.user, tt.pw, tt.admin, tt.userType)
		if err != nil || got != tt.want {
			t.Errorf("SharedSecretRegistrationMAC(%q, %q) = %s, %v; want %s", tt.user, tt.userType, got, err, tt.want)
		}
		if !ConstantTimeEqualHex(got, tt.want) {
			t.Errorf("ConstantTimeEqualHex(%s, %s) = false", got, tt.want)
		}
	}
	_, err := SharedSecretRegistrationMAC([]byte("shared"), "n", "al\x00ice", "pw", false, "")
	var e *mxerr.Error
	if !errors.As(err, &e) || e.Code != "M_INVALID_PARAM" || e.Status != 400 {
		t.Fatalf("NUL in username: err = %v, want M_INVALID_PARAM 400", err)
	}
}

func TestTurnPassword(t *testing.T) {
	// openssl dgst -sha1 -hmac turnsecret -binary | base64
	const want = "s65Qm0/QUYq1HVHdXzpNzNIbtHE="
	if got := TurnPassword("turnsecret", "1700000000:@alice:example.org"); got != want {
		t.Fatalf("TurnPassword = %s, want %s", got, want)
	}
}
