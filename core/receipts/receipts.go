// Package receipts keeps read receipts (m.read, m.read.private) and sets
// fully-read markers: the POST /receipt and /read_markers endpoints and the
// m.receipt content /sync delivers per room.
//
// Spec: client-server-api "Receipts" (modules/receipts.md), "Read and
// unread markers" (modules/read_markers.md); data/api/client-server/
// receipts.yaml, read_markers.yaml; event schema m.receipt.
package receipts

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/rooms"
)

// Receipt types.
const (
	TypeRead        = "m.read"
	TypeReadPrivate = "m.read.private"
	TypeFullyRead   = "m.fully_read" // a marker, stored as room account data
)

// Receipt is one user's receipt of one type (and thread) in a room. Per
// (room, Type, User, ThreadID) only the latest is kept (spec "Receipts":
// each (user, type, thread) tuple is associated with a single event).
type Receipt struct {
	Type     string // TypeRead or TypeReadPrivate
	User     string
	ThreadID string // "" for an unthreaded receipt
	EventID  string
	TS       int64  // ms since the epoch
	Pos      uint64 // stream position; set by the store
}

// Store keeps receipts, indexed per room by stream position.
type Store interface {
	// PutReceipt stores r as the latest of its (room, type, user, thread)
	// at a new stream position, replacing the previous one.
	PutReceipt(roomID string, r Receipt) (uint64, error)
	// Receipts lists the room's current receipts written in (since, upto],
	// in position order.
	Receipts(roomID string, since, upto uint64) ([]Receipt, error)
}

// ErrNotFound is what Rooms.EventRoom returns for an unknown event.
var ErrNotFound = errors.New("not found")

// Rooms is what receipts need from the room engine; RoomsOf adapts
// *rooms.Service.
type Rooms interface {
	// Membership is the user's membership in the room ("" if none).
	Membership(user, roomID string) (string, error)
	// EventRoom is the room of a stored event, ErrNotFound if unknown.
	EventRoom(eventID string) (string, error)
}

// Members lists the users joined to a room (wired by the server).
type Members func(roomID string) []string

// Markers sets fully-read markers (implemented by accountdata.Service).
type Markers interface {
	SetFullyRead(user, roomID, eventID string) error
}

// Service is the receipts engine.
type Service struct {
	store   Store
	hub     *notify.Hub
	rooms   Rooms
	members Members
	markers Markers
	now     func() time.Time
}

// New makes the service.
func New(store Store, hub *notify.Hub, rooms Rooms, members Members, markers Markers) *Service {
	return &Service{store: store, hub: hub, rooms: rooms, members: members, markers: markers, now: time.Now}
}

// RoomsOf adapts the room engine to Rooms.
func RoomsOf(rs *rooms.Service) Rooms { return roomEngine{rs} }

type roomEngine struct{ rs *rooms.Service }

func (r roomEngine) Membership(user, roomID string) (string, error) {
	return r.rs.Membership(user, roomID)
}

func (r roomEngine) EventRoom(eventID string) (string, error) {
	rec, err := r.rs.Store().Event(eventID)
	if errors.Is(err, rooms.ErrNotFound) {
		return "", ErrNotFound
	}
	return rec.RoomID, err
}

// ParseBody reads the thread_id of a POST /receipt body; an empty body is
// {} (older clients send none). A thread_id that is present must be a
// non-empty string (receipts.yaml: 400 M_INVALID_PARAM).
func ParseBody(body []byte) (threadID *string, err error) {
	if len(body) == 0 {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, mxerr.BadJSON("request body must be a JSON object")
	}
	raw, ok := obj["thread_id"]
	if !ok {
		return nil, nil
	}
	var t string
	if json.Unmarshal(raw, &t) != nil || t == "" {
		return nil, mxerr.InvalidParam("thread_id field must be a non-empty string")
	}
	return &t, nil
}

// Post is POST /rooms/{roomId}/receipt/{receiptType}/{eventId}: the user
// must be joined (403) and the event must be in the room (404).
// m.fully_read moves the fully-read marker instead (receipts.yaml: it "effectively
// calls /read_markers") and takes no thread_id (400).
func (s *Service) Post(user, roomID, receiptType, eventID string, threadID *string) error {
	switch receiptType {
	case TypeRead, TypeReadPrivate:
	case TypeFullyRead:
		if threadID != nil {
			return mxerr.InvalidParam("thread_id is not allowed for m.fully_read")
		}
	default:
		return mxerr.InvalidParam("unknown receipt type: " + receiptType)
	}
	if threadID != nil && *threadID == "" {
		return mxerr.InvalidParam("thread_id field must be a non-empty string")
	}
	if err := s.check(user, roomID, eventID); err != nil {
		return err
	}
	if receiptType == TypeFullyRead {
		return s.markers.SetFullyRead(user, roomID, eventID)
	}
	r := Receipt{Type: receiptType, User: user, EventID: eventID, TS: s.now().UnixMilli()}
	if threadID != nil {
		r.ThreadID = *threadID
	}
	return s.put(roomID, r)
}

// SetReadMarkers is POST /rooms/{roomId}/read_markers: each non-empty
// argument is applied as the corresponding /receipt call would. Everything
// is checked before anything is written.
func (s *Service) SetReadMarkers(user, roomID, fullyRead, read, readPrivate string) error {
	if err := s.joined(user, roomID); err != nil {
		return err
	}
	for _, ev := range []string{fullyRead, read, readPrivate} {
		if ev == "" {
			continue
		}
		if err := s.inRoom(roomID, ev); err != nil {
			return err
		}
	}
	if fullyRead != "" {
		if err := s.markers.SetFullyRead(user, roomID, fullyRead); err != nil {
			return err
		}
	}
	ts := s.now().UnixMilli()
	if read != "" {
		if err := s.put(roomID, Receipt{Type: TypeRead, User: user, EventID: read, TS: ts}); err != nil {
			return err
		}
	}
	if readPrivate != "" {
		if err := s.put(roomID, Receipt{Type: TypeReadPrivate, User: user, EventID: readPrivate, TS: ts}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) put(roomID string, r Receipt) error {
	if _, err := s.store.PutReceipt(roomID, r); err != nil {
		return err
	}
	if r.Type == TypeReadPrivate {
		s.hub.Wake(r.User) // nobody else ever sees it
		return nil
	}
	s.hub.Wake(append(s.members(roomID), r.User)...)
	return nil
}

func (s *Service) check(user, roomID, eventID string) error {
	if err := s.joined(user, roomID); err != nil {
		return err
	}
	return s.inRoom(roomID, eventID)
}

func (s *Service) joined(user, roomID string) error {
	m, err := s.rooms.Membership(user, roomID)
	if err != nil {
		if e := mxerr.As(err); e.Status == 404 {
			return mxerr.Forbidden("you are not joined to this room")
		}
		return err
	}
	if m != "join" {
		return mxerr.Forbidden("you are not joined to this room")
	}
	return nil
}

func (s *Service) inRoom(roomID, eventID string) error {
	r, err := s.rooms.EventRoom(eventID)
	if errors.Is(err, ErrNotFound) || (err == nil && r != roomID) {
		return mxerr.NotFound("event not found in this room")
	}
	return err
}

// userReceipt is a user's entry in m.receipt content.
type userReceipt struct {
	TS       int64  `json:"ts"`
	ThreadID string `json:"thread_id,omitempty"`
}

// RoomReceipts is the sync read: the content of an m.receipt event
// ({eventId: {type: {user: {ts, thread_id?}}}}) with the room's receipts
// written in (since, upto] (all current ones when since is 0), m.read.private
// only the viewer's own (spec "Private read receipts": servers MUST NOT send
// them to anyone else). nil when there are none.
func (s *Service) RoomReceipts(viewer, roomID string, since, upto uint64) (json.RawMessage, error) {
	rs, err := s.store.Receipts(roomID, since, upto)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	content := map[string]map[string]map[string]userReceipt{}
	for _, r := range rs {
		if r.Type == TypeReadPrivate && r.User != viewer {
			continue
		}
		byType := content[r.EventID]
		if byType == nil {
			byType = map[string]map[string]userReceipt{}
			content[r.EventID] = byType
		}
		byUser := byType[r.Type]
		if byUser == nil {
			byUser = map[string]userReceipt{}
			byType[r.Type] = byUser
		}
		// Several threads of one user can point at one event: the spec's
		// content has room for one; the latest written wins.
		byUser[r.User] = userReceipt{TS: r.TS, ThreadID: r.ThreadID}
	}
	if len(content) == 0 {
		return nil, nil
	}
	return json.Marshal(content)
}

// EventPos finds a stored event's stream position (for ReadPos).
type EventPos func(eventID string) (uint64, bool)

// ReadPos is the stream position of the newest event the user's
// unthreaded or main-thread m.read / m.read.private receipts point at, 0
// when they have none: unread notification counts start after it.
func (s *Service) ReadPos(user, roomID string, pos EventPos) uint64 {
	rs, err := s.store.Receipts(roomID, 0, ^uint64(0))
	if err != nil {
		return 0
	}
	var best uint64
	for _, r := range rs {
		if r.User != user || (r.ThreadID != "" && r.ThreadID != "main") {
			continue
		}
		if p, ok := pos(r.EventID); ok && p > best {
			best = p
		}
	}
	return best
}
