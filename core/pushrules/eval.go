package pushrules

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// EventView is an event flattened into its dot-separated property paths
// (spec appendices "Dot-separated property paths"): each non-object value
// is stored under the path of its property names, each escaped ('.' as
// "\.", '\' as "\\") and joined with '.'. Build it once per event and
// evaluate it for every local user in the room.
type EventView struct {
	props map[string]any
}

// NewEventView decodes and flattens an event's JSON.
func NewEventView(eventJSON []byte) (EventView, error) {
	dec := json.NewDecoder(bytes.NewReader(eventJSON))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return EventView{}, err
	}
	return FlattenEvent(m), nil
}

// FlattenEvent flattens an already decoded event. Numbers may be
// json.Number or float64.
func FlattenEvent(event map[string]any) EventView {
	ev := EventView{props: make(map[string]any, 16)}
	ev.flatten("", event)
	return ev
}

func (e EventView) flatten(prefix string, m map[string]any) {
	for k, v := range m {
		key := escapeSegment(k)
		if prefix != "" {
			key = prefix + "." + key
		}
		if sub, ok := v.(map[string]any); ok {
			e.flatten(key, sub)
			continue
		}
		e.props[key] = v
	}
}

// Lookup returns the non-object value at a dot-separated path: a string,
// bool, nil (JSON null), json.Number or float64, or []any. Escapes in path
// are read per the spec: "\." and "\\" stand for '.' and '\', and any other
// backslash is literal.
func (e EventView) Lookup(path string) (any, bool) {
	v, ok := e.props[canonicalPath(path)]
	return v, ok
}

func (e EventView) str(path string) (string, bool) {
	v, _ := e.Lookup(path)
	s, ok := v.(string)
	return s, ok
}

func escapeSegment(s string) string {
	if !strings.ContainsAny(s, `.\`) {
		return s
	}
	return segmentEscaper.Replace(s)
}

var segmentEscaper = strings.NewReplacer(`\`, `\\`, `.`, `\.`)

// canonicalPath rewrites a path so that every backslash is escaped exactly
// as escapeSegment would (only needed when the path has backslashes).
func canonicalPath(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var out, seg strings.Builder
	flush := func() { out.WriteString(escapeSegment(seg.String())); seg.Reset() }
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && (p[i+1] == '.' || p[i+1] == '\\'):
			seg.WriteByte(p[i+1])
			i++
		case c == '.':
			flush()
			out.WriteByte('.')
		default:
			seg.WriteByte(c)
		}
	}
	flush()
	return out.String()
}

// Context is what evaluation needs beyond the event, for the rules' owner in
// the event's room.
type Context struct {
	// UserID owns the rules. Events the owner sent never notify
	// (spec "Push Rules": homeservers MUST NOT notify for them).
	UserID string
	// DisplayName is the owner's display name in the room
	// (contains_display_name; empty never matches).
	DisplayName string
	// MemberCount is the room's current number of joined members
	// (room_member_count).
	MemberCount int
	// SenderPowerLevel is the sender's power level in the room, and
	// NotificationPowerLevels the "notifications" object of the room's
	// m.room.power_levels content (sender_notification_permission). A key
	// missing from the map requires 50, the spec's default for "room".
	SenderPowerLevel        int64
	NotificationPowerLevels map[string]int64
}

// Evaluate runs an effective ruleset against an event (spec "Push Rules"):
// kinds in the order override, content, room, sender, underride, rules in
// list order; a rule matches if it is enabled and all its conditions hold.
// It returns the first matching rule's actions (historical actions
// stripped) and a copy of that rule, or nil, nil when nothing matches or
// the event was sent by ctx.UserID.
func Evaluate(rs Ruleset, ev EventView, ctx Context) ([]Action, *Rule) {
	if sender, ok := ev.str("sender"); ok && ctx.UserID != "" && sender == ctx.UserID {
		return nil, nil
	}
	for _, kind := range Kinds {
		rules := rs.Kind(kind)
		for i := range rules {
			if rules[i].Enabled && ruleMatches(kind, &rules[i], ev, &ctx) {
				r := rules[i].clone()
				return stripHistorical(r.Actions), &r
			}
		}
	}
	return nil, nil
}

func ruleMatches(kind string, r *Rule, ev EventView, ctx *Context) bool {
	switch kind {
	case KindContent:
		// Predefined condition: the pattern against content.body, on word
		// boundaries (spec "Push Rules", content-specific rules).
		body, ok := ev.str("content.body")
		return ok && r.Pattern != nil && globMatch(*r.Pattern, body, modeWords)
	case KindRoom:
		id, ok := ev.str("room_id")
		return ok && id == r.RuleID
	case KindSender:
		id, ok := ev.str("sender")
		return ok && id == r.RuleID
	}
	for i := range r.Conditions {
		if !conditionMatches(&r.Conditions[i], ev, ctx) {
			return false
		}
	}
	return true
}

// conditionMatches implements spec "Conditions". Unknown kinds never match.
func conditionMatches(c *Condition, ev EventView, ctx *Context) bool {
	switch c.Kind {
	case CondEventMatch:
		if c.Pattern == nil {
			return false
		}
		key := canonicalPath(c.Key)
		s, ok := ev.str(key)
		if !ok {
			return false
		}
		mode := modeWhole
		if key == "content.body" {
			mode = modeWords
		}
		return globMatch(*c.Pattern, s, mode)
	case CondEventPropertyIs:
		want, ok := parseScalar(c.Value)
		if !ok {
			return false
		}
		v, ok := ev.Lookup(c.Key)
		if !ok {
			return false
		}
		got, ok := scalarOf(v)
		return ok && got == want
	case CondEventPropertyContains:
		want, ok := parseScalar(c.Value)
		if !ok {
			return false
		}
		v, _ := ev.Lookup(c.Key)
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		for _, el := range arr {
			if got, ok := scalarOf(el); ok && got == want {
				return true
			}
		}
		return false
	case CondContainsDisplayName:
		body, ok := ev.str("content.body")
		return ok && ctx.DisplayName != "" && globMatch(ctx.DisplayName, body, modeWordsLiteral)
	case CondRoomMemberCount:
		op, n, ok := parseIs(c.Is)
		if !ok {
			return false
		}
		m := int64(ctx.MemberCount)
		switch op {
		case "<":
			return m < n
		case ">":
			return m > n
		case "<=":
			return m <= n
		case ">=":
			return m >= n
		}
		return m == n
	case CondSenderNotificationPermission:
		if c.Key == "" {
			return false
		}
		need, ok := ctx.NotificationPowerLevels[c.Key]
		if !ok {
			need = 50
		}
		return ctx.SenderPowerLevel >= need
	}
	return false
}

// parseIs parses a room_member_count "is": a decimal integer optionally
// prefixed by ==, <, >, >= or <= (no prefix means ==).
func parseIs(is string) (op string, n int64, ok bool) {
	op = "=="
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(is, p) {
			op, is = p, is[len(p):]
			break
		}
	}
	if is == "" || strings.Trim(is, "0123456789") != "" {
		return "", 0, false
	}
	n, err := strconv.ParseInt(is, 10, 64)
	return op, n, err == nil
}

// scalar is a comparable non-compound canonical JSON value: a string, an
// integer in [-(2**53)+1, (2**53)-1], a boolean or null (spec
// event_property_is / event_property_contains).
type scalar struct {
	t byte // 's', 'i', 'b', 'n'
	s string
	i int64
	b bool
}

const maxSafeInt = 1<<53 - 1

func parseScalar(raw json.RawMessage) (scalar, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return scalar{}, false
	}
	switch string(raw) {
	case "null":
		return scalar{t: 'n'}, true
	case "true", "false":
		return scalar{t: 'b', b: raw[0] == 't'}, true
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return scalar{}, false
		}
		return scalar{t: 's', s: s}, true
	}
	return scalarOf(json.Number(raw)) // ParseInt rejects anything but an integer
}

func scalarOf(v any) (scalar, bool) {
	switch v := v.(type) {
	case nil:
		return scalar{t: 'n'}, true
	case string:
		return scalar{t: 's', s: v}, true
	case bool:
		return scalar{t: 'b', b: v}, true
	case json.Number:
		i, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || i > maxSafeInt || i < -maxSafeInt {
			return scalar{}, false
		}
		return scalar{t: 'i', i: i}, true
	case float64:
		if v != math.Trunc(v) || v > maxSafeInt || v < -maxSafeInt {
			return scalar{}, false
		}
		return scalar{t: 'i', i: int64(v)}, true
	}
	return scalar{}, false
}

// Glob matching (spec appendices "Glob-style matching": '*' is zero or more
// characters, '?' exactly one), case-insensitive via Unicode simple case
// folding.
type globMode uint8

const (
	// modeWhole: the pattern must match the entire value (event_match).
	modeWhole globMode = iota
	// modeWords: the pattern must match a substring that starts and ends at
	// a word boundary: the start or end of the value or a character outside
	// [A-Za-z0-9_] (content rules, event_match on content.body).
	modeWords
	// modeWordsLiteral: as modeWords, with the pattern taken literally
	// (contains_display_name).
	modeWordsLiteral
)

const boundaryClass = `[^A-Za-z0-9_]`

type globKey struct {
	pattern string
	mode    globMode
}

var globCache struct {
	sync.Mutex
	m map[globKey]*regexp.Regexp
}

const globCacheMax = 4096

func globMatch(pattern, value string, mode globMode) bool {
	if mode == modeWhole && !strings.ContainsAny(pattern, "*?") {
		// Fast path for literal patterns; EqualFold folds case as (?i) does.
		return strings.EqualFold(pattern, value)
	}
	re := globRegexp(pattern, mode)
	return re != nil && re.MatchString(value)
}

// globRegexp compiles (and caches) the regexp for a glob; nil if it cannot
// be compiled.
func globRegexp(pattern string, mode globMode) *regexp.Regexp {
	k := globKey{pattern, mode}
	globCache.Lock()
	re, ok := globCache.m[k]
	globCache.Unlock()
	if ok {
		return re
	}
	var b strings.Builder
	b.WriteString(`(?s)`)
	if mode == modeWhole {
		b.WriteString(`^`)
	} else {
		b.WriteString(`(?:^|` + boundaryClass + `)`)
	}
	// Case folding only for the pattern: folding the boundary class would
	// also exclude characters such as U+212A KELVIN SIGN that fold into it.
	b.WriteString(`(?i:`)
	if mode == modeWordsLiteral {
		b.WriteString(regexp.QuoteMeta(pattern))
	} else {
		for _, r := range pattern {
			switch r {
			case '*':
				b.WriteString(`.*`)
			case '?':
				b.WriteString(`.`)
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
	}
	b.WriteString(`)`)
	if mode == modeWhole {
		b.WriteString(`$`)
	} else {
		b.WriteString(`(?:` + boundaryClass + `|$)`)
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil // cannot happen for quoted input; never match if it does
	}
	globCache.Lock()
	if globCache.m == nil || len(globCache.m) >= globCacheMax {
		globCache.m = make(map[globKey]*regexp.Regexp)
	}
	globCache.m[k] = re
	globCache.Unlock()
	return re
}
