package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Prefixes of the tokens Lichen issues. A recognisable prefix lets secret
// scanners and people reading logs tell what a leaked string is.
const (
	AccessTokenPrefix  = "lca_"
	RefreshTokenPrefix = "lcr_"
)

// NewToken returns prefix followed by 32 bytes from crypto/rand in URL-safe
// unpadded base64 (43 characters): 256 bits that cannot be guessed.
func NewToken(prefix string) string {
	var b [32]byte
	rand.Read(b[:]) // never returns an error (Go ≥ 1.24 crashes instead)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is the form a token is stored and looked up in: its SHA-256.
// A fast hash is right here, unlike for passwords: a token carries 256
// random bits, so nobody can guess or brute-force it from a leaked hash,
// and salting or stretching would only slow down every authenticated
// request (and make lookup by hash impossible).
func HashToken(token string) [32]byte {
	return sha256.Sum256([]byte(token))
}
