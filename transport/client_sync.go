package transport

import (
	"time"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/syncer"
)

// maxSyncTimeout caps long-polls so proxies and boards don't hold
// connections forever.
const maxSyncTimeout = 5 * time.Minute

// MountSync registers GET /sync (spec: "Syncing"). loadFilter resolves the
// filter parameter (a stored filter ID or inline JSON).
func (s *Server) MountSync(e *syncer.Engine, loadFilter func(user, idOrJSON string) (*filter.Filter, error)) {
	s.r.client("GET", "/sync", authRequired, func(r *Request) (any, error) {
		timeout, err := r.QueryInt("timeout", 0)
		if err != nil {
			return nil, err
		}
		d := min(time.Duration(max(timeout, 0))*time.Millisecond, maxSyncTimeout)
		req := syncer.Request{
			User: r.Session.UserID, Device: r.Session.DeviceID,
			Since: r.Query("since"), Timeout: d,
			FullState: r.Query("full_state") == "true", SetPresence: r.Query("set_presence"),
		}
		switch req.SetPresence {
		case "", "online", "offline", "unavailable":
		default:
			return nil, mxerr.InvalidParam("set_presence must be online, offline or unavailable")
		}
		if fs := r.Query("filter"); fs != "" {
			if filter.IsInlineJSON(fs) {
				f, err := filter.Parse([]byte(fs))
				if err != nil {
					return nil, filter.QueryError(err)
				}
				req.Filter = f
			} else if loadFilter != nil {
				f, err := loadFilter(r.Session.UserID, fs)
				if err != nil {
					return nil, err
				}
				req.Filter = f
			}
		}
		return e.Sync(req)
	})
}
