package pushrules

import "encoding/json"

// Default returns the server-default rules of the current spec for userID,
// in the spec's order (spec "Predefined Rules", "Default Override Rules" and
// "Default Underride Rules").
//
// Since v1.17 the spec defines no default content rules: the legacy rules
// that looked for mentions in the body (.m.rule.contains_user_name,
// .m.rule.contains_display_name, .m.rule.roomnotif) were removed, so Content
// is empty. Room and sender have no defaults either.
func Default(userID string) Ruleset {
	return Ruleset{
		Override: []Rule{
			// .m.rule.master: matches everything, disabled by default.
			{RuleID: ".m.rule.master", Default: true, Enabled: false,
				Conditions: []Condition{}, Actions: []Action{}},
			{RuleID: ".m.rule.suppress_notices", Default: true, Enabled: true,
				Conditions: []Condition{match("content.msgtype", "m.notice")},
				Actions:    []Action{}},
			{RuleID: ".m.rule.invite_for_me", Default: true, Enabled: true,
				Conditions: []Condition{
					match("type", "m.room.member"),
					match("content.membership", "invite"),
					match("state_key", userID),
				},
				Actions: []Action{Notify(), SetTweak("sound", "default")}},
			{RuleID: ".m.rule.member_event", Default: true, Enabled: true,
				Conditions: []Condition{match("type", "m.room.member")},
				Actions:    []Action{}},
			{RuleID: ".m.rule.is_user_mention", Default: true, Enabled: true,
				Conditions: []Condition{
					propContains(`content.m\.mentions.user_ids`, userID),
				},
				Actions: []Action{Notify(), SetTweak("sound", "default"), SetTweak("highlight", nil)}},
			{RuleID: ".m.rule.is_room_mention", Default: true, Enabled: true,
				Conditions: []Condition{
					propIs(`content.m\.mentions.room`, true),
					{Kind: CondSenderNotificationPermission, Key: "room"},
				},
				Actions: []Action{Notify(), SetTweak("highlight", nil)}},
			{RuleID: ".m.rule.tombstone", Default: true, Enabled: true,
				Conditions: []Condition{
					match("type", "m.room.tombstone"),
					match("state_key", ""),
				},
				Actions: []Action{Notify(), SetTweak("highlight", nil)}},
			{RuleID: ".m.rule.reaction", Default: true, Enabled: true,
				Conditions: []Condition{match("type", "m.reaction")},
				Actions:    []Action{}},
			{RuleID: ".m.rule.room.server_acl", Default: true, Enabled: true,
				Conditions: []Condition{
					match("type", "m.room.server_acl"),
					match("state_key", ""),
				},
				Actions: []Action{}},
			{RuleID: ".m.rule.suppress_edits", Default: true, Enabled: true,
				Conditions: []Condition{
					propIs(`content.m\.relates_to.rel_type`, "m.replace"),
				},
				Actions: []Action{}},
		},
		Content: []Rule{},
		Room:    []Rule{},
		Sender:  []Rule{},
		Underride: []Rule{
			{RuleID: ".m.rule.call", Default: true, Enabled: true,
				Conditions: []Condition{match("type", "m.call.invite")},
				Actions:    []Action{Notify(), SetTweak("sound", "ring")}},
			{RuleID: ".m.rule.encrypted_room_one_to_one", Default: true, Enabled: true,
				Conditions: []Condition{
					{Kind: CondRoomMemberCount, Is: "2"},
					match("type", "m.room.encrypted"),
				},
				Actions: []Action{Notify(), SetTweak("sound", "default")}},
			{RuleID: ".m.rule.room_one_to_one", Default: true, Enabled: true,
				Conditions: []Condition{
					{Kind: CondRoomMemberCount, Is: "2"},
					match("type", "m.room.message"),
				},
				Actions: []Action{Notify(), SetTweak("sound", "default")}},
			{RuleID: ".m.rule.message", Default: true, Enabled: true,
				Conditions: []Condition{match("type", "m.room.message")},
				Actions:    []Action{Notify()}},
			{RuleID: ".m.rule.encrypted", Default: true, Enabled: true,
				Conditions: []Condition{match("type", "m.room.encrypted")},
				Actions:    []Action{Notify()}},
		},
	}
}

func match(key, pattern string) Condition {
	return Condition{Kind: CondEventMatch, Key: key, Pattern: &pattern}
}

func propIs(key string, value any) Condition {
	return Condition{Kind: CondEventPropertyIs, Key: key, Value: mustJSON(value)}
}

func propContains(key string, value any) Condition {
	return Condition{Kind: CondEventPropertyContains, Key: key, Value: mustJSON(value)}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// defaultTemplate holds the user-independent parts of the defaults (enabled
// and actions do not depend on the user), for lookups by kind and ID.
var defaultTemplate = Default("")

// lookupDefault returns the server-default rule of kind with ruleID.
func lookupDefault(kind, ruleID string) (Rule, bool) {
	return defaultTemplate.Find(kind, ruleID)
}
