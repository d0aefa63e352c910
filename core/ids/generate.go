package ids

import (
	"crypto/rand"
)

const (
	upperLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	letters      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// urlSafe is the URL-safe base64 alphabet: a subset of the spec's Opaque
	// Identifier Grammar ([0-9A-Za-z-._~]) that needs no escaping in a URL
	// path, and 64 symbols so that one random byte gives one unbiased symbol.
	urlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// NewDeviceID returns a new device ID: 10 random upper-case letters
// (~47 bits), the shape Synapse uses.
func NewDeviceID() string { return randomString(upperLetters, 10) }

// NewOpaqueID returns n random characters from [A-Za-z0-9-_] (6 bits each),
// valid under the spec's Opaque Identifier Grammar (appendices, "Opaque
// Identifiers") when 1 ≤ n ≤ 255. n ≤ 0 gives "".
func NewOpaqueID(n int) string { return randomString(urlSafe, n) }

// NewRoomIDV1 returns a new room ID for room versions below 12:
// "!" + 18 random letters + ":" + server. The spec says the localpart SHOULD
// be alphanumeric when generated (appendices, "Room IDs"). Room version 12+
// room IDs are the create event's hash and are not generated here.
func NewRoomIDV1(server string) string {
	return "!" + randomString(letters, 18) + ":" + server
}

// randomString returns n symbols drawn uniformly from alphabet (at most 256
// symbols) using crypto/rand. Bytes at or above the largest multiple of
// len(alphabet) are rejected so that no symbol is favoured.
func randomString(alphabet string, n int) string {
	if n <= 0 {
		return ""
	}
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		rand.Read(buf) // never returns an error (Go ≥ 1.24 crashes instead)
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, alphabet[int(b)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// alphanumeric is [A-Za-z0-9]: IDs that go in URL paths and file names
// unescaped (media IDs, voice message IDs).
const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewAlphanumericID returns n random characters of [A-Za-z0-9], drawn
// without bias (~5.95 bits each).
func NewAlphanumericID(n int) string { return randomString(alphanumeric, n) }

// ValidToken reports whether s is 1 to max characters of [A-Za-z0-9_-]:
// the media ID grammar (spec "Matrix Content (mxc://) URIs"), used as a
// whitelist before an ID reaches a store or a file name.
func ValidToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
