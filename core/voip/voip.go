// Package voip is the TURN REST credential scheme ("A REST API For Access
// To TURN Services", draft-uberti-behave-turn-rest, as coturn's
// use-auth-secret and Synapse's turn_shared_secret implement it): the
// username is "<expiry unix seconds>:<user id>" and the password is
// base64(HMAC-SHA1(shared secret, username)). The homeserver and the TURN
// server share only the secret; the relay needs no account database.
package voip

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the scheme is defined with HMAC-SHA1
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Errors of Verify.
var (
	ErrMalformed = errors.New("voip: malformed TURN username")
	ErrExpired   = errors.New("voip: TURN credentials expired")
	ErrForged    = errors.New("voip: TURN password does not match")
	ErrNoSecret  = errors.New("voip: no shared secret")
)

// Credentials returns the username and password for user, valid for ttl
// from now, and the ttl in whole seconds (at least 1).
func Credentials(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string, ttlSeconds int) {
	ttlSeconds = int(ttl / time.Second)
	if ttlSeconds < 1 {
		ttlSeconds = 1
	}
	expiry := now.Unix() + int64(ttlSeconds)
	username = strconv.FormatInt(expiry, 10) + ":" + user
	return username, Password(secret, username), ttlSeconds
}

// Password is base64(HMAC-SHA1(secret, username)) in standard padded
// base64, as coturn computes it.
func Password(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Expiry parses the expiry and user out of a username. The user part may
// itself contain colons (Matrix user ids do).
func Expiry(username string) (time.Time, string, error) {
	ts, user, ok := strings.Cut(username, ":")
	if !ok || ts == "" || user == "" {
		return time.Time{}, "", ErrMalformed
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", ErrMalformed
	}
	return time.Unix(sec, 0), user, nil
}

// Verify checks a username/password pair at now and returns the user.
// A username whose expiry is not after now is expired.
func Verify(secret []byte, username, password string, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", ErrNoSecret
	}
	exp, user, err := Expiry(username)
	if err != nil {
		return "", err
	}
	if !now.Before(exp) {
		return "", ErrExpired
	}
	if !hmac.Equal([]byte(Password(secret, username)), []byte(password)) {
		return "", ErrForged
	}
	return user, nil
}

// Check validates only the username (format and expiry) at now and
// returns the user. A TURN server uses it before deriving the long-term
// key from Password: STUN message integrity then proves the client knows
// the password, so the password never travels.
func Check(username string, now time.Time) (string, error) {
	exp, user, err := Expiry(username)
	if err != nil {
		return "", err
	}
	if !now.Before(exp) {
		return "", ErrExpired
	}
	return user, nil
}
