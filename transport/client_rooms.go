package transport

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/rooms"
)

// MountRooms registers the room endpoints (spec: "Rooms", "Room
// membership", "Sending events", "Getting events for a room", "Room
// aliases", "Listing rooms").
func (s *Server) MountRooms(rs *rooms.Service) {
	viewer := func(r *Request) rooms.Viewer { return rooms.Viewer{User: r.Session.UserID, Device: r.Session.DeviceID} }
	events := func(r *Request, recs []rooms.EventRecord) []rooms.ClientEvent {
		return rs.ClientEvents(recs, viewer(r))
	}

	s.r.client("POST", "/createRoom", authRequired, func(r *Request) (any, error) {
		var req rooms.CreateRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		id, err := rs.CreateRoom(r.Session.UserID, req)
		if err != nil {
			return nil, err
		}
		return map[string]string{"room_id": id}, nil
	})

	join := func(r *Request) (any, error) {
		// The body's reason and third_party_signed are parameters; any
		// other key goes into the member event (rooms.Service.Join).
		var req map[string]json.RawMessage
		if len(r.body) > 0 {
			obj, err := r.Object() // refuses floats, which canonical JSON cannot sign
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(obj, &req); err != nil {
				return nil, mxerr.BadJSON(err.Error())
			}
		}
		var reason string
		if raw, ok := req["reason"]; ok {
			if err := json.Unmarshal(raw, &reason); err != nil {
				return nil, mxerr.BadJSON("reason must be a string")
			}
		}
		var extra map[string]any
		for k, v := range req {
			if k == "reason" || k == "third_party_signed" {
				continue
			}
			if extra == nil {
				extra = map[string]any{}
			}
			extra[k] = v
		}
		target := r.Param("roomIdOrAlias")
		if target == "" {
			target = r.Param("roomId")
		}
		id, err := rs.Join(r.Session.UserID, target, reason, extra)
		if err != nil {
			return nil, err
		}
		return map[string]string{"room_id": id}, nil
	}
	s.r.client("POST", "/join/{roomIdOrAlias}", authRequired, join)
	s.r.client("POST", "/rooms/{roomId}/join", authRequired, join)

	s.r.client("POST", "/rooms/{roomId}/leave", authRequired, func(r *Request) (any, error) {
		var req struct {
			Reason string `json:"reason"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return map[string]any{}, rs.Leave(r.Session.UserID, r.Param("roomId"), req.Reason)
	})
	s.r.client("POST", "/rooms/{roomId}/forget", authRequired, func(r *Request) (any, error) {
		return map[string]any{}, rs.Forget(r.Session.UserID, r.Param("roomId"))
	})
	s.r.client("POST", "/rooms/{roomId}/invite", authRequired, func(r *Request) (any, error) {
		var req struct {
			UserID string `json:"user_id"`
			Reason string `json:"reason"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if req.UserID == "" {
			return nil, mxerr.MissingParam("user_id is required")
		}
		return map[string]any{}, rs.Invite(r.Session.UserID, r.Param("roomId"), req.UserID, req.Reason, false)
	})
	for _, action := range []string{"kick", "ban", "unban"} {
		action := action
		s.r.client("POST", "/rooms/{roomId}/"+action, authRequired, func(r *Request) (any, error) {
			var req struct {
				UserID string `json:"user_id"`
				Reason string `json:"reason"`
			}
			if err := r.Decode(&req); err != nil {
				return nil, err
			}
			if req.UserID == "" {
				return nil, mxerr.MissingParam("user_id is required")
			}
			return map[string]any{}, rs.SetMembership(r.Session.UserID, r.Param("roomId"), req.UserID, action, req.Reason)
		})
	}
	s.r.client("GET", "/joined_rooms", authRequired, func(r *Request) (any, error) {
		ids, err := rs.JoinedRooms(r.Session.UserID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"joined_rooms": ids}, nil
	})

	s.r.client("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", authRequired, func(r *Request) (any, error) {
		if err := s.limiter.allow("send", r.Session.UserID); err != nil {
			return nil, err
		}
		content, err := r.Object()
		if err != nil {
			return nil, err
		}
		id, err := rs.Send(rooms.Sender{User: r.Session.UserID, Device: r.Session.DeviceID},
			r.Param("roomId"), r.Param("eventType"), r.Param("txnId"), content)
		if err != nil {
			return nil, err
		}
		return map[string]string{"event_id": id}, nil
	})
	putState := func(r *Request) (any, error) {
		content, err := r.Object()
		if err != nil {
			return nil, err
		}
		key := r.Param("stateKey")
		if strings.IndexByte(key, 0) >= 0 {
			return nil, mxerr.InvalidParam("state keys cannot contain NUL")
		}
		id, err := rs.SetState(r.Session.UserID, r.Param("roomId"), r.Param("eventType"), key, content)
		if err != nil {
			return nil, err
		}
		return map[string]string{"event_id": id}, nil
	}
	s.r.client("PUT", "/rooms/{roomId}/state/{eventType}", authRequired, putState)
	s.r.client("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey...}", authRequired, putState)
	getState := func(r *Request) (any, error) {
		rec, err := rs.StateEvent(r.Session.UserID, r.Param("roomId"), r.Param("eventType"), r.Param("stateKey"))
		if err != nil {
			return nil, err
		}
		if r.Query("format") == "event" {
			return rs.ClientEvent(&rec, viewer(r), time.Now()), nil
		}
		var f struct {
			Content json.RawMessage `json:"content"`
		}
		_ = json.Unmarshal(rec.JSON, &f)
		return Raw(f.Content), nil
	}
	s.r.client("GET", "/rooms/{roomId}/state/{eventType}", authRequired, getState)
	s.r.client("GET", "/rooms/{roomId}/state/{eventType}/{stateKey...}", authRequired, getState)
	s.r.client("GET", "/rooms/{roomId}/state", authRequired, func(r *Request) (any, error) {
		recs, err := rs.State(r.Session.UserID, r.Param("roomId"))
		if err != nil {
			return nil, err
		}
		return events(r, recs), nil
	})
	s.r.client("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", authRequired, func(r *Request) (any, error) {
		var req struct {
			Reason string `json:"reason"`
		}
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		id, err := rs.Redact(rooms.Sender{User: r.Session.UserID, Device: r.Session.DeviceID},
			r.Param("roomId"), r.Param("eventId"), r.Param("txnId"), req.Reason)
		if err != nil {
			return nil, err
		}
		return map[string]string{"event_id": id}, nil
	})
	s.r.client("GET", "/rooms/{roomId}/event/{eventId}", authRequired, func(r *Request) (any, error) {
		rec, err := rs.Event(r.Session.UserID, r.Param("roomId"), r.Param("eventId"))
		if err != nil {
			return nil, err
		}
		return rs.ClientEvent(&rec, viewer(r), time.Now()), nil
	})
	s.r.client("GET", "/rooms/{roomId}/messages", authRequired, func(r *Request) (any, error) {
		limit, err := r.QueryInt("limit", 10)
		if err != nil {
			return nil, err
		}
		dir := r.Query("dir")
		if dir != "b" && dir != "f" {
			if dir == "" {
				dir = "b" // v1.3+ made dir required; older clients omit it
			} else {
				return nil, mxerr.InvalidParam("dir must be b or f")
			}
		}
		req := rooms.MessagesRequest{From: r.Query("from"), To: r.Query("to"), Backward: dir == "b", Limit: limit}
		if fs := r.Query("filter"); fs != "" {
			f, err := filter.ParseRoomEventFilter([]byte(fs))
			if err != nil {
				return nil, filter.QueryError(err)
			}
			req.Allow = rooms.FilterAllows(f)
			req.LazyMembers, _ = f.LazyLoad()
			if req.Limit == 10 && f.Limit != nil {
				req.Limit = *f.Limit
			}
		}
		resp, err := rs.Messages(r.Session.UserID, r.Param("roomId"), req)
		if err != nil {
			return nil, err
		}
		out := map[string]any{"chunk": events(r, resp.Chunk), "start": resp.Start}
		if resp.End != "" {
			out["end"] = resp.End
		}
		if len(resp.State) > 0 {
			out["state"] = events(r, resp.State)
		}
		return out, nil
	})
	s.r.client("GET", "/rooms/{roomId}/context/{eventId}", authRequired, func(r *Request) (any, error) {
		limit, err := r.QueryInt("limit", 10)
		if err != nil {
			return nil, err
		}
		var allow func(*rooms.EventRecord) bool
		lazy := false
		if fs := r.Query("filter"); fs != "" {
			f, err := filter.ParseRoomEventFilter([]byte(fs))
			if err != nil {
				return nil, filter.QueryError(err)
			}
			allow = rooms.FilterAllows(f)
			lazy, _ = f.LazyLoad()
		}
		resp, err := rs.Context(r.Session.UserID, r.Param("roomId"), r.Param("eventId"), limit, allow, lazy)
		if err != nil {
			return nil, err
		}
		return map[string]any{
			"event":         rs.ClientEvent(&resp.Event, viewer(r), time.Now()),
			"events_before": events(r, resp.Before),
			"events_after":  events(r, resp.After),
			"state":         events(r, resp.State),
			"start":         resp.Start,
			"end":           resp.End,
		}, nil
	})
	s.r.client("GET", "/rooms/{roomId}/members", authRequired, func(r *Request) (any, error) {
		recs, err := rs.Members(r.Session.UserID, r.Param("roomId"), rooms.MembersRequest{
			At: r.Query("at"), Membership: r.Query("membership"), NotMembership: r.Query("not_membership")})
		if err != nil {
			return nil, err
		}
		return map[string]any{"chunk": events(r, recs)}, nil
	})
	s.r.client("GET", "/rooms/{roomId}/joined_members", authRequired, func(r *Request) (any, error) {
		m, err := rs.JoinedMembers(r.Session.UserID, r.Param("roomId"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"joined": m}, nil
	})
	s.mountDirectory(rs)
}
