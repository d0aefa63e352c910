package ids

import (
	"github.com/lichen-hs/lichen/core/mxerr"
)

// ParseUserID splits a user ID "@localpart:domain" into its parts. It
// accepts every user ID the spec says servers MUST accept (appendices,
// "Historical User IDs"): the localpart may hold any non-surrogate Unicode
// code point except ':' and NUL, including control characters, and may be
// empty. The domain must be a valid server name and the whole ID at most 255
// bytes. Failures are M_INVALID_PARAM (400).
//
// Use IsCompliantLocalpart to tell the non-compliant IDs apart (the spec says
// servers SHOULD NOT forward them to clients outside the context of an event),
// and ValidNewLocalpart for IDs being registered here.
func ParseUserID(s string) (localpart, server string, err error) {
	if len(s) > MaxIDLength {
		return "", "", mxerr.InvalidParam("user ID is longer than 255 bytes")
	}
	if s == "" || s[0] != '@' {
		return "", "", mxerr.InvalidParam("user ID must start with '@'")
	}
	localpart, server, ok := splitDomain(s[1:])
	if !ok {
		return "", "", mxerr.InvalidParam("user ID has no ':' and server name")
	}
	if !validOpaqueLocalpart(localpart) {
		return "", "", mxerr.InvalidParam("user ID localpart contains NUL or invalid UTF-8")
	}
	if !ValidServerName(server) {
		return "", "", mxerr.InvalidParam("user ID has an invalid server name")
	}
	return localpart, server, nil
}

// IsCompliantLocalpart reports whether a user ID localpart is compliant in
// the spec's sense: non-empty and made only of U+0021–U+007E (appendices,
// "Historical User IDs"). This is wider than the grammar for new user IDs.
func IsCompliantLocalpart(localpart string) bool {
	if localpart == "" {
		return false
	}
	for i := 0; i < len(localpart); i++ {
		if c := localpart[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// ValidNewLocalpart checks a localpart for a user being registered on
// serverName against the current grammar (appendices, "User Identifiers"):
// non-empty, only a-z 0-9 . _ = - / +, and "@localpart:serverName" at most 255
// bytes. Upper case is refused, not folded: the caller decides whether to
// lowercase a requested username before calling, as clients written against
// Synapse expect M_INVALID_USERNAME for "Alice". Failures are
// M_INVALID_USERNAME (400); success is a nil error (an untyped nil, so that
// "err != nil" works on the result).
//
// Registration policy beyond the grammar (Synapse also reserves localparts
// starting with '_' for application services, and all-digit ones for guests)
// is for the caller.
func ValidNewLocalpart(localpart, serverName string) error {
	if localpart == "" {
		return mxerr.InvalidUsername("user ID cannot be empty")
	}
	for i := 0; i < len(localpart); i++ {
		if !isNewUserIDChar(localpart[i]) {
			return mxerr.InvalidUsername("user ID can only contain characters a-z, 0-9, or '=_-./+'")
		}
	}
	if 1+len(localpart)+1+len(serverName) > MaxIDLength {
		return mxerr.InvalidUsername("user ID may not be longer than 255 bytes")
	}
	return nil
}

// isNewUserIDChar: user_id_char = DIGIT / %x61-7A / "-" / "." / "=" / "_" / "/" / "+".
func isNewUserIDChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', isDigit(c):
		return true
	}
	switch c {
	case '-', '.', '=', '_', '/', '+':
		return true
	}
	return false
}
