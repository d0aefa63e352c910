// Package e2ee holds the server side of end-to-end encryption (spec
// client-server "End-to-End Encryption"): device identity keys, one-time
// and fallback keys, cross-signing keys and their signatures, and the
// device-list stream that tells clients whose keys changed. The server
// never sees plaintext; it stores, checks and routes public keys exactly
// as the spec says, because a subtly wrong answer shows up in clients as
// "unable to decrypt".
package e2ee

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	gmsl "github.com/matrix-org/gomatrixserverlib"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// OneTimeKey is an uploaded one-time or fallback key: its
// "<algorithm>:<key_id>" name and its JSON (a string for unsigned
// algorithms, an object with key and signatures for signed ones).
type OneTimeKey struct {
	Algorithm string
	KeyID     string
	JSON      json.RawMessage
}

// Name is the key's "<algorithm>:<key_id>".
func (k OneTimeKey) Name() string { return k.Algorithm + ":" + k.KeyID }

// Claim asks for one key of Algorithm from a user's device.
type Claim struct {
	User, Device, Algorithm string
}

// Claimed is one claimed key.
type Claimed struct {
	Claim
	Key OneTimeKey
}

// Usage names of cross-signing keys (spec "Cross-signing").
const (
	UsageMaster      = "master"
	UsageSelfSigning = "self_signing"
	UsageUserSigning = "user_signing"
)

// ErrKeyConflict is returned by the store when a one-time key name is
// already stored with other content.
var ErrKeyConflict = errors.New("one-time key already exists with different content")

// Store keeps the keys. Every write is durable when it returns; writes
// that change what /keys/query answers for a user also record a
// device-list change for that user at a new stream position.
type Store interface {
	// DeviceKeys returns a device's uploaded identity keys (ok false if none).
	DeviceKeys(user, device string) (keys json.RawMessage, ok bool, err error)
	// UserDeviceKeys returns every device's identity keys of a user.
	UserDeviceKeys(user string) (map[string]json.RawMessage, error)
	// UpdateDeviceKeys replaces a device's keys with fn(old) (old nil when
	// none) in one transaction, recording a device-list change when the
	// stored keys change. fn may return old unchanged.
	UpdateDeviceKeys(user, device string, fn func(old json.RawMessage) (json.RawMessage, error)) error
	// AddOneTimeKeys stores keys for the device, skipping names already
	// stored with identical JSON; a name stored with other JSON fails the
	// whole call with ErrKeyConflict and stores nothing.
	AddOneTimeKeys(user, device string, keys []OneTimeKey) error
	// OneTimeKeyCounts counts the device's unclaimed one-time keys per
	// algorithm.
	OneTimeKeyCounts(user, device string) (map[string]int, error)
	// SetFallbackKeys stores one unused fallback key per algorithm,
	// replacing any earlier one of that algorithm.
	SetFallbackKeys(user, device string, keys []OneTimeKey) error
	// UnusedFallbackAlgorithms lists the algorithms whose fallback key has
	// not been claimed since it was uploaded.
	UnusedFallbackAlgorithms(user, device string) ([]string, error)
	// ClaimKeys claims, in one transaction, for each claim the device's
	// oldest unclaimed one-time key of the algorithm (deleting it), or
	// failing that its fallback key (marking it used). Claims that find
	// nothing are left out.
	ClaimKeys(claims []Claim) ([]Claimed, error)
	// CrossSigningKeys returns the user's cross-signing keys by usage.
	CrossSigningKeys(user string) (map[string]json.RawMessage, error)
	// UpdateCrossSigningKeys applies fn to the user's keys by usage in one
	// transaction and stores what it returns, recording a device-list
	// change when anything changed.
	UpdateCrossSigningKeys(user string, fn func(keys map[string]json.RawMessage) (map[string]json.RawMessage, error)) error
	// DeleteDeviceKeys drops the devices' identity, one-time and fallback
	// keys, recording a device-list change if any device had keys.
	DeleteDeviceKeys(user string, devices []string) error
	// NoteDeviceListChange records a device-list change for the user
	// (a device was added).
	NoteDeviceListChange(user string) error
	// DeviceListChanges lists the users whose device lists changed at a
	// position in (since, upto].
	DeviceListChanges(since, upto uint64) ([]string, error)
}

// Service answers the key endpoints.
type Service struct {
	store      Store
	serverName string
	// wake tells these users' syncs that something changed.
	wake func(users ...string)
	// peers lists the users sharing a room with a user (user included):
	// who must hear of the user's device-list changes.
	peers func(user string) []string
	// displayName is a device's display name, for keys/query unsigned.
	displayName func(user, device string) (string, bool)
}

// New makes the service.
func New(store Store, serverName string, wake func(users ...string), peers func(string) []string, displayName func(user, device string) (string, bool)) *Service {
	return &Service{store: store, serverName: serverName, wake: wake, peers: peers, displayName: displayName}
}

func (s *Service) isLocal(user string) bool { return strings.HasSuffix(user, ":"+s.serverName) }

// changed wakes everyone who must hear about a change of user's keys.
func (s *Service) changed(user string) {
	if s.wake != nil && s.peers != nil {
		s.wake(s.peers(user)...)
	}
}

// DeviceAdded and DevicesDeleted make Service an accounts.DeviceObserver:
// a new device, and a deleted one, are device-list changes (keys.yaml
// getKeysChanges; TestKeyChangesLocal expects a new login there).
func (s *Service) DeviceAdded(user, device string) {
	if err := s.store.NoteDeviceListChange(user); err == nil {
		s.changed(user)
	}
}

// DevicesDeleted drops the devices' keys.
func (s *Service) DevicesDeleted(user string, devices []string) {
	if err := s.store.DeleteDeviceKeys(user, devices); err == nil {
		s.changed(user)
	}
}

// verifySelfSigned checks that obj carries a valid signature by signer
// with the ed25519 key keyID (e.g. "ed25519:DEVICEID") whose public part
// is pub (unpadded base64).
func verifySigned(obj json.RawMessage, signer, keyID, pub string) error {
	pk, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(pub, "="))
	if err != nil || len(pk) != ed25519.PublicKeySize {
		return mxerr.New(400, "M_INVALID_SIGNATURE", "the signing key "+keyID+" is not an ed25519 public key")
	}
	if err := gmsl.VerifyJSON(signer, gmsl.KeyID(keyID), ed25519.PublicKey(pk), obj); err != nil {
		return mxerr.New(400, "M_INVALID_SIGNATURE", "invalid signature by "+signer+" "+keyID)
	}
	return nil
}

func validUser(u string) bool {
	_, _, err := ids.ParseUserID(u)
	return err == nil
}
