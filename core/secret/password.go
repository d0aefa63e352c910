package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argonParams are argon2id cost parameters as they appear in a PHC string.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8  // lanes
	saltLen int    // bytes
	keyLen  int    // bytes
}

// currentParams are the parameters new hashes get: OWASP's minimum
// recommended argon2id configuration (m=19456 KiB, t=2, p=1), which is also
// what the Rust argon2 crate's defaults give Conduit-family servers, so their
// hashes verify here without a rehash. 19 MiB is affordable on a 256 MB board
// once concurrency is bounded (see hashGate); one lane because these boards
// have few cores and those are needed for serving. Each hash records its own
// parameters, so raising these later only makes VerifyPassword report
// needsRehash for older hashes.
var currentParams = argonParams{memory: 19456, time: 2, threads: 1, saltLen: 16, keyLen: 32}

// Limits on the parameters of a stored hash. Hashes may be imported from
// other servers; one claiming m=4 GiB or t=10⁶ would exhaust a board's memory
// or hold a core for hours on every login attempt.
const (
	maxArgonMemory = 256 * 1024 // KiB
	maxArgonTime   = 64
	minSaltLen     = 8 // the argon2 specification's minimum
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 64
	maxBcryptCost  = 16 // Synapse's default is 12; each step doubles the time
)

// ErrMalformedHash is returned (wrapped) by VerifyPassword for a stored hash
// it cannot read: a corrupt record or an unsupported scheme, not a wrong
// password.
var ErrMalformedHash = errors.New("malformed password hash")

var b64 = base64.RawStdEncoding // the PHC string format's B64: no padding

// HashPassword hashes pw with argon2id and the current parameters and returns
// it in PHC string format, e.g.
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with a 16-byte random salt and a 32-byte hash in unpadded base64. It waits
// for a slot at the hashing gate (SetConcurrency). The error is always nil
// today and kept for schemes that can fail.
func HashPassword(pw string) (string, error) {
	p := currentParams
	salt := make([]byte, p.saltLen)
	rand.Read(salt) // never returns an error (Go ≥ 1.24 crashes instead)
	key := argon2IDKey(pw, salt, p)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword checks pw against a stored hash, in constant time with
// respect to the hash's contents. It understands argon2id PHC strings
// (HashPassword's output, with any parameters within sane limits) and bcrypt
// hashes ($2a$, $2b$, $2y$), so that accounts imported from Synapse keep
// their passwords.
//
// ok reports a match. needsRehash is true when pw matched but the stored hash
// is not argon2id with the current parameters: the caller should store
// HashPassword(pw) now that it knows pw. err is non-nil (wrapping
// ErrMalformedHash) only when encoded cannot be read; a wrong password is
// ok=false with a nil error.
//
// Synapse hashes NFKC-normalised passwords, plus a pepper if one was
// configured; this function does neither. Callers importing Synapse accounts
// with a pepper, or passwords with compatibility characters, must adapt pw
// first.
func VerifyPassword(encoded, pw string) (ok bool, needsRehash bool, err error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		p, salt, want, err := parseArgon2id(encoded)
		if err != nil {
			return false, false, err
		}
		got := argon2IDKey(pw, salt, p)
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return false, false, nil
		}
		return true, p != currentParams, nil
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		return verifyBcrypt(encoded, pw)
	default:
		return false, false, fmt.Errorf("%w: unknown scheme", ErrMalformedHash)
	}
}

func argon2IDKey(pw string, salt []byte, p argonParams) []byte {
	hashGate.acquire()
	defer hashGate.release()
	return argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(p.keyLen))
}

// parseArgon2id reads "$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>". The
// parameters must come in the order m, t, p, as the reference implementation
// writes and requires them; only version 19 (0x13) is supported, as that is
// the only one golang.org/x/crypto/argon2 computes.
func parseArgon2id(encoded string) (p argonParams, salt, key []byte, err error) {
	bad := func(what string) (argonParams, []byte, []byte, error) {
		return argonParams{}, nil, nil, fmt.Errorf("%w: argon2id: %s", ErrMalformedHash, what)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("want $argon2id$v=..$m=..,t=..,p=..$salt$hash")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version " + strconv.Quote(parts[2]))
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return bad("want parameters m,t,p")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return bad("want parameters m,t,p in that order")
		}
		vals[i], err = strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("parameter " + name + " is not a number")
		}
	}
	m, t, threads := vals[0], vals[1], vals[2]
	switch {
	case threads < 1 || threads > 255:
		return bad("p out of range")
	case t < 1 || t > maxArgonTime:
		return bad("t out of range")
	case m < 8*threads || m > maxArgonMemory: // argon2 requires m ≥ 8p
		return bad("m out of range")
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return bad("bad salt")
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return bad("bad hash")
	}
	p = argonParams{memory: uint32(m), time: uint32(t), threads: uint8(threads), saltLen: len(salt), keyLen: len(key)}
	return p, salt, key, nil
}

// verifyBcrypt checks a bcrypt hash. Like the C implementation behind
// Synapse's, Go's bcrypt uses only the first 72 bytes of a password, so a
// longer password that Synapse accepted still verifies. A match always
// needs a rehash: bcrypt is only read, never written.
func verifyBcrypt(encoded, pw string) (ok bool, needsRehash bool, err error) {
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		return false, false, fmt.Errorf("%w: bcrypt: %v", ErrMalformedHash, err)
	}
	if cost > maxBcryptCost {
		return false, false, fmt.Errorf("%w: bcrypt: cost %d above %d", ErrMalformedHash, cost, maxBcryptCost)
	}
	hashGate.acquire()
	err = bcrypt.CompareHashAndPassword([]byte(encoded), []byte(pw))
	hashGate.release()
	switch {
	case err == nil:
		return true, true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, false, nil
	default:
		return false, false, fmt.Errorf("%w: bcrypt: %v", ErrMalformedHash, err)
	}
}
