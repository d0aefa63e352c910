package transport

import (
	"github.com/lichen-hs/lichen/core/accountdata"
	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/pushrules"
)

// MountUserData registers the endpoints of a user's own data: account data
// and room tags (spec "Client Config", "Room Tagging"), filters
// ("Filtering"), push rules ("Push Rules: API") and the user directory
// ("User Directory").
func (s *Server) MountUserData(ad *accountdata.Service, dir *accountdata.Directory) {
	body := func(r *Request) ([]byte, error) { return r.Body() }

	// Account data, global and per room.
	getAD := func(r *Request) (any, error) {
		c, err := ad.Get(r.Session.UserID, r.Param("userId"), r.Param("roomId"), r.Param("type"))
		if err != nil {
			return nil, err
		}
		return Raw(c), nil
	}
	putAD := func(r *Request) (any, error) {
		b, err := body(r)
		if err != nil {
			return nil, err
		}
		return map[string]any{}, ad.Set(r.Session.UserID, r.Param("userId"), r.Param("roomId"), r.Param("type"), b)
	}
	s.r.client("GET", "/user/{userId}/account_data/{type}", authRequired, getAD)
	s.r.client("PUT", "/user/{userId}/account_data/{type}", authRequired, putAD)
	s.r.client("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}", authRequired, getAD)
	s.r.client("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", authRequired, putAD)

	// Tags.
	s.r.client("GET", "/user/{userId}/rooms/{roomId}/tags", authRequired, func(r *Request) (any, error) {
		c, err := ad.Tags(r.Session.UserID, r.Param("userId"), r.Param("roomId"))
		if err != nil {
			return nil, err
		}
		return Raw(c), nil
	})
	s.r.client("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", authRequired, func(r *Request) (any, error) {
		b, err := body(r)
		if err != nil {
			return nil, err
		}
		return map[string]any{}, ad.PutTag(r.Session.UserID, r.Param("userId"), r.Param("roomId"), r.Param("tag"), b)
	})
	s.r.client("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", authRequired, func(r *Request) (any, error) {
		return map[string]any{}, ad.DeleteTag(r.Session.UserID, r.Param("userId"), r.Param("roomId"), r.Param("tag"))
	})

	// Filters.
	filters := ad.Filters()
	s.r.client("POST", "/user/{userId}/filter", authRequired, func(r *Request) (any, error) {
		b, err := body(r)
		if err != nil {
			return nil, err
		}
		id, err := filters.Create(r.Session.UserID, r.Param("userId"), b)
		if err != nil {
			return nil, err
		}
		return map[string]string{"filter_id": id}, nil
	})
	s.r.client("GET", "/user/{userId}/filter/{filterId}", authRequired, func(r *Request) (any, error) {
		c, err := filters.Get(r.Session.UserID, r.Param("userId"), r.Param("filterId"))
		if err != nil {
			return nil, err
		}
		return Raw(c), nil
	})

	s.mountPushRules(ad)

	// User directory.
	if dir != nil {
		s.r.client("POST", "/user_directory/search", authRequired, func(r *Request) (any, error) {
			var req struct {
				SearchTerm *string `json:"search_term"`
				Limit      int     `json:"limit"`
			}
			if err := r.Decode(&req); err != nil {
				return nil, err
			}
			if req.SearchTerm == nil {
				return nil, mxerr.MissingParam("search_term is required")
			}
			res, limited, err := dir.Search(r.Session.UserID, *req.SearchTerm, req.Limit)
			if err != nil {
				return nil, err
			}
			return map[string]any{"results": res, "limited": limited}, nil
		})
	}
}

// mountPushRules registers /pushrules (spec pushrules.yaml). Only the
// "global" scope exists.
func (s *Server) mountPushRules(ad *accountdata.Service) {
	user := func(r *Request) string { return r.Session.UserID }
	s.r.client("GET", "/pushrules/", authRequired, func(r *Request) (any, error) {
		return ad.PushRules(user(r))
	})
	s.r.client("GET", "/pushrules/global/", authRequired, func(r *Request) (any, error) {
		c, err := ad.PushRules(user(r))
		if err != nil {
			return nil, err
		}
		return c.Global, nil
	})
	const rule = "/pushrules/global/{kind}/{ruleId}"
	s.r.client("GET", rule, authRequired, func(r *Request) (any, error) {
		return ad.PushRule(user(r), r.Param("kind"), r.Param("ruleId"))
	})
	s.r.client("PUT", rule, authRequired, func(r *Request) (any, error) {
		b, err := r.Body()
		if err != nil {
			return nil, err
		}
		return map[string]any{}, ad.PutPushRule(user(r), r.Param("kind"), r.Param("ruleId"), b, r.Query("before"), r.Query("after"))
	})
	s.r.client("DELETE", rule, authRequired, func(r *Request) (any, error) {
		return map[string]any{}, ad.DeletePushRule(user(r), r.Param("kind"), r.Param("ruleId"))
	})
	s.r.client("GET", rule+"/enabled", authRequired, func(r *Request) (any, error) {
		on, err := ad.PushRuleEnabled(user(r), r.Param("kind"), r.Param("ruleId"))
		if err != nil {
			return nil, err
		}
		return map[string]bool{"enabled": on}, nil
	})
	s.r.client("PUT", rule+"/enabled", authRequired, func(r *Request) (any, error) {
		b, err := r.Body()
		if err != nil {
			return nil, err
		}
		on, err := pushrules.ParseEnabledBody(b)
		if err != nil {
			return nil, err
		}
		return map[string]any{}, ad.SetPushRuleEnabled(user(r), r.Param("kind"), r.Param("ruleId"), on)
	})
	s.r.client("GET", rule+"/actions", authRequired, func(r *Request) (any, error) {
		acts, err := ad.PushRuleActions(user(r), r.Param("kind"), r.Param("ruleId"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"actions": acts}, nil
	})
	s.r.client("PUT", rule+"/actions", authRequired, func(r *Request) (any, error) {
		b, err := r.Body()
		if err != nil {
			return nil, err
		}
		acts, err := pushrules.ParseActionsBody(b)
		if err != nil {
			return nil, err
		}
		return map[string]any{}, ad.SetPushRuleActions(user(r), r.Param("kind"), r.Param("ruleId"), acts)
	})
}

// FilterLoader resolves /sync's filter parameter for MountSync: inline JSON
// (a '{' first) is parsed, anything else is a stored filter ID of the user.
// Errors are 400 M_INVALID_PARAM, as for any bad query parameter (an
// unknown ID too: "No such filter", as Synapse answers).
func FilterLoader(filters *accountdata.Filters) func(user, idOrJSON string) (*filter.Filter, error) {
	return func(user, idOrJSON string) (*filter.Filter, error) {
		if filter.IsInlineJSON(idOrJSON) {
			f, err := filter.Parse([]byte(idOrJSON))
			if err != nil {
				return nil, filter.QueryError(err)
			}
			return f, nil
		}
		f, err := filters.Load(user, idOrJSON)
		if err != nil {
			if e := mxerr.As(err); e.Status == 404 {
				return nil, mxerr.InvalidParam("No such filter")
			}
			return nil, err
		}
		return f, nil
	}
}
