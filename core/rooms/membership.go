package rooms

import (
	"encoding/json"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// ResolveRoom turns a room ID or alias into a room ID.
func (s *Service) ResolveRoom(idOrAlias string) (string, error) {
	if strings.HasPrefix(idOrAlias, "#") {
		if _, _, err := ids.ParseRoomAlias(idOrAlias); err != nil {
			return "", err
		}
		roomID, _, err := s.store.Alias(idOrAlias)
		if err == ErrNotFound {
			return "", mxerr.NotFound("room alias " + idOrAlias + " not found")
		}
		return roomID, err
	}
	if _, _, err := ids.ParseRoomID(idOrAlias); err != nil {
		return "", err
	}
	return idOrAlias, nil
}

func (s *Service) memberContent(user, membership, reason string, extra map[string]any) map[string]any {
	c := map[string]any{"membership": membership}
	if membership == "join" || membership == "invite" {
		if dn, av, _ := s.users.Profile(user); true {
			if dn != "" {
				c["displayname"] = dn
			}
			if av != "" {
				c["avatar_url"] = av
			}
		}
	}
	if reason != "" {
		c["reason"] = reason
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// joinContent is a join's member content: the profile, then the client's
// extra keys (which may override displayname and avatar_url), then the
// fields only the server sets.
func (s *Service) joinContent(user, reason string, extra map[string]any) map[string]any {
	c := s.memberContent(user, spec.Join, reason, nil)
	for k, v := range extra {
		switch k {
		case "membership", "reason", "join_authorised_via_users_server":
			continue
		}
		c[k] = v
	}
	return c
}

// Join joins user to a room by ID or alias (spec: POST /join/{roomIdOrAlias}).
// extra holds other keys of the request body, copied into the member
// event's content as every deployed server does (sytest "POST /join can
// join a room with custom content"): a client may set a room-specific
// displayname or avatar_url there. membership is always the server's, and
// join_authorised_via_users_server is dropped: it is the resident server's
// to set for restricted joins, not the joiner's.
func (s *Service) Join(user, idOrAlias, reason string, extra map[string]any) (string, error) {
	roomID, err := s.ResolveRoom(idOrAlias)
	if err != nil {
		return "", err
	}
	h, err := s.lockHead(roomID)
	if err != nil {
		if me, ok := err.(*mxerr.Error); ok && me.Code == "M_NOT_FOUND" && !strings.HasSuffix(roomID, ":"+s.ServerName()) {
			return "", mxerr.NotFound("room not found here, and joining over federation is not available")
		}
		return "", err
	}
	if h.membership(user) == spec.Join {
		// Already joined: keep the room unchanged (no duplicate join event).
		h.mu.Unlock()
		return roomID, nil
	}
	content := s.joinContent(user, reason, extra)
	if via, err := s.restrictedJoinVia(h, user); err != nil {
		h.mu.Unlock()
		return "", err
	} else if via != "" {
		content["join_authorised_via_users_server"] = via
	}
	wait, err := s.submit(h, []proto{{
		Type: spec.MRoomMember, StateKey: &user, Sender: user,
		Content: content,
	}}, nil)
	h.mu.Unlock()
	if err != nil {
		return "", err
	}
	_, _, err = wait()
	return roomID, err
}

// Leave leaves a room or rejects an invite.
func (s *Service) Leave(user, roomID, reason string) error {
	h, err := s.lockHead(roomID)
	if err != nil {
		return err
	}
	switch h.membership(user) {
	case "", spec.Leave:
		h.mu.Unlock()
		if _, err := s.store.Room(roomID); err != nil {
			return mxerr.NotFound("unknown room")
		}
		return mxerr.Forbidden("you are not in this room")
	case spec.Ban:
		h.mu.Unlock()
		return mxerr.Forbidden("you are banned from this room")
	}
	wait, err := s.submit(h, []proto{{
		Type: spec.MRoomMember, StateKey: &user, Sender: user,
		Content: s.memberContent(user, spec.Leave, reason, nil),
	}}, nil)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	_, _, err = wait()
	return err
}

// Invite invites target into the room.
func (s *Service) Invite(sender, roomID, target, reason string, isDirect bool) error {
	local, _, err := ids.ParseUserID(target)
	if err != nil {
		return err
	}
	if !ids.IsCompliantLocalpart(local) {
		// No account can be created with such a name (historical IDs exist
		// only on other servers), so this is a malformed request.
		return mxerr.InvalidParam("invalid user ID " + target)
	}
	if _, _, ok := s.users.Profile(target); !ok {
		if strings.HasSuffix(target, ":"+s.ServerName()) {
			return mxerr.NotFound("unknown user " + target)
		}
		return mxerr.Forbidden("cannot invite remote users: federation is not available")
	}
	h, err := s.lockHead(roomID)
	if err != nil {
		return err
	}
	switch h.membership(target) {
	case spec.Join:
		h.mu.Unlock()
		return mxerr.Forbidden(target + " is already in the room")
	case spec.Ban:
		h.mu.Unlock()
		return mxerr.Forbidden(target + " is banned from the room")
	case spec.Invite:
		// Re-inviting is a no-op when the sender may invite at all.
		if h.membership(sender) == spec.Join && h.userLevel(sender) >= h.powerLevels().Invite {
			h.mu.Unlock()
			return nil
		}
	}
	extra := map[string]any{}
	if isDirect {
		extra["is_direct"] = true
	}
	wait, err := s.submit(h, []proto{{
		Type: spec.MRoomMember, StateKey: &target, Sender: sender,
		Content: s.memberContent(target, spec.Invite, reason, extra),
	}}, nil)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	_, _, err = wait()
	return err
}

// SetMembership covers kick (leave), ban and unban (leave from ban).
func (s *Service) SetMembership(sender, roomID, target, membership, reason string) error {
	if _, _, err := ids.ParseUserID(target); err != nil {
		return err
	}
	h, err := s.lockHead(roomID)
	if err != nil {
		return err
	}
	cur := h.membership(target)
	var bad string
	switch membership {
	case "kick":
		membership = spec.Leave
		if cur != spec.Join && cur != spec.Invite && cur != spec.Knock {
			bad = target + " is not in the room"
		}
	case "unban":
		membership = spec.Leave
		if cur != spec.Ban {
			bad = target + " is not banned"
		}
	case spec.Ban:
	default:
		bad = "unknown membership change"
	}
	if bad != "" {
		h.mu.Unlock()
		return mxerr.Forbidden(bad)
	}
	wait, err := s.submit(h, []proto{{
		Type: spec.MRoomMember, StateKey: &target, Sender: sender,
		Content: s.memberContent(target, membership, reason, nil),
	}}, nil)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	_, _, err = wait()
	return err
}

// Forget hides a left room from the user's sync (spec: POST /forget).
func (s *Service) Forget(user, roomID string) error {
	h, err := s.lockHead(roomID)
	if err != nil {
		return err
	}
	m := h.membership(user)
	h.mu.Unlock()
	if m == spec.Join || m == spec.Invite || m == spec.Knock {
		return mxerr.New(400, "M_UNKNOWN", "leave the room before forgetting it")
	}
	if m == "" {
		return mxerr.NotFound("you were never in this room")
	}
	return s.store.Forget(user, roomID)
}

// UpdateProfile sends a new member event with the user's profile to every
// room they are joined to (spec: profile changes propagate as m.room.member).
func (s *Service) UpdateProfile(user string) error {
	ms, err := s.store.Memberships(user)
	if err != nil {
		return err
	}
	var waits []func() ([]string, uint64, error)
	for _, m := range ms {
		if m.Membership != spec.Join {
			continue
		}
		h, err := s.lockHead(m.RoomID)
		if err != nil {
			continue
		}
		if h.membership(user) != spec.Join {
			h.mu.Unlock()
			continue
		}
		u := user
		wait, err := s.submit(h, []proto{{Type: spec.MRoomMember, StateKey: &u, Sender: user,
			Content: s.memberContent(user, spec.Join, "", nil)}}, nil)
		h.mu.Unlock()
		if err == nil {
			waits = append(waits, wait)
		}
	}
	// Wait for every room (each waiter wakes its members and marks a
	// failed head), then report the first failure.
	var first error
	for _, w := range waits {
		if _, _, err := w(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// LeaveAll leaves every room the user is joined or invited to (account
// deactivation, spec: POST /account/deactivate).
func (s *Service) LeaveAll(user string) error {
	ms, err := s.store.Memberships(user)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Membership == spec.Join || m.Membership == spec.Invite || m.Membership == spec.Knock {
			if err := s.Leave(user, m.RoomID, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// restrictedJoinVia decides a join to a room whose join rule is
// restricted or knock_restricted (room versions 8+ and 10+; spec "Restricted
// rooms"): a user who is not invited may join if joined to one of the
// allow list's rooms, and the join event must then name a member of ours
// who could have invited them (join_authorised_via_users_server), which
// the auth rules check. It returns "" when the rule does not apply (an
// invite, another join rule), and 403 M_FORBIDDEN when the user is in
// none of the allowed rooms. h is locked.
func (s *Service) restrictedJoinVia(h *head, user string) (string, error) {
	jr := h.get(spec.MRoomJoinRules, "")
	if jr == nil || h.membership(user) == spec.Invite {
		return "", nil
	}
	var rule struct {
		JoinRule string `json:"join_rule"`
		Allow    []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	if json.Unmarshal(jr.Content(), &rule) != nil || (rule.JoinRule != spec.Restricted && rule.JoinRule != spec.KnockRestricted) {
		return "", nil
	}
	if h.ver.CheckRestrictedJoinsAllowed() != nil {
		return "", nil // the version has no restricted joins: auth decides
	}
	allowed := false
	for _, a := range rule.Allow {
		if a.Type != "m.room_membership" || a.RoomID == h.meta.RoomID {
			continue
		}
		if m, err := s.store.Membership(user, a.RoomID); err == nil && m.Membership == spec.Join {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", mxerr.Forbidden("you are not joined to any of the rooms this room admits members of")
	}
	// Any joined local user who may invite can vouch; prefer the most
	// powerful for a stable choice.
	invite := h.powerLevels().Invite
	var via string
	var best int64
	for _, u := range h.members(spec.Join) {
		if !strings.HasSuffix(u, ":"+s.ServerName()) {
			continue
		}
		if l := h.userLevel(u); l >= invite && (via == "" || l > best || l == best && u < via) {
			via, best = u, l
		}
	}
	if via == "" {
		return "", mxerr.Forbidden("no member of this room on this server may admit you")
	}
	return via, nil
}
