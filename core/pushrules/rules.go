// Package pushrules is the push-rule domain of Lichen: the rule and ruleset
// types exactly as the spec serialises them, the server-default rules, the
// per-user stored state with the operations behind the /pushrules API, and
// the evaluator that decides whether an event notifies or highlights.
//
// Spec: client-server-api "Push Notifications" (modules/push.md), the
// "/pushrules" endpoints (api/client-server/pushrules.yaml) and the
// appendices "Glob-style matching" and "Dot-separated property paths".
//
// The package is pure: no HTTP, no storage. Errors are *mxerr.Error values
// carrying the spec's errcode and HTTP status.
package pushrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Rule kinds, in the order rules are checked (spec "Push Rules").
const (
	KindOverride  = "override"
	KindContent   = "content"
	KindRoom      = "room"
	KindSender    = "sender"
	KindUnderride = "underride"
)

// Kinds lists the five kinds in evaluation order (spec "Push Rules": override,
// content, room, sender, underride).
var Kinds = []string{KindOverride, KindContent, KindRoom, KindSender, KindUnderride}

// ValidKind reports whether kind is one of the five spec kinds.
func ValidKind(kind string) bool {
	switch kind {
	case KindOverride, KindContent, KindRoom, KindSender, KindUnderride:
		return true
	}
	return false
}

// Ruleset is a user's complete "global" ruleset as returned by
// GET /pushrules/global/ and carried in m.push_rules (spec definitions
// push_ruleset.yaml). Every list is non-nil so it serialises as [].
type Ruleset struct {
	Override  []Rule `json:"override"`
	Content   []Rule `json:"content"`
	Room      []Rule `json:"room"`
	Sender    []Rule `json:"sender"`
	Underride []Rule `json:"underride"`
}

// Kind returns the rules of one kind (nil for an unknown kind).
func (rs *Ruleset) Kind(kind string) []Rule {
	if p := rs.list(kind); p != nil {
		return *p
	}
	return nil
}

func (rs *Ruleset) list(kind string) *[]Rule {
	switch kind {
	case KindOverride:
		return &rs.Override
	case KindContent:
		return &rs.Content
	case KindRoom:
		return &rs.Room
	case KindSender:
		return &rs.Sender
	case KindUnderride:
		return &rs.Underride
	}
	return nil
}

// Find returns the rule of the given kind and ID, if present.
func (rs *Ruleset) Find(kind, ruleID string) (Rule, bool) {
	for _, r := range rs.Kind(kind) {
		if r.RuleID == ruleID {
			return r, true
		}
	}
	return Rule{}, false
}

// Content is the body of GET /pushrules/ and the content of the
// m.push_rules account-data event: {"global": Ruleset}.
type Content struct {
	Global Ruleset `json:"global"`
}

// Rule is one push rule (spec definitions push_rule.yaml).
//
// Conditions is emitted whenever it is non-nil, so override and underride
// rules always carry "conditions" (possibly []), as in the spec's definition
// of .m.rule.master, while content, room and sender rules carry none.
// Pattern is set only on content rules.
type Rule struct {
	RuleID     string      `json:"rule_id"`
	Default    bool        `json:"default"`
	Enabled    bool        `json:"enabled"`
	Actions    []Action    `json:"actions"`
	Conditions []Condition `json:"conditions,omitzero"`
	Pattern    *string     `json:"pattern,omitempty"`
}

func (r Rule) clone() Rule {
	c := r
	c.Actions = append(make([]Action, 0, len(r.Actions)), r.Actions...)
	if r.Conditions != nil {
		c.Conditions = append(make([]Condition, 0, len(r.Conditions)), r.Conditions...)
	}
	if r.Pattern != nil {
		p := *r.Pattern
		c.Pattern = &p
	}
	return c
}

// Condition kinds defined by the spec (spec "Conditions").
const (
	CondEventMatch                   = "event_match"
	CondEventPropertyIs              = "event_property_is"
	CondEventPropertyContains        = "event_property_contains"
	CondContainsDisplayName          = "contains_display_name" // deprecated in v1.17
	CondRoomMemberCount              = "room_member_count"
	CondSenderNotificationPermission = "sender_notification_permission"
)

// Condition is one push condition (spec definitions push_condition.yaml).
// Pattern is a pointer because "" is a meaningful pattern (.m.rule.tombstone
// matches state_key ""). Value holds the raw JSON of a non-compound value;
// nil means absent, while the JSON literal null is a legitimate value.
type Condition struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Pattern *string         `json:"pattern,omitempty"`
	Is      string          `json:"is,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// Action names (spec "Actions" and "Historical Actions").
const (
	ActionNotify   = "notify"
	ActionSetTweak = "set_tweak"
	// Historical actions: accepted on input, then stripped; they never
	// have an effect (spec "Historical Actions").
	ActionDontNotify = "dont_notify"
	ActionCoalesce   = "coalesce"
)

// Action is one push-rule action. A parameterless action serialises as its
// name ("notify"); set_tweak serialises as {"set_tweak": Tweak, "value":
// Value}, with "value" omitted when Value is nil.
type Action struct {
	Kind  string          // ActionNotify, ActionSetTweak or a historical name
	Tweak string          // set_tweak only: the tweak name
	Value json.RawMessage // set_tweak only: the tweak value, nil if absent
}

// Notify is the "notify" action.
func Notify() Action { return Action{Kind: ActionNotify} }

// SetTweak is a set_tweak action. value nil means no "value" key; otherwise
// it is marshalled with encoding/json.
func SetTweak(name string, value any) Action {
	a := Action{Kind: ActionSetTweak, Tweak: name}
	if value != nil {
		b, err := json.Marshal(value)
		if err != nil {
			panic("pushrules: unmarshallable tweak value: " + err.Error())
		}
		a.Value = b
	}
	return a
}

// MarshalJSON implements the spec's action encoding.
func (a Action) MarshalJSON() ([]byte, error) {
	if a.Kind != ActionSetTweak {
		return json.Marshal(a.Kind)
	}
	obj := struct {
		SetTweak string          `json:"set_tweak"`
		Value    json.RawMessage `json:"value,omitempty"`
	}{a.Tweak, a.Value}
	return json.Marshal(obj)
}

var errBadAction = errors.New("unrecognised push action")

// UnmarshalJSON accepts the action forms the spec defines: the strings
// "notify", "dont_notify" and "coalesce", and objects with a string
// "set_tweak" key and an optional "value". Anything else is an error (an
// unknown action has no defined meaning). Extra keys in a set_tweak object
// are dropped.
func (a *Action) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case ActionNotify, ActionDontNotify, ActionCoalesce:
			*a = Action{Kind: s}
			return nil
		}
		return fmt.Errorf("%w: %q", errBadAction, s)
	}
	if len(b) == 0 || b[0] != '{' {
		return errBadAction
	}
	var obj struct {
		SetTweak *string         `json:"set_tweak"`
		Value    json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	if obj.SetTweak == nil {
		return fmt.Errorf("%w: object without set_tweak", errBadAction)
	}
	*a = Action{Kind: ActionSetTweak, Tweak: *obj.SetTweak}
	if obj.Value != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, obj.Value); err != nil {
			return err
		}
		a.Value = buf.Bytes()
	}
	return nil
}

// stripHistorical drops dont_notify and coalesce, which the spec says MUST be
// ignored ("Historical Actions"). It always returns a non-nil slice.
func stripHistorical(actions []Action) []Action {
	out := make([]Action, 0, len(actions))
	for _, a := range actions {
		if a.Kind == ActionDontNotify || a.Kind == ActionCoalesce {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Notifies reports whether actions contain "notify" (spec "Actions"): the
// event counts towards unread_notifications and goes to the push gateway.
func Notifies(actions []Action) bool {
	for _, a := range actions {
		if a.Kind == ActionNotify {
			return true
		}
	}
	return false
}

// Highlights reports whether a notification produced by actions is
// highlighted: the actions notify and the last "highlight" tweak has no
// value or any value other than false (spec "Actions", tweak highlight).
// Without "notify" there is no notification, hence no highlight.
func Highlights(actions []Action) bool {
	if !Notifies(actions) {
		return false
	}
	hl := false
	for _, a := range actions {
		if a.Kind == ActionSetTweak && a.Tweak == "highlight" {
			hl = string(bytes.TrimSpace(a.Value)) != "false"
		}
	}
	return hl
}

// Tweaks collects the set_tweak actions into the "tweaks" dictionary sent
// to a push gateway; a later tweak overrides an earlier one of the same
// name, and a highlight tweak without a value is true.
func Tweaks(actions []Action) map[string]json.RawMessage {
	t := map[string]json.RawMessage{}
	for _, a := range actions {
		if a.Kind != ActionSetTweak {
			continue
		}
		v := a.Value
		if v == nil && a.Tweak == "highlight" {
			v = json.RawMessage("true")
		}
		t[a.Tweak] = v
	}
	return t
}
