package secret

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// HMACSHA1Hex returns HMAC-SHA1(key, msg) as lower-case hex.
func HMACSHA1Hex(key, msg []byte) string {
	m := hmac.New(sha1.New, key)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

// ConstantTimeEqualHex reports whether two hex strings encode the same
// bytes, in time independent of their contents (lengths are not secret).
// Hex digits of either case are accepted; an empty or non-hex string never
// matches.
func ConstantTimeEqualHex(a, b string) bool {
	x, errA := hex.DecodeString(a)
	y, errB := hex.DecodeString(b)
	if errA != nil || errB != nil || len(x) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(x, y) == 1
}

// SharedSecretRegistrationMAC returns the hex MAC of Synapse's shared-secret
// registration API (POST /_synapse/admin/v1/register), which the caller
// compares with the client's "mac" using ConstantTimeEqualHex:
//
//	HMAC-SHA1(secret, nonce \x00 user \x00 password \x00 ("admin"|"notadmin") [\x00 user_type])
//
// user is the "username" field exactly as sent. Fields containing NUL are
// refused (M_INVALID_PARAM), as Synapse does: they would make the message
// ambiguous.
func SharedSecretRegistrationMAC(secret []byte, nonce, user, password string, admin bool, userType string) (string, error) {
	for _, f := range []string{nonce, user, password, userType} {
		if strings.IndexByte(f, 0) >= 0 {
			return "", mxerr.InvalidParam("NUL is not allowed in shared-secret registration fields")
		}
	}
	role := "notadmin"
	if admin {
		role = "admin"
	}
	msg := nonce + "\x00" + user + "\x00" + password + "\x00" + role
	if userType != "" {
		msg += "\x00" + userType
	}
	return HMACSHA1Hex(secret, []byte(msg)), nil
}

// TurnPassword returns the TURN credential for username under the TURN REST
// API scheme (draft-uberti-behave-turn-rest, coturn's use-auth-secret, as in
// Synapse's turn_shared_secret): base64(HMAC-SHA1(secret, username)), with
// padding. username is conventionally "<expiry unix seconds>:<user ID>".
func TurnPassword(secret, username string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
