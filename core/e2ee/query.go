package e2ee

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// QueryResponse is the body of POST /keys/query (keys.yaml queryKeys).
type QueryResponse struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
	Failures        map[string]json.RawMessage            `json:"failures"`
}

// federationFailure is what an unreachable server is reported as: there is
// no federation yet, so every remote server is unreachable.
var federationFailure = json.RawMessage(`{"status":503,"message":"federation is not available on this server"}`)

// Query answers keys/query for requester: for each user, the listed devices'
// keys (all devices for an empty list) with unsigned.device_display_name,
// and the user's cross-signing keys; the user-signing key only to its
// owner. Unknown users and devices are left out, not errors.
func (s *Service) Query(requester string, want map[string][]string) (*QueryResponse, error) {
	resp := &QueryResponse{
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
		Failures:        map[string]json.RawMessage{},
	}
	for _, user := range slices.Sorted(maps.Keys(want)) {
		if !validUser(user) {
			return nil, mxerr.InvalidParam("device_keys: invalid user ID " + user)
		}
		if !s.isLocal(user) {
			_, server, _ := strings.Cut(user, ":")
			resp.Failures[server] = federationFailure
			continue
		}
		all, err := s.store.UserDeviceKeys(user)
		if err != nil {
			return nil, err
		}
		devs := map[string]json.RawMessage{}
		pick := want[user]
		for dev, raw := range all {
			if len(pick) > 0 && !slices.Contains(pick, dev) {
				continue
			}
			withName, err := s.withDisplayName(user, dev, raw)
			if err != nil {
				return nil, err
			}
			devs[dev] = withName
		}
		resp.DeviceKeys[user] = devs
		xs, err := s.store.CrossSigningKeys(user)
		if err != nil {
			return nil, err
		}
		if k, ok := xs[UsageMaster]; ok {
			resp.MasterKeys[user] = visibleSignatures(k, user, requester)
		}
		if k, ok := xs[UsageSelfSigning]; ok {
			resp.SelfSigningKeys[user] = k
		}
		if k, ok := xs[UsageUserSigning]; ok && user == requester {
			resp.UserSigningKeys[user] = k
		}
	}
	return resp, nil
}

// withDisplayName adds unsigned.device_display_name (not covered by the
// signatures, so the signed object is otherwise returned as uploaded).
func (s *Service) withDisplayName(user, dev string, raw json.RawMessage) (json.RawMessage, error) {
	if s.displayName == nil {
		return raw, nil
	}
	name, ok := s.displayName(user, dev)
	if !ok || name == "" {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	unsigned := map[string]json.RawMessage{}
	if u, ok := m["unsigned"]; ok {
		_ = json.Unmarshal(u, &unsigned)
	}
	n, _ := json.Marshal(name)
	unsigned["device_display_name"] = n
	m["unsigned"], _ = json.Marshal(unsigned)
	return json.Marshal(m)
}

// visibleSignatures keeps, on a user's master key, the owner's own
// signatures and the requester's: a user-signing signature says whom the
// signer verified, which is the signer's business (keys.yaml: "the
// signatures ... that the requesting user is allowed to see").
func visibleSignatures(key json.RawMessage, owner, requester string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(key, &m) != nil {
		return key
	}
	var sigs map[string]json.RawMessage
	if json.Unmarshal(m["signatures"], &sigs) != nil {
		return key
	}
	changed := false
	for signer := range sigs {
		if signer != owner && signer != requester {
			delete(sigs, signer)
			changed = true
		}
	}
	if !changed {
		return key
	}
	m["signatures"], _ = json.Marshal(sigs)
	out, err := json.Marshal(m)
	if err != nil {
		return key
	}
	return out
}

// ClaimResponse is the body of POST /keys/claim.
type ClaimResponse struct {
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	Failures    map[string]json.RawMessage                       `json:"failures"`
}

// ClaimKeys claims one key per requested device (keys.yaml claimKeys): the
// oldest one-time key of the algorithm, else the fallback key. The store
// does it in one transaction, so no key is ever handed out twice, even to
// concurrent claimers.
func (s *Service) ClaimKeys(want map[string]map[string]string) (*ClaimResponse, error) {
	resp := &ClaimResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}, Failures: map[string]json.RawMessage{}}
	var claims []Claim
	for _, user := range slices.Sorted(maps.Keys(want)) {
		if !validUser(user) {
			return nil, mxerr.InvalidParam("one_time_keys: invalid user ID " + user)
		}
		if !s.isLocal(user) {
			_, server, _ := strings.Cut(user, ":")
			resp.Failures[server] = federationFailure
			continue
		}
		for _, dev := range slices.Sorted(maps.Keys(want[user])) {
			alg := want[user][dev]
			if alg == "" {
				return nil, mxerr.BadJSON("one_time_keys: empty algorithm for " + user + " " + dev)
			}
			claims = append(claims, Claim{User: user, Device: dev, Algorithm: alg})
		}
	}
	got, err := s.store.ClaimKeys(claims)
	if err != nil {
		return nil, err
	}
	for _, c := range got {
		if resp.OneTimeKeys[c.User] == nil {
			resp.OneTimeKeys[c.User] = map[string]map[string]json.RawMessage{}
		}
		resp.OneTimeKeys[c.User][c.Device] = map[string]json.RawMessage{c.Key.Name(): c.Key.JSON}
	}
	return resp, nil
}
