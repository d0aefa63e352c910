package e2ee

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	gmsl "github.com/matrix-org/gomatrixserverlib"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// SigningKeysRequest is the body of POST /keys/device_signing/upload
// (cross_signing.yaml uploadCrossSigningKeys).
type SigningKeysRequest struct {
	Master      json.RawMessage `json:"master_key"`
	SelfSigning json.RawMessage `json:"self_signing_key"`
	UserSigning json.RawMessage `json:"user_signing_key"`
}

// crossSigningKey is definitions/cross_signing_key.yaml.
type crossSigningKey struct {
	UserID     string                       `json:"user_id"`
	Usage      []string                     `json:"usage"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// parseCrossSigningKey checks a key's shape and returns its key ID
// ("ed25519:<public>") and public key.
func parseCrossSigningKey(raw json.RawMessage, user, usage string) (k crossSigningKey, keyID, pub string, err error) {
	if err := json.Unmarshal(raw, &k); err != nil {
		return k, "", "", mxerr.BadJSON(usage + " key: " + err.Error())
	}
	if k.UserID != user {
		return k, "", "", mxerr.InvalidParam(usage + " key: user_id is not the uploading user")
	}
	if !slices.Contains(k.Usage, usage) {
		return k, "", "", mxerr.InvalidParam(usage + " key: usage must include " + usage)
	}
	if len(k.Keys) != 1 {
		return k, "", "", mxerr.BadJSON(usage + " key: keys must hold exactly one key")
	}
	for id, p := range k.Keys {
		keyID, pub = id, p
	}
	if !strings.HasPrefix(keyID, "ed25519:") || keyID != "ed25519:"+pub {
		return k, "", "", mxerr.BadJSON(usage + " key: the key must be ed25519:<public key> -> <public key>")
	}
	return k, keyID, pub, nil
}

// UploadSigningKeys stores the user's cross-signing keys. The self-signing
// and user-signing keys must be signed by the master key (the new one, or
// the stored one when no master is uploaded). withUIA runs the write
// behind User-Interactive Authentication; it is used unless the user has
// no master key yet or the request only repeats the stored keys
// (cross_signing.yaml: the idempotent retry must not meet a challenge).
func (s *Service) UploadSigningKeys(user string, req SigningKeysRequest, withUIA func(write func() error) error) error {
	stored, err := s.store.CrossSigningKeys(user)
	if err != nil {
		return err
	}
	upload := map[string]json.RawMessage{}
	for usage, raw := range map[string]json.RawMessage{UsageMaster: req.Master, UsageSelfSigning: req.SelfSigning, UsageUserSigning: req.UserSigning} {
		if len(raw) > 0 && string(raw) != "null" {
			var c bytes.Buffer
			if err := json.Compact(&c, raw); err != nil {
				return mxerr.BadJSON(err.Error())
			}
			upload[usage] = c.Bytes()
		}
	}
	if len(upload) == 0 {
		return mxerr.MissingParam("no cross-signing keys in the request")
	}
	master := upload[UsageMaster]
	if master == nil {
		master = stored[UsageMaster]
	}
	if master == nil {
		return mxerr.MissingParam("no master signing key is available")
	}
	_, masterID, masterPub, err := parseCrossSigningKey(master, user, UsageMaster)
	if err != nil {
		return err
	}
	devices, err := s.store.UserDeviceKeys(user)
	if err != nil {
		return err
	}
	for _, usage := range []string{UsageMaster, UsageSelfSigning, UsageUserSigning} {
		raw, ok := upload[usage]
		if !ok {
			continue
		}
		_, _, pub, err := parseCrossSigningKey(raw, user, usage)
		if err != nil {
			return err
		}
		if _, clash := devices[pub]; clash {
			return mxerr.Forbidden("a cross-signing public key is the same as one of your device IDs")
		}
		if usage != UsageMaster {
			if err := verifySigned(raw, user, masterID, masterPub); err != nil {
				return mxerr.New(400, "M_INVALID_SIGNATURE", "the "+usage+" key is not signed by the master key")
			}
		}
	}

	repeat := stored[UsageMaster] != nil
	for usage, raw := range upload {
		if !sameKey(stored[usage], raw) {
			repeat = false
		}
	}
	write := func() error {
		err := s.store.UpdateCrossSigningKeys(user, func(keys map[string]json.RawMessage) (map[string]json.RawMessage, error) {
			if keys == nil {
				keys = map[string]json.RawMessage{}
			}
			for usage, raw := range upload {
				if sameKey(keys[usage], raw) {
					continue // keep signatures uploaded since
				}
				keys[usage] = raw
			}
			if upload[UsageMaster] != nil && !sameKey(stored[UsageMaster], upload[UsageMaster]) {
				// A new master key invalidates the old subkeys that the
				// request did not replace: they were signed by the old one.
				for _, usage := range []string{UsageSelfSigning, UsageUserSigning} {
					if upload[usage] == nil {
						delete(keys, usage)
					}
				}
			}
			return keys, nil
		})
		if err == nil {
			s.changed(user)
		}
		return err
	}
	if stored[UsageMaster] == nil || repeat {
		return write()
	}
	return withUIA(write)
}

// sameKey reports whether two key objects are the same key (signatures
// aside).
func sameKey(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return false
	}
	ca, err1 := unsignedCanonical(a)
	cb, err2 := unsignedCanonical(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

// unsignedCanonical is the canonical JSON of a signed object without its
// signatures and unsigned data: what signatures cover.
func unsignedCanonical(obj json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, err
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return gmsl.CanonicalJSON(b)
}

// SignatureFailure is one entry of keys/signatures/upload's failures.
type SignatureFailure struct {
	ErrCode string `json:"errcode"`
	Error   string `json:"error"`
}

// UploadSignatures adds signatures (cross_signing.yaml
// uploadCrossSigningSignatures): the requester's own devices signed by
// their self-signing key, their own master key signed by one of their
// devices, and other users' master keys signed by their user-signing key.
// The signed object must be the stored key apart from signatures. Each
// entry succeeds or is reported in failures on its own.
func (s *Service) UploadSignatures(requester string, body map[string]map[string]json.RawMessage) (map[string]map[string]SignatureFailure, error) {
	failures := map[string]map[string]SignatureFailure{}
	fail := func(user, keyID string, err error) {
		if failures[user] == nil {
			failures[user] = map[string]SignatureFailure{}
		}
		f := SignatureFailure{ErrCode: "M_UNKNOWN", Error: err.Error()}
		if me := mxerr.As(err); me != nil {
			f = SignatureFailure{ErrCode: me.Code, Error: me.Message}
		}
		failures[user][keyID] = f
	}
	own, err := s.store.CrossSigningKeys(requester)
	if err != nil {
		return nil, err
	}
	changedUsers := map[string]bool{}
	for _, user := range slices.Sorted(maps.Keys(body)) {
		if !s.isLocal(user) {
			for keyID := range body[user] {
				fail(user, keyID, mxerr.InvalidParam("signatures for remote users need federation, which is not available"))
			}
			continue
		}
		for _, keyID := range slices.Sorted(maps.Keys(body[user])) {
			obj := body[user][keyID]
			if err := s.applySignature(requester, own, user, keyID, obj); err != nil {
				fail(user, keyID, err)
				continue
			}
			changedUsers[requester] = true
			changedUsers[user] = true
		}
	}
	for u := range changedUsers {
		s.changed(u)
	}
	return failures, nil
}

// applySignature verifies and stores the requester's new signatures on one
// key object.
func (s *Service) applySignature(requester string, own map[string]json.RawMessage, user, keyID string, obj json.RawMessage) error {
	var signed struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(obj, &signed); err != nil {
		return mxerr.BadJSON(err.Error())
	}
	sigs := signed.Signatures[requester]
	if len(sigs) == 0 {
		return mxerr.InvalidParam("no signature by " + requester)
	}
	// Which of the requester's keys may sign this object?
	var signerKeys map[string]string // key ID -> public key
	var update func(fn func(old json.RawMessage) (json.RawMessage, error)) error
	if user == requester {
		if dk, ok, err := s.store.DeviceKeys(user, keyID); err != nil {
			return err
		} else if ok {
			ssk := own[UsageSelfSigning]
			if ssk == nil {
				return mxerr.InvalidParam("you have no self-signing key to sign devices with")
			}
			_, id, pub, err := parseCrossSigningKey(ssk, user, UsageSelfSigning)
			if err != nil {
				return err
			}
			signerKeys = map[string]string{id: pub}
			if !sameKey(dk, obj) {
				return mxerr.InvalidParam("the signed object is not the stored key of device " + keyID)
			}
			update = func(fn func(json.RawMessage) (json.RawMessage, error)) error {
				return s.store.UpdateDeviceKeys(user, keyID, fn)
			}
		} else if m := own[UsageMaster]; m != nil && "ed25519:"+keyID == masterKeyID(m) {
			// A device vouching for its own user's master key.
			devices, err := s.store.UserDeviceKeys(user)
			if err != nil {
				return err
			}
			signerKeys = map[string]string{}
			for dev, raw := range devices {
				var d deviceKeys
				if json.Unmarshal(raw, &d) == nil {
					if pub, ok := d.Keys["ed25519:"+dev]; ok {
						signerKeys["ed25519:"+dev] = pub
					}
				}
			}
			if !sameKey(m, obj) {
				return mxerr.InvalidParam("the signed object is not your stored master key")
			}
			update = func(fn func(json.RawMessage) (json.RawMessage, error)) error {
				return s.updateCrossSigningKey(user, UsageMaster, fn)
			}
		} else {
			return mxerr.NotFound("no device or master key " + keyID)
		}
	} else {
		theirs, err := s.store.CrossSigningKeys(user)
		if err != nil {
			return err
		}
		m := theirs[UsageMaster]
		if m == nil || "ed25519:"+keyID != masterKeyID(m) {
			return mxerr.NotFound("no master key " + keyID + " for " + user)
		}
		usk := own[UsageUserSigning]
		if usk == nil {
			return mxerr.InvalidParam("you have no user-signing key to sign other users with")
		}
		_, id, pub, err := parseCrossSigningKey(usk, requester, UsageUserSigning)
		if err != nil {
			return err
		}
		signerKeys = map[string]string{id: pub}
		if !sameKey(m, obj) {
			return mxerr.InvalidParam("the signed object is not " + user + "'s stored master key")
		}
		update = func(fn func(json.RawMessage) (json.RawMessage, error)) error {
			return s.updateCrossSigningKey(user, UsageMaster, fn)
		}
	}
	added := map[string]string{}
	for sigKeyID, sig := range sigs {
		pub, ok := signerKeys[sigKeyID]
		if !ok {
			continue // an existing signature carried along, or a key that may not sign this
		}
		if err := verifySigned(obj, requester, sigKeyID, pub); err != nil {
			return err
		}
		added[sigKeyID] = sig
	}
	if len(added) == 0 {
		return mxerr.New(400, "M_INVALID_SIGNATURE", "no signature by a key of yours that may sign this object")
	}
	return update(func(old json.RawMessage) (json.RawMessage, error) {
		if old == nil {
			return nil, mxerr.NotFound("the key disappeared")
		}
		out := old
		for id, sig := range added {
			var err error
			if out, err = addSignature(out, requester, id, sig); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

func (s *Service) updateCrossSigningKey(user, usage string, fn func(json.RawMessage) (json.RawMessage, error)) error {
	return s.store.UpdateCrossSigningKeys(user, func(keys map[string]json.RawMessage) (map[string]json.RawMessage, error) {
		n, err := fn(keys[usage])
		if err != nil {
			return nil, err
		}
		keys[usage] = n
		return keys, nil
	})
}

// masterKeyID is a cross-signing key's "ed25519:<public>" ID.
func masterKeyID(raw json.RawMessage) string {
	var k crossSigningKey
	if json.Unmarshal(raw, &k) != nil {
		return ""
	}
	for id := range k.Keys {
		return id
	}
	return ""
}
