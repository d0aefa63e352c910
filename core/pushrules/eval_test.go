package pushrules

import (
	"encoding/json"
	"strings"
	"testing"
)

func view(t *testing.T, js string) EventView {
	t.Helper()
	ev, err := NewEventView([]byte(js))
	if err != nil {
		t.Fatalf("event %s: %v", js, err)
	}
	return ev
}

func msg(body string, extra ...string) string {
	content := `"msgtype":"m.text","body":` + string(mustJSON(body))
	for _, e := range extra {
		content += "," + e
	}
	return `{"type":"m.room.message","sender":"@bob:example.org","room_id":"!r:example.org","content":{` + content + `}}`
}

// TestEvaluateDefaults runs the default rules over typical events.
func TestEvaluateDefaults(t *testing.T) {
	base := Context{UserID: alice, DisplayName: "Alice", MemberCount: 5}
	dm := base
	dm.MemberCount = 2
	mod := base
	mod.SenderPowerLevel = 50
	lowRoomPL := base
	lowRoomPL.NotificationPowerLevels = map[string]int64{"room": 0}
	tests := []struct {
		name      string
		event     string
		ctx       Context
		rule      string // "" means no match
		notify    bool
		highlight bool
	}{
		{"DM message", msg("hi"), dm, ".m.rule.room_one_to_one", true, false},
		{"group message", msg("hi"), base, ".m.rule.message", true, false},
		{"notice suppressed", `{"type":"m.room.message","sender":"@bot:x","content":{"msgtype":"m.notice","body":"beep"}}`, dm, ".m.rule.suppress_notices", false, false},
		{"user mention", msg("hey", `"m.mentions":{"user_ids":["@alice:example.org"]}`), base, ".m.rule.is_user_mention", true, true},
		{"other user mentioned", msg("hey", `"m.mentions":{"user_ids":["@carol:example.org"]}`), base, ".m.rule.message", true, false},
		{"body mention is not a mention (v1.17)", msg("Alice: @alice:example.org @room"), base, ".m.rule.message", true, false},
		{"room mention by moderator", msg("all", `"m.mentions":{"room":true}`), mod, ".m.rule.is_room_mention", true, true},
		{"room mention by user", msg("all", `"m.mentions":{"room":true}`), base, ".m.rule.message", true, false},
		{"room mention, room level 0", msg("all", `"m.mentions":{"room":true}`), lowRoomPL, ".m.rule.is_room_mention", true, true},
		{"room mention as string", msg("all", `"m.mentions":{"room":"true"}`), mod, ".m.rule.message", true, false},
		{"invite for me", `{"type":"m.room.member","state_key":"@alice:example.org","sender":"@bob:x","content":{"membership":"invite"}}`, base, ".m.rule.invite_for_me", true, false},
		{"invite for other", `{"type":"m.room.member","state_key":"@carol:x","sender":"@bob:x","content":{"membership":"invite"}}`, base, ".m.rule.member_event", false, false},
		{"join", `{"type":"m.room.member","state_key":"@bob:x","sender":"@bob:x","content":{"membership":"join"}}`, dm, ".m.rule.member_event", false, false},
		{"tombstone", `{"type":"m.room.tombstone","state_key":"","sender":"@bob:x","content":{"body":"moved"}}`, base, ".m.rule.tombstone", true, true},
		{"tombstone not state", `{"type":"m.room.tombstone","sender":"@bob:x","content":{}}`, base, "", false, false},
		{"reaction", `{"type":"m.reaction","sender":"@bob:x","content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e","key":"👍"}}}`, dm, ".m.rule.reaction", false, false},
		{"server acl", `{"type":"m.room.server_acl","state_key":"","sender":"@bob:x","content":{"allow":["*"]}}`, base, ".m.rule.room.server_acl", false, false},
		{"edit", msg("* fixed", `"m.relates_to":{"rel_type":"m.replace","event_id":"$e"}`), dm, ".m.rule.suppress_edits", false, false},
		{"call", `{"type":"m.call.invite","sender":"@bob:x","content":{}}`, base, ".m.rule.call", true, false},
		{"encrypted DM", `{"type":"m.room.encrypted","sender":"@bob:x","content":{"algorithm":"m.megolm.v1.aes-sha2"}}`, dm, ".m.rule.encrypted_room_one_to_one", true, false},
		{"encrypted group", `{"type":"m.room.encrypted","sender":"@bob:x","content":{}}`, base, ".m.rule.encrypted", true, false},
		{"unknown event type", `{"type":"org.example.thing","sender":"@bob:x","content":{}}`, base, "", false, false},
		{"own message", `{"type":"m.room.message","sender":"@alice:example.org","content":{"msgtype":"m.text","body":"hi"}}`, dm, "", false, false},
	}
	rs := Default(alice)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actions, rule := Evaluate(rs, view(t, tt.event), tt.ctx)
			got := ""
			if rule != nil {
				got = rule.RuleID
			}
			if got != tt.rule {
				t.Fatalf("matched %q, want %q", got, tt.rule)
			}
			if Notifies(actions) != tt.notify || Highlights(actions) != tt.highlight {
				b, _ := json.Marshal(actions)
				t.Errorf("actions %s: notify=%v highlight=%v, want %v %v", b, Notifies(actions), Highlights(actions), tt.notify, tt.highlight)
			}
		})
	}
}

// TestEvaluateUserRules checks kind priority and user/default interplay.
func TestEvaluateUserRules(t *testing.T) {
	ctx := Context{UserID: alice, MemberCount: 5}
	put := func(u *UserRules, kind, id, body string) {
		t.Helper()
		if err := u.Put(kind, id, []byte(body), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(u *UserRules)
		event string
		rule  string
	}{
		{"content rule beats underride", func(u *UserRules) {
			put(u, KindContent, "cake", `{"pattern":"cake","actions":["notify",{"set_tweak":"highlight"}]}`)
		}, msg("I like cake."), "cake"},
		{"content rule needs word boundary", func(u *UserRules) {
			put(u, KindContent, "cake", `{"pattern":"cake","actions":[]}`)
		}, msg("cupcakes"), ".m.rule.message"},
		{"room rule mutes room", func(u *UserRules) {
			put(u, KindRoom, "!r:example.org", `{"actions":[]}`)
		}, msg("hi"), "!r:example.org"},
		{"sender rule", func(u *UserRules) {
			put(u, KindSender, "@bob:example.org", `{"actions":["notify"]}`)
			put(u, KindRoom, "!other:example.org", `{"actions":[]}`)
		}, msg("hi"), "@bob:example.org"},
		{"room beats sender", func(u *UserRules) {
			put(u, KindSender, "@bob:example.org", `{"actions":["notify"]}`)
			put(u, KindRoom, "!r:example.org", `{"actions":[]}`)
		}, msg("hi"), "!r:example.org"},
		{"override beats content", func(u *UserRules) {
			put(u, KindContent, "cake", `{"pattern":"cake","actions":["notify"]}`)
			put(u, KindOverride, "always", `{"actions":[]}`)
		}, msg("cake"), "always"},
		{"user override beats default override", func(u *UserRules) {
			put(u, KindOverride, "notices", `{"actions":["notify"],"conditions":[{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}]}`)
		}, `{"type":"m.room.message","sender":"@b:x","content":{"msgtype":"m.notice","body":"x"}}`, "notices"},
		{"master beats user override", func(u *UserRules) {
			put(u, KindOverride, "always", `{"actions":["notify"]}`)
			if err := u.SetEnabled(KindOverride, MasterRuleID, true); err != nil {
				t.Fatal(err)
			}
		}, msg("hi"), MasterRuleID},
		{"disabled rule skipped", func(u *UserRules) {
			put(u, KindOverride, "always", `{"actions":[]}`)
			if err := u.SetEnabled(KindOverride, "always", false); err != nil {
				t.Fatal(err)
			}
		}, msg("hi"), ".m.rule.message"},
		{"unknown condition disables rule", func(u *UserRules) {
			put(u, KindOverride, "future", `{"actions":[],"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.message"},{"kind":"org.example.future"}]}`)
		}, msg("hi"), ".m.rule.message"},
		{"disabled default falls through", func(u *UserRules) {
			if err := u.SetEnabled(KindUnderride, ".m.rule.message", false); err != nil {
				t.Fatal(err)
			}
		}, msg("hi"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u UserRules
			tt.setup(&u)
			_, rule := Evaluate(u.Effective(alice), view(t, tt.event), ctx)
			got := ""
			if rule != nil {
				got = rule.RuleID
			}
			if got != tt.rule {
				t.Errorf("matched %q, want %q", got, tt.rule)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestConditions exercises each condition kind on its own.
func TestConditions(t *testing.T) {
	ctx := Context{UserID: alice, DisplayName: "Alice (the) Liddell", MemberCount: 10, SenderPowerLevel: 20}
	em := func(key, pattern string) Condition { return match(key, pattern) }
	is := func(key, value string) Condition {
		return Condition{Kind: CondEventPropertyIs, Key: key, Value: json.RawMessage(value)}
	}
	has := func(key, value string) Condition {
		return Condition{Kind: CondEventPropertyContains, Key: key, Value: json.RawMessage(value)}
	}
	count := func(s string) Condition { return Condition{Kind: CondRoomMemberCount, Is: s} }
	snp := func(key string) Condition { return Condition{Kind: CondSenderNotificationPermission, Key: key} }
	dn := Condition{Kind: CondContainsDisplayName}
	topic := func(v string) string { return `{"type":"m.room.topic","content":{"topic":` + v + `}}` }
	body := func(v string) string {
		return `{"type":"m.room.message","content":{"body":` + string(mustJSON(v)) + `}}`
	}
	weird := `{"type":"t","content":{"m.relates_to":{"rel_type":"m.replace"},"m":{"relates_to":{"rel_type":"m.thread"}},"m\\foo":"bs","a.b\\c":{"d":1},"n":5,"f":5.5,"nul":null,"obj":{"x":1},"list":["#a:x",7,true,null,{"o":1},["nested"]]}}`
	tests := []struct {
		name  string
		cond  Condition
		event string
		ctx   Context
		want  bool
	}{
		// event_match: whole value, case-insensitive glob (spec example).
		{"glob topic", em("content.topic", "lunc?*"), topic(`"Lunch plans"`), ctx, true},
		{"glob upper", em("content.topic", "lunc?*"), topic(`"LUNCH"`), ctx, true},
		{"glob leading space", em("content.topic", "lunc?*"), topic(`" lunch"`), ctx, false},
		{"glob ? needs a char", em("content.topic", "lunc?*"), topic(`"lunc"`), ctx, false},
		{"glob null", em("content.topic", "lunc?*"), topic(`null`), ctx, false},
		{"star needs a string", em("content.topic", "*"), topic(`5`), ctx, false},
		{"star needs the key", em("content.nope", "*"), topic(`"x"`), ctx, false},
		{"star matches empty", em("content.topic", "*"), topic(`""`), ctx, true},
		{"empty pattern", em("content.topic", ""), topic(`""`), ctx, true},
		{"empty pattern non-empty value", em("content.topic", ""), topic(`"x"`), ctx, false},
		{"whole value only", em("type", "m.room"), topic(`"x"`), ctx, false},
		{"regexp chars literal", em("content.topic", "a.c+"), topic(`"abc+"`), ctx, false},
		{"regexp chars literal match", em("content.topic", "a.c+"), topic(`"A.C+"`), ctx, true},
		{"unicode case fold", em("content.topic", "école"), topic(`"ÉCOLE"`), ctx, true},
		{"? is one rune", em("content.topic", "caf?"), topic(`"café"`), ctx, true},
		{"* spans newlines", em("content.topic", "a*b"), topic(`"a\nb"`), ctx, true},
		{"pattern nil", Condition{Kind: CondEventMatch, Key: "type"}, topic(`"x"`), ctx, false},
		// event_match on content.body: word-boundary substring (spec example).
		{"body example", em("content.body", "ex*ple"), body("An example event."), ctx, true},
		{"body exact", em("content.body", "ex*ple"), body("exple"), ctx, true},
		{"body spans words", em("content.body", "ex*ple"), body("An exciting triple-whammy"), ctx, true},
		{"body not at boundary", em("content.body", "ex*ple"), body("examples"), ctx, false},
		{"body inside word", em("content.body", "cake"), body("cupcake"), ctx, false},
		{"body underscore is a word char", em("content.body", "cake"), body("cake_day"), ctx, false},
		{"body non-word pattern", em("content.body", "@room"), body("hey @room!"), ctx, true},
		// Dotted keys with escapes (appendices "Dot-separated property paths").
		{"escaped dot", em(`content.m\.relates_to.rel_type`, "m.replace"), weird, ctx, true},
		{"unescaped dot is nesting", em(`content.m.relates_to.rel_type`, "m.thread"), weird, ctx, true},
		{"escaped dot not nesting", em(`content.m\.relates_to.rel_type`, "m.thread"), weird, ctx, false},
		{"escaped backslash", em(`content.m\\foo`, "bs"), weird, ctx, true},
		{"other escape literal", em(`content.m\foo`, "bs"), weird, ctx, true},
		{"both escapes", is(`content.a\.b\\c.d`, `1`), weird, ctx, true},
		// event_property_is.
		{"is true", is(`content.m\.federate`, `true`), `{"content":{"m.federate":true}}`, ctx, true},
		{"is not string true", is(`content.m\.federate`, `true`), `{"content":{"m.federate":"true"}}`, ctx, false},
		{"is not 1", is(`content.m\.federate`, `true`), `{"content":{"m.federate":1}}`, ctx, false},
		{"is int", is("content.n", `5`), weird, ctx, true},
		{"is int mismatch", is("content.n", `6`), weird, ctx, false},
		{"is float never", is("content.f", `5`), weird, ctx, false},
		{"is null", is("content.nul", `null`), weird, ctx, true},
		{"is null absent", is("content.absent", `null`), weird, ctx, false},
		{"is object never", is("content.obj", `null`), weird, ctx, false},
		{"is string", is("type", `"t"`), weird, ctx, true},
		{"is case-sensitive", is("type", `"T"`), weird, ctx, false},
		// event_property_contains (spec example).
		{"contains", has("content.alt_aliases", `"#myroom:example.com"`), `{"content":{"alt_aliases":["#somewhere:example.org","#myroom:example.com"]}}`, ctx, true},
		{"contains partial", has("content.alt_aliases", `":example.com"`), `{"content":{"alt_aliases":["#myroom:example.com"]}}`, ctx, false},
		{"contains not array", has("type", `"t"`), weird, ctx, false},
		{"contains int", has("content.list", `7`), weird, ctx, true},
		{"contains bool", has("content.list", `true`), weird, ctx, true},
		{"contains null", has("content.list", `null`), weird, ctx, true},
		{"contains ignores compound", has("content.list", `"nested"`), weird, ctx, false},
		// contains_display_name (deprecated, still defined).
		{"display name", dn, body("hi alice (THE) liddell!"), ctx, true},
		{"display name in word", dn, body("hi Alice (the) Liddellx"), ctx, false},
		{"display name empty", dn, body("hi"), Context{}, false},
		// room_member_count (ctx has 10 members).
		{"count bare", count("10"), weird, ctx, true},
		{"count ==", count("==10"), weird, ctx, true},
		{"count == miss", count("==2"), weird, ctx, false},
		{"count <", count("<10"), weird, ctx, false},
		{"count < hit", count("<11"), weird, ctx, true},
		{"count >", count(">9"), weird, ctx, true},
		{"count > miss", count(">10"), weird, ctx, false},
		{"count >=", count(">=10"), weird, ctx, true},
		{"count <=", count("<=10"), weird, ctx, true},
		{"count <= miss", count("<=9"), weird, ctx, false},
		{"count bad op", count("=>10"), weird, ctx, false},
		{"count sign", count("+10"), weird, ctx, false},
		{"count empty", count(""), weird, ctx, false},
		{"count op only", count(">="), weird, ctx, false},
		// sender_notification_permission (sender PL 20).
		{"snp default 50", snp("room"), weird, ctx, false},
		{"snp explicit", snp("room"), weird, Context{SenderPowerLevel: 20, NotificationPowerLevels: map[string]int64{"room": 20}}, true},
		{"snp other key default", snp("org.example"), weird, Context{SenderPowerLevel: 50}, true},
		{"snp no key", snp(""), weird, Context{SenderPowerLevel: 100}, false},
		// Unknown kinds never match.
		{"unknown kind", Condition{Kind: "org.example.always"}, weird, ctx, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cond
			if got := conditionMatches(&c, view(t, tt.event), &tt.ctx); got != tt.want {
				b, _ := json.Marshal(c)
				t.Errorf("%s on %s = %v, want %v", b, tt.event, got, tt.want)
			}
		})
	}
}

func TestCanonicalPath(t *testing.T) {
	tests := map[string]string{
		`content.body`:                    `content.body`,
		`content.m\.relates_to.rel_type`:  `content.m\.relates_to.rel_type`,
		`content.m\\foo`:                  `content.m\\foo`,
		`content.m\foo`:                   `content.m\\foo`,
		`a\`:                              `a\\`,
		`content.m\.mentions.user_ids`:    `content.m\.mentions.user_ids`,
		`x\\\.y`:                          `x\\\.y`,
		`content.\\\\`:                    `content.\\\\`,
		strings.Repeat(`\x`, 3) + `.tail`: `\\x\\x\\x.tail`,
	}
	for in, want := range tests {
		if got := canonicalPath(in); got != want {
			t.Errorf("canonicalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGlobCacheConcurrent(t *testing.T) {
	done := make(chan bool)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 200; j++ {
				globMatch("a*b?", "axxbc", modeWhole)
				globMatch(strings.Repeat("x", j%7), "xxx", modeWords)
			}
			done <- true
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
}

// BenchmarkEvaluate measures the per-recipient cost on the /sync path:
// building the effective ruleset and evaluating one group message.
func BenchmarkEvaluate(b *testing.B) {
	var u UserRules
	if err := u.Put(KindContent, "cake", []byte(`{"pattern":"cake","actions":["notify"]}`), "", ""); err != nil {
		b.Fatal(err)
	}
	ev, err := NewEventView([]byte(msg("hello there, how is everyone doing today?", `"m.mentions":{}`)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := Context{UserID: alice, MemberCount: 12}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(u.Effective(alice), ev, ctx)
	}
}
