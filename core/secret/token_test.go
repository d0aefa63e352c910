package secret

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for _, prefix := range []string{AccessTokenPrefix, RefreshTokenPrefix, "lct_", ""} {
		for i := 0; i < 500; i++ {
			tok := NewToken(prefix)
			body, ok := strings.CutPrefix(tok, prefix)
			if !ok || len(body) != 43 {
				t.Fatalf("NewToken(%q) = %q, want prefix + 43 characters", prefix, tok)
			}
			raw, err := base64.RawURLEncoding.DecodeString(body)
			if err != nil || len(raw) != 32 {
				t.Fatalf("NewToken(%q) = %q: body is not 32 bytes of URL-safe base64: %v", prefix, tok, err)
			}
			if seen[body] {
				t.Fatalf("NewToken repeated %q", tok)
			}
			seen[body] = true
		}
	}
}

func TestHashToken(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 appendix B.1.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashToken("abc"); hex.EncodeToString(got[:]) != want {
		t.Fatalf("HashToken(abc) = %x, want %s", got, want)
	}
	tok := NewToken(AccessTokenPrefix)
	if HashToken(tok) != sha256.Sum256([]byte(tok)) || HashToken(tok) == HashToken(tok+"x") {
		t.Fatal("HashToken is not SHA-256 of the token")
	}
}
