package pushrules

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// MasterRuleID is the one server-default rule that outranks user-defined
// rules (spec "Predefined Rules", .m.rule.master).
const MasterRuleID = ".m.rule.master"

// UserRules is a user's stored push-rule state, persisted as one JSON blob:
// the user-defined rules of each kind in priority order (most important
// first), and the user's changes to server-default rules. The defaults
// themselves are not stored, so a new spec version's defaults apply to every
// user at once, and changes to rules a later spec removes are ignored.
//
// The zero value (and a nil *UserRules, for the read methods) is a user who
// has changed nothing. The mutating methods need a non-nil receiver. A
// UserRules is not safe for concurrent mutation; the store serialises
// read-modify-write of the blob.
type UserRules struct {
	Override  []Rule `json:"override,omitempty"`
	Content   []Rule `json:"content,omitempty"`
	Room      []Rule `json:"room,omitempty"`
	Sender    []Rule `json:"sender,omitempty"`
	Underride []Rule `json:"underride,omitempty"`
	// Defaults maps kind -> server-default rule ID -> the user's changes.
	Defaults map[string]map[string]DefaultChange `json:"defaults,omitempty"`
}

// DefaultChange records a user's change to a server-default rule: only
// "enabled" and "actions" can be changed (spec pushrules.yaml, the
// /enabled and /actions endpoints). Nil fields mean "as the default".
type DefaultChange struct {
	Enabled *bool    `json:"enabled,omitempty"`
	Actions []Action `json:"actions,omitzero"`
}

func (u *UserRules) list(kind string) *[]Rule {
	switch kind {
	case KindOverride:
		return &u.Override
	case KindContent:
		return &u.Content
	case KindRoom:
		return &u.Room
	case KindSender:
		return &u.Sender
	case KindUnderride:
		return &u.Underride
	}
	return nil
}

// Effective returns the user's complete ruleset: for every kind the
// user-defined rules first, then the server-default rules with the user's
// changes applied, except that .m.rule.master comes before everything
// (spec "Predefined Rules": server-default rules "operate at a lower priority
// than user-defined rules, except for the .m.rule.master rule which has
// always a higher priority than any other rule"). The result shares no
// memory with u.
func (u *UserRules) Effective(userID string) Ruleset {
	rs := Default(userID)
	for _, kind := range Kinds {
		defs := *rs.list(kind)
		for i := range defs {
			u.applyChange(kind, &defs[i])
		}
		var own []Rule
		if u != nil {
			own = *u.list(kind)
		}
		out := make([]Rule, 0, len(own)+len(defs))
		if kind == KindOverride && len(defs) > 0 && defs[0].RuleID == MasterRuleID {
			out = append(out, defs[0])
			defs = defs[1:]
		}
		for _, r := range own {
			out = append(out, r.clone())
		}
		*rs.list(kind) = append(out, defs...)
	}
	return rs
}

func (u *UserRules) applyChange(kind string, r *Rule) {
	if u == nil {
		return
	}
	ch, ok := u.Defaults[kind][r.RuleID]
	if !ok {
		return
	}
	if ch.Enabled != nil {
		r.Enabled = *ch.Enabled
	}
	if ch.Actions != nil {
		r.Actions = append([]Action{}, ch.Actions...)
	}
}

func errKind(kind string) error {
	return mxerr.InvalidParam("unknown push rule kind: " + kind)
}

func errNotFound() error { return mxerr.NotFound("The push rule was not found.") }

// Get returns one rule of the user's effective ruleset
// (GET /pushrules/global/{kind}/{ruleId}): 404 M_NOT_FOUND for an unknown
// rule. A kind this server does not know (such as MSC4306's "postcontent")
// holds no rules, so it is also 404, the answer clients probe for.
func (u *UserRules) Get(userID, kind, ruleID string) (Rule, error) {
	if !ValidKind(kind) {
		return Rule{}, errNotFound()
	}
	rs := u.Effective(userID)
	if r, ok := rs.Find(kind, ruleID); ok {
		return r, nil
	}
	return Rule{}, errNotFound()
}

// find locates a rule: idx >= 0 for a user-defined rule, def for a
// server-default one; err 404 for an unknown rule, or a kind this server
// does not know (it has no rules to read, delete or toggle).
func (u *UserRules) find(kind, ruleID string) (idx int, def Rule, isDef bool, err error) {
	if !ValidKind(kind) {
		return -1, Rule{}, false, errNotFound()
	}
	if d, ok := lookupDefault(kind, ruleID); ok {
		return -1, d, true, nil
	}
	if u != nil {
		if i := indexOf(*u.list(kind), ruleID); i >= 0 {
			return i, Rule{}, false, nil
		}
	}
	return -1, Rule{}, false, errNotFound()
}

func indexOf(rules []Rule, ruleID string) int {
	return slices.IndexFunc(rules, func(r Rule) bool { return r.RuleID == ruleID })
}

// Put creates or updates a user-defined rule from the JSON body of
// PUT /pushrules/global/{kind}/{ruleId} (spec pushrules.yaml setPushRule).
// See PutRule for the semantics and errors; body errors are 400 M_NOT_JSON
// (not JSON) or 400 M_BAD_JSON (missing or malformed keys).
func (u *UserRules) Put(kind, ruleID string, body []byte, before, after string) error {
	if !ValidKind(kind) {
		return errKind(kind)
	}
	if err := validateRuleID(ruleID); err != nil {
		return err
	}
	r, err := ParseRuleBody(kind, body)
	if err != nil {
		return err
	}
	return u.PutRule(kind, ruleID, r, before, after)
}

func validateRuleID(ruleID string) error {
	switch {
	case ruleID == "":
		return mxerr.InvalidParam("empty rule ID")
	case strings.HasPrefix(ruleID, "."):
		return mxerr.InvalidParam("rule IDs starting with '.' are reserved for server-default rules")
	case strings.ContainsAny(ruleID, `/\`):
		return mxerr.InvalidParam("rule IDs cannot contain '/' or '\\'")
	}
	return nil
}

// PutRule creates or updates the user-defined rule kind/ruleID from r's
// actions, conditions (override, underride) and pattern (content); fields
// that do not apply to kind are dropped, and r's RuleID, Default and Enabled
// are ignored.
//
// A new rule is enabled. Placement (spec pushrules.yaml setPushRule): with
// before, the rule goes immediately before that rule (before wins when after
// is also given); with after, immediately after; with neither, a new rule
// becomes the most important user-defined rule of its kind and an updated
// rule keeps its place.
//
// Errors: 400 M_INVALID_PARAM for an unknown kind, a rule ID that is empty,
// starts with '.', or contains '/' or '\', or a before/after naming a
// server-default rule or the rule itself; 400 M_BAD_JSON for a rule body
// that does not fit the kind; 400 M_UNKNOWN "before/after rule not found"
// when before/after names no user-defined rule of the kind (the spec's own
// example for this case).
func (u *UserRules) PutRule(kind, ruleID string, r Rule, before, after string) error {
	if !ValidKind(kind) {
		return errKind(kind)
	}
	if err := validateRuleID(ruleID); err != nil {
		return err
	}
	nr, err := normaliseRule(kind, r)
	if err != nil {
		return err
	}
	nr.RuleID = ruleID
	nr.Enabled = true

	list := u.list(kind)
	cur := indexOf(*list, ruleID)
	if cur >= 0 {
		nr.Enabled = (*list)[cur].Enabled
	}
	rel, relBefore := before, true
	if rel == "" {
		rel, relBefore = after, false
	}
	if rel != "" {
		if rel == ruleID {
			return mxerr.InvalidParam("a rule cannot be placed relative to itself")
		}
		if _, isDef := lookupDefault(kind, rel); isDef || strings.HasPrefix(rel, ".") {
			return mxerr.InvalidParam("rules cannot be placed relative to a server-default rule")
		}
		if indexOf(*list, rel) < 0 {
			return mxerr.Unknown("before/after rule not found: " + rel)
		}
	}

	switch {
	case cur >= 0 && rel == "":
		(*list)[cur] = nr
		return nil
	case cur >= 0:
		*list = slices.Delete(*list, cur, cur+1)
	}
	at := 0
	if rel != "" {
		at = indexOf(*list, rel)
		if !relBefore {
			at++
		}
	}
	*list = slices.Insert(*list, at, nr)
	return nil
}

// normaliseRule keeps the fields that apply to kind and validates them.
func normaliseRule(kind string, r Rule) (Rule, error) {
	// Historical actions are kept as the client set them (clients read
	// back what they wrote, as Synapse answers) and ignored when rules are
	// evaluated, which is what the spec's "MUST ignore" requires.
	out := Rule{Actions: r.Actions}
	if out.Actions == nil {
		out.Actions = []Action{}
	}
	if err := validateActions(out.Actions); err != nil {
		return Rule{}, err
	}
	switch kind {
	case KindContent:
		if r.Pattern == nil {
			return Rule{}, mxerr.BadJSON("content rules need a pattern")
		}
		p := *r.Pattern
		out.Pattern = &p
	case KindOverride, KindUnderride:
		// Conditions are optional: "A rule with no conditions always
		// matches" (spec "Conditions").
		out.Conditions = make([]Condition, 0, len(r.Conditions))
		for _, c := range r.Conditions {
			if err := validateCondition(c); err != nil {
				return Rule{}, err
			}
			out.Conditions = append(out.Conditions, c)
		}
	}
	return out, nil
}

func validateActions(actions []Action) error {
	for _, a := range actions {
		switch a.Kind {
		case ActionNotify, ActionSetTweak, ActionDontNotify, ActionCoalesce:
		default:
			return mxerr.BadJSON("unrecognised push action: " + a.Kind)
		}
	}
	return nil
}

// validateCondition checks the parameters push_condition.yaml marks as
// required for each known kind. Unknown kinds are accepted (they never
// match, spec "Conditions"), but every condition needs a kind.
func validateCondition(c Condition) error {
	bad := func(msg string) error { return mxerr.BadJSON(c.Kind + " condition: " + msg) }
	switch c.Kind {
	case "":
		return mxerr.BadJSON("push condition without kind")
	case CondEventMatch:
		if c.Key == "" || c.Pattern == nil {
			return bad("key and pattern are required")
		}
	case CondEventPropertyIs, CondEventPropertyContains:
		if c.Key == "" || c.Value == nil {
			return bad("key and value are required")
		}
		if _, ok := parseScalar(c.Value); !ok {
			return bad("value must be a string, integer, boolean or null")
		}
	case CondRoomMemberCount:
		if _, _, ok := parseIs(c.Is); !ok {
			return bad("is must be a decimal integer optionally prefixed by ==, <, >, >= or <=")
		}
	case CondSenderNotificationPermission:
		if c.Key == "" {
			return bad("key is required")
		}
	}
	return nil
}

// Delete removes a user-defined rule (DELETE /pushrules/global/{kind}/
// {ruleId}): 400 M_INVALID_PARAM for an unknown kind or a server-default
// rule (those can only be disabled), 404 M_NOT_FOUND for an unknown rule.
func (u *UserRules) Delete(kind, ruleID string) error {
	idx, _, isDef, err := u.find(kind, ruleID)
	if err != nil {
		return err
	}
	if isDef {
		return mxerr.InvalidParam("server-default rules cannot be deleted")
	}
	l := u.list(kind)
	*l = slices.Delete(*l, idx, idx+1)
	return nil
}

// Enabled reports whether a rule is enabled (GET .../{ruleId}/enabled).
func (u *UserRules) Enabled(kind, ruleID string) (bool, error) {
	idx, def, isDef, err := u.find(kind, ruleID)
	switch {
	case err != nil:
		return false, err
	case isDef:
		u.applyChange(kind, &def)
		return def.Enabled, nil
	}
	return (*u.list(kind))[idx].Enabled, nil
}

// SetEnabled enables or disables a user-defined or server-default rule
// (PUT .../{ruleId}/enabled).
func (u *UserRules) SetEnabled(kind, ruleID string, enabled bool) error {
	idx, def, isDef, err := u.find(kind, ruleID)
	switch {
	case err != nil:
		return err
	case isDef:
		u.changeDefault(kind, def, func(c *DefaultChange) { c.Enabled = &enabled })
		return nil
	}
	(*u.list(kind))[idx].Enabled = enabled
	return nil
}

// Actions returns a rule's actions (GET .../{ruleId}/actions).
func (u *UserRules) Actions(kind, ruleID string) ([]Action, error) {
	idx, def, isDef, err := u.find(kind, ruleID)
	switch {
	case err != nil:
		return nil, err
	case isDef:
		u.applyChange(kind, &def)
		return def.Actions, nil
	}
	return append([]Action{}, (*u.list(kind))[idx].Actions...), nil
}

// SetActions replaces a rule's actions, for user-defined and server-default
// rules alike (PUT .../{ruleId}/actions: "This can be used to change the
// actions of builtin rules"). Historical actions are kept and ignored at
// evaluation.
func (u *UserRules) SetActions(kind, ruleID string, actions []Action) error {
	if actions == nil {
		actions = []Action{}
	}
	if err := validateActions(actions); err != nil {
		return err
	}
	idx, def, isDef, err := u.find(kind, ruleID)
	switch {
	case err != nil:
		return err
	case isDef:
		u.changeDefault(kind, def, func(c *DefaultChange) { c.Actions = actions })
		return nil
	}
	(*u.list(kind))[idx].Actions = actions
	return nil
}

// changeDefault applies f to the stored change of a default rule, and drops
// whatever no longer differs from the default so the blob stays minimal.
func (u *UserRules) changeDefault(kind string, def Rule, f func(*DefaultChange)) {
	c := u.Defaults[kind][def.RuleID]
	f(&c)
	if c.Enabled != nil && *c.Enabled == def.Enabled {
		c.Enabled = nil
	}
	if c.Actions != nil && sameActions(c.Actions, def.Actions) {
		c.Actions = nil
	}
	if c.Enabled == nil && c.Actions == nil {
		delete(u.Defaults[kind], def.RuleID)
		if len(u.Defaults[kind]) == 0 {
			delete(u.Defaults, kind)
		}
		if len(u.Defaults) == 0 {
			u.Defaults = nil
		}
		return
	}
	if u.Defaults == nil {
		u.Defaults = map[string]map[string]DefaultChange{}
	}
	if u.Defaults[kind] == nil {
		u.Defaults[kind] = map[string]DefaultChange{}
	}
	u.Defaults[kind][def.RuleID] = c
}

func sameActions(a, b []Action) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
