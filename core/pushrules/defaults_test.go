package pushrules

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

const alice = "@alice:example.org"

// TestDefaultMatchesSpecText compares Default with the rule definitions
// copied verbatim from the spec (testdata/spec_defaults.json, extracted from
// push.md "Predefined Rules"), as JSON values.
func TestDefaultMatchesSpecText(t *testing.T) {
	raw, err := os.ReadFile("testdata/spec_defaults.json")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("[the user's Matrix ID]"), []byte(alice))
	var want map[string][]any
	var spec struct {
		Override, Content, Room, Sender, Underride []any
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	want = map[string][]any{KindOverride: spec.Override, KindContent: spec.Content,
		KindRoom: spec.Room, KindSender: spec.Sender, KindUnderride: spec.Underride}
	b, err := json.Marshal(Default(alice))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, kind := range Kinds {
		if len(got[kind]) != len(want[kind]) {
			t.Errorf("%s: %d rules, spec has %d", kind, len(got[kind]), len(want[kind]))
			continue
		}
		for i := range want[kind] {
			if !reflect.DeepEqual(got[kind][i], want[kind][i]) {
				g, _ := json.Marshal(got[kind][i])
				w, _ := json.Marshal(want[kind][i])
				t.Errorf("%s[%d]:\n got  %s\n want %s", kind, i, g, w)
			}
		}
	}
}

func TestDefaultShape(t *testing.T) {
	rs := Default(alice)
	tests := []struct {
		kind string
		ids  []string
	}{
		{KindOverride, []string{
			".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
			".m.rule.member_event", ".m.rule.is_user_mention", ".m.rule.is_room_mention",
			".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl",
			".m.rule.suppress_edits",
		}},
		{KindContent, []string{}},
		{KindRoom, []string{}},
		{KindSender, []string{}},
		{KindUnderride, []string{
			".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
			".m.rule.message", ".m.rule.encrypted",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			rules := rs.Kind(tt.kind)
			if rules == nil {
				t.Fatal("nil list would serialise as null")
			}
			ids := []string{}
			for _, r := range rules {
				ids = append(ids, r.RuleID)
				if !r.Default {
					t.Errorf("%s: default=false", r.RuleID)
				}
				if want := r.RuleID != MasterRuleID; r.Enabled != want {
					t.Errorf("%s: enabled=%v", r.RuleID, r.Enabled)
				}
				if r.Actions == nil || r.Conditions == nil {
					t.Errorf("%s: nil actions or conditions", r.RuleID)
				}
			}
			if !reflect.DeepEqual(ids, tt.ids) {
				t.Errorf("ids = %v, want %v", ids, tt.ids)
			}
		})
	}
}

func TestRulesetJSONHasAllKinds(t *testing.T) {
	b, _ := json.Marshal(Content{Global: Default(alice)})
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, kind := range Kinds {
		if v, ok := m["global"][kind]; !ok || string(v) == "null" {
			t.Errorf("global.%s = %s", kind, v)
		}
	}
	if string(m["global"]["content"]) != "[]" {
		t.Errorf("content = %s, want []", m["global"]["content"])
	}
}

func TestActionJSON(t *testing.T) {
	tests := []struct {
		in, out string // out "" means error
	}{
		{`"notify"`, `"notify"`},
		{`"dont_notify"`, `"dont_notify"`},
		{`"coalesce"`, `"coalesce"`},
		{`{"set_tweak":"sound","value":"default"}`, `{"set_tweak":"sound","value":"default"}`},
		{`{"set_tweak":"highlight"}`, `{"set_tweak":"highlight"}`},
		{`{"set_tweak":"highlight","value":false}`, `{"set_tweak":"highlight","value":false}`},
		{`{"set_tweak":"x","value":{"a": [1, 2]}}`, `{"set_tweak":"x","value":{"a":[1,2]}}`},
		{`{"value":"default","set_tweak":"sound","extra":1}`, `{"set_tweak":"sound","value":"default"}`},
		{`"not_an_action"`, ""},
		{`{"value":"x"}`, ""},
		{`{"set_tweak":5}`, ""},
		{`5`, ""},
		{`["notify"]`, ""},
		{`null`, ""},
	}
	for _, tt := range tests {
		var a Action
		err := json.Unmarshal([]byte(tt.in), &a)
		if tt.out == "" {
			if err == nil {
				t.Errorf("%s: no error", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		b, _ := json.Marshal(a)
		if string(b) != tt.out {
			t.Errorf("%s -> %s, want %s", tt.in, b, tt.out)
		}
	}
}

func TestNotifiesHighlightsTweaks(t *testing.T) {
	tests := []struct {
		name      string
		actions   []Action
		notify    bool
		highlight bool
	}{
		{"empty", []Action{}, false, false},
		{"notify", []Action{Notify()}, true, false},
		{"highlight no value", []Action{Notify(), SetTweak("highlight", nil)}, true, true},
		{"highlight true", []Action{Notify(), SetTweak("highlight", true)}, true, true},
		{"highlight false", []Action{Notify(), SetTweak("highlight", false)}, true, false},
		{"last highlight wins", []Action{Notify(), SetTweak("highlight", nil), SetTweak("highlight", false)}, true, false},
		{"highlight without notify", []Action{SetTweak("highlight", nil)}, false, false},
	}
	for _, tt := range tests {
		if got := Notifies(tt.actions); got != tt.notify {
			t.Errorf("%s: Notifies = %v", tt.name, got)
		}
		if got := Highlights(tt.actions); got != tt.highlight {
			t.Errorf("%s: Highlights = %v", tt.name, got)
		}
	}
	tw := Tweaks([]Action{Notify(), SetTweak("sound", "default"), SetTweak("highlight", nil)})
	if string(tw["sound"]) != `"default"` || string(tw["highlight"]) != "true" || len(tw) != 2 {
		t.Errorf("Tweaks = %v", tw)
	}
}
