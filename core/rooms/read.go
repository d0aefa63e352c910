package rooms

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/tidwall/gjson"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Token is a pagination boundary: the position after which events are
// "later". Sync's next_batch ("s<pos>_...") and /messages tokens ("t<pos>")
// both parse to one, so a sync token works as /messages' from.
func ParseToken(tok string) (uint64, error) {
	if tok == "" {
		return 0, mxerr.InvalidParam("empty token")
	}
	body := tok[1:]
	if i := strings.IndexByte(body, '_'); i >= 0 {
		body = body[:i]
	}
	if tok[0] != 't' && tok[0] != 's' {
		return 0, mxerr.InvalidParam("invalid pagination token")
	}
	p, err := strconv.ParseUint(body, 10, 64)
	if err != nil {
		return 0, mxerr.InvalidParam("invalid pagination token")
	}
	return p, nil
}

// FormatToken makes a /messages token for boundary pos.
func FormatToken(pos uint64) string { return "t" + strconv.FormatUint(pos, 10) }

// visibility answers "may user see this event" per the spec's history
// visibility rules (client-server-api, modules/history_visibility, "Server
// behaviour"). It loads the user's membership history and the room's
// history_visibility history once, so each check is a lookup in memory.
type visibility struct {
	user     string
	current  string // user's current membership
	leavePos uint64 // position of the user's current membership event
	members  []stateStep
	hv       []stateStep
}

// stateStep is one value a state entry took, from position Pos on.
type stateStep struct {
	Pos   uint64
	Value string
}

// at is the value in force at pos (inclusive), "" before the first step.
func at(steps []stateStep, pos uint64) string {
	i := sort.Search(len(steps), func(i int) bool { return steps[i].Pos > pos })
	if i == 0 {
		return ""
	}
	return steps[i-1].Value
}

func (s *Service) newVisibility(user, roomID string) (*visibility, error) {
	v := &visibility{user: user}
	mh, err := s.store.StateHistory(roomID, spec.MRoomMember, user)
	if err != nil {
		return nil, err
	}
	for i := range mh {
		v.members = append(v.members, stateStep{mh[i].Pos, membershipOf(&mh[i])})
	}
	if n := len(v.members); n > 0 {
		v.current, v.leavePos = v.members[n-1].Value, v.members[n-1].Pos
	}
	hh, err := s.store.StateHistory(roomID, spec.MRoomHistoryVisibility, "")
	if err != nil {
		return nil, err
	}
	for i := range hh {
		var f struct {
			Content struct {
				HistoryVisibility string `json:"history_visibility"`
			} `json:"content"`
		}
		_ = json.Unmarshal(hh[i].JSON, &f)
		v.hv = append(v.hv, stateStep{hh[i].Pos, f.Content.HistoryVisibility})
	}
	return v, nil
}

func membershipOf(rec *EventRecord) string {
	var c struct {
		Membership string `json:"membership"`
	}
	var f struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(rec.JSON, &f)
	_ = json.Unmarshal(f.Content, &c)
	return c.Membership
}

func (v *visibility) canSee(rec *EventRecord) bool {
	// Fast path: a user joined now, whose current membership event is
	// older than the event, was joined when it was sent.
	if v.current == spec.Join && rec.Pos >= v.leavePos {
		return true
	}
	if v.allowedAt(rec.Pos) {
		return true
	}
	// history_visibility changes, and the user's own membership events,
	// are visible if the state before OR after them allows it.
	if rec.Type == spec.MRoomHistoryVisibility || (rec.Type == spec.MRoomMember && rec.StateKey != nil && *rec.StateKey == v.user) {
		return rec.Pos > 0 && v.allowedAt(rec.Pos-1)
	}
	return false
}

// allowedAt applies the spec's rules with the state as of pos.
func (v *visibility) allowedAt(pos uint64) bool {
	hv := at(v.hv, pos)
	switch hv {
	case "world_readable", "shared", "invited", "joined":
	default:
		hv = "shared" // absent or not understood
	}
	member := at(v.members, pos)
	switch {
	case hv == "world_readable", member == spec.Join:
		return true
	case hv == "shared" && v.joinedAfter(pos):
		return true
	case member == spec.Invite && hv == "invited":
		return true
	}
	return false
}

// membershipAt is the user's membership at pos, including a change made
// by the event at pos; "leave" before they had any (spec ClientEvent
// unsigned.membership, v1.11).
func (v *visibility) membershipAt(pos uint64) string {
	if m := at(v.members, pos); m != "" {
		return m
	}
	return spec.Leave
}

// joinedAfter: the user joined the room at some point after pos.
func (v *visibility) joinedAfter(pos uint64) bool {
	for _, m := range v.members {
		if m.Pos > pos && m.Value == spec.Join {
			return true
		}
	}
	return false
}

// requireRoom checks the room exists and user has (or had) a membership
// that lets them read it.
func (s *Service) readAccess(user, roomID string) (*visibility, error) {
	return s.access(user, roomID, false)
}

func (s *Service) access(user, roomID string, forgottenOK bool) (*visibility, error) {
	if _, _, err := ids.ParseRoomID(roomID); err != nil {
		return nil, err
	}
	if m, err := s.store.Membership(user, roomID); err == nil && m.Forgotten && !forgottenOK {
		// spec (forget): the user can no longer retrieve the history.
		return nil, mxerr.Forbidden("you have forgotten this room")
	}
	if _, err := s.store.Room(roomID); err != nil {
		if err == ErrNotFound {
			return nil, mxerr.Forbidden("you are not in this room")
		}
		return nil, err
	}
	v, err := s.newVisibility(user, roomID)
	if err != nil {
		return nil, err
	}
	if v.current == "" {
		if hv, err := s.store.StateEventAt(roomID, ^uint64(0), spec.MRoomHistoryVisibility, ""); err == nil &&
			strings.Contains(string(hv.JSON), `"world_readable"`) {
			return v, nil
		}
		return nil, mxerr.Forbidden("you are not in this room")
	}
	return v, nil
}

// ClientEvents formats records for viewer, adding redacted_because.
func (s *Service) ClientEvents(recs []EventRecord, viewer Viewer) []ClientEvent {
	now := time.Now()
	out := make([]ClientEvent, 0, len(recs))
	for i := range recs {
		out = append(out, s.ClientEvent(&recs[i], viewer, now))
	}
	return out
}

// ClientEvent formats one record.
func (s *Service) ClientEvent(rec *EventRecord, viewer Viewer, now time.Time) ClientEvent {
	var because *EventRecord
	if rec.RedactedBy != "" {
		if r, err := s.store.Event(rec.RedactedBy); err == nil {
			because = &r
		}
	}
	return Format(rec, viewer, now, because)
}

// Event returns one event the user may see (spec: GET /rooms/{id}/event/{eventId}).
func (s *Service) Event(user, roomID, eventID string) (EventRecord, error) {
	v, err := s.readAccess(user, roomID)
	if err != nil {
		if me, ok := err.(*mxerr.Error); ok && me.Code == "M_FORBIDDEN" {
			// The spec answers 404 both for a missing event and for one
			// the user may not read (GET /rooms/{roomId}/event/{eventId}).
			return EventRecord{}, mxerr.NotFound("event not found")
		}
		return EventRecord{}, err
	}
	rec, err := s.store.Event(eventID)
	if err != nil || rec.RoomID != roomID || !v.canSee(&rec) {
		return EventRecord{}, mxerr.NotFound("event not found")
	}
	rec.ViewerMembership = v.membershipAt(rec.Pos)
	return rec, nil
}

// MessagesRequest is GET /rooms/{id}/messages.
type MessagesRequest struct {
	From, To    string
	Backward    bool
	Limit       int
	Allow       func(*EventRecord) bool // the filter; nil allows all
	LazyMembers bool
	// Forgotten reads a room the user has forgotten (sync still delivers
	// the leave the client has not seen).
	Forgotten bool
}

// MessagesResponse is its answer.
type MessagesResponse struct {
	Chunk []EventRecord
	Start string
	End   string
	State []EventRecord // member events of the chunk's senders (lazy loading)
}

// Messages paginates a room's timeline (spec: GET /rooms/{roomId}/messages).
func (s *Service) Messages(user, roomID string, req MessagesRequest) (MessagesResponse, error) {
	v, err := s.access(user, roomID, req.Forgotten)
	if err != nil {
		return MessagesResponse{}, err
	}
	var from uint64
	switch {
	case req.From != "":
		if from, err = ParseToken(req.From); err != nil {
			return MessagesResponse{}, err
		}
	case req.Backward:
		latest, err := s.store.Latest(roomID)
		if err != nil {
			return MessagesResponse{}, err
		}
		from = latest.Pos
	}
	var to uint64
	hasTo := req.To != ""
	if hasTo {
		if to, err = ParseToken(req.To); err != nil {
			return MessagesResponse{}, err
		}
	}
	if req.Limit <= 0 {
		req.Limit = 10
	}
	if req.Limit > 1000 {
		req.Limit = 1000
	}
	resp := MessagesResponse{Start: FormatToken(from)}
	dir := Forward
	if req.Backward {
		dir = Backward
	}
	last := from
	more := false
	scanned := 0
	err = s.store.Timeline(roomID, from, dir, func(rec EventRecord) bool {
		if hasTo && ((req.Backward && rec.Pos <= to) || (!req.Backward && rec.Pos > to)) {
			return false
		}
		if len(resp.Chunk) >= req.Limit || scanned >= 10*req.Limit+100 {
			more = true
			return false
		}
		scanned++
		if req.Backward {
			last = rec.Pos - 1
		} else {
			last = rec.Pos
		}
		if !v.canSee(&rec) {
			return true
		}
		if req.Allow != nil && !req.Allow(&rec) {
			return true
		}
		rec.ViewerMembership = v.membershipAt(rec.Pos)
		resp.Chunk = append(resp.Chunk, rec)
		return true
	})
	if err != nil {
		return MessagesResponse{}, err
	}
	if more {
		resp.End = FormatToken(last)
	}
	if req.LazyMembers {
		resp.State = s.memberEventsFor(roomID, resp.Chunk)
	}
	return resp, nil
}

// memberEventsFor returns the current member events of the chunk's senders.
func (s *Service) memberEventsFor(roomID string, chunk []EventRecord) []EventRecord {
	seen := map[string]bool{}
	var out []EventRecord
	for _, rec := range chunk {
		if seen[rec.Sender] {
			continue
		}
		seen[rec.Sender] = true
		if m, err := s.store.StateEventAt(roomID, rec.Pos, spec.MRoomMember, rec.Sender); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// ContextResponse is GET /rooms/{id}/context/{eventId}'s answer.
type ContextResponse struct {
	Event                EventRecord
	Before, After, State []EventRecord
	Start, End           string
}

// Context returns events around one (spec: GET /rooms/{roomId}/context/{eventId}).
func (s *Service) Context(user, roomID, eventID string, limit int, allow func(*EventRecord) bool, lazy bool) (ContextResponse, error) {
	v, err := s.readAccess(user, roomID)
	if err != nil {
		return ContextResponse{}, err
	}
	ev, err := s.store.Event(eventID)
	if err != nil || ev.RoomID != roomID || !v.canSee(&ev) {
		return ContextResponse{}, mxerr.NotFound("event not found")
	}
	if limit < 0 {
		limit = 0
	}
	if limit > 100 {
		limit = 100
	}
	nBefore := limit / 2
	nAfter := limit - nBefore
	ev.ViewerMembership = v.membershipAt(ev.Pos)
	resp := ContextResponse{Event: ev, Start: FormatToken(ev.Pos - 1), End: FormatToken(ev.Pos)}
	collect := func(from uint64, dir Direction, n int, out *[]EventRecord, tok *string) error {
		return s.store.Timeline(roomID, from, dir, func(rec EventRecord) bool {
			if len(*out) >= n {
				return false
			}
			if dir == Backward {
				*tok = FormatToken(rec.Pos - 1)
			} else {
				*tok = FormatToken(rec.Pos)
			}
			if v.canSee(&rec) && (allow == nil || allow(&rec)) {
				rec.ViewerMembership = v.membershipAt(rec.Pos)
				*out = append(*out, rec)
			}
			return true
		})
	}
	if err := collect(ev.Pos-1, Backward, nBefore, &resp.Before, &resp.Start); err != nil {
		return ContextResponse{}, err
	}
	if err := collect(ev.Pos, Forward, nAfter, &resp.After, &resp.End); err != nil {
		return ContextResponse{}, err
	}
	if lazy {
		all := append(append([]EventRecord{ev}, resp.Before...), resp.After...)
		resp.State = s.memberEventsFor(roomID, all)
	} else {
		resp.State, err = s.store.StateAt(roomID, ev.Pos)
		if err != nil {
			return ContextResponse{}, err
		}
	}
	return resp, nil
}

// stateView is the state a user may read: current while joined (or the
// room is world readable), else as of when they left.
func (s *Service) statePos(user, roomID string) (uint64, error) {
	v, err := s.readAccess(user, roomID)
	if err != nil {
		return 0, err
	}
	if v.current == spec.Join || v.current == "" {
		return ^uint64(0), nil
	}
	return v.leavePos, nil
}

// State returns the room state the user may see (spec: GET /rooms/{id}/state).
func (s *Service) State(user, roomID string) ([]EventRecord, error) {
	pos, err := s.statePos(user, roomID)
	if err != nil {
		return nil, err
	}
	return s.store.StateAt(roomID, pos)
}

// StateEvent returns one state event (spec: GET /rooms/{id}/state/{type}/{key}).
func (s *Service) StateEvent(user, roomID, typ, key string) (EventRecord, error) {
	pos, err := s.statePos(user, roomID)
	if err != nil {
		return EventRecord{}, err
	}
	rec, err := s.store.StateEventAt(roomID, pos, typ, key)
	if err == ErrNotFound {
		return EventRecord{}, mxerr.NotFound("state event not found")
	}
	return rec, err
}

// MembersRequest is GET /rooms/{id}/members.
type MembersRequest struct {
	At            string
	Membership    string
	NotMembership string
}

// Members lists member events (spec: GET /rooms/{roomId}/members).
func (s *Service) Members(user, roomID string, req MembersRequest) ([]EventRecord, error) {
	pos, err := s.statePos(user, roomID)
	if err != nil {
		return nil, err
	}
	if req.At != "" {
		at, err := ParseToken(req.At)
		if err != nil {
			return nil, err
		}
		// A room has no members before its creator joined, yet the
		// prev_batch of a sync timeline that reaches back to the create
		// event names exactly that point. Clients ask for members "at" a
		// prev_batch to render the timeline's start, so such a token
		// means the room as created (sytest "Can get rooms/{roomId}/members
		// at a given point").
		if floor := s.creationPos(roomID); at < floor {
			at = floor
		}
		if at < pos {
			pos = at
		}
	}
	state, err := s.store.StateAt(roomID, pos)
	if err != nil {
		return nil, err
	}
	var out []EventRecord
	for _, rec := range state {
		if rec.Type != spec.MRoomMember {
			continue
		}
		m := membershipOf(&rec)
		if req.Membership != "" && m != req.Membership {
			continue
		}
		if req.NotMembership != "" && m == req.NotMembership {
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

// creationPos is the position of the creator's first join, the end of the
// room's creation (0 if unknown).
func (s *Service) creationPos(roomID string) uint64 {
	meta, err := s.store.Room(roomID)
	if err != nil {
		return 0
	}
	hist, err := s.store.StateHistory(roomID, spec.MRoomMember, meta.Creator)
	if err != nil || len(hist) == 0 {
		return 0
	}
	first := hist[0].Pos
	for _, rec := range hist[1:] {
		first = min(first, rec.Pos)
	}
	return first
}

// JoinedMember is an entry of GET /joined_members.
type JoinedMember struct {
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// JoinedMembers maps joined users to their profile in the room.
func (s *Service) JoinedMembers(user, roomID string) (map[string]JoinedMember, error) {
	h, err := s.lockHead(roomID)
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	if h.membership(user) != spec.Join {
		return nil, mxerr.Forbidden("you are not joined to this room")
	}
	out := map[string]JoinedMember{}
	for _, u := range h.members(spec.Join) {
		var c struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(h.get(spec.MRoomMember, u).Content(), &c)
		out[u] = JoinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return out, nil
}

// JoinedRooms lists the rooms the user is joined to.
func (s *Service) JoinedRooms(user string) ([]string, error) {
	ms, err := s.store.Memberships(user)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, m := range ms {
		if m.Membership == spec.Join {
			out = append(out, m.RoomID)
		}
	}
	return out, nil
}

// Membership is the user's current membership in a room ("" if none).
func (s *Service) Membership(user, roomID string) (string, error) {
	h, err := s.lockHead(roomID)
	if err != nil {
		return "", err
	}
	defer h.mu.Unlock()
	return h.membership(user), nil
}

// Store exposes the store for the sync engine's reads.
func (s *Service) Store() Store { return s.store }

// PushContext is what push rule evaluation needs about a room, read once
// per sync from the current state.
type PushContext struct {
	MemberCount   int
	DisplayName   string // the user's display name in the room
	Notifications map[string]int64
	level         func(user string) int64
}

// Level is a sender's power level.
func (p PushContext) Level(user string) int64 { return p.level(user) }

// PushContextFor returns the room's push context for user.
func (s *Service) PushContextFor(user, roomID string) (PushContext, error) {
	h, err := s.lockHead(roomID)
	if err != nil {
		return PushContext{}, err
	}
	defer h.mu.Unlock()
	pc := PushContext{MemberCount: len(h.members(spec.Join))}
	if ev := h.get(spec.MRoomMember, user); ev != nil {
		var c struct {
			DisplayName string `json:"displayname"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		pc.DisplayName = c.DisplayName
	}
	pl := h.powerLevels()
	pc.Notifications = make(map[string]int64, len(pl.Notifications))
	for k, v := range pl.Notifications {
		pc.Notifications[k] = v
	}
	users := make(map[string]int64, len(pl.Users))
	for u, l := range pl.Users {
		users[u] = l
	}
	creators := h.creators
	def := pl.UsersDefault
	pc.level = func(u string) int64 {
		if creators[u] {
			return 1 << 53
		}
		if l, ok := users[u]; ok {
			return l
		}
		return def
	}
	return pc, nil
}

// JoinedUsers lists the room's joined members without an access check
// (for wake-ups and presence peers).
func (s *Service) JoinedUsers(roomID string) []string {
	h, err := s.lockHead(roomID)
	if err != nil {
		return nil
	}
	defer h.mu.Unlock()
	return h.members(spec.Join)
}

// Peers lists the users who share a joined room with user, user included.
func (s *Service) Peers(user string) []string {
	ms, err := s.store.Memberships(user)
	if err != nil {
		return nil
	}
	seen := map[string]bool{user: true}
	out := []string{user}
	for _, m := range ms {
		if m.Membership != spec.Join {
			continue
		}
		for _, u := range s.JoinedUsers(m.RoomID) {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

// FilterAllows adapts a RoomEventFilter to the predicate Messages,
// Context and the sync timeline take (nil filter: nil, allow all).
func FilterAllows(f *filter.RoomEventFilter) func(*EventRecord) bool {
	if f == nil {
		return nil
	}
	return func(rec *EventRecord) bool {
		info := filter.EventInfo{Sender: rec.Sender, Type: rec.Type, RoomID: rec.RoomID}
		if f.ContainsURL != nil {
			info.HasURL = filter.ContentHasURL([]byte(gjson.GetBytes(rec.JSON, "content").Raw))
		}
		return f.Allows(info)
	}
}

// CanRead reports whether user may read the room now (joined, or the
// room is world_readable); the error is the 403 GET /messages would give.
func (s *Service) CanRead(user, roomID string) error {
	_, err := s.readAccess(user, roomID)
	return err
}
