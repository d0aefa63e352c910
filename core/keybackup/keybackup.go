// Package keybackup keeps server-side backups of room keys: the versions of
// a user's backup (algorithm, auth_data, key count and etag) and the
// encrypted megolm session keys stored in them, with the spec's rules for
// which of two copies of a session is kept.
//
// Spec: client-server-api "Server-side key backups"
// (modules/end_to_end_encryption.md); data/api/client-server/key_backup.yaml
// and its definitions key_backup_data.yaml, room_key_backup.yaml,
// key_backup_auth_data.yaml. The older r0 shapes of the seed's API
// reference (section 11, and 7.5 "keys/distribution") are in legacy.go.
package keybackup

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// AlgorithmCurve25519 is the backup algorithm the spec defines (section
// "Backup algorithm: m.megolm_backup.v1.curve25519-aes-sha2"). Other
// algorithm names are stored as given: the server never decrypts a backup,
// and clients try newer schemes under their own names (e.g. MSC3270).
const AlgorithmCurve25519 = "m.megolm_backup.v1.curve25519-aes-sha2"

// Backup is one version of a user's backup.
type Backup struct {
	Version   uint64 // 1, 2, ... per user, never reused
	Algorithm string
	AuthData  json.RawMessage // a JSON object, as the client sent it
	Count     int64           // sessions stored
	Etag      uint64          // bumped by every write that changes the keys
}

// KeyBackupData is one backed-up session (definitions/key_backup_data.yaml).
type KeyBackupData struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"` // a JSON object, opaque
}

// RoomKey is a session's key data with its room and session IDs.
type RoomKey struct {
	RoomID    string
	SessionID string
	KeyBackupData
	// Written is the etag of the write that stored this copy; set by the
	// store (the newest session of a room is the one with the highest).
	Written uint64
}

// ErrNotFound is what a Store returns for a backup version (or session)
// that does not exist.
var ErrNotFound = errors.New("keybackup: not found")

// NotLatestError is what Store.PutRoomKeys returns when the version exists
// but a newer one does: keys may only be written to the latest version
// (spec: "Keys can only be written to the most recently created version").
type NotLatestError struct{ Latest uint64 }

func (e *NotLatestError) Error() string {
	return "keybackup: version is not the latest (" + strconv.FormatUint(e.Latest, 10) + ")"
}

// Store keeps backups. Every write is atomic and durable before it returns.
type Store interface {
	// CreateBackup stores a new version numbered one above the user's
	// highest version ever (deleted ones included) and returns its number.
	CreateBackup(user, algorithm string, authData json.RawMessage) (uint64, error)
	// Backup is an existing version, ErrNotFound otherwise.
	Backup(user string, version uint64) (Backup, error)
	// LatestBackup is the user's highest existing version, ErrNotFound if
	// there is none.
	LatestBackup(user string) (Backup, error)
	// LastVersion is the highest version number ever given to the user
	// (0 if none), so that a deleted version can be told from an unknown one.
	LastVersion(user string) (uint64, error)
	// SetAuthData replaces an existing version's auth_data (ErrNotFound if
	// it does not exist).
	SetAuthData(user string, version uint64, authData json.RawMessage) error
	// DeleteBackup removes a version and all its keys; false if it did not
	// exist.
	DeleteBackup(user string, version uint64) (bool, error)
	// PutRoomKeys stores keys in the version, in order, if it is the
	// user's latest (ErrNotFound if it does not exist, *NotLatestError if
	// a newer one does). A key for a session already stored replaces it
	// only when replaces(current, key) says so (current's SessionData may
	// be nil: only the metadata is compared). The etag is bumped once if
	// anything changed. It returns the version after the write.
	PutRoomKeys(user string, version uint64, keys []RoomKey, replaces func(current, candidate KeyBackupData) bool) (Backup, error)
	// RoomKeys calls fn for the version's keys (only roomID's when it is
	// not "", only that session when sessionID is not "" too), the keys of
	// a room one after another, all read from one snapshot; the RoomKey
	// and its bytes are valid only during the call. It returns the version
	// as of that snapshot, ErrNotFound if it does not exist.
	RoomKeys(user string, version uint64, roomID, sessionID string, fn func(RoomKey) error) (Backup, error)
	// DeleteRoomKeys removes the version's keys (only roomID's, only that
	// session, as for RoomKeys), bumping the etag if any went. It returns
	// the version after the write, ErrNotFound if it does not exist.
	DeleteRoomKeys(user string, version uint64, roomID, sessionID string) (Backup, error)
}

// Service is the key backup engine behind the /room_keys endpoints.
type Service struct {
	store Store
}

// New makes the service.
func New(store Store) *Service { return &Service{store: store} }

// VersionInfo is the answer of GET /room_keys/version[/{version}].
type VersionInfo struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// KeysUpdate is RoomKeysUpdateResponse, the answer of the key PUTs and
// DELETEs.
type KeysUpdate struct {
	Etag  string `json:"etag"`
	Count int64  `json:"count"`
}

func infoOf(b Backup) VersionInfo {
	return VersionInfo{Algorithm: b.Algorithm, AuthData: b.AuthData, Count: b.Count,
		Etag: etagOf(b), Version: strconv.FormatUint(b.Version, 10)}
}

func updateOf(b Backup) KeysUpdate { return KeysUpdate{Etag: etagOf(b), Count: b.Count} }

// etagOf: the etag is opaque to clients (key_backup.yaml); a per-version
// counter is enough, as versions are never reused.
func etagOf(b Backup) string { return strconv.FormatUint(b.Etag, 10) }

// ParseVersion reads a version as this server writes it: the decimal
// number, without sign or leading zeros. Anything else names no backup.
func ParseVersion(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func unknownVersion() error { return mxerr.NotFound("Unknown backup version") }

// version parses a version named by the client; unparsable ones are
// unknown (404), as key_backup.yaml answers for any backup that does not
// exist.
func version(s string) (uint64, error) {
	v, ok := ParseVersion(s)
	if !ok {
		return 0, unknownVersion()
	}
	return v, nil
}

// versionParam is the required ?version= of the /room_keys/keys
// endpoints.
func versionParam(s string) (uint64, error) {
	if s == "" {
		return 0, mxerr.MissingParam("the version query parameter is required")
	}
	return version(s)
}

// storeErr turns the store's sentinel errors into Matrix errors.
func storeErr(err error) error {
	var nl *NotLatestError
	switch {
	case errors.Is(err, ErrNotFound):
		return unknownVersion()
	case errors.As(err, &nl):
		// key_backup.yaml: 403 M_WRONG_ROOM_KEYS_VERSION with current_version.
		return mxerr.New(403, "M_WRONG_ROOM_KEYS_VERSION", "Wrong backup version.").
			With("current_version", strconv.FormatUint(nl.Latest, 10))
	}
	return err
}

// CreateVersion is POST /room_keys/version: body {algorithm, auth_data};
// the answer is the new version.
func (s *Service) CreateVersion(user string, body []byte) (string, error) {
	req, err := parseVersionBody(body)
	if err != nil {
		return "", err
	}
	v, err := s.store.CreateBackup(user, req.algorithm, req.authData)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(v, 10), nil
}

// Version is GET /room_keys/version/{version}, or GET /room_keys/version
// (the latest) when v is "".
func (s *Service) Version(user, v string) (VersionInfo, error) {
	var b Backup
	var err error
	if v == "" {
		b, err = s.store.LatestBackup(user)
		if errors.Is(err, ErrNotFound) {
			return VersionInfo{}, mxerr.NotFound("No current backup version")
		}
	} else {
		var n uint64
		if n, err = version(v); err != nil {
			return VersionInfo{}, err
		}
		b, err = s.store.Backup(user, n)
	}
	if err != nil {
		return VersionInfo{}, storeErr(err)
	}
	return infoOf(b), nil
}

// UpdateVersion is PUT /room_keys/version/{version}: only auth_data
// changes. The body's algorithm must be the backup's, and its version, if
// given, the path's (key_backup.yaml: 400 M_INVALID_PARAM).
func (s *Service) UpdateVersion(user, v string, body []byte) error {
	req, err := parseVersionBody(body)
	if err != nil {
		return err
	}
	if req.version != nil && *req.version != v {
		return mxerr.InvalidParam("the version in the body does not match the version in the path")
	}
	n, err := version(v)
	if err != nil {
		return err
	}
	b, err := s.store.Backup(user, n)
	if err != nil {
		return storeErr(err)
	}
	// A backup's algorithm never changes, so this check cannot race.
	if req.algorithm != b.Algorithm {
		return mxerr.InvalidParam("Algorithm does not match")
	}
	return storeErr(s.store.SetAuthData(user, n, req.authData))
}

// DeleteVersion is DELETE /room_keys/version/{version}: the backup and
// its keys go. Deleting a version deleted before succeeds; one never
// created is 404 (key_backup.yaml).
func (s *Service) DeleteVersion(user, v string) error {
	n, err := version(v)
	if err != nil {
		return err
	}
	existed, err := s.store.DeleteBackup(user, n)
	if err != nil || existed {
		return err
	}
	last, err := s.store.LastVersion(user)
	if err != nil {
		return err
	}
	if n > last {
		return unknownVersion()
	}
	return nil
}

// PutKeys is PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version=: keys
// come from the Parse*Body functions. Each replaces a stored copy of its
// session only as Replaces says.
func (s *Service) PutKeys(user, v string, keys []RoomKey) (KeysUpdate, error) {
	n, err := versionParam(v)
	if err != nil {
		return KeysUpdate{}, err
	}
	b, err := s.store.PutRoomKeys(user, n, keys, Replaces)
	if err != nil {
		return KeysUpdate{}, storeErr(err)
	}
	return updateOf(b), nil
}

// DeleteKeys is DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=.
// Deleting keys the backup does not hold succeeds and changes nothing.
func (s *Service) DeleteKeys(user, v, roomID, sessionID string) (KeysUpdate, error) {
	n, err := versionParam(v)
	if err != nil {
		return KeysUpdate{}, err
	}
	b, err := s.store.DeleteRoomKeys(user, n, roomID, sessionID)
	if err != nil {
		return KeysUpdate{}, storeErr(err)
	}
	return updateOf(b), nil
}

// Keys is GET /room_keys/keys?version=: {"rooms": {roomId: {"sessions":
// {sessionId: KeyBackupData}}}}, {"rooms": {}} when the backup is empty.
func (s *Service) Keys(user, v string) (json.RawMessage, error) {
	n, err := versionParam(v)
	if err != nil {
		return nil, err
	}
	out := append(s.keysBuffer(user, n), `{"rooms":`...)
	out, _, err = s.appendRooms(out, user, n, "")
	if err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// RoomKeys is GET /room_keys/keys/{roomId}?version=: {"sessions": {...}},
// {"sessions": {}} when the room has none (key_backup.yaml: not a 404).
func (s *Service) RoomKeys(user, v, roomID string) (json.RawMessage, error) {
	n, err := versionParam(v)
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, 1024), `{"sessions":{`...)
	first := true
	_, err = s.store.RoomKeys(user, n, roomID, "", func(k RoomKey) error {
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendString(out, k.SessionID)
		out = append(out, ':')
		out = appendKeyData(out, k.KeyBackupData)
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return append(out, "}}"...), nil
}

// SessionKey is GET /room_keys/keys/{roomId}/{sessionId}?version=: the
// session's KeyBackupData, 404 M_NOT_FOUND when the backup lacks it.
func (s *Service) SessionKey(user, v, roomID, sessionID string) (KeyBackupData, error) {
	n, err := versionParam(v)
	if err != nil {
		return KeyBackupData{}, err
	}
	k, err := s.session(user, n, roomID, sessionID)
	return k.KeyBackupData, err
}

func (s *Service) session(user string, n uint64, roomID, sessionID string) (RoomKey, error) {
	var out RoomKey
	found := false
	_, err := s.store.RoomKeys(user, n, roomID, sessionID, func(k RoomKey) error {
		out, found = k, true
		out.SessionData = append(json.RawMessage(nil), k.SessionData...)
		return nil
	})
	if err != nil {
		return out, storeErr(err)
	}
	if !found {
		return out, mxerr.NotFound("Key not found")
	}
	return out, nil
}

// sessionJSONSize is about the JSON of one session of the curve25519
// scheme with its IDs (TestKeyBackupScale: 575 bytes).
const sessionJSONSize = 600

// keysBuffer is a buffer for the JSON of version n's keys, sized from its
// count: a buffer grown by append from a few kilobytes to 5 MB allocates
// about five times that on the way.
func (s *Service) keysBuffer(user string, n uint64) []byte {
	b, err := s.store.Backup(user, n)
	if err != nil {
		return make([]byte, 0, 1024) // the read that follows reports it
	}
	return make([]byte, 0, 1024+b.Count*sessionJSONSize)
}

// appendRooms appends the rooms object ({roomId: {"sessions": {...}}})
// of version n, only roomID's when it is not "", and returns the version
// read in the same snapshot. Keys arrive grouped by room, so the object
// is written in one pass without building maps: 10,000 sessions are
// about 5 MB of JSON, which a board should write once, not copy thrice.
func (s *Service) appendRooms(out []byte, user string, n uint64, roomID string) ([]byte, Backup, error) {
	out = append(out, '{')
	room := ""
	b, err := s.store.RoomKeys(user, n, roomID, "", func(k RoomKey) error {
		if k.RoomID != room {
			if room != "" {
				out = append(out, "}},"...)
			}
			room = k.RoomID
			out = appendString(out, room)
			out = append(out, `:{"sessions":{`...)
		} else {
			out = append(out, ',')
		}
		out = appendString(out, k.SessionID)
		out = append(out, ':')
		out = appendKeyData(out, k.KeyBackupData)
		return nil
	})
	if err != nil {
		return nil, b, storeErr(err)
	}
	if room != "" {
		out = append(out, "}}"...)
	}
	return append(out, '}'), b, nil
}

func appendKeyData(out []byte, k KeyBackupData) []byte {
	out = append(out, `{"first_message_index":`...)
	out = strconv.AppendInt(out, k.FirstMessageIndex, 10)
	out = append(out, `,"forwarded_count":`...)
	out = strconv.AppendInt(out, k.ForwardedCount, 10)
	out = append(out, `,"is_verified":`...)
	out = strconv.AppendBool(out, k.IsVerified)
	out = append(out, `,"session_data":`...)
	out = append(out, k.SessionData...)
	return append(out, '}')
}

// appendString appends s as a JSON string. Room and session IDs were
// checked to be UTF-8 when they were stored.
func appendString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}
