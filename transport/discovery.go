package transport

import "github.com/lichen-hs/lichen/core/rooms"

// Discovery endpoints (spec: client-server-api "Server Discovery",
// "API Standards"/versions, "Capabilities negotiation").

// specVersions are the versions whose required parts Lichen serves.
var specVersions = []string{"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6"}

func (s *Server) mountDiscovery() {
	s.r.add("GET", "/_matrix/client/versions", authNone, func(r *Request) (any, error) {
		return map[string]any{
			"versions":          specVersions,
			"unstable_features": map[string]bool{},
		}, nil
	})
	s.r.add("GET", "/.well-known/matrix/client", authNone, func(r *Request) (any, error) {
		base := s.cfg.PublicBaseURL
		if base == "" {
			base = "http://" + string(r.Ctx.Host())
		}
		return map[string]any{"m.homeserver": map[string]string{"base_url": base}}, nil
	})
	s.r.client("GET", "/capabilities", authRequired, func(r *Request) (any, error) {
		versions := map[string]string{}
		for _, v := range rooms.SupportedVersions {
			versions[v] = "stable"
		}
		def := s.cfg.DefaultRoomVersion
		if def == "" {
			def = rooms.DefaultRoomVersion
		}
		return map[string]any{"capabilities": map[string]any{
			"m.room_versions":   map[string]any{"default": def, "available": versions},
			"m.change_password": map[string]bool{"enabled": true},
			"m.set_displayname": map[string]bool{"enabled": true},
			"m.set_avatar_url":  map[string]bool{"enabled": true},
			"m.3pid_changes":    map[string]bool{"enabled": false},
			"m.get_login_token": map[string]bool{"enabled": false},
			"m.profile_fields":  map[string]any{"enabled": true},
		}}, nil
	})
}
