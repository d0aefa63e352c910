// Package ids parses, validates and generates the Matrix identifiers defined
// in the spec's "Identifier Grammar" appendix: server names, user IDs, room
// IDs, room aliases, event IDs and opaque identifiers.
//
// Parsers are as lenient as the spec requires for identifiers that other
// servers created (historical user IDs, v1–v11 room and event IDs with
// arbitrary localparts) and generators and ValidNewLocalpart are as strict
// as the spec requires for identifiers Lichen itself creates.
package ids

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// MaxIDLength is the limit, in bytes and including sigil and domain, that the
// spec puts on user IDs, room IDs, room aliases and event IDs
// (appendices, "Identifier Grammar").
const MaxIDLength = 255

// splitDomain splits "localpart:domain" at the first ':'. The localpart of
// every sigilled identifier excludes ':', while the domain may contain it
// (a port, an IPv6 literal), so the first ':' is always the separator.
func splitDomain(s string) (localpart, domain string, ok bool) {
	return strings.Cut(s, ":")
}

// validOpaqueLocalpart reports whether s may be the localpart of a room ID,
// room alias or v1/v2 event ID created by another server: the spec allows any
// non-surrogate Unicode code point except ':' and NUL (appendices, "Room
// IDs", "Room Aliases"). utf8.ValidString rejects encoded surrogates. The
// caller has already split at the first ':', so s contains none.
func validOpaqueLocalpart(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// hashIDLen is the length of the unpadded base64 encoding of a 32-byte
// SHA-256 reference hash: the event IDs of room versions 3+ and the room IDs
// of room version 12+.
const hashIDLen = 43

var (
	stdHash = base64.RawStdEncoding.Strict()
	urlHash = base64.RawURLEncoding.Strict()
)

// validReferenceHash reports whether s is a 32-byte reference hash in the
// given unpadded base64 alphabet. Strict decoding rejects encodings whose
// unused trailing bits are not zero: every hash has exactly one encoding, so
// an ID can be stored as its raw 32 bytes and re-encoded byte-for-byte.
func validReferenceHash(enc *base64.Encoding, s string) bool {
	if len(s) != hashIDLen {
		return false
	}
	var buf [33]byte
	n, err := enc.Decode(buf[:], []byte(s))
	return err == nil && n == 32
}
