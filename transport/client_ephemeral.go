package transport

import (
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/presence"
	"github.com/lichen-hs/lichen/core/receipts"
	"github.com/lichen-hs/lichen/core/typing"
)

// MountEphemeral registers receipts and read markers (spec "Receipts",
// "Read and unread markers"), typing ("Typing Notifications") and presence
// ("Presence"). A nil service leaves its endpoints unrouted (404
// M_UNRECOGNIZED).
func (s *Server) MountEphemeral(rc *receipts.Service, ty *typing.Service, pr *presence.Service) {
	if rc != nil {
		s.r.client("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", authRequired, func(r *Request) (any, error) {
			b, err := r.Body()
			if err != nil {
				return nil, err
			}
			thread, err := receipts.ParseBody(b)
			if err != nil {
				return nil, err
			}
			return map[string]any{}, rc.Post(r.Session.UserID, r.Param("roomId"), r.Param("receiptType"), r.Param("eventId"), thread)
		})
		s.r.client("POST", "/rooms/{roomId}/read_markers", authRequired, func(r *Request) (any, error) {
			var req struct {
				FullyRead   string `json:"m.fully_read"`
				Read        string `json:"m.read"`
				ReadPrivate string `json:"m.read.private"`
			}
			if err := r.Decode(&req); err != nil {
				return nil, err
			}
			return map[string]any{}, rc.SetReadMarkers(r.Session.UserID, r.Param("roomId"), req.FullyRead, req.Read, req.ReadPrivate)
		})
	}

	if ty != nil {
		s.r.client("PUT", "/rooms/{roomId}/typing/{userId}", authRequired, func(r *Request) (any, error) {
			var req struct {
				Typing  *bool    `json:"typing"`
				Timeout *float64 `json:"timeout"`
			}
			if err := r.Decode(&req); err != nil {
				return nil, err
			}
			if req.Typing == nil {
				return nil, mxerr.MissingParam("typing is required")
			}
			var d time.Duration
			if req.Timeout != nil && *req.Timeout > 0 {
				d = time.Duration(min(*req.Timeout, float64(typing.MaxTimeout/time.Millisecond))) * time.Millisecond
			}
			return map[string]any{}, ty.Set(r.Session.UserID, r.Param("userId"), r.Param("roomId"), *req.Typing, d)
		})
	}

	if pr != nil {
		s.r.client("PUT", "/presence/{userId}/status", authRequired, func(r *Request) (any, error) {
			b, err := r.Body()
			if err != nil {
				return nil, err
			}
			state, msg, err := presence.ParseStatusBody(b)
			if err != nil {
				return nil, err
			}
			return map[string]any{}, pr.Set(r.Session.UserID, r.Param("userId"), state, msg)
		})
		s.r.client("GET", "/presence/{userId}/status", authRequired, func(r *Request) (any, error) {
			return pr.Get(r.Session.UserID, r.Param("userId"))
		})
	}
}
