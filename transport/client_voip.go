package transport

import (
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/voip"
)

// VoIP is what the VoIP endpoints serve: TURN URIs and the shared secret
// of the TURN REST credential scheme (core/voip), for the embedded relay
// or an external TURN server.
type VoIP struct {
	URIs        []string
	STUNURIs    []string
	Secret      []byte
	TTL         time.Duration
	AllowGuests bool
	Now         func() time.Time
}

// MountVoIP registers /voip/turnServer (spec voip.yaml; with no TURN
// server configured it answers {} like Synapse, which clients take as "no
// TURN"), and the seed's /voip/config and /voip/turnServer/guest. v is nil
// when nothing is configured.
func (s *Server) MountVoIP(v *VoIP) {
	now := time.Now
	if v != nil && v.Now != nil {
		now = v.Now
	}
	creds := func(user string) map[string]any {
		u, p, ttl := voip.Credentials(v.Secret, user, v.TTL, now())
		return map[string]any{"username": u, "password": p, "uris": v.URIs, "ttl": ttl}
	}
	configured := v != nil && len(v.URIs) > 0 && len(v.Secret) > 0
	s.r.client("GET", "/voip/turnServer", authRequired, func(r *Request) (any, error) {
		if !configured {
			return map[string]any{}, nil
		}
		return creds(r.Session.UserID), nil
	})
	s.r.client("GET", "/voip/turnServer/guest", authNone, func(r *Request) (any, error) {
		if !configured || !v.AllowGuests {
			return nil, mxerr.NotFound("VoIP/TURN service is not configured")
		}
		return creds("guest"), nil
	})
	s.r.client("GET", "/voip/config", authNone, func(r *Request) (any, error) {
		out := map[string]any{"turn_servers": nil, "stun_servers": nil}
		if v != nil && len(v.STUNURIs) > 0 {
			out["stun_servers"] = v.STUNURIs
		}
		// Without an access token only guests may get credentials.
		if configured && v.AllowGuests {
			out["turn_servers"] = []any{creds("guest")}
		}
		return out, nil
	})
}
