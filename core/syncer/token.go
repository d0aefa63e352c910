// Package syncer is the /sync engine: it turns a since token into the
// changes a user has not seen (room timelines and state, invites, leaves,
// account data, receipts, typing, presence) and parks long-polls until
// the notifier wakes them.
package syncer

import (
	"strconv"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// Token is a sync position: Pos covers every persistent stream (one
// counter shared by room events, account data and receipts), Eph the
// in-memory ephemeral streams (typing, presence).
type Token struct {
	Pos uint64
	Eph uint64
}

// String encodes the token as "s<pos>_<eph>".
func (t Token) String() string {
	return "s" + strconv.FormatUint(t.Pos, 10) + "_" + strconv.FormatUint(t.Eph, 10)
}

// ParseToken decodes a since token; the empty string is the zero token.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	bad := mxerr.InvalidParam("invalid since token")
	if s[0] != 's' {
		return Token{}, bad
	}
	a, b, ok := strings.Cut(s[1:], "_")
	if !ok {
		return Token{}, bad
	}
	pos, err1 := strconv.ParseUint(a, 10, 64)
	eph, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return Token{}, bad
	}
	return Token{Pos: pos, Eph: eph}, nil
}
