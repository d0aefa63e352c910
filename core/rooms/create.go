package rooms

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// CreateRequest is the body of POST /createRoom (spec: create_room.yaml).
type CreateRequest struct {
	Visibility                string            `json:"visibility"`
	RoomAliasName             string            `json:"room_alias_name"`
	Name                      *string           `json:"name"`
	Topic                     *string           `json:"topic"`
	Invite                    []string          `json:"invite"`
	RoomVersion               string            `json:"room_version"`
	CreationContent           json.RawMessage   `json:"creation_content"`
	InitialState              []StateEventInput `json:"initial_state"`
	Preset                    string            `json:"preset"`
	IsDirect                  bool              `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage   `json:"power_level_content_override"`
}

// StateEventInput is an entry of initial_state.
type StateEventInput struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

type presetRules struct{ joinRule, history, guest string }

var presets = map[string]presetRules{
	"private_chat":         {"invite", "shared", "can_join"},
	"trusted_private_chat": {"invite", "shared", "can_join"},
	"public_chat":          {"public", "shared", "forbidden"},
}

// CreateRoom creates a room as the spec's createRoom describes, in the
// spec's event order: create, creator join, power levels, canonical alias,
// preset events, initial_state, name, topic, then invites.
func (s *Service) CreateRoom(sender string, req CreateRequest) (roomID string, err error) {
	if req.Visibility == "" {
		req.Visibility = "private"
	}
	if req.Visibility != "private" && req.Visibility != "public" {
		return "", mxerr.InvalidParam("visibility must be public or private")
	}
	if req.Preset == "" {
		req.Preset = map[string]string{"public": "public_chat", "private": "private_chat"}[req.Visibility]
	}
	preset, ok := presets[req.Preset]
	if !ok {
		return "", mxerr.InvalidParam("unknown preset " + req.Preset)
	}
	if req.RoomVersion == "" {
		req.RoomVersion = s.defaultVer
	}
	if !slices.Contains(SupportedVersions, req.RoomVersion) {
		return "", mxerr.UnsupportedRoomVersion("room version " + req.RoomVersion + " is not supported")
	}
	ver := gmsl.MustGetRoomVersion(gmsl.RoomVersion(req.RoomVersion))

	var alias string
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ":# \x00") {
			return "", mxerr.New(400, "M_INVALID_PARAM", "room_alias_name must be a bare localpart")
		}
		alias = "#" + req.RoomAliasName + ":" + s.ServerName()
		if _, _, err := ids.ParseRoomAlias(alias); err != nil {
			return "", err
		}
		if _, _, err := s.store.Alias(alias); err == nil {
			return "", mxerr.RoomInUse()
		}
	}
	for _, inv := range req.Invite {
		if _, _, err := ids.ParseUserID(inv); err != nil {
			return "", mxerr.InvalidParam("invalid user ID in invite: " + inv)
		}
	}

	// Creation content: client's fields, with room_version forced and,
	// before v11, the creator key (spec: m.room.create).
	create := map[string]json.RawMessage{}
	if len(req.CreationContent) > 0 {
		if err := json.Unmarshal(req.CreationContent, &create); err != nil || create == nil {
			return "", mxerr.BadJSON("creation_content must be an object")
		}
	}
	create["room_version"], _ = json.Marshal(req.RoomVersion)
	if slices.Index(SupportedVersions, req.RoomVersion) < slices.Index(SupportedVersions, "11") {
		create["creator"], _ = json.Marshal(sender)
	} else {
		delete(create, "creator")
	}

	pl := map[string]any{
		"users":          map[string]int64{sender: 100},
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]int64{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
			"m.room.server_acl": 100, "m.room.encryption": 100,
		},
		"notifications": map[string]int64{"room": 50},
	}
	users := pl["users"].(map[string]int64)
	var creators []string // v12: the sender and additional_creators
	if ver.PrivilegedCreators() {
		var err error
		if creators, err = additionalCreators(create); err != nil {
			return "", err
		}
		creators = append(creators, sender)
	}
	if ver.PrivilegedCreators() {
		// v12 (MSC4289): creators have infinite power and must not be
		// listed; tombstoning must need more than state_default
		// (create_room.yaml).
		delete(users, sender)
		pl["events"].(map[string]int64)["m.room.tombstone"] = 150
	}
	if req.Preset == "trusted_private_chat" {
		if ver.PrivilegedCreators() {
			// v12: invitees become additional creators instead
			// (create_room.yaml, creation_content).
			extra, _ := additionalCreators(create) // validated above
			for _, inv := range req.Invite {
				if inv != sender && !slices.Contains(extra, inv) {
					extra = append(extra, inv)
					creators = append(creators, inv)
				}
			}
			create["additional_creators"], _ = json.Marshal(extra)
		} else {
			for _, inv := range req.Invite {
				users[inv] = 100
			}
		}
	}
	if len(req.PowerLevelContentOverride) > 0 {
		var ov map[string]json.RawMessage
		if err := json.Unmarshal(req.PowerLevelContentOverride, &ov); err != nil || ov == nil {
			return "", mxerr.BadJSON("power_level_content_override must be an object")
		}
		for k, v := range ov {
			pl[k] = v
		}
	}
	if ver.PrivilegedCreators() {
		b, _ := json.Marshal(pl)
		if err := checkCreatorsNotListed(b, creators); err != nil {
			return "", err
		}
	}

	dn, av, _ := s.users.Profile(sender)
	member := map[string]any{"membership": "join"}
	if dn != "" {
		member["displayname"] = dn
	}
	if av != "" {
		member["avatar_url"] = av
	}
	empty := ""
	sk := func(k string) *string { return &k }
	ps := []proto{
		{Type: spec.MRoomCreate, StateKey: &empty, Sender: sender, Content: create},
		{Type: spec.MRoomMember, StateKey: sk(sender), Sender: sender, Content: member},
		{Type: spec.MRoomPowerLevels, StateKey: &empty, Sender: sender, Content: pl},
	}
	if alias != "" {
		ps = append(ps, proto{Type: "m.room.canonical_alias", StateKey: &empty, Sender: sender,
			Content: map[string]string{"alias": alias}})
	}
	ps = append(ps,
		proto{Type: spec.MRoomJoinRules, StateKey: &empty, Sender: sender, Content: map[string]string{"join_rule": preset.joinRule}},
		proto{Type: spec.MRoomHistoryVisibility, StateKey: &empty, Sender: sender, Content: map[string]string{"history_visibility": preset.history}},
	)
	if preset.guest != "" {
		ps = append(ps, proto{Type: "m.room.guest_access", StateKey: &empty, Sender: sender, Content: map[string]string{"guest_access": preset.guest}})
	}
	for _, st := range req.InitialState {
		if st.Type == "" {
			return "", mxerr.BadJSON("initial_state entries need a type")
		}
		if c := bytes.TrimSpace(st.Content); len(c) == 0 || c[0] != '{' {
			return "", mxerr.BadJSON("initial_state content of " + st.Type + " must be an object")
		}
		if st.Type == spec.MRoomCreate || st.Type == spec.MRoomMember || st.Type == spec.MRoomPowerLevels {
			continue // the spec gives those their own fields
		}
		ps = append(ps, proto{Type: st.Type, StateKey: sk(st.StateKey), Sender: sender, Content: st.Content})
	}
	if req.Name != nil {
		ps = append(ps, proto{Type: "m.room.name", StateKey: &empty, Sender: sender, Content: map[string]string{"name": *req.Name}})
	}
	if req.Topic != nil {
		// Spec v1.15 m.room.topic: the plain topic, duplicated as the
		// text/plain representation of the m.topic content block.
		ps = append(ps, proto{Type: "m.room.topic", StateKey: &empty, Sender: sender, Content: map[string]any{
			"topic":   *req.Topic,
			"m.topic": map[string]any{"m.text": []map[string]string{{"body": *req.Topic, "mimetype": "text/plain"}}},
		}})
	}
	for _, inv := range req.Invite {
		if inv == sender {
			continue
		}
		content := map[string]any{"membership": "invite"}
		if req.IsDirect {
			content["is_direct"] = true
		}
		if d, a, ok := s.users.Profile(inv); ok {
			if d != "" {
				content["displayname"] = d
			}
			if a != "" {
				content["avatar_url"] = a
			}
		} else if strings.HasSuffix(inv, ":"+s.ServerName()) {
			return "", mxerr.NotFound("unknown user " + inv)
		} else {
			return "", mxerr.Forbidden("cannot invite remote users: federation is not available")
		}
		ps = append(ps, proto{Type: spec.MRoomMember, StateKey: sk(inv), Sender: sender, Content: content})
	}

	// Room IDs of v1–v11 are random; v12's comes from the create event.
	h := &head{ver: ver, state: map[tuple]gmsl.PDU{}, records: map[tuple]*EventRecord{}}
	if !ver.DomainlessRoomIDs() {
		h.meta.RoomID = ids.NewRoomIDV1(s.ServerName())
	}
	h.meta.Version = req.RoomVersion
	h.meta.Creator = sender
	h.mu.Lock()
	// The create event is built alone first: with a v12 room its ID names
	// the room, and the following events need the room ID.
	wait, err := s.submitNew(h, ps, alias, req.Visibility == "public")
	h.mu.Unlock()
	if err != nil {
		return "", err
	}
	if _, _, err := wait(); err != nil {
		return "", err
	}
	return h.meta.RoomID, nil
}

// submitNew registers a new room and commits its first events.
func (s *Service) submitNew(h *head, ps []proto, alias string, public bool) (func() ([]string, uint64, error), error) {
	// Build the create event first to learn the room ID for v12.
	if h.meta.RoomID == "" {
		ev, err := s.build(h, ps[0])
		if err != nil {
			return nil, err
		}
		h.meta.RoomID = "!" + ev.EventID()[1:]
		ps[0].built = ev
	}
	if err := s.store.CreateRoom(h.meta); err != nil {
		return nil, err
	}
	// Reserve the alias before any event names it, so two rooms created at
	// once cannot both claim it (the loser gets M_ROOM_IN_USE).
	if alias != "" {
		if err := s.store.PutAlias(alias, h.meta.RoomID, h.meta.Creator); err == ErrAliasExists {
			return nil, mxerr.RoomInUse()
		} else if err != nil {
			return nil, err
		}
	}
	release := func() {
		if alias != "" {
			_ = s.store.DeleteAlias(alias)
		}
	}
	s.mu.Lock()
	s.heads[h.meta.RoomID] = h
	s.mu.Unlock()
	wait, err := s.submit(h, ps, nil)
	if err != nil {
		h.broken.Store(true)
		release()
		return nil, err
	}
	ids, pos, err := wait()
	if err != nil {
		release()
		return nil, err
	}
	if public {
		if err := s.store.SetPublished(h.meta.RoomID, true); err != nil {
			return nil, err
		}
	}
	return func() ([]string, uint64, error) { return ids, pos, nil }, nil
}

// additionalCreators reads creation_content.additional_creators of a v12
// room: absent, or an array of valid user IDs. Anything else is the
// client's mistake (400 M_BAD_JSON), caught before auth rules would
// reject the create event as forbidden (MSC4289).
func additionalCreators(create map[string]json.RawMessage) ([]string, error) {
	raw, ok := create["additional_creators"]
	if !ok {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, mxerr.BadJSON("creation_content.additional_creators must be an array of user IDs")
	}
	for _, u := range list {
		if _, _, err := ids.ParseUserID(u); err != nil {
			return nil, mxerr.BadJSON("creation_content.additional_creators: invalid user ID " + u)
		}
	}
	return list, nil
}

// checkCreatorsNotListed refuses v12 power levels that list a creator in
// users (room version 12: creators have unlimited power and must not
// appear there): 400 M_BAD_JSON, the client's content being invalid.
func checkCreatorsNotListed(content []byte, creators []string) error {
	var pl struct {
		Users map[string]json.RawMessage `json:"users"`
	}
	if json.Unmarshal(content, &pl) != nil {
		return nil // shape errors are the auth rules' to report
	}
	for _, c := range creators {
		if _, ok := pl.Users[c]; ok {
			return mxerr.BadJSON("power levels must not list room creator " + c + ": in room version 12 creators have unlimited power")
		}
	}
	return nil
}
