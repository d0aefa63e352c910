package pushrules

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
)

func wantErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %s", status, code)
	}
	e := mxerr.As(err)
	if e.Status != status || e.Code != code {
		t.Fatalf("error = %d %s (%s), want %d %s", e.Status, e.Code, e.Message, status, code)
	}
}

func ids(rules []Rule) []string {
	out := []string{}
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

// jsonEq compares two JSON texts as values.
func jsonEq(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

const notifyBody = `{"actions":["notify"]}`

func TestPutOrdering(t *testing.T) {
	type put struct{ id, before, after string }
	tests := []struct {
		name string
		puts []put
		want []string
	}{
		{"new rules go first", []put{{"a", "", ""}, {"b", "", ""}, {"c", "", ""}}, []string{"c", "b", "a"}},
		{"before", []put{{"a", "", ""}, {"b", "a", ""}}, []string{"b", "a"}},
		{"before middle", []put{{"a", "", ""}, {"b", "", ""}, {"c", "a", ""}}, []string{"b", "c", "a"}},
		{"after", []put{{"a", "", ""}, {"b", "", ""}, {"c", "", "a"}}, []string{"b", "a", "c"}},
		{"after first", []put{{"a", "", ""}, {"b", "", ""}, {"c", "", "b"}}, []string{"b", "c", "a"}},
		{"before wins over after", []put{{"a", "", ""}, {"b", "", ""}, {"c", "a", "b"}}, []string{"b", "c", "a"}},
		{"update keeps place", []put{{"a", "", ""}, {"b", "", ""}, {"a", "", ""}}, []string{"b", "a"}},
		{"update moves with before", []put{{"a", "", ""}, {"b", "", ""}, {"a", "b", ""}}, []string{"a", "b"}},
		{"update moves with after", []put{{"a", "", ""}, {"b", "", ""}, {"c", "", ""}, {"c", "", "a"}}, []string{"b", "a", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u UserRules
			for _, p := range tt.puts {
				if err := u.Put(KindRoom, p.id, []byte(notifyBody), p.before, p.after); err != nil {
					t.Fatalf("put %s: %v", p.id, err)
				}
			}
			if got := ids(u.Room); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("order = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPutErrors(t *testing.T) {
	tests := []struct {
		name, kind, id, body, before, after string
		status                              int
		code                                string
	}{
		{"unknown kind", "nope", "x", notifyBody, "", "", 400, "M_INVALID_PARAM"},
		{"empty id", KindRoom, "", notifyBody, "", "", 400, "M_INVALID_PARAM"},
		{"dot id", KindOverride, ".m.rule.master", notifyBody, "", "", 400, "M_INVALID_PARAM"},
		{"dot id new", KindOverride, ".mine", notifyBody, "", "", 400, "M_INVALID_PARAM"},
		{"slash id", KindContent, "a/b", `{"actions":[],"pattern":"x"}`, "", "", 400, "M_INVALID_PARAM"},
		{"backslash id", KindRoom, `#fo\o:example.com`, notifyBody, "", "", 400, "M_INVALID_PARAM"},
		{"not json", KindRoom, "!r:x", `{`, "", "", 400, "M_NOT_JSON"},
		{"not object", KindRoom, "!r:x", `[]`, "", "", 400, "M_BAD_JSON"},
		{"no actions", KindRoom, "!r:x", `{}`, "", "", 400, "M_BAD_JSON"},
		{"null actions", KindRoom, "!r:x", `{"actions":null}`, "", "", 400, "M_BAD_JSON"},
		{"actions not array", KindRoom, "!r:x", `{"actions":"notify"}`, "", "", 400, "M_BAD_JSON"},
		{"invalid action", KindRoom, "!r:x", `{"actions":["not_an_action"]}`, "", "", 400, "M_BAD_JSON"},
		{"content without pattern", KindContent, "c", notifyBody, "", "", 400, "M_BAD_JSON"},
		{"content pattern not string", KindContent, "c", `{"actions":[],"pattern":1}`, "", "", 400, "M_BAD_JSON"},
		{"condition without kind", KindUnderride, "u", `{"actions":[],"conditions":[{}]}`, "", "", 400, "M_BAD_JSON"},
		{"conditions not array", KindOverride, "o", `{"actions":[],"conditions":{}}`, "", "", 400, "M_BAD_JSON"},
		{"event_match without pattern", KindOverride, "o", `{"actions":[],"conditions":[{"kind":"event_match","key":"type"}]}`, "", "", 400, "M_BAD_JSON"},
		{"property_is without value", KindOverride, "o", `{"actions":[],"conditions":[{"kind":"event_property_is","key":"type"}]}`, "", "", 400, "M_BAD_JSON"},
		{"property_is compound value", KindOverride, "o", `{"actions":[],"conditions":[{"kind":"event_property_is","key":"type","value":[1]}]}`, "", "", 400, "M_BAD_JSON"},
		{"property_is float value", KindOverride, "o", `{"actions":[],"conditions":[{"kind":"event_property_is","key":"type","value":1.5}]}`, "", "", 400, "M_BAD_JSON"},
		{"bad member count", KindOverride, "o", `{"actions":[],"conditions":[{"kind":"room_member_count","is":"=>2"}]}`, "", "", 400, "M_BAD_JSON"},
		{"before missing", KindRoom, "!r:x", notifyBody, "!nope:x", "", 400, "M_UNKNOWN"},
		{"after missing", KindRoom, "!r:x", notifyBody, "", "!nope:x", 400, "M_UNKNOWN"},
		{"before default", KindOverride, "o", notifyBody, ".m.rule.master", "", 400, "M_INVALID_PARAM"},
		{"after default", KindUnderride, "u", notifyBody, "", ".m.rule.message", 400, "M_INVALID_PARAM"},
		{"before self", KindRoom, "!r:x", notifyBody, "!r:x", "", 400, "M_INVALID_PARAM"},
		{"before rule of other kind", KindSender, "@b:x", notifyBody, "!exists:x", "", 400, "M_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u UserRules
			if err := u.Put(KindRoom, "!exists:x", []byte(notifyBody), "", ""); err != nil {
				t.Fatal(err)
			}
			before, _ := json.Marshal(u)
			wantErr(t, u.Put(tt.kind, tt.id, []byte(tt.body), tt.before, tt.after), tt.status, tt.code)
			if after, _ := json.Marshal(u); string(after) != string(before) {
				t.Errorf("failed Put changed state: %s", after)
			}
		})
	}
}

func TestPutAcceptsSpecBodies(t *testing.T) {
	tests := []struct {
		kind, id, body, want string
	}{
		// The spec's examples (push.md "Examples").
		{KindRoom, "!dj234r78wl45Gh4D:matrix.org", `{"actions":[]}`,
			`{"rule_id":"!dj234r78wl45Gh4D:matrix.org","default":false,"enabled":true,"actions":[]}`},
		{KindSender, "@spambot:matrix.org", `{"actions":[]}`,
			`{"rule_id":"@spambot:matrix.org","default":false,"enabled":true,"actions":[]}`},
		{KindContent, "SSByZWFsbHkgbGlrZSBjYWtl", `{"pattern":"cake","actions":["notify",{"set_tweak":"sound","value":"cakealarm.wav"}]}`,
			`{"rule_id":"SSByZWFsbHkgbGlrZSBjYWtl","default":false,"enabled":true,"actions":["notify",{"set_tweak":"sound","value":"cakealarm.wav"}],"pattern":"cake"}`},
		{KindOverride, "U2VlIHlvdSBpbiBUaGUgRHVrZQ", `{"conditions":[{"kind":"event_match","key":"content.body","pattern":"beer"},{"kind":"room_member_count","is":"<=10"}],"actions":["notify",{"set_tweak":"sound","value":"beeroclock.wav"}]}`,
			`{"rule_id":"U2VlIHlvdSBpbiBUaGUgRHVrZQ","default":false,"enabled":true,"actions":["notify",{"set_tweak":"sound","value":"beeroclock.wav"}],"conditions":[{"kind":"event_match","key":"content.body","pattern":"beer"},{"kind":"room_member_count","is":"<=10"}]}`},
		// Conditions are optional; inapplicable keys are dropped; historical
		// actions are kept as set (and ignored at evaluation); unknown
		// condition kinds are kept.
		{KindUnderride, "u", `{"actions":["dont_notify"]}`,
			`{"rule_id":"u","default":false,"enabled":true,"actions":["dont_notify"],"conditions":[]}`},
		{KindRoom, "!r:x", `{"actions":["notify","coalesce"],"pattern":"x","conditions":[{"kind":"x"}]}`,
			`{"rule_id":"!r:x","default":false,"enabled":true,"actions":["notify","coalesce"]}`},
		{KindOverride, "o", `{"actions":[],"conditions":[{"kind":"org.example.future","foo":1},{"kind":"event_property_is","key":"content.x","value":null}]}`,
			`{"rule_id":"o","default":false,"enabled":true,"actions":[],"conditions":[{"kind":"org.example.future"},{"kind":"event_property_is","key":"content.x","value":null}]}`},
		{KindOverride, "tomb", `{"actions":[],"conditions":[{"kind":"event_match","key":"state_key","pattern":""}]}`,
			`{"rule_id":"tomb","default":false,"enabled":true,"actions":[],"conditions":[{"kind":"event_match","key":"state_key","pattern":""}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.id, func(t *testing.T) {
			var u UserRules
			if err := u.Put(tt.kind, tt.id, []byte(tt.body), "", ""); err != nil {
				t.Fatal(err)
			}
			r, err := u.Get(alice, tt.kind, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.Marshal(r); !jsonEq(b, []byte(tt.want)) {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestEffectiveOrder(t *testing.T) {
	var u UserRules
	for _, k := range []string{KindOverride, KindUnderride} {
		if err := u.Put(k, "mine", []byte(notifyBody), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Put(KindContent, "cake", []byte(`{"actions":[],"pattern":"cake"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	rs := u.Effective(alice)
	if got := ids(rs.Override)[:3]; !reflect.DeepEqual(got, []string{".m.rule.master", "mine", ".m.rule.suppress_notices"}) {
		t.Errorf("override starts %v", got)
	}
	if got := ids(rs.Underride)[:2]; !reflect.DeepEqual(got, []string{"mine", ".m.rule.call"}) {
		t.Errorf("underride starts %v", got)
	}
	if got := ids(rs.Content); !reflect.DeepEqual(got, []string{"cake"}) {
		t.Errorf("content = %v", got)
	}
	// The result does not alias the stored state.
	rs.Override[1].Actions[0] = SetTweak("x", nil)
	if u.Override[0].Actions[0].Kind != ActionNotify {
		t.Error("Effective aliases stored actions")
	}
	// A nil *UserRules is "no changes".
	var none *UserRules
	if got, want := none.Effective(alice), Default(alice); !reflect.DeepEqual(got, want) {
		t.Error("nil UserRules differs from Default")
	}
}

func TestGetErrors(t *testing.T) {
	var u *UserRules
	_, err := u.Get(alice, "nope", "x") // unknown kind: no such rule
	wantErr(t, err, 404, "M_NOT_FOUND")
	_, err = u.Get(alice, KindOverride, "not_a_rule_id")
	wantErr(t, err, 404, "M_NOT_FOUND")
	_, err = u.Get(alice, KindUnderride, ".m.rule.master") // wrong kind
	wantErr(t, err, 404, "M_NOT_FOUND")
	r, err := u.Get(alice, KindOverride, ".m.rule.invite_for_me")
	if err != nil || *r.Conditions[2].Pattern != alice {
		t.Errorf("invite_for_me = %+v, %v", r, err)
	}
}

func TestDelete(t *testing.T) {
	var u UserRules
	for _, id := range []string{"!a:x", "!b:x"} {
		if err := u.Put(KindRoom, id, []byte(notifyBody), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Delete(KindRoom, "!b:x"); err != nil {
		t.Fatal(err)
	}
	if got := ids(u.Room); !reflect.DeepEqual(got, []string{"!a:x"}) {
		t.Errorf("room = %v", got)
	}
	wantErr(t, u.Delete(KindRoom, "!b:x"), 404, "M_NOT_FOUND")
	wantErr(t, u.Delete(KindSender, "!a:x"), 404, "M_NOT_FOUND")
	wantErr(t, u.Delete("nope", "!a:x"), 404, "M_NOT_FOUND")
	wantErr(t, u.Delete(KindOverride, ".m.rule.master"), 400, "M_INVALID_PARAM")
	wantErr(t, u.Delete(KindOverride, ".m.rule.nonexistent"), 404, "M_NOT_FOUND")
}

func TestEnabledAndActions(t *testing.T) {
	var u UserRules
	if err := u.Put(KindSender, "@bob:x", []byte(notifyBody), "", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind, id string
		initial  bool
	}{
		{KindOverride, ".m.rule.master", false},
		{KindUnderride, ".m.rule.message", true},
		{KindSender, "@bob:x", true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if en, err := u.Enabled(tt.kind, tt.id); err != nil || en != tt.initial {
				t.Fatalf("Enabled = %v, %v", en, err)
			}
			if err := u.SetEnabled(tt.kind, tt.id, !tt.initial); err != nil {
				t.Fatal(err)
			}
			if en, _ := u.Enabled(tt.kind, tt.id); en != !tt.initial {
				t.Errorf("after SetEnabled: %v", en)
			}
			if r, _ := u.Get(alice, tt.kind, tt.id); r.Enabled != !tt.initial {
				t.Errorf("Get.enabled = %v", r.Enabled)
			}
			acts := []Action{Notify(), SetTweak("highlight", nil), {Kind: ActionDontNotify}}
			if err := u.SetActions(tt.kind, tt.id, acts); err != nil {
				t.Fatal(err)
			}
			got, err := u.Actions(tt.kind, tt.id)
			if b, _ := json.Marshal(got); err != nil || string(b) != `["notify",{"set_tweak":"highlight"},"dont_notify"]` {
				t.Errorf("Actions = %s, %v", b, err)
			}
		})
	}
	for _, f := range []func() error{
		func() error { return u.SetEnabled(KindOverride, "nope", true) },
		func() error { _, err := u.Enabled(KindRoom, "@bob:x"); return err },
		func() error { return u.SetActions(KindOverride, ".m.rule.nope", nil) },
		func() error { _, err := u.Actions(KindUnderride, ".m.rule.master"); return err },
		// A kind the server does not know holds no rules (MSC4306's
		// "postcontent" is probed this way by clients).
		func() error { return u.SetEnabled("postcontent", ".m.rule.master", true) },
		func() error { _, err := u.Get("@a:x", "postcontent", ".m.rule.master"); return err },
	} {
		wantErr(t, f(), 404, "M_NOT_FOUND")
	}
	wantErr(t, u.SetActions(KindOverride, ".m.rule.master", []Action{{Kind: "bogus"}}), 400, "M_BAD_JSON")

	// Resetting a default to its original values drops the stored change.
	if err := u.SetEnabled(KindOverride, ".m.rule.master", false); err != nil {
		t.Fatal(err)
	}
	if err := u.SetActions(KindOverride, ".m.rule.master", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Defaults[KindOverride]; ok {
		t.Errorf("override changes kept: %+v", u.Defaults[KindOverride])
	}
	// Re-putting a disabled user rule keeps it disabled.
	if err := u.SetEnabled(KindSender, "@bob:x", false); err != nil {
		t.Fatal(err)
	}
	if err := u.Put(KindSender, "@bob:x", []byte(notifyBody), "", ""); err != nil {
		t.Fatal(err)
	}
	if en, _ := u.Enabled(KindSender, "@bob:x"); en {
		t.Error("update re-enabled the rule")
	}
}

func TestUserRulesJSONRoundTrip(t *testing.T) {
	var u UserRules
	steps := []error{
		u.Put(KindOverride, "o", []byte(`{"actions":["notify"],"conditions":[{"kind":"event_property_is","key":"content.m\\.x","value":null},{"kind":"event_match","key":"state_key","pattern":""}]}`), "", ""),
		u.Put(KindContent, "c", []byte(`{"actions":[{"set_tweak":"sound","value":"x"}],"pattern":"cake*"}`), "", ""),
		u.Put(KindRoom, "!r:x", []byte(`{"actions":[]}`), "", ""),
		u.Put(KindSender, "@s:x", []byte(`{"actions":[]}`), "", ""),
		u.Put(KindUnderride, "u", []byte(`{"actions":[]}`), "", ""),
		u.SetEnabled(KindOverride, ".m.rule.master", true),
		u.SetActions(KindUnderride, ".m.rule.message", []Action{}),
		u.SetEnabled(KindRoom, "!r:x", false),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	b, err := json.Marshal(&u)
	if err != nil {
		t.Fatal(err)
	}
	var back UserRules
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, u) {
		t.Errorf("round trip differs:\n%+v\n%+v", back, u)
	}
	if !reflect.DeepEqual(back.Effective(alice), u.Effective(alice)) {
		t.Error("effective rulesets differ")
	}
	if a, _ := back.Actions(KindUnderride, ".m.rule.message"); a == nil || len(a) != 0 {
		t.Errorf("empty-actions change lost: %#v", a)
	}
	var empty UserRules
	if b, _ := json.Marshal(empty); string(b) != "{}" {
		t.Errorf("empty state = %s", b)
	}
}

func TestParseBodies(t *testing.T) {
	if en, err := ParseEnabledBody([]byte(`{"enabled":true}`)); err != nil || !en {
		t.Errorf("enabled = %v, %v", en, err)
	}
	for body, code := range map[string]string{
		`{"enabled":"not a boolean"}`: "M_BAD_JSON", `{}`: "M_BAD_JSON",
		`{"enabled":null}`: "M_BAD_JSON", `nope`: "M_NOT_JSON",
	} {
		_, err := ParseEnabledBody([]byte(body))
		wantErr(t, err, 400, code)
	}
	a, err := ParseActionsBody([]byte(`{"actions":["notify",{"set_tweak":"highlight"},"dont_notify"]}`))
	if err != nil || len(a) != 3 {
		t.Errorf("actions = %v, %v", a, err)
	}
	for _, body := range []string{`{}`, `{"actions":[1]}`, `{"actions":["bogus"]}`, `5`} {
		_, err := ParseActionsBody([]byte(body))
		wantErr(t, err, 400, "M_BAD_JSON")
	}
}
