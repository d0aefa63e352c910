package syncer

import (
	"encoding/json"
	"slices"
	"sort"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/lichen-hs/lichen/core/filter"
	"github.com/lichen-hs/lichen/core/rooms"
)

func reverse(recs []rooms.EventRecord) {
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
}

// timeline reads the newest events of (from, to] the user may see.
func (e *Engine) timeline(user string, ignored map[string]bool, f *filter.Filter, roomID string, from, to uint64, bounded bool) ([]rooms.EventRecord, bool, error) {
	limit := f.TimelineLimit(filter.DefaultTimelineLimit)
	req := rooms.MessagesRequest{From: rooms.FormatToken(to), Backward: true, Limit: limit, Allow: rooms.FilterAllows(f.Timeline()), Forgotten: true}
	if len(ignored) > 0 {
		// spec (Ignoring users): no events from ignored users, except
		// state events, which clients still need.
		allow := req.Allow
		req.Allow = func(rec *rooms.EventRecord) bool {
			if ignored[rec.Sender] && rec.StateKey == nil {
				return false
			}
			return allow == nil || allow(rec)
		}
	}
	if bounded {
		req.To = rooms.FormatToken(from)
	}
	if limit == 0 {
		return nil, true, nil
	}
	resp, err := e.rooms.Messages(user, roomID, req)
	if err != nil {
		return nil, false, err
	}
	reverse(resp.Chunk)
	return resp.Chunk, resp.End != "", nil
}

// stateFor filters state events by the state filter and lazy loading.
func stateFor(f *filter.Filter, user string, state, timeline []rooms.EventRecord) []rooms.EventRecord {
	sf := f.State()
	lazy, _ := sf.LazyLoad()
	var senders map[string]bool
	if lazy {
		senders = map[string]bool{user: true}
		for _, ev := range timeline {
			senders[ev.Sender] = true
		}
	}
	out := state[:0:0]
	for _, ev := range state {
		if lazy && ev.Type == spec.MRoomMember && !senders[*ev.StateKey] {
			continue
		}
		if sf != nil && !sf.Allows(filter.EventInfo{Sender: ev.Sender, Type: ev.Type, RoomID: ev.RoomID}) {
			continue
		}
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return out
}

func (e *Engine) joinedRoom(req Request, f *filter.Filter, viewer rooms.Viewer, m rooms.MemberEntry, since, upto Token,
	accountData []json.RawMessage, peers map[string]bool) (*JoinedRoom, error) {
	roomID := m.RoomID
	joined := since.Pos != 0 && e.joinedSince(req.User, roomID, m, since.Pos)
	full := since.Pos == 0 || req.FullState || joined
	jr := &JoinedRoom{
		State:       ClientEventList{Events: []rooms.ClientEvent{}},
		Ephemeral:   EventList{Events: []json.RawMessage{}},
		AccountData: EventList{Events: []json.RawMessage{}},
	}
	changed := false
	latest, err := e.store.Latest(roomID)
	if err != nil {
		return nil, err
	}
	if e.src.Presence != nil {
		e.notePeers(req.User, roomID, since.Pos, joined, latest.Pos > since.Pos, peers)
	}
	var tl []rooms.EventRecord
	limited := false
	if full || latest.Pos > since.Pos {
		tl, limited, err = e.timeline(req.User, req.ignored, f, roomID, since.Pos, upto.Pos, !full)
		if err != nil {
			return nil, err
		}
		if full {
			changed = true
		}
	}
	startPos := upto.Pos
	if len(tl) > 0 {
		startPos = tl[0].Pos - 1
		changed = true
	}
	if full && (len(tl) == 0 || tl[0].Type != spec.MRoomCreate) {
		// A room sent whole (initial sync, new join) whose timeline does
		// not reach back to its creation is limited, even when the earlier
		// events are hidden from this user by history visibility.
		limited = true
	}
	jr.Timeline = Timeline{Events: e.rooms.ClientEvents(tl, viewer), Limited: limited, PrevBatch: rooms.FormatToken(startPos)}
	if jr.Timeline.Events == nil {
		jr.Timeline.Events = []rooms.ClientEvent{}
	}
	var state []rooms.EventRecord
	if full || limited {
		all, err := e.store.StateAt(roomID, startPos)
		if err != nil {
			return nil, err
		}
		if !full {
			// Only what changed between since and the timeline's start.
			all = slices.DeleteFunc(all, func(r rooms.EventRecord) bool { return r.Pos <= since.Pos })
		}
		state = stateFor(f, req.User, all, tl)
	}
	if lazy, _ := f.State().LazyLoad(); lazy && !full && len(tl) > 0 {
		// Lazy loading (spec: "Lazy-loading room members"): the client
		// needs the member event of each timeline sender. Lichen does not
		// track per device which ones it already sent, so it sends them
		// again (include_redundant_members behaviour), which is allowed.
		state = append(state, e.senderMembers(roomID, startPos, tl, state)...)
	}
	jr.State.Events = e.rooms.ClientEvents(state, viewer)
	if len(state) > 0 {
		changed = true
	}

	// Ephemeral: typing and receipts.
	ef := f.Ephemeral()
	if e.src.Typing != nil && (ef == nil || ef.Allows(filter.EventInfo{Type: "m.typing", RoomID: roomID})) {
		users, tpos := e.src.Typing(roomID)
		if tpos > since.Eph || (full && len(users) > 0) {
			if users == nil {
				users = []string{}
			}
			b, _ := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}})
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, b)
			changed = true
		}
	}
	if e.src.Receipts != nil && (ef == nil || ef.Allows(filter.EventInfo{Type: "m.receipt", RoomID: roomID})) {
		from := since.Pos
		if full {
			from = 0
		}
		content, err := e.src.Receipts(req.User, roomID, from, upto.Pos)
		if err != nil {
			return nil, err
		}
		if content != nil {
			b, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, b)
			changed = true
		}
	}
	af := f.RoomAccountData()
	for _, ev := range accountData {
		var h struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(ev, &h)
		if af == nil || af.Allows(filter.EventInfo{Type: h.Type, RoomID: roomID}) {
			jr.AccountData.Events = append(jr.AccountData.Events, ev)
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	jr.Unread = e.unread(req.User, roomID, m.Pos, upto.Pos)
	if full || hasMembership(tl) || hasMembership(state) {
		jr.Summary = e.summary(req.User, roomID)
	}
	return jr, nil
}

// senderMembers returns the member events, as of pos, of timeline senders
// whose member event is neither in the timeline nor in have.
func (e *Engine) senderMembers(roomID string, pos uint64, tl, have []rooms.EventRecord) []rooms.EventRecord {
	known := map[string]bool{}
	for _, list := range [][]rooms.EventRecord{tl, have} {
		for _, ev := range list {
			if ev.Type == spec.MRoomMember && ev.StateKey != nil {
				known[*ev.StateKey] = true
			}
		}
	}
	var out []rooms.EventRecord
	for _, ev := range tl {
		if known[ev.Sender] {
			continue
		}
		known[ev.Sender] = true
		if rec, err := e.store.StateEventAt(roomID, pos, spec.MRoomMember, ev.Sender); err == nil {
			out = append(out, rec)
		}
	}
	return out
}

// joinedSince: the user's membership became join after since (a profile
// change is a new join event too, but the user was joined before it, and
// the room must not be sent again as if new).
func (e *Engine) joinedSince(user, roomID string, m rooms.MemberEntry, since uint64) bool {
	if m.Pos <= since {
		return false
	}
	before, err := e.store.StateEventAt(roomID, since, spec.MRoomMember, user)
	if err != nil {
		return true // no membership at since
	}
	return membership(&before) != spec.Join
}

// notePeers adds the room's joined members to peers (user -> newly a
// peer). A peer is new when the viewer joined the room in this window, or
// the peer did: their current presence is then sent even if it did not
// change, since the client has never been told it (sytest "Newly joined
// room includes presence in incremental sync", "Existing members see new
// members' presence"). Members' joins are looked up only in rooms with
// new events.
func (e *Engine) notePeers(viewer, roomID string, since uint64, viewerJoined, changed bool, peers map[string]bool) {
	members := changed && since != 0 && !viewerJoined && e.rooms.MembershipChangedSince(roomID, since)
	for _, u := range e.rooms.JoinedUsers(roomID) {
		isNew := since != 0 && u != viewer && (viewerJoined || changed && members && e.memberJoinedSince(u, roomID, since))
		peers[u] = peers[u] || isNew
	}
}

func (e *Engine) memberJoinedSince(user, roomID string, since uint64) bool {
	m, err := e.store.Membership(user, roomID)
	return err == nil && e.joinedSince(user, roomID, m, since)
}

func membership(rec *rooms.EventRecord) string {
	return gjson.GetBytes(rec.JSON, "content.membership").String()
}

func hasMembership(recs []rooms.EventRecord) bool {
	for _, r := range recs {
		if r.Type == spec.MRoomMember {
			return true
		}
	}
	return false
}

// summary computes m.heroes and member counts (spec: "Room summary").
func (e *Engine) summary(user, roomID string) *Summary {
	state, err := e.store.CurrentState(roomID)
	if err != nil {
		return nil
	}
	s := &Summary{Heroes: []string{}}
	var others []string
	for _, ev := range state {
		if ev.Type != spec.MRoomMember {
			continue
		}
		var c struct {
			Content struct {
				Membership string `json:"membership"`
			} `json:"content"`
		}
		_ = json.Unmarshal(ev.JSON, &c)
		switch c.Content.Membership {
		case spec.Join:
			s.Joined++
		case spec.Invite:
			s.Invited++
		default:
			continue
		}
		if *ev.StateKey != user {
			others = append(others, *ev.StateKey)
		}
	}
	sort.Strings(others)
	if len(others) > 5 {
		others = others[:5]
	}
	s.Heroes = append(s.Heroes, others...)
	return s
}

// strippedTypes are the state events an invitee sees (spec: "Stripped state").
var strippedTypes = map[string]bool{
	spec.MRoomCreate: true, spec.MRoomJoinRules: true, "m.room.name": true, "m.room.avatar": true,
	"m.room.canonical_alias": true, "m.room.encryption": true, "m.room.topic": true,
}

// inviter is the sender of the user's invite event.
func (e *Engine) inviter(m rooms.MemberEntry) string {
	inv, err := e.store.EventAt(m.Pos)
	if err != nil {
		return ""
	}
	return inv.Sender
}

func (e *Engine) invitedRoom(m rooms.MemberEntry) *InvitedRoom {
	ir := &InvitedRoom{}
	ir.InviteState.Events = []StrippedEvent{}
	state, err := e.store.StateAt(m.RoomID, m.Pos)
	if err != nil {
		return ir
	}
	inv, _ := e.store.EventAt(m.Pos)
	for _, ev := range state {
		if strippedTypes[ev.Type] || (ev.Type == spec.MRoomMember && (*ev.StateKey == inv.Sender || ev.EventID == inv.EventID)) {
			var c struct {
				Content json.RawMessage `json:"content"`
			}
			_ = json.Unmarshal(ev.JSON, &c)
			ir.InviteState.Events = append(ir.InviteState.Events, StrippedEvent{Content: c.Content, Sender: ev.Sender, StateKey: *ev.StateKey, Type: ev.Type})
		}
	}
	return ir
}

func (e *Engine) leftRoom(f *filter.Filter, viewer rooms.Viewer, m rooms.MemberEntry, since Token, accountData []json.RawMessage) (*LeftRoom, error) {
	lr := &LeftRoom{AccountData: EventList{Events: accountData}}
	if lr.AccountData.Events == nil {
		lr.AccountData.Events = []json.RawMessage{}
	}
	tl, limited, err := e.timeline(viewer.User, nil, f, m.RoomID, since.Pos, m.Pos, since.Pos > 0)
	if err != nil {
		return nil, err
	}
	startPos := m.Pos
	if len(tl) > 0 {
		startPos = tl[0].Pos - 1
	}
	state, err := e.store.StateAt(m.RoomID, startPos)
	if err != nil {
		return nil, err
	}
	if since.Pos > 0 {
		state = slices.DeleteFunc(state, func(r rooms.EventRecord) bool { return r.Pos <= since.Pos })
	}
	lr.State.Events = e.rooms.ClientEvents(stateFor(f, viewer.User, state, tl), viewer)
	lr.Timeline = Timeline{Events: e.rooms.ClientEvents(tl, viewer), Limited: limited, PrevBatch: rooms.FormatToken(startPos)}
	return lr, nil
}
