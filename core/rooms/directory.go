package rooms

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// PutAlias maps a local alias to a room (spec: PUT /directory/room/{roomAlias}).
func (s *Service) PutAlias(user, alias, roomID string) error {
	_, server, err := ids.ParseRoomAlias(alias)
	if err != nil {
		return err
	}
	if server != s.ServerName() {
		return mxerr.InvalidParam("alias must be on this server")
	}
	if _, err := s.store.Room(roomID); err != nil {
		return mxerr.NotFound("unknown room")
	}
	if m, err := s.Membership(user, roomID); err != nil || m != spec.Join {
		return mxerr.Forbidden("you must be joined to the room")
	}
	if err := s.store.PutAlias(alias, roomID, user); err == ErrAliasExists {
		return mxerr.New(409, "M_UNKNOWN", "room alias "+alias+" already exists")
	} else if err != nil {
		return err
	}
	return nil
}

// DeleteAlias removes an alias; its creator, a server admin, or a room
// member allowed to set m.room.canonical_alias may do so.
func (s *Service) DeleteAlias(user string, admin bool, alias string) error {
	roomID, creator, err := s.store.Alias(alias)
	if err == ErrNotFound {
		return mxerr.NotFound("room alias not found")
	}
	if err != nil {
		return err
	}
	if creator != user && !admin {
		h, err := s.lockHead(roomID)
		if err != nil {
			return err
		}
		pl := h.powerLevels()
		ok := h.membership(user) == spec.Join && h.userLevel(user) >= pl.EventLevel("m.room.canonical_alias", true)
		h.mu.Unlock()
		if !ok {
			return mxerr.Forbidden("you may not delete this alias")
		}
	}
	if err := s.store.DeleteAlias(alias); err != nil {
		return err
	}
	s.dropCanonicalAlias(user, roomID, alias)
	return nil
}

// dropCanonicalAlias removes a deleted alias from the room's
// m.room.canonical_alias, as the deleting user, so the room does not keep
// advertising an alias that no longer resolves (Synapse and Complement's
// "Can delete canonical alias"). Without the power to do so, it stays.
func (s *Service) dropCanonicalAlias(user, roomID, alias string) {
	rec, err := s.store.StateEventAt(roomID, ^uint64(0), "m.room.canonical_alias", "")
	if err != nil {
		return
	}
	var c map[string]json.RawMessage
	if json.Unmarshal([]byte(gjson.GetBytes(rec.JSON, "content").Raw), &c) != nil || c == nil {
		return
	}
	changed := false
	if a := c["alias"]; a != nil && gjson.ParseBytes(a).String() == alias {
		delete(c, "alias")
		changed = true
	}
	if alt, ok := c["alt_aliases"]; ok {
		var list []string
		if json.Unmarshal(alt, &list) == nil && slices.Contains(list, alias) {
			list = slices.DeleteFunc(list, func(a string) bool { return a == alias })
			if len(list) == 0 {
				delete(c, "alt_aliases")
			} else {
				c["alt_aliases"], _ = json.Marshal(list)
			}
			changed = true
		}
	}
	if !changed {
		return
	}
	content, _ := json.Marshal(c)
	_, _ = s.SetState(user, roomID, "m.room.canonical_alias", "", content)
}

// ResolveAlias answers GET /directory/room/{roomAlias}.
func (s *Service) ResolveAlias(alias string) (string, []string, error) {
	if _, _, err := ids.ParseRoomAlias(alias); err != nil {
		return "", nil, err
	}
	roomID, _, err := s.store.Alias(alias)
	if err == ErrNotFound {
		return "", nil, mxerr.NotFound("room alias " + alias + " not found")
	}
	return roomID, []string{s.ServerName()}, err
}

// Aliases lists a room's local aliases (spec: GET /rooms/{roomId}/aliases).
func (s *Service) Aliases(user, roomID string) ([]string, error) {
	if _, err := s.readAccess(user, roomID); err != nil {
		return nil, err
	}
	return s.store.RoomAliases(roomID)
}

// SetVisibility publishes or unpublishes a room in the directory; members
// with the power to change m.room.canonical_alias (or admins) may.
func (s *Service) SetVisibility(user string, admin bool, roomID, visibility string) error {
	if visibility != "public" && visibility != "private" {
		return mxerr.InvalidParam("visibility must be public or private")
	}
	h, err := s.lockHead(roomID)
	if err != nil {
		return err
	}
	pl := h.powerLevels()
	ok := admin || (h.membership(user) == spec.Join && h.userLevel(user) >= pl.EventLevel("m.room.canonical_alias", true))
	h.mu.Unlock()
	if !ok {
		return mxerr.Forbidden("you may not change this room's directory visibility")
	}
	return s.store.SetPublished(roomID, visibility == "public")
}

// Visibility answers GET /directory/list/room/{roomId}.
func (s *Service) Visibility(roomID string) (string, error) {
	if _, err := s.store.Room(roomID); err != nil {
		return "", mxerr.NotFound("unknown room")
	}
	ok, err := s.store.Published(roomID)
	if ok {
		return "public", err
	}
	return "private", err
}

// PublicRoom is a PublishedRoomsChunk entry (spec: list_public_rooms.yaml).
type PublicRoom struct {
	RoomID           string  `json:"room_id"`
	Name             string  `json:"name,omitempty"`
	Topic            string  `json:"topic,omitempty"`
	CanonicalAlias   string  `json:"canonical_alias,omitempty"`
	AvatarURL        string  `json:"avatar_url,omitempty"`
	NumJoinedMembers int     `json:"num_joined_members"`
	WorldReadable    bool    `json:"world_readable"`
	GuestCanJoin     bool    `json:"guest_can_join"`
	JoinRule         string  `json:"join_rule,omitempty"`
	RoomType         *string `json:"room_type,omitempty"`
}

// PublicRooms lists published local rooms, largest first, paginated by
// offset tokens.
func (s *Service) PublicRooms(limit int, since, term string) (chunk []PublicRoom, next, prev string, total int, err error) {
	idsList, err := s.store.PublishedRooms()
	if err != nil {
		return nil, "", "", 0, err
	}
	var all []PublicRoom
	for _, id := range idsList {
		pr, err := s.summary(id)
		if err != nil {
			continue
		}
		if term != "" {
			t := strings.ToLower(term)
			if !strings.Contains(strings.ToLower(pr.Name), t) && !strings.Contains(strings.ToLower(pr.Topic), t) &&
				!strings.Contains(strings.ToLower(pr.CanonicalAlias), t) && !strings.Contains(strings.ToLower(pr.RoomID), t) {
				continue
			}
		}
		all = append(all, pr)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].NumJoinedMembers != all[j].NumJoinedMembers {
			return all[i].NumJoinedMembers > all[j].NumJoinedMembers
		}
		return all[i].RoomID < all[j].RoomID
	})
	off := 0
	if since != "" {
		if off, err = strconv.Atoi(strings.TrimPrefix(since, "o")); err != nil || off < 0 {
			return nil, "", "", 0, mxerr.InvalidParam("invalid since token")
		}
	}
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	total = len(all)
	if off > total {
		off = total
	}
	end := min(off+limit, total)
	chunk = all[off:end]
	if chunk == nil {
		chunk = []PublicRoom{}
	}
	if end < total {
		next = "o" + strconv.Itoa(end)
	}
	if off > 0 {
		prev = "o" + strconv.Itoa(max(0, off-limit))
	}
	return chunk, next, prev, total, nil
}

func (s *Service) summary(roomID string) (PublicRoom, error) {
	h, err := s.lockHead(roomID)
	if err != nil {
		return PublicRoom{}, err
	}
	defer h.mu.Unlock()
	pr := PublicRoom{RoomID: roomID, NumJoinedMembers: len(h.members(spec.Join))}
	str := func(typ, field string) string {
		ev := h.get(typ, "")
		if ev == nil {
			return ""
		}
		var m map[string]any
		_ = json.Unmarshal(ev.Content(), &m)
		v, _ := m[field].(string)
		return v
	}
	pr.Name = str("m.room.name", "name")
	pr.Topic = str("m.room.topic", "topic")
	pr.CanonicalAlias = str("m.room.canonical_alias", "alias")
	pr.AvatarURL = str("m.room.avatar", "url")
	pr.JoinRule = str(spec.MRoomJoinRules, "join_rule")
	pr.WorldReadable = str(spec.MRoomHistoryVisibility, "history_visibility") == "world_readable"
	pr.GuestCanJoin = str("m.room.guest_access", "guest_access") == "can_join"
	if t := str(spec.MRoomCreate, "type"); t != "" {
		pr.RoomType = &t
	}
	return pr, nil
}
