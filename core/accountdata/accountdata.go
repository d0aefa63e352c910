// Package accountdata keeps what the server stores for a user's own
// clients: account data (global and per room), room tags, the fully-read
// marker, push rules (also served as m.push_rules account data), filters,
// and the user directory search.
//
// Spec: client-server-api "Client Config" (modules/account_data.md),
// "Room Tagging" (modules/tags.md), "Fully read markers"
// (modules/read_markers.md), "Push Rules" API (modules/push.md),
// "Filtering", "User Directory"; data/api/client-server/account-data.yaml,
// tags.yaml, pushrules.yaml, filter.yaml, users.yaml.
package accountdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/notify"
)

// Account data types the server manages itself (spec "Client Config",
// "Server Behaviour": clients cannot set them through the account data
// API).
const (
	TypeFullyRead = "m.fully_read"
	TypePushRules = "m.push_rules"
	TypeTag       = "m.tag"
)

// Event is an account data event as /sync carries it.
type Event struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// Change is one account data entry as the store lists it by position:
// the latest content of (RoomID, Type), written at Pos.
type Change struct {
	RoomID  string // "" for global account data
	Type    string
	Content json.RawMessage
	Pos     uint64
}

// ErrNotFound is what a Store returns for missing account data or filters.
var ErrNotFound = errors.New("not found")

// Store is what this package needs from storage. Every write allocates a
// position on the global stream, so sync tokens order account data with
// room events.
type Store interface {
	// AccountData is the content of (user, roomID, typ); roomID "" is
	// global. ErrNotFound when unset.
	AccountData(user, roomID, typ string) ([]byte, error)
	// UpdateAccountData stores what fn returns for the current content
	// (nil when unset) at a new stream position, in one transaction, and
	// returns the position. fn returning nil content writes nothing
	// (position 0). fn may run more than once and must have no side
	// effects; its error aborts the write and is returned.
	UpdateAccountData(user, roomID, typ string, fn func(old []byte) ([]byte, error)) (uint64, error)
	// AccountDataChanges lists, in position order, the entries of the user
	// whose latest write is in (since, upto]. It scans only this user's
	// position index.
	AccountDataChanges(user string, since, upto uint64) ([]Change, error)

	// PushRules is the user's stored push-rule blob, nil when unset.
	PushRules(user string) ([]byte, error)
	// UpdatePushRules replaces the push-rule blob with what fn returns for
	// the current one (nil when unset), and in the same transaction writes
	// accountData as the user's global m.push_rules account data at a new
	// position. fn has UpdateAccountData's rules.
	UpdatePushRules(user string, fn func(old []byte) (rules, accountData []byte, err error)) (uint64, error)

	FilterStore
}

// Service is the account data engine.
type Service struct {
	store   Store
	hub     *notify.Hub
	filters *Filters
	rules   rulesCache
}

// New makes the service. Writes wake the user's syncs through hub.
func New(store Store, hub *notify.Hub) *Service {
	return &Service{store: store, hub: hub, filters: NewFilters(store), rules: rulesCache{m: map[string]*cachedRules{}}}
}

// Filters is the user filter store of this service.
func (s *Service) Filters() *Filters { return s.filters }

func checkOwner(caller, user string) error {
	if caller != user {
		// Spec account-data.yaml, tags.yaml: 403 "The access token provided
		// is not authorized to ..." for another user's data.
		return mxerr.Forbidden("cannot access account data of other users")
	}
	return nil
}

func checkRoom(roomID string) error {
	if roomID == "" {
		return nil
	}
	_, _, err := ids.ParseRoomID(roomID) // 400 M_INVALID_PARAM
	return err
}

// jsonObject checks that content is a JSON object and compacts it.
func jsonObject(content []byte) (json.RawMessage, error) {
	t := bytes.TrimSpace(content)
	if len(t) == 0 {
		return nil, mxerr.NotJSON("request body must be a JSON object")
	}
	if !json.Valid(t) {
		return nil, mxerr.NotJSON("request body is not valid JSON")
	}
	if t[0] != '{' {
		return nil, mxerr.BadJSON("account data content must be a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return nil, mxerr.NotJSON("request body is not valid JSON")
	}
	return b.Bytes(), nil
}

// Set stores account data of user (the caller themself) for typ, global
// when roomID is "" (PUT /user/{userId}/account_data/{type} and
// /user/{userId}/rooms/{roomId}/account_data/{type}).
func (s *Service) Set(caller, user, roomID, typ string, content []byte) error {
	if err := checkOwner(caller, user); err != nil {
		return err
	}
	if err := checkRoom(roomID); err != nil {
		return err
	}
	if typ == "" {
		return mxerr.InvalidParam("empty account data type")
	}
	if typ == TypeFullyRead || typ == TypePushRules {
		// Spec "Client Config", "Server Behaviour": servers MUST reject
		// these with 405; account-data.yaml names M_BAD_JSON.
		return mxerr.New(http.StatusMethodNotAllowed, "M_BAD_JSON",
			"cannot set "+typ+" through the account data API")
	}
	obj, err := jsonObject(content)
	if err != nil {
		return err
	}
	return s.put(user, roomID, typ, func([]byte) ([]byte, error) { return obj, nil })
}

// put writes through the store and wakes the user.
func (s *Service) put(user, roomID, typ string, fn func(old []byte) ([]byte, error)) error {
	pos, err := s.store.UpdateAccountData(user, roomID, typ, fn)
	if err != nil {
		return err
	}
	if pos != 0 {
		s.hub.Wake(user)
	}
	return nil
}

// Get returns account data of user (the caller themself); 404 M_NOT_FOUND
// when unset. Server-managed types read as normal (spec "Client Config");
// global m.push_rules is the user's current effective rule set.
func (s *Service) Get(caller, user, roomID, typ string) (json.RawMessage, error) {
	if err := checkOwner(caller, user); err != nil {
		return nil, err
	}
	if err := checkRoom(roomID); err != nil {
		return nil, err
	}
	if roomID == "" && typ == TypePushRules {
		return s.pushRulesContent(user)
	}
	c, err := s.store.AccountData(user, roomID, typ)
	if errors.Is(err, ErrNotFound) {
		return nil, mxerr.NotFound("account data not found")
	}
	return c, err
}

// SetFullyRead moves the user's fully-read marker in a room (room account
// data m.fully_read, spec "Fully read markers"). The caller (receipts) has
// checked membership and that the event belongs to the room.
func (s *Service) SetFullyRead(user, roomID, eventID string) error {
	content, err := json.Marshal(map[string]string{"event_id": eventID})
	if err != nil {
		return err
	}
	return s.put(user, roomID, TypeFullyRead, func([]byte) ([]byte, error) { return content, nil })
}

// Changes is the sync read: the latest value of each global and per-room
// account data entry of user written in (since, upto]; since 0 means all.
// The initial sync (since 0) always carries m.push_rules, as clients expect
// to find their push rules there.
func (s *Service) Changes(user string, since, upto uint64) (global []Event, rooms map[string][]Event, err error) {
	changes, err := s.store.AccountDataChanges(user, since, upto)
	if err != nil {
		return nil, nil, err
	}
	sawRules := false
	for _, c := range changes {
		ev := Event{Type: c.Type, Content: c.Content}
		if c.RoomID == "" {
			if c.Type == TypePushRules {
				sawRules = true
				// The stored copy may predate this binary's defaults.
				if ev.Content, err = s.pushRulesContent(user); err != nil {
					return nil, nil, err
				}
			}
			global = append(global, ev)
			continue
		}
		if rooms == nil {
			rooms = map[string][]Event{}
		}
		rooms[c.RoomID] = append(rooms[c.RoomID], ev)
	}
	if since == 0 && !sawRules {
		c, err := s.pushRulesContent(user)
		if err != nil {
			return nil, nil, err
		}
		global = append(global, Event{Type: TypePushRules, Content: c})
	}
	return global, rooms, nil
}
