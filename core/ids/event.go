package ids

// ValidEventID reports whether s is an event ID of some room version, at most
// 255 bytes (appendices, "Event IDs"):
//
//   - "$opaque:server" (room versions 1–2): opaque non-empty and any
//     non-surrogate Unicode except ':' and NUL; server a valid server name.
//   - "$hash" (room version 3): unpadded standard base64 of a 32-byte
//     reference hash (may contain '+' and '/').
//   - "$hash" (room versions 4+): the same in URL-safe unpadded base64.
//
// The hash forms must be canonical (zero trailing bits), so an event ID of
// v3+ round-trips through its raw 32 bytes.
func ValidEventID(s string) bool {
	if len(s) < 2 || len(s) > MaxIDLength || s[0] != '$' {
		return false
	}
	opaque, server, hasDomain := splitDomain(s[1:])
	if !hasDomain {
		return validReferenceHash(urlHash, opaque) || validReferenceHash(stdHash, opaque)
	}
	return opaque != "" && validOpaqueLocalpart(opaque) && ValidServerName(server)
}
