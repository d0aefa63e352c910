package rooms

import (
	"bytes"
	"encoding/json"

	gmsl "github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Sender identifies who sends: the user and the device (for txn scoping).
type Sender struct {
	User   string
	Device string
}

// Send sends a message event (spec: PUT /rooms/{roomId}/send/{type}/{txnId}).
// A repeated txnId from the same device on the same request path returns
// the first event's ID without sending again (spec: "Transaction
// identifiers": scoped to the device and the endpoint path).
func (s *Service) Send(from Sender, roomID, typ, txnID string, content json.RawMessage) (string, error) {
	if err := checkType(typ); err != nil {
		return "", err
	}
	scope := "send\x00" + roomID + "\x00" + typ
	return s.onceTxn(from, scope, txnID, func() (string, error) { return s.sendNew(from, roomID, typ, txnID, scope, content) })
}

func (s *Service) sendNew(from Sender, roomID, typ, txnID, scope string, content json.RawMessage) (string, error) {
	if typ == spec.MRoomRedaction {
		var c struct {
			Redacts string `json:"redacts"`
			Reason  string `json:"reason"`
		}
		_ = json.Unmarshal(content, &c)
		return s.redactNew(from, roomID, c.Redacts, txnID, scope, c.Reason)
	}
	id, _, err := s.send(roomID, proto{Type: typ, Sender: from.User, Content: content}, func(_ int, a *Append) {
		a.Event.TxnUser, a.Event.TxnDevice, a.Event.TxnID, a.Event.TxnScope = from.User, from.Device, txnID, scope
	})
	return id, err
}

// SetState sends a state event (spec: PUT /rooms/{roomId}/state/{type}/{key}).
// Setting the same content the same sender set before returns the existing
// event instead of a duplicate.
func (s *Service) SetState(user, roomID, typ, stateKey string, content json.RawMessage) (string, error) {
	if err := checkType(typ); err != nil {
		return "", err
	}
	if len(stateKey) > 255 {
		return "", mxerr.InvalidParam("state_key is longer than 255 bytes")
	}
	if typ == spec.MRoomCreate {
		// Only the first event of a room can be its create event.
		return "", mxerr.BadJSON("m.room.create cannot be sent to an existing room")
	}
	if typ == "m.room.canonical_alias" {
		if err := s.checkCanonicalAlias(roomID, content); err != nil {
			return "", err
		}
	}
	h, err := s.lockHead(roomID)
	if err != nil {
		return "", err
	}
	if typ == spec.MRoomMember && h.membership(stateKey) == spec.Join {
		content = dropJoinAuthorisation(content)
	}
	if typ == spec.MRoomPowerLevels && h.ver.PrivilegedCreators() {
		if err := checkCreatorsNotListed(content, h.creatorList()); err != nil {
			h.mu.Unlock()
			return "", err
		}
	}
	if old := h.get(typ, stateKey); old != nil && string(old.SenderID()) == user && bytes.Equal(compact(old.Content()), compact(content)) {
		h.mu.Unlock()
		return old.EventID(), nil
	}
	if typ == "m.room.encryption" && h.get(typ, "") != nil {
		var c map[string]any
		if json.Unmarshal(content, &c) != nil || c["algorithm"] == nil {
			h.mu.Unlock()
			return "", mxerr.Forbidden("encryption cannot be turned off once enabled")
		}
	}
	sk := stateKey
	wait, err := s.submit(h, []proto{{Type: typ, StateKey: &sk, Sender: user, Content: content}}, nil)
	h.mu.Unlock()
	if err != nil {
		return "", err
	}
	ids, _, err := wait()
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

func compact(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// checkCanonicalAlias enforces that every alias in m.room.canonical_alias
// points at this room (spec: m.room.canonical_alias, M_BAD_ALIAS).
func (s *Service) checkCanonicalAlias(roomID string, content json.RawMessage) error {
	var c struct {
		Alias      *string  `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return mxerr.BadJSON("invalid m.room.canonical_alias content")
	}
	all := c.AltAliases
	if c.Alias != nil && *c.Alias != "" {
		all = append(all, *c.Alias)
	}
	for _, a := range all {
		if _, _, err := ids.ParseRoomAlias(a); err != nil {
			return mxerr.InvalidParam("invalid room alias " + a)
		}
	}
	for _, a := range all {
		rid, _, err := s.store.Alias(a)
		if err != nil || rid != roomID {
			return mxerr.New(400, "M_BAD_ALIAS", "alias "+a+" does not point to this room")
		}
	}
	return nil
}

// Redact redacts an event (spec: PUT /rooms/{roomId}/redact/{eventId}/{txnId}).
// The sender may redact their own events, or others' with the redact power
// level; the stored event is replaced by its redacted form per the room
// version's algorithm in the same commit as the redaction event.
func (s *Service) Redact(from Sender, roomID, eventID, txnID, reason string) (string, error) {
	scope := "redact\x00" + roomID + "\x00" + eventID
	return s.onceTxn(from, scope, txnID, func() (string, error) { return s.redactNew(from, roomID, eventID, txnID, scope, reason) })
}

func (s *Service) redactNew(from Sender, roomID, eventID, txnID, scope, reason string) (string, error) {
	target, err := s.store.Event(eventID)
	if err != nil || target.RoomID != roomID {
		return "", mxerr.NotFound("event not found")
	}
	h, err := s.lockHead(roomID)
	if err != nil {
		return "", err
	}
	if target.Sender != from.User {
		pl := h.powerLevels()
		if h.userLevel(from.User) < pl.Redact {
			h.mu.Unlock()
			return "", mxerr.Forbidden("you may not redact other users' events")
		}
	}
	if target.Type == spec.MRoomCreate {
		h.mu.Unlock()
		return "", mxerr.Forbidden("the create event cannot be redacted")
	}
	if target.Type == "m.room.encryption" {
		// Redaction strips its algorithm, which would read as encryption
		// turned off: once enabled it stays (spec "Enabling encryption").
		h.mu.Unlock()
		return "", mxerr.Forbidden("encryption cannot be turned off once enabled")
	}
	content := map[string]any{"redacts": eventID}
	if reason != "" {
		content["reason"] = reason
	}
	var redacted []byte
	if target.RedactedBy == "" {
		redacted, err = h.ver.RedactEventJSON(target.JSON)
		if err == nil {
			// Stored PDUs stay canonical JSON, as federation will send them.
			redacted, err = gmsl.CanonicalJSON(redacted)
		}
		if err != nil {
			h.mu.Unlock()
			return "", err
		}
	}
	wait, err := s.submit(h, []proto{{Type: spec.MRoomRedaction, Sender: from.User, Content: content, Redacts: eventID}},
		func(_ int, a *Append) {
			a.Event.TxnUser, a.Event.TxnDevice, a.Event.TxnID, a.Event.TxnScope = from.User, from.Device, txnID, scope
			if redacted != nil {
				a.Redacts, a.RedactedJSON = eventID, redacted
			}
		})
	if err == nil && redacted != nil && target.StateKey != nil {
		// Redacting current state changes what the auth rules see.
		if cur := h.get(target.Type, *target.StateKey); cur != nil && cur.EventID() == eventID {
			if ev, perr := h.ver.NewEventFromTrustedJSONWithEventID(eventID, redacted, true); perr == nil {
				h.state[tuple{target.Type, *target.StateKey}] = ev
				h.derive(ev)
			}
		}
	}
	h.mu.Unlock()
	if err != nil {
		return "", err
	}
	ids, _, err := wait()
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// txnFlight is a send in progress under a transaction ID.
type txnFlight struct {
	done chan struct{}
	id   string
	err  error
}

// onceTxn runs fn once per (device, request path, txnId): a retry that
// arrives while the first request is still committing waits for its
// answer instead of sending again; a later one finds the stored event
// (spec: "Transaction identifiers").
func (s *Service) onceTxn(from Sender, scope, txnID string, fn func() (string, error)) (string, error) {
	if txnID == "" {
		return fn()
	}
	k := from.User + "\x00" + from.Device + "\x00" + scope + "\x00" + txnID
	s.txMu.Lock()
	if f, ok := s.txns[k]; ok {
		s.txMu.Unlock()
		<-f.done
		return f.id, f.err
	}
	if id, ok := s.store.TxnEvent(from.User, from.Device, scope, txnID); ok {
		s.txMu.Unlock()
		return id, nil
	}
	f := &txnFlight{done: make(chan struct{})}
	s.txns[k] = f
	s.txMu.Unlock()
	f.id, f.err = fn()
	s.txMu.Lock()
	delete(s.txns, k)
	s.txMu.Unlock()
	close(f.done)
	return f.id, f.err
}

// checkType enforces the spec's limits on event types ("Size limits":
// type and state_key at most 255 bytes).
func checkType(typ string) error {
	if typ == "" {
		return mxerr.InvalidParam("event type is empty")
	}
	if len(typ) > 255 {
		return mxerr.InvalidParam("event type is longer than 255 bytes")
	}
	return nil
}

// dropJoinAuthorisation removes join_authorised_via_users_server from a
// join that follows a join (a profile change): the key only means
// something on the join that admits a user to a restricted room, and
// auth rules would otherwise check a value the client made up.
func dropJoinAuthorisation(content json.RawMessage) json.RawMessage {
	var c map[string]json.RawMessage
	if json.Unmarshal(content, &c) != nil || string(c["membership"]) != `"join"` {
		return content
	}
	if _, ok := c["join_authorised_via_users_server"]; !ok {
		return content
	}
	delete(c, "join_authorised_via_users_server")
	b, err := json.Marshal(c)
	if err != nil {
		return content
	}
	return b
}
