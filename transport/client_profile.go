package transport

import (
	"encoding/json"

	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// mountProfile registers the profile endpoints (spec: "Profiles"; per-key
// GET/PUT/DELETE as generalised in Matrix 1.16). Reading a profile needs no
// token, as Synapse's default allows.
func (s *Server) mountProfile(a *accounts.Service) {
	s.r.client("GET", "/profile/{userId}", authOptional, func(r *Request) (any, error) {
		return a.GetProfile(r.Param("userId"))
	})
	s.r.client("GET", "/profile/{userId}/{keyName}", authOptional, func(r *Request) (any, error) {
		return a.GetProfileField(r.Param("userId"), r.Param("keyName"))
	})
	s.r.client("PUT", "/profile/{userId}/{keyName}", authRequired, func(r *Request) (any, error) {
		body, err := r.Body()
		if err != nil {
			return nil, err
		}
		if len(body) == 0 || body[0] != '{' {
			return nil, mxerr.NotJSON("request body must be a JSON object")
		}
		if err := a.SetProfileField(accountSession(r), r.Param("userId"), r.Param("keyName"), json.RawMessage(body)); err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	})
	s.r.client("DELETE", "/profile/{userId}/{keyName}", authRequired, func(r *Request) (any, error) {
		if err := a.DeleteProfileField(accountSession(r), r.Param("userId"), r.Param("keyName")); err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	})
}
