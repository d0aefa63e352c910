package rooms

import "errors"

// ErrNotFound is what a Store returns for a missing room, event or state.
var ErrNotFound = errors.New("not found")

// EventRecord is an event as stored: its PDU bytes (byte-exact, so hashes
// and signatures survive) plus the index fields the server reads without
// parsing the PDU, and the bookkeeping that ends up in `unsigned`.
type EventRecord struct {
	Pos      uint64 // stream position; 0 until committed
	RoomID   string
	EventID  string
	Type     string
	StateKey *string
	Sender   string
	JSON     []byte // canonical PDU JSON (redacted in place when redacted)

	// PrevContent/PrevSender/ReplacesState describe the state event this one
	// replaced, for unsigned.prev_content (spec: "unsigned" of ClientEvent).
	PrevContent   []byte `cbor:",omitempty"`
	PrevSender    string `cbor:",omitempty"`
	ReplacesState string `cbor:",omitempty"`

	// TxnDevice/TxnID are set for events sent with a transaction ID, so the
	// sending device sees unsigned.transaction_id.
	TxnUser   string `cbor:",omitempty"`
	TxnDevice string `cbor:",omitempty"`
	TxnID     string `cbor:",omitempty"`
	TxnScope  string `cbor:",omitempty"` // the request path the txn ID is scoped to

	// RedactedBy is the event ID of the redaction applied to this event.
	RedactedBy string `cbor:",omitempty"`

	// ViewerMembership is per request, never stored: the requesting user's
	// membership at the event, for unsigned.membership.
	ViewerMembership string `cbor:"-"`
}

// IsState reports whether the event is a state event.
func (r *EventRecord) IsState() bool { return r.StateKey != nil }

// RoomMeta is what the store keeps about a room besides its events.
type RoomMeta struct {
	RoomID  string
	Version string
	Creator string
}

// Append is one event to commit, with the index changes it implies.
type Append struct {
	Event EventRecord
	// Redacts, when set, replaces the stored JSON of that event with
	// RedactedJSON and records the redaction (same transaction).
	Redacts      string
	RedactedJSON []byte
	// BuiltOn, on the first event of a batch, is the room event it was
	// built on ("" for a new room): the batch commits only if that is
	// still the room's newest event, else it fails with ErrConflict.
	BuiltOn string
}

// ErrConflict is AppendEvents' answer when the room moved on (an earlier
// queued write failed) since the batch was built.
var ErrConflict = errors.New("room head conflict")

// Direction of a timeline scan.
type Direction bool

const (
	Forward  Direction = true
	Backward Direction = false
)

// MemberEntry is a user's membership in a room as the store indexes it.
type MemberEntry struct {
	RoomID     string
	Membership string // join, invite, leave, ban, knock
	Pos        uint64 // position of the membership event
	Forgotten  bool
}

// Store is what the rooms service needs from storage.
type Store interface {
	// CreateRoom registers a room's metadata (idempotent for the same meta).
	CreateRoom(meta RoomMeta) error
	Room(roomID string) (RoomMeta, error)

	// AppendEvents queues events of one room for commit in order and
	// returns a function that waits for the commit and yields their
	// positions. Calls for the same room are committed in call order.
	AppendEvents(roomID string, evs []Append) (wait func() ([]uint64, error))

	Event(eventID string) (EventRecord, error)
	EventAt(pos uint64) (EventRecord, error)
	// CurrentState is the room's current state events.
	CurrentState(roomID string) ([]EventRecord, error)
	// StateAt is the room's state as of stream position pos (inclusive).
	StateAt(roomID string, pos uint64) ([]EventRecord, error)
	// StateHistory is every event that set one state entry, oldest first.
	StateHistory(roomID, typ, stateKey string) ([]EventRecord, error)
	// StateEventAt is one state entry as of pos (inclusive).
	StateEventAt(roomID string, pos uint64, typ, stateKey string) (EventRecord, error)
	// Latest is the room's newest event.
	Latest(roomID string) (EventRecord, error)
	// Timeline calls fn for the room's events from the boundary from until
	// fn returns false: Forward yields positions > from ascending, Backward
	// yields positions <= from descending.
	Timeline(roomID string, from uint64, dir Direction, fn func(EventRecord) bool) error

	// TxnEvent is the event ID a (user, device, scope, txnID) already produced.
	TxnEvent(user, device, scope, txnID string) (string, bool)
	// Membership is the user's membership entry in one room.
	Membership(user, roomID string) (MemberEntry, error)

	// Memberships lists the rooms a user has a membership in.
	Memberships(user string) ([]MemberEntry, error)
	Forget(user, roomID string) error

	// Aliases.
	PutAlias(alias, roomID, creator string) error // ErrAliasExists
	DeleteAlias(alias string) error
	Alias(alias string) (roomID, creator string, err error)
	RoomAliases(roomID string) ([]string, error)

	// Directory visibility of local rooms.
	SetPublished(roomID string, public bool) error
	Published(roomID string) (bool, error)
	PublishedRooms() ([]string, error)
}

// ErrAliasExists is returned by PutAlias for a taken alias.
var ErrAliasExists = errors.New("alias exists")
