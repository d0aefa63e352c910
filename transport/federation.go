package transport

import (
	"encoding/base64"
	"encoding/json"
	"time"

	gmsl "github.com/matrix-org/gomatrixserverlib"

	"github.com/lichen-hs/lichen/core/signing"
)

// KeyValidity is how long other servers may cache our signing key
// (valid_until_ts). Synapse re-fetches daily; a day keeps a rotated key
// from being trusted long after.
const KeyValidity = 24 * time.Hour

// MountFederation registers what a federation peer can ask this server
// today: its signing key (server-server API "Publishing Keys",
// GET /_matrix/key/v2/server) and its name and version
// (GET /_matrix/federation/v1/version). Every other /_matrix/federation
// and /_matrix/key path answers 404 M_UNRECOGNIZED until federation is
// built.
func (s *Server) MountFederation(key signing.Key, name, version string, now func() time.Time) {
	keys := func(r *Request) (any, error) {
		body, err := json.Marshal(map[string]any{
			"server_name":     s.cfg.ServerName,
			"valid_until_ts":  now().Add(KeyValidity).UnixMilli(),
			"verify_keys":     map[string]any{key.ID: map[string]string{"key": base64.RawStdEncoding.EncodeToString(key.Public())}},
			"old_verify_keys": map[string]any{},
		})
		if err != nil {
			return nil, err
		}
		signed, err := gmsl.SignJSON(s.cfg.ServerName, gmsl.KeyID(key.ID), key.Private, body)
		if err != nil {
			return nil, err
		}
		return Raw(signed), nil
	}
	s.r.add("GET", "/_matrix/key/v2/server", authNone, keys)
	// The key ID form is deprecated (v1.x) but still asked by old servers;
	// the answer is the same document.
	s.r.add("GET", "/_matrix/key/v2/server/{keyId}", authNone, keys)
	s.r.add("GET", "/_matrix/federation/v1/version", authNone, func(r *Request) (any, error) {
		return map[string]any{"server": map[string]string{"name": name, "version": version}}, nil
	})
}
