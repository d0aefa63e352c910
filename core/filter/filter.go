// Package filter implements Matrix event filters: their types, strict
// parsing, matching, limits, event_fields projection and a deterministic
// encoding for storage. It is pure domain logic: no storage, no HTTP.
//
// Spec: client-server-api "Filtering", "Lazy-loading room members";
// data/api/client-server/filter.yaml and definitions/sync_filter.yaml,
// event_filter.yaml, room_event_filter.yaml; appendices
// "Dot-separated property paths".
//
// Absence and emptiness differ: a nil list means "no constraint", an empty
// non-nil list means "matches nothing" (for types/senders/rooms) or
// "excludes nothing" (for not_*). A nil *EventFilter, *RoomEventFilter,
// *RoomFilter or *Filter allows everything; every method is nil-safe.
package filter

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// Limits. The spec leaves the default and the maximum to the server.
const (
	// DefaultTimelineLimit is the /sync timeline limit when the filter sets
	// none (Synapse's value; the spec names none).
	DefaultTimelineLimit = 10
	// DefaultMessagesLimit is the /messages and /context default (spec:
	// "Default: 10", "Defaults to 10").
	DefaultMessagesLimit = 10
	// MaxLimit caps every limit, from a filter or a query parameter: a
	// board answers 1,000 events (~1 MB) in one response, not more.
	MaxLimit = 1000
)

// Event formats (event_format).
const (
	FormatClient     = "client"
	FormatFederation = "federation"
)

// Filter is the top-level filter of POST /user/{userId}/filter and /sync.
type Filter struct {
	EventFields []string     `json:"event_fields,omitzero"`
	EventFormat string       `json:"event_format,omitzero"`
	Presence    *EventFilter `json:"presence,omitzero"`
	AccountData *EventFilter `json:"account_data,omitzero"`
	Room        *RoomFilter  `json:"room,omitzero"`
}

// RoomFilter filters room data in /sync.
type RoomFilter struct {
	NotRooms     []string         `json:"not_rooms,omitzero"`
	Rooms        []string         `json:"rooms,omitzero"`
	Ephemeral    *RoomEventFilter `json:"ephemeral,omitzero"`
	IncludeLeave bool             `json:"include_leave,omitzero"`
	State        *StateFilter     `json:"state,omitzero"`
	Timeline     *RoomEventFilter `json:"timeline,omitzero"`
	AccountData  *RoomEventFilter `json:"account_data,omitzero"`
}

// EventFilter filters non-room events (presence, global account data).
// Limit nil means "server default"; 0 is a valid request for no events.
type EventFilter struct {
	Limit      *int     `json:"limit,omitzero"`
	NotSenders []string `json:"not_senders,omitzero"`
	NotTypes   []string `json:"not_types,omitzero"`
	Senders    []string `json:"senders,omitzero"`
	Types      []string `json:"types,omitzero"`
}

// RoomEventFilter filters room events; it is also the `filter` query
// parameter of /messages and /context.
type RoomEventFilter struct {
	EventFilter
	ContainsURL               *bool    `json:"contains_url,omitzero"`
	IncludeRedundantMembers   bool     `json:"include_redundant_members,omitzero"`
	LazyLoadMembers           bool     `json:"lazy_load_members,omitzero"`
	NotRooms                  []string `json:"not_rooms,omitzero"`
	Rooms                     []string `json:"rooms,omitzero"`
	UnreadThreadNotifications bool     `json:"unread_thread_notifications,omitzero"`
}

// StateFilter is the filter for room state; the spec gives it the
// RoomEventFilter schema.
type StateFilter = RoomEventFilter

// EventInfo is what RoomEventFilter.Allows looks at. HasURL reports whether
// the content has a string `url` key (see ContentHasURL).
type EventInfo struct {
	Sender, Type, RoomID string
	HasURL               bool
}

// IsInlineJSON reports whether a `filter` query parameter is inline JSON
// rather than a filter ID (spec: "whether the first character is a {").
func IsInlineJSON(s string) bool { return len(s) > 0 && s[0] == '{' }

// Parse decodes and validates a Filter. Invalid JSON is 400 M_NOT_JSON; a
// value of the wrong type or out of range is 400 M_BAD_JSON. Unknown keys
// are ignored and a null value counts as absent. IDs in rooms/senders are
// not checked for their sigil: a malformed one simply never matches.
func Parse(js []byte) (*Filter, error) {
	o, err := root(js)
	if err != nil {
		return nil, err
	}
	var f Filter
	if f.EventFields, err = o.strs("event_fields", ""); err != nil {
		return nil, err
	}
	if raw, ok := o.get("event_format"); ok {
		if err := json.Unmarshal(raw, &f.EventFormat); err != nil ||
			(f.EventFormat != FormatClient && f.EventFormat != FormatFederation) {
			return nil, bad("event_format", `must be "client" or "federation"`)
		}
	}
	if f.Presence, err = o.eventFilter("presence", ""); err != nil {
		return nil, err
	}
	if f.AccountData, err = o.eventFilter("account_data", ""); err != nil {
		return nil, err
	}
	ro, err := o.object("room", "")
	if err != nil || ro == nil {
		return &f, err
	}
	r := &RoomFilter{}
	f.Room = r
	const p = "room."
	if r.NotRooms, err = ro.ids("not_rooms", p, '!'); err != nil {
		return nil, err
	}
	if r.Rooms, err = ro.ids("rooms", p, '!'); err != nil {
		return nil, err
	}
	var lv *bool
	if lv, err = ro.boolean("include_leave", p); err != nil {
		return nil, err
	}
	r.IncludeLeave = lv != nil && *lv
	for _, x := range []struct {
		key string
		dst **RoomEventFilter
	}{{"ephemeral", &r.Ephemeral}, {"state", &r.State}, {"timeline", &r.Timeline}, {"account_data", &r.AccountData}} {
		if *x.dst, err = ro.roomEventFilter(x.key, p); err != nil {
			return nil, err
		}
	}
	return &f, nil
}

// ParseRoomEventFilter decodes and validates a RoomEventFilter (the `filter`
// parameter of /messages and /context), with Parse's error rules.
func ParseRoomEventFilter(js []byte) (*RoomEventFilter, error) {
	o, err := root(js)
	if err != nil {
		return nil, err
	}
	return o.toRoomEventFilter("")
}

// QueryError re-codes a Parse error as 400 M_INVALID_PARAM, the code for a
// bad query parameter, keeping its message. Other errors pass unchanged.
func QueryError(err error) error {
	if e, ok := err.(*mxerr.Error); ok && e.Status == 400 {
		return mxerr.InvalidParam("filter: " + e.Message)
	}
	return err
}

// Canonical is the compact, deterministic JSON of f for storage: fields in
// a fixed order, absent values omitted, empty lists kept. Parse(Canonical(f))
// yields a filter equal to f.
func Canonical(f *Filter) []byte {
	if f == nil {
		return []byte("{}")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil { // cannot fail: only strings, ints, bools
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// --- decoding helpers ---

type obj map[string]json.RawMessage

func bad(path, msg string) error { return mxerr.BadJSON(path + ": " + msg) }

func root(js []byte) (obj, error) {
	if !json.Valid(js) {
		return nil, mxerr.NotJSON("filter is not valid JSON")
	}
	o, err := asObject(bytes.TrimSpace(js), "filter")
	if err == nil && o == nil {
		err = bad("filter", "must be an object")
	}
	return o, err
}

func asObject(raw json.RawMessage, path string) (obj, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, bad(path, "must be an object")
	}
	var o obj
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, bad(path, "must be an object")
	}
	return o, nil
}

// get returns the trimmed raw value of key; null counts as absent.
func (o obj) get(key string) (json.RawMessage, bool) {
	raw := bytes.TrimSpace(o[key])
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func (o obj) object(key, prefix string) (obj, error) {
	raw, ok := o.get(key)
	if !ok {
		return nil, nil
	}
	return asObject(raw, prefix+key)
}

func (o obj) strs(key, prefix string) ([]string, error) {
	raw, ok := o.get(key)
	if !ok {
		return nil, nil
	}
	var xs []*string
	if raw[0] != '[' || json.Unmarshal(raw, &xs) != nil {
		return nil, bad(prefix+key, "must be an array of strings")
	}
	out := make([]string, len(xs))
	for i, s := range xs {
		if s == nil {
			return nil, bad(prefix+key, "must be an array of strings")
		}
		out[i] = *s
	}
	return out, nil
}

func (o obj) boolean(key, prefix string) (*bool, error) {
	raw, ok := o.get(key)
	if !ok {
		return nil, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return nil, bad(prefix+key, "must be a boolean")
	}
	return &b, nil
}

// limit accepts any non-negative integral JSON number (10 and 10.0 alike);
// values beyond MaxInt32 saturate, and MaxLimit is applied on use.
func (o obj) limit(prefix string) (*int, error) {
	raw, ok := o.get("limit")
	if !ok {
		return nil, nil
	}
	var v float64
	if raw[0] == '"' || json.Unmarshal(raw, &v) != nil || v < 0 || v != math.Trunc(v) {
		return nil, bad(prefix+"limit", "must be a non-negative integer")
	}
	n := math.MaxInt32
	if v < math.MaxInt32 {
		n = int(v)
	}
	return &n, nil
}

func (o obj) eventFilter(key, prefix string) (*EventFilter, error) {
	eo, err := o.object(key, prefix)
	if err != nil || eo == nil {
		return nil, err
	}
	f := &EventFilter{}
	return f, eo.fillEventFilter(f, prefix+key+".")
}

func (o obj) fillEventFilter(f *EventFilter, p string) (err error) {
	if f.Limit, err = o.limit(p); err != nil {
		return err
	}
	for _, x := range []struct {
		key string
		dst *[]string
	}{{"not_types", &f.NotTypes}, {"types", &f.Types}} {
		if *x.dst, err = o.strs(x.key, p); err != nil {
			return err
		}
	}
	if f.NotSenders, err = o.ids("not_senders", p, '@'); err != nil {
		return err
	}
	f.Senders, err = o.ids("senders", p, '@')
	return err
}

// ids reads a list of room or user IDs, refusing entries that cannot be
// one (they would silently never match: Synapse and Complement expect a
// 400 for them).
func (o obj) ids(key, prefix string, sigil byte) ([]string, error) {
	list, err := o.strs(key, prefix)
	if err != nil {
		return nil, err
	}
	for _, id := range list {
		if len(id) < 2 || id[0] != sigil {
			return nil, bad(prefix+key, "not a valid ID: "+id)
		}
	}
	return list, nil
}

func (o obj) roomEventFilter(key, prefix string) (*RoomEventFilter, error) {
	eo, err := o.object(key, prefix)
	if err != nil || eo == nil {
		return nil, err
	}
	return eo.toRoomEventFilter(prefix + key + ".")
}

func (o obj) toRoomEventFilter(p string) (*RoomEventFilter, error) {
	f := &RoomEventFilter{}
	err := o.fillEventFilter(&f.EventFilter, p)
	if err != nil {
		return nil, err
	}
	if f.ContainsURL, err = o.boolean("contains_url", p); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		key string
		dst *bool
	}{{"include_redundant_members", &f.IncludeRedundantMembers}, {"lazy_load_members", &f.LazyLoadMembers}, {"unread_thread_notifications", &f.UnreadThreadNotifications}} {
		b, err := o.boolean(x.key, p)
		if err != nil {
			return nil, err
		}
		*x.dst = b != nil && *b
	}
	if f.NotRooms, err = o.ids("not_rooms", p, '!'); err != nil {
		return nil, err
	}
	if f.Rooms, err = o.ids("rooms", p, '!'); err != nil {
		return nil, err
	}
	return f, nil
}

// --- matching ---

// Allows reports whether an event of this sender and type passes. not_*
// lists win over their positive counterparts; types and not_types accept
// '*' as a wildcard for any sequence of characters.
func (f *EventFilter) Allows(sender, eventType string) bool {
	if f == nil {
		return true
	}
	if contains(f.NotSenders, sender) || matchAny(f.NotTypes, eventType) {
		return false
	}
	return (f.Senders == nil || contains(f.Senders, sender)) &&
		(f.Types == nil || matchAny(f.Types, eventType))
}

// Allows reports whether a room event passes: sender and type as for
// EventFilter, then rooms/not_rooms, then contains_url when set.
func (f *RoomEventFilter) Allows(ev EventInfo) bool {
	if f == nil {
		return true
	}
	if !f.EventFilter.Allows(ev.Sender, ev.Type) || contains(f.NotRooms, ev.RoomID) ||
		(f.Rooms != nil && !contains(f.Rooms, ev.RoomID)) {
		return false
	}
	return f.ContainsURL == nil || *f.ContainsURL == ev.HasURL
}

// AllowsRoom applies the room-level rooms/not_rooms lists, which the spec
// applies before the ephemeral, state, timeline and account_data filters.
func (f *RoomFilter) AllowsRoom(roomID string) bool {
	if f == nil {
		return true
	}
	return !contains(f.NotRooms, roomID) && (f.Rooms == nil || contains(f.Rooms, roomID))
}

// ContentHasURL reports whether event content has a string `url` key, the
// test contains_url filters on. Content that is not an object has none.
func ContentHasURL(content []byte) bool {
	var c struct {
		URL json.RawMessage `json:"url"`
	}
	return json.Unmarshal(content, &c) == nil && len(c.URL) > 0 && c.URL[0] == '"'
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}

// Match reports whether s matches pattern, where '*' matches any sequence
// of characters (including none) and every other byte matches itself. It
// runs in O(len(pattern)·len(s)) at worst, with no recursion.
func Match(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// --- limits and accessors ---

// ClampLimit bounds n to [0, MaxLimit].
func ClampLimit(n int) int { return min(max(n, 0), MaxLimit) }

// LimitOr is the filter's limit, or def when it sets none, clamped by
// ClampLimit.
func (f *EventFilter) LimitOr(def int) int {
	if f == nil || f.Limit == nil {
		return ClampLimit(def)
	}
	return ClampLimit(*f.Limit)
}

// LimitOr is the nil-safe EventFilter.LimitOr.
func (f *RoomEventFilter) LimitOr(def int) int {
	if f == nil {
		return ClampLimit(def)
	}
	return f.EventFilter.LimitOr(def)
}

// LazyLoad reports lazy_load_members and, only when it is set,
// include_redundant_members (spec: the latter "does not apply unless
// lazy_load_members is true").
func (f *RoomEventFilter) LazyLoad() (lazy, redundant bool) {
	if f == nil || !f.LazyLoadMembers {
		return false, false
	}
	return true, f.IncludeRedundantMembers
}

func (f *Filter) room() *RoomFilter {
	if f == nil {
		return nil
	}
	return f.Room
}

func (r *RoomFilter) sub(pick func(*RoomFilter) *RoomEventFilter) *RoomEventFilter {
	if r == nil {
		return nil
	}
	return pick(r)
}

// Timeline is room.timeline, nil (allow all) when absent.
func (f *Filter) Timeline() *RoomEventFilter {
	return f.room().sub(func(r *RoomFilter) *RoomEventFilter { return r.Timeline })
}

// State is room.state, nil (allow all) when absent.
func (f *Filter) State() *StateFilter {
	return f.room().sub(func(r *RoomFilter) *RoomEventFilter { return r.State })
}

// Ephemeral is room.ephemeral, nil (allow all) when absent.
func (f *Filter) Ephemeral() *RoomEventFilter {
	return f.room().sub(func(r *RoomFilter) *RoomEventFilter { return r.Ephemeral })
}

// RoomAccountData is room.account_data, nil (allow all) when absent.
func (f *Filter) RoomAccountData() *RoomEventFilter {
	return f.room().sub(func(r *RoomFilter) *RoomEventFilter { return r.AccountData })
}

// TimelineLimit is the room timeline limit, or def when the filter sets
// none, clamped to [0, MaxLimit].
func (f *Filter) TimelineLimit(def int) int { return f.Timeline().LimitOr(def) }

// IncludeLeave reports room.include_leave.
func (f *Filter) IncludeLeave() bool { return f.room() != nil && f.Room.IncludeLeave }

// Format is the event_format, "client" when unset.
func (f *Filter) Format() string {
	if f == nil || f.EventFormat == "" {
		return FormatClient
	}
	return f.EventFormat
}

// AllowsRoom is the nil-safe RoomFilter.AllowsRoom of f.Room.
func (f *Filter) AllowsRoom(roomID string) bool { return f.room().AllowsRoom(roomID) }
