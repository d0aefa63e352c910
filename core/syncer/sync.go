package syncer

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/pushrules"
	"github.com/lichen-hs/lichen/core/rooms"
)

// Sources are the non-room streams; a nil function is a stream not served.
type Sources struct {
	// AccountData returns the user's global and per-room account data
	// changed in (since, upto] (everything when since is 0), as {type, content} events.
	AccountData func(user string, since, upto uint64) (global []json.RawMessage, perRoom map[string][]json.RawMessage, err error)
	// Receipts returns the content of an m.receipt event for the room's
	// receipts in (since, upto], or nil.
	Receipts func(viewer, roomID string, since, upto uint64) (json.RawMessage, error)
	// Typing returns who types in the room and the ephemeral position of
	// the room's last typing change.
	Typing func(roomID string) ([]string, uint64)
	// Presence returns m.presence events of peers changed after sinceEph.
	Presence func(viewer string, peers []string, sinceEph uint64) []json.RawMessage
	// SetPresence applies set_presence from the sync request.
	SetPresence func(user, state string)
	// Rules is the user's effective push rule set, for unread counts.
	Rules func(user string) *pushrules.Ruleset
	// Ignored is the set of users the user ignores (m.ignored_user_list).
	Ignored func(user string) map[string]bool
	// ReadPos is the stream position of the event the user's latest
	// m.read or m.read.private receipt in the room points at (0: none).
	ReadPos func(user, roomID string) uint64
	// ToDevice returns the device's to-device messages with positions in
	// (since, upto], oldest first, at most limit of them, with the
	// position of the last one returned and whether more remain. The
	// messages at or before since were delivered (the client syncs from
	// a token it received) and are deleted first.
	ToDevice func(user, device string, since, upto uint64, limit int) (events []json.RawMessage, last uint64, more bool, err error)
	// DeviceListChanges lists the users whose device lists changed at a
	// position in (since, upto].
	DeviceListChanges func(since, upto uint64) ([]string, error)
	// KeyCounts returns the device's unclaimed one-time key counts per
	// algorithm and the algorithms of its unused fallback keys.
	KeyCounts func(user, device string) (map[string]int, []string, error)
}

// PosSource is the committed position of the persistent streams.
type PosSource interface{ Pos() uint64 }

// Engine answers /sync.
type Engine struct {
	rooms *rooms.Service
	store rooms.Store
	pos   PosSource
	hub   *notify.Hub
	src   Sources

	unreadC unreadCache
}

// New makes the sync engine.
func New(rs *rooms.Service, pos PosSource, hub *notify.Hub, src Sources) *Engine {
	return &Engine{rooms: rs, store: rs.Store(), pos: pos, hub: hub, src: src,
		unreadC: unreadCache{m: map[[2]string]*unreadEntry{}}}
}

// Request is a /sync request.
type Request struct {
	User, Device string
	Since        string
	Timeout      time.Duration
	FullState    bool
	SetPresence  string
	Filter       *filter.Filter

	ignored map[string]bool
}

// Response is the /sync body (spec: sync.yaml).
type Response struct {
	NextBatch   string         `json:"next_batch"`
	Rooms       RoomsResponse  `json:"rooms"`
	AccountData EventList      `json:"account_data"`
	Presence    EventList      `json:"presence"`
	ToDevice    EventList      `json:"to_device"`
	DeviceLists DeviceLists    `json:"device_lists"`
	OTKCounts   map[string]int `json:"device_one_time_keys_count"`
	Fallback    []string       `json:"device_unused_fallback_key_types"`
	empty       bool
}

// DeviceLists is filled by the end-to-end encryption issue.
type DeviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// EventList is {"events": [...]}.
type EventList struct {
	Events []json.RawMessage `json:"events"`
}

// RoomsResponse groups rooms by the user's membership.
type RoomsResponse struct {
	Join   map[string]*JoinedRoom  `json:"join"`
	Invite map[string]*InvitedRoom `json:"invite"`
	Leave  map[string]*LeftRoom    `json:"leave"`
	Knock  map[string]any          `json:"knock"`
}

// JoinedRoom is a joined room's update.
type JoinedRoom struct {
	Summary     *Summary        `json:"summary,omitempty"`
	State       ClientEventList `json:"state"`
	Timeline    Timeline        `json:"timeline"`
	Ephemeral   EventList       `json:"ephemeral"`
	AccountData EventList       `json:"account_data"`
	Unread      *UnreadCounts   `json:"unread_notifications,omitempty"`
}

// UnreadCounts is unread_notifications.
type UnreadCounts struct {
	Highlight    int `json:"highlight_count"`
	Notification int `json:"notification_count"`
}

// Summary is the room summary used for naming (spec: "Calculating the display name for a room").
type Summary struct {
	Heroes  []string `json:"m.heroes"`
	Joined  int      `json:"m.joined_member_count"`
	Invited int      `json:"m.invited_member_count"`
}

// ClientEventList is {"events": [ClientEvent...]}.
type ClientEventList struct {
	Events []rooms.ClientEvent `json:"events"`
}

// Timeline is a room's timeline slice.
type Timeline struct {
	Events    []rooms.ClientEvent `json:"events"`
	Limited   bool                `json:"limited"`
	PrevBatch string              `json:"prev_batch,omitempty"`
}

// InvitedRoom carries the stripped state of an invite.
type InvitedRoom struct {
	InviteState struct {
		Events []StrippedEvent `json:"events"`
	} `json:"invite_state"`
}

// StrippedEvent is a StrippedStateEvent.
type StrippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// LeftRoom is a room the user left or was removed from.
type LeftRoom struct {
	State       ClientEventList `json:"state"`
	Timeline    Timeline        `json:"timeline"`
	AccountData EventList       `json:"account_data"`
}

// Sync computes the response, waiting up to req.Timeout for something new
// when since is given and nothing has changed.
func (e *Engine) Sync(req Request) (*Response, error) {
	since, err := ParseToken(req.Since)
	if err != nil {
		return nil, err
	}
	if e.src.SetPresence != nil {
		// set_presence defaults to "online" (sync.yaml); the source
		// applies the default for "".
		e.src.SetPresence(req.User, req.SetPresence)
	}
	deadline := time.Now().Add(req.Timeout)
	for {
		// Watch before looking, so a commit between the look and the wait
		// still wakes us.
		watch := e.hub.Watch(req.User)
		resp, err := e.build(req, since)
		if err != nil {
			return nil, err
		}
		wait := time.Until(deadline)
		if !resp.empty || req.Since == "" || req.FullState || wait <= 0 {
			return resp, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-watch:
			timer.Stop()
		case <-timer.C:
		case <-e.hub.Done():
			timer.Stop()
			return resp, nil
		}
	}
}

func newResponse() *Response {
	return &Response{
		Rooms: RoomsResponse{Join: map[string]*JoinedRoom{}, Invite: map[string]*InvitedRoom{},
			Leave: map[string]*LeftRoom{}, Knock: map[string]any{}},
		AccountData: EventList{Events: []json.RawMessage{}},
		Presence:    EventList{Events: []json.RawMessage{}},
		ToDevice:    EventList{Events: []json.RawMessage{}},
		DeviceLists: DeviceLists{Changed: []string{}, Left: []string{}},
		OTKCounts:   map[string]int{},
		Fallback:    []string{},
		empty:       true,
	}
}

// maxToDevice caps the to-device messages of one sync response, so a
// device back from a week offline gets its backlog over a few syncs.
const maxToDevice = 100

func (e *Engine) build(req Request, since Token) (*Response, error) {
	initial := req.Since == ""
	// The ephemeral position is read before typing and presence are, so a
	// change racing this sync is sent now or next time, never lost.
	upto := Token{Pos: e.pos.Pos(), Eph: e.hub.EphemeralPos()}
	resp := newResponse()
	if e.src.ToDevice != nil && req.Device != "" {
		evs, last, more, err := e.src.ToDevice(req.User, req.Device, since.Pos, upto.Pos, maxToDevice)
		if err != nil {
			return nil, err
		}
		if more {
			// The rest waits for the next sync: this response must not
			// pass the last message it carries, or those after it would
			// be skipped (everything shares one position counter).
			upto.Pos = last
		}
		if len(evs) > 0 {
			resp.ToDevice.Events = evs
			resp.empty = false
		}
	}
	resp.NextBatch = upto.String()
	if e.src.KeyCounts != nil && req.Device != "" {
		counts, fallback, err := e.src.KeyCounts(req.User, req.Device)
		if err != nil {
			return nil, err
		}
		resp.OTKCounts, resp.Fallback = counts, fallback
	}

	f := req.Filter
	if f == nil {
		f = &filter.Filter{}
	}

	ms, err := e.store.Memberships(req.User)
	if err != nil {
		return nil, err
	}
	if !initial {
		changed, left, err := e.deviceLists(req.User, ms, since.Pos, upto.Pos)
		if err != nil {
			return nil, err
		}
		resp.DeviceLists = DeviceLists{Changed: changed, Left: left}
		if len(changed)+len(left) > 0 {
			resp.empty = false
		}
	}
	var roomAD map[string][]json.RawMessage
	if e.src.AccountData != nil {
		global, perRoom, err := e.src.AccountData(req.User, since.Pos, upto.Pos)
		if err != nil {
			return nil, err
		}
		roomAD = perRoom
		for _, ev := range global {
			if allowsType(f.AccountData, ev) {
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
			}
		}
		if len(resp.AccountData.Events) > 0 {
			resp.empty = false
		}
	}
	viewer := rooms.Viewer{User: req.User, Device: req.Device}
	peers := map[string]bool{}
	var ignored map[string]bool
	if e.src.Ignored != nil {
		ignored = e.src.Ignored(req.User)
	}
	req.ignored = ignored
	for _, m := range ms {
		if !f.AllowsRoom(m.RoomID) {
			continue
		}
		switch m.Membership {
		case spec.Join:
			jr, err := e.joinedRoom(req, f, viewer, m, since, upto, roomAD[m.RoomID], peers)
			if err != nil {
				return nil, err
			}
			if jr != nil {
				resp.Rooms.Join[m.RoomID] = jr
				resp.empty = false
			}
		case spec.Invite:
			if ignored[e.inviter(m)] {
				// spec (Ignoring users): no invites from ignored users.
				continue
			}
			if m.Pos > since.Pos || req.FullState {
				resp.Rooms.Invite[m.RoomID] = e.invitedRoom(m)
				resp.empty = false
			}
		case spec.Leave, spec.Ban:
			// Rooms left since the last sync appear once in "leave";
			// initial syncs show them only with include_leave (spec: Filter.room.include_leave).
			if m.Pos > upto.Pos || (m.Forgotten && (initial || m.Pos <= since.Pos)) {
				// A forgotten room is gone, except that a leave the client
				// has not seen yet is still delivered once.
				continue
			}
			if (!initial && m.Pos > since.Pos) || (f.IncludeLeave() && (initial || req.FullState || m.Pos > since.Pos)) {
				lr, err := e.leftRoom(f, viewer, m, since, roomAD[m.RoomID])
				if err != nil {
					return nil, err
				}
				resp.Rooms.Leave[m.RoomID] = lr
				resp.empty = false
			}
		}
	}
	if e.src.Presence != nil && !(f.Presence != nil && f.Presence.Types != nil && len(f.Presence.Types) == 0) {
		// Changed presence of every peer, plus the current presence of
		// new peers (notePeers), each user once.
		var changed, fresh []string
		if _, ok := peers[req.User]; !ok {
			peers[req.User] = false // own presence, when it changed
		}
		for p, isNew := range peers {
			if isNew {
				fresh = append(fresh, p)
			} else {
				changed = append(changed, p)
			}
		}
		sort.Strings(changed)
		sort.Strings(fresh)
		evs := e.src.Presence(req.User, changed, since.Eph)
		if len(fresh) > 0 {
			evs = append(evs, e.src.Presence(req.User, fresh, 0)...)
		}
		for _, ev := range evs {
			if allowsType(f.Presence, ev) {
				resp.Presence.Events = append(resp.Presence.Events, ev)
			}
		}
		if len(resp.Presence.Events) > 0 && !initial {
			resp.empty = false
		}
	}
	return resp, nil
}

// allowsType applies an EventFilter to a {type, sender?} event.
func allowsType(f *filter.EventFilter, ev json.RawMessage) bool {
	if f == nil {
		return true
	}
	var h struct {
		Type   string `json:"type"`
		Sender string `json:"sender"`
	}
	_ = json.Unmarshal(ev, &h)
	if f.Limit != nil && *f.Limit == 0 {
		return false
	}
	return f.Allows(h.Sender, h.Type)
}
