package transport

import (
	"github.com/lichen-hs/lichen/core/todevice"
)

// MountToDevice registers PUT /sendToDevice/{eventType}/{txnId} (spec
// "Send-to-Device messaging"). Delivery is through /sync. A nil service
// leaves the endpoint unrouted (404 M_UNRECOGNIZED).
func (s *Server) MountToDevice(td *todevice.Service) {
	if td == nil {
		return
	}
	s.r.client("PUT", "/sendToDevice/{eventType}/{txnId}", authRequired, func(r *Request) (any, error) {
		// A bucket of its own: end-to-end encryption sends bursts of
		// these (room keys, verification), which must not eat into the
		// room-message budget, nor the other way round.
		if err := s.limiter.allow("todevice", r.Session.UserID); err != nil {
			return nil, err
		}
		b, err := r.Body()
		if err != nil {
			return nil, err
		}
		msgs, err := todevice.ParseBody(b)
		if err != nil {
			return nil, err
		}
		from := todevice.Sender{User: r.Session.UserID, Device: r.Session.DeviceID}
		return map[string]any{}, td.Send(from, r.Param("eventType"), r.Param("txnId"), msgs)
	})
}
