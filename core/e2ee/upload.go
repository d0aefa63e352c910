package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// UploadRequest is the body of POST /keys/upload (keys.yaml uploadKeys).
type UploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeys is definitions/device_keys.yaml.
type deviceKeys struct {
	UserID     string                       `json:"user_id"`
	DeviceID   string                       `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// Upload publishes a device's keys and returns its one-time key counts.
// Everything is checked before anything is stored, so a refused request
// changes nothing.
func (s *Service) Upload(user, device string, req UploadRequest) (map[string]int, error) {
	var dk json.RawMessage
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		var err error
		if dk, err = checkDeviceKeys(user, device, req.DeviceKeys); err != nil {
			return nil, err
		}
	}
	otks, err := parseKeys(req.OneTimeKeys, "one_time_keys")
	if err != nil {
		return nil, err
	}
	fallback, err := parseKeys(req.FallbackKeys, "fallback_keys")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range fallback {
		if seen[k.Algorithm] {
			// fallback_keys: "at most one key per algorithm".
			return nil, mxerr.BadJSON("fallback_keys holds more than one " + k.Algorithm + " key")
		}
		seen[k.Algorithm] = true
	}

	if dk != nil {
		err := s.store.UpdateDeviceKeys(user, device, func(old json.RawMessage) (json.RawMessage, error) {
			return replaceDeviceKeys(old, dk)
		})
		if err != nil {
			return nil, err
		}
		s.changed(user)
	}
	if len(otks) > 0 {
		if err := s.store.AddOneTimeKeys(user, device, otks); err != nil {
			if errors.Is(err, ErrKeyConflict) {
				return nil, mxerr.InvalidParam("a one-time key with this ID was already uploaded with other content")
			}
			return nil, err
		}
	}
	if len(fallback) > 0 {
		if err := s.store.SetFallbackKeys(user, device, fallback); err != nil {
			return nil, err
		}
	}
	return s.Counts(user, device)
}

// Counts are the device's unclaimed one-time keys per algorithm.
// signed_curve25519 is always listed, even at 0: clients (matrix-js-sdk
// and the Rust SDK among them) read that key to decide to upload more.
func (s *Service) Counts(user, device string) (map[string]int, error) {
	c, err := s.store.OneTimeKeyCounts(user, device)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = map[string]int{}
	}
	if _, ok := c["signed_curve25519"]; !ok {
		c["signed_curve25519"] = 0
	}
	return c, nil
}

// UnusedFallback lists the algorithms of the device's unused fallback keys.
func (s *Service) UnusedFallback(user, device string) ([]string, error) {
	return s.store.UnusedFallbackAlgorithms(user, device)
}

// checkDeviceKeys validates uploaded device keys: the required fields,
// that they name the caller's user and device, and that the device signed
// them with its own ed25519 key.
func checkDeviceKeys(user, device string, raw json.RawMessage) (json.RawMessage, error) {
	var k deviceKeys
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, mxerr.BadJSON("device_keys: " + err.Error())
	}
	switch {
	case k.UserID == "" || k.DeviceID == "":
		return nil, mxerr.BadJSON("device_keys needs user_id and device_id")
	case len(k.Algorithms) == 0 || len(k.Keys) == 0 || len(k.Signatures) == 0:
		return nil, mxerr.BadJSON("device_keys needs algorithms, keys and signatures")
	case k.UserID != user:
		return nil, mxerr.InvalidParam("device_keys.user_id is not the uploading user")
	case k.DeviceID != device:
		return nil, mxerr.InvalidParam("device_keys.device_id is not the uploading device")
	}
	keyID := "ed25519:" + device
	pub, ok := k.Keys[keyID]
	if !ok {
		return nil, mxerr.BadJSON("device_keys.keys has no " + keyID + " key")
	}
	if err := verifySigned(raw, user, keyID, pub); err != nil {
		return nil, err
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		return nil, mxerr.BadJSON(err.Error())
	}
	return c.Bytes(), nil
}

// replaceDeviceKeys decides a device-keys upload against what is stored.
// A device's identity keys never change (a new identity is a new device,
// and peers would otherwise trust keys they never verified): an upload
// with other keys is refused. The same keys again are accepted, keeping
// signatures others uploaded for them (keys/signatures/upload).
func replaceDeviceKeys(old, upload json.RawMessage) (json.RawMessage, error) {
	if old == nil {
		return upload, nil
	}
	var o, n deviceKeys
	if json.Unmarshal(old, &o) != nil || json.Unmarshal(upload, &n) != nil {
		return nil, mxerr.BadJSON("device_keys")
	}
	if !maps.Equal(o.Keys, n.Keys) {
		return nil, mxerr.InvalidParam("this device already has different identity keys; they cannot change (log in as a new device)")
	}
	if sameKey(old, upload) && signaturesWithin(n.Signatures, o.Signatures) {
		return old, nil // a plain retry: no write, no device-list change
	}
	merged := upload
	for signer, sigs := range o.Signatures {
		for keyID, sig := range sigs {
			if _, ok := n.Signatures[signer][keyID]; ok {
				continue
			}
			var err error
			if merged, err = addSignature(merged, signer, keyID, sig); err != nil {
				return nil, err
			}
		}
	}
	return merged, nil
}

// parseKeys reads a one_time_keys / fallback_keys map.
func parseKeys(m map[string]json.RawMessage, field string) ([]OneTimeKey, error) {
	out := make([]OneTimeKey, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		alg, id, ok := strings.Cut(name, ":")
		if !ok || alg == "" || id == "" {
			return nil, mxerr.BadJSON(field + ": key name " + name + " is not <algorithm>:<key_id>")
		}
		v := bytes.TrimSpace(m[name])
		if len(v) == 0 || (v[0] != '{' && v[0] != '"') {
			return nil, mxerr.BadJSON(field + "." + name + " must be a key object or string")
		}
		if v[0] == '{' {
			var obj struct {
				Key string `json:"key"`
			}
			if err := json.Unmarshal(v, &obj); err != nil || obj.Key == "" {
				return nil, mxerr.BadJSON(field + "." + name + " needs a key")
			}
		}
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			return nil, mxerr.BadJSON(err.Error())
		}
		out = append(out, OneTimeKey{Algorithm: alg, KeyID: id, JSON: c.Bytes()})
	}
	return out, nil
}

// addSignature sets signatures[signer][keyID] = sig in a signed object.
func addSignature(obj json.RawMessage, signer, keyID, sig string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, err
	}
	var sigs map[string]map[string]string
	if raw, ok := m["signatures"]; ok {
		if err := json.Unmarshal(raw, &sigs); err != nil {
			return nil, err
		}
	}
	if sigs == nil {
		sigs = map[string]map[string]string{}
	}
	if sigs[signer] == nil {
		sigs[signer] = map[string]string{}
	}
	sigs[signer][keyID] = sig
	b, err := json.Marshal(sigs)
	if err != nil {
		return nil, err
	}
	m["signatures"] = b
	return json.Marshal(m)
}

// signaturesWithin reports whether every signature in a is also in b.
func signaturesWithin(a, b map[string]map[string]string) bool {
	for signer, sigs := range a {
		for id, sig := range sigs {
			if b[signer][id] != sig {
				return false
			}
		}
	}
	return true
}
