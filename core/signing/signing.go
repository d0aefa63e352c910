// Package signing holds the server's ed25519 signing key: generation and the
// one-line text format Synapse and Dendrite use for key files
// ("ed25519 <key id suffix> <unpadded base64 seed>"), so keys can move
// between servers.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Key is the server signing key.
type Key struct {
	ID      string // e.g. "ed25519:a_Xyz1"
	Private ed25519.PrivateKey
}

// Public is the public half.
func (k Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Generate makes a new key with a random key ID suffix.
func Generate() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Key{}, err
	}
	return Key{ID: "ed25519:a_" + base64.RawURLEncoding.EncodeToString(b[:])[:4], Private: priv}, nil
}

// Marshal encodes k as "ed25519 <suffix> <seed>\n".
func (k Key) Marshal() []byte {
	suffix := strings.TrimPrefix(k.ID, "ed25519:")
	return []byte(fmt.Sprintf("ed25519 %s %s\n", suffix, base64.RawStdEncoding.EncodeToString(k.Private.Seed())))
}

// Parse decodes the Marshal format.
func Parse(b []byte) (Key, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != "ed25519" {
		return Key{}, fmt.Errorf("signing key: want 'ed25519 <id> <seed>'")
	}
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
	if err != nil || len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("signing key: bad seed")
	}
	return Key{ID: "ed25519:" + f[1], Private: ed25519.NewKeyFromSeed(seed)}, nil
}
