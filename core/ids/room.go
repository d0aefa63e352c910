package ids

import (
	"github.com/lichen-hs/lichen/core/mxerr"
)

// ParseRoomID checks a room ID and returns its opaque part and its server
// name. Two forms are accepted (appendices, "Room IDs"):
//
//   - "!opaque:server" (room versions 1–11): opaque is non-empty and any
//     non-surrogate Unicode except ':' and NUL; server is a valid server name.
//   - "!hash" (room version 12+, MSC4291): the room's m.room.create event ID
//     with '!' for '$', i.e. URL-safe unpadded base64 of a 32-byte reference
//     hash; server is "".
//
// The whole ID is at most 255 bytes. Failures are M_INVALID_PARAM (400).
func ParseRoomID(s string) (opaque, server string, err error) {
	if len(s) > MaxIDLength {
		return "", "", mxerr.InvalidParam("room ID is longer than 255 bytes")
	}
	if s == "" || s[0] != '!' {
		return "", "", mxerr.InvalidParam("room ID must start with '!'")
	}
	opaque, server, hasDomain := splitDomain(s[1:])
	if !hasDomain {
		if !validReferenceHash(urlHash, opaque) {
			return "", "", mxerr.InvalidParam("room ID has neither a server name nor a valid room version 12 hash")
		}
		return opaque, "", nil
	}
	if opaque == "" || !validOpaqueLocalpart(opaque) {
		return "", "", mxerr.InvalidParam("room ID has an empty or invalid opaque part")
	}
	if !ValidServerName(server) {
		return "", "", mxerr.InvalidParam("room ID has an invalid server name")
	}
	return opaque, server, nil
}

// ParseRoomAlias splits a room alias "#localpart:server" (appendices, "Room
// Aliases"). The localpart is non-empty and any non-surrogate Unicode except
// ':' and NUL; the server is a valid server name; the whole alias is at most
// 255 bytes. Failures are M_INVALID_PARAM (400).
func ParseRoomAlias(s string) (localpart, server string, err error) {
	if len(s) > MaxIDLength {
		return "", "", mxerr.InvalidParam("room alias is longer than 255 bytes")
	}
	if s == "" || s[0] != '#' {
		return "", "", mxerr.InvalidParam("room alias must start with '#'")
	}
	localpart, server, ok := splitDomain(s[1:])
	if !ok {
		return "", "", mxerr.InvalidParam("room alias has no ':' and server name")
	}
	if localpart == "" || !validOpaqueLocalpart(localpart) {
		return "", "", mxerr.InvalidParam("room alias has an empty or invalid localpart")
	}
	if !ValidServerName(server) {
		return "", "", mxerr.InvalidParam("room alias has an invalid server name")
	}
	return localpart, server, nil
}

// RoomAliasOrID classifies s, as accepted by endpoints such as
// /join/{roomIdOrAlias}, and validates it with ParseRoomAlias or ParseRoomID.
// Anything else is M_INVALID_PARAM (400). On error isAlias is false.
func RoomAliasOrID(s string) (isAlias bool, err error) {
	if s != "" {
		switch s[0] {
		case '#':
			_, _, err = ParseRoomAlias(s)
			return err == nil, err
		case '!':
			_, _, err = ParseRoomID(s)
			return false, err
		}
	}
	return false, mxerr.InvalidParam("expected a room ID ('!') or a room alias ('#')")
}
