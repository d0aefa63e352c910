package pdu

import gmsl "github.com/matrix-org/gomatrixserverlib"

// version is what Build needs to know about a room version. The table is
// checked against gmsl's own room version descriptions and redaction
// functions by the tests.
type version struct {
	impl       gmsl.IRoomVersion   // for CheckCanonicalJSON
	urlSafeID  bool                // event ID format V3 (URL-safe base64); V2 (room v3) is standard base64
	enforced   bool                // canonical JSON integer range enforced (v6+)
	redactV2   bool                // v11+ redaction: "origin", "prev_state" (and "membership") not kept
	domainless bool                // v12: the create event has no room ID
	keep       map[string][]string // event types whose redaction keeps content keys; empty list = keep all
}

// The content keys each redaction algorithm keeps (gmsl's
// unredactableContentFieldsV1 … V5, i.e. the spec's redaction rules of
// room versions 1, 6, 8, 9 and 11).
var (
	keepV1 = map[string][]string{ // room versions 1–5
		"m.room.member":             {"membership"},
		"m.room.create":             {"creator"},
		"m.room.join_rules":         {"join_rule"},
		"m.room.power_levels":       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"},
		"m.room.aliases":            {"aliases"},
		"m.room.history_visibility": {"history_visibility"},
	}
	keepV2 = map[string][]string{ // 6, 7: m.room.aliases loses its protection
		"m.room.member":             {"membership"},
		"m.room.create":             {"creator"},
		"m.room.join_rules":         {"join_rule"},
		"m.room.power_levels":       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"},
		"m.room.history_visibility": {"history_visibility"},
	}
	keepV3 = map[string][]string{ // 8: join_rules "allow"
		"m.room.member":             {"membership"},
		"m.room.create":             {"creator"},
		"m.room.join_rules":         {"join_rule", "allow"},
		"m.room.power_levels":       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"},
		"m.room.history_visibility": {"history_visibility"},
	}
	keepV4 = map[string][]string{ // 9, 10: member "join_authorised_via_users_server"
		"m.room.member":             {"membership", "join_authorised_via_users_server"},
		"m.room.create":             {"creator"},
		"m.room.join_rules":         {"join_rule", "allow"},
		"m.room.power_levels":       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"},
		"m.room.history_visibility": {"history_visibility"},
	}
	keepV5 = map[string][]string{ // 11, 12: whole create content, power_levels "invite", redaction "redacts"
		"m.room.member":             {"membership", "join_authorised_via_users_server"},
		"m.room.create":             {},
		"m.room.join_rules":         {"join_rule", "allow"},
		"m.room.power_levels":       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default", "invite"},
		"m.room.history_visibility": {"history_visibility"},
		"m.room.redaction":          {"redacts"},
	}
)

var versions = map[string]*version{
	"3":  {urlSafeID: false, keep: keepV1},
	"4":  {urlSafeID: true, keep: keepV1},
	"5":  {urlSafeID: true, keep: keepV1},
	"6":  {urlSafeID: true, enforced: true, keep: keepV2},
	"7":  {urlSafeID: true, enforced: true, keep: keepV2},
	"8":  {urlSafeID: true, enforced: true, keep: keepV3},
	"9":  {urlSafeID: true, enforced: true, keep: keepV4},
	"10": {urlSafeID: true, enforced: true, keep: keepV4},
	"11": {urlSafeID: true, enforced: true, redactV2: true, keep: keepV5},
	"12": {urlSafeID: true, enforced: true, redactV2: true, domainless: true, keep: keepV5},
}

func init() {
	for name, v := range versions {
		v.impl = gmsl.MustGetRoomVersion(gmsl.RoomVersion(name))
	}
}
