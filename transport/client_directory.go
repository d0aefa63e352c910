package transport

import (
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/rooms"
)

// mountDirectory registers room aliases and the public room directory
// (spec: "Room aliases", "Listing rooms").
func (s *Server) mountDirectory(rs *rooms.Service) {
	s.r.client("GET", "/directory/room/{roomAlias}", authNone, func(r *Request) (any, error) {
		id, servers, err := rs.ResolveAlias(r.Param("roomAlias"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"room_id": id, "servers": servers}, nil
	})
	s.r.client("PUT", "/directory/room/{roomAlias}", authRequired, func(r *Request) (any, error) {
		var req struct {
			RoomID string `json:"room_id"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if req.RoomID == "" {
			return nil, mxerr.MissingParam("room_id is required")
		}
		return map[string]any{}, rs.PutAlias(r.Session.UserID, r.Param("roomAlias"), req.RoomID)
	})
	s.r.client("DELETE", "/directory/room/{roomAlias}", authRequired, func(r *Request) (any, error) {
		return map[string]any{}, rs.DeleteAlias(r.Session.UserID, r.Session.Admin, r.Param("roomAlias"))
	})
	s.r.client("GET", "/rooms/{roomId}/aliases", authRequired, func(r *Request) (any, error) {
		a, err := rs.Aliases(r.Session.UserID, r.Param("roomId"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"aliases": a}, nil
	})
	s.r.client("GET", "/directory/list/room/{roomId}", authNone, func(r *Request) (any, error) {
		v, err := rs.Visibility(r.Param("roomId"))
		if err != nil {
			return nil, err
		}
		return map[string]string{"visibility": v}, nil
	})
	s.r.client("PUT", "/directory/list/room/{roomId}", authRequired, func(r *Request) (any, error) {
		var req struct {
			Visibility string `json:"visibility"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return map[string]any{}, rs.SetVisibility(r.Session.UserID, r.Session.Admin, r.Param("roomId"), req.Visibility)
	})
	list := func(r *Request, limit int, since, term string) (any, error) {
		chunk, next, prev, total, err := rs.PublicRooms(limit, since, term)
		if err != nil {
			return nil, err
		}
		out := map[string]any{"chunk": chunk, "total_room_count_estimate": total}
		if next != "" {
			out["next_batch"] = next
		}
		if prev != "" {
			out["prev_batch"] = prev
		}
		return out, nil
	}
	s.r.client("GET", "/publicRooms", authOptional, func(r *Request) (any, error) {
		if srv := r.Query("server"); srv != "" && srv != rs.ServerName() {
			return nil, mxerr.NotFound("federation is not available")
		}
		limit, err := r.QueryInt("limit", 0)
		if err != nil {
			return nil, err
		}
		return list(r, limit, r.Query("since"), "")
	})
	s.r.client("POST", "/publicRooms", authRequired, func(r *Request) (any, error) {
		var req struct {
			Limit  int    `json:"limit"`
			Since  string `json:"since"`
			Filter struct {
				Term string `json:"generic_search_term"`
			} `json:"filter"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if srv := r.Query("server"); srv != "" && srv != rs.ServerName() {
			return nil, mxerr.NotFound("federation is not available")
		}
		return list(r, req.Limit, req.Since, req.Filter.Term)
	})
}
