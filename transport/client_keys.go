package transport

import (
	"encoding/json"

	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/e2ee"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// KeyChanges answers GET /keys/changes: users whose device lists changed
// between two sync tokens, and users no longer sharing a room.
type KeyChanges func(user, from, to string) (changed, left []string, err error)

// MountKeys registers the end-to-end encryption key endpoints (spec
// "End-to-End Encryption": keys.yaml and cross_signing.yaml). The handlers
// only decode and encode; the rules live in core/e2ee.
func (s *Server) MountKeys(k *e2ee.Service, a *accounts.Service, changes KeyChanges) {
	s.r.client("POST", "/keys/upload", authRequired, func(r *Request) (any, error) {
		var req e2ee.UploadRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		counts, err := k.Upload(r.Session.UserID, r.Session.DeviceID, req)
		if err != nil {
			return nil, err
		}
		return map[string]any{"one_time_key_counts": counts}, nil
	})
	s.r.client("POST", "/keys/query", authRequired, func(r *Request) (any, error) {
		var req struct {
			DeviceKeys map[string][]string `json:"device_keys"`
			Timeout    *int64              `json:"timeout"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if req.DeviceKeys == nil {
			return nil, mxerr.MissingParam("device_keys is required")
		}
		return k.Query(r.Session.UserID, req.DeviceKeys)
	})
	s.r.client("POST", "/keys/claim", authRequired, func(r *Request) (any, error) {
		var req struct {
			OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
			Timeout     *int64                       `json:"timeout"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if req.OneTimeKeys == nil {
			return nil, mxerr.MissingParam("one_time_keys is required")
		}
		return k.ClaimKeys(req.OneTimeKeys)
	})
	s.r.client("GET", "/keys/changes", authRequired, func(r *Request) (any, error) {
		from, to := r.Query("from"), r.Query("to")
		if from == "" {
			return nil, mxerr.MissingParam("from is required")
		}
		changed, left, err := changes(r.Session.UserID, from, to)
		if err != nil {
			return nil, err
		}
		return map[string][]string{"changed": changed, "left": left}, nil
	})
	s.r.client("POST", "/keys/device_signing/upload", authRequired, func(r *Request) (any, error) {
		body, err := r.Body()
		if err != nil {
			return nil, err
		}
		var req struct {
			e2ee.SigningKeysRequest
			Auth json.RawMessage `json:"auth"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		sess := accountSession(r)
		withUIA := func(write func() error) error {
			// The UIA session is bound to exactly these keys.
			return a.WithPassword(sess, "device_signing_upload\x00"+string(keysOnly(body)), req.Auth, write)
		}
		return uiaAnswer(map[string]any{}, k.UploadSigningKeys(r.Session.UserID, req.SigningKeysRequest, withUIA))
	})
	s.r.client("POST", "/keys/signatures/upload", authRequired, func(r *Request) (any, error) {
		var req map[string]map[string]json.RawMessage
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		failures, err := k.UploadSignatures(r.Session.UserID, req)
		if err != nil {
			return nil, err
		}
		return map[string]any{"failures": failures}, nil
	})
}

// keysOnly is the request body without its auth field, for binding a UIA
// session to the request.
func keysOnly(body []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	delete(m, "auth")
	b, _ := json.Marshal(m)
	return b
}
