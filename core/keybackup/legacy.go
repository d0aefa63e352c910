package keybackup

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// The seed's API reference (seeds/001, section 11 "密钥备份 API" and 7.5
// "keys/distribution") lists r0 paths the spec does not have. They map
// onto the same backups and the same rules:
//
//	GET  /room_keys/{version}                          {"rooms": {...}, "etag"}
//	PUT  /room_keys/{version}                          {"room_id", "sessions": [...]} -> {count, etag}
//	POST /room_keys/{version}/keys                     {roomId: {"sessions": [...]}} -> {count, etag}
//	GET  /room_keys/{version}/keys/{roomId}            {"rooms": {roomId: {"sessions": {...}}}}
//	GET  /room_keys/{version}/keys/{roomId}/{session}  {room_id, session_id, ...KeyBackupData}
//	GET  /rooms/{roomId}/keys/distribution             see Distribution
//
// Where the seed is silent the spec's shapes are the default:
//   - a sessions array holds objects with session_id and session_data,
//     as the seed shows, plus the spec's first_message_index,
//     forwarded_count and is_verified, which the seed's example leaves
//     out and which then default to 0, 0 and false; sessions may also be
//     the spec's {sessionId: KeyBackupData} object;
//   - a session listed twice in one upload is weighed against its earlier
//     copy by the same rules (Replaces);
//   - writes go to the latest version only, as in the spec.
//
// Where a seed path is also a spec path (GET/POST /room_keys/version,
// GET/PUT/DELETE /room_keys/version/{version}) the spec's shape is served:
// real clients of both r0 and v3 expect it.

// ParseLegacyRoomBody reads the body of PUT /room_keys/{version}:
// {"room_id": roomId, "sessions": [{"session_id", "session_data", ...}]}.
// The seed marks both optional: no sessions is an upload of nothing, but
// sessions need their room.
func ParseLegacyRoomBody(body []byte) ([]RoomKey, error) {
	obj, err := bodyObject(body)
	if err != nil {
		return nil, err
	}
	raw, ok := obj["sessions"]
	if !ok {
		return nil, nil
	}
	if c, err := compact(raw); err == nil && (string(c) == "[]" || string(c) == "{}") {
		return nil, nil
	}
	roomID, err := requiredString(obj, "room_id", "room_id")
	if err != nil {
		return nil, err
	}
	return appendLegacyRoom(nil, roomID, obj, "")
}

// ParseLegacyBatchBody reads the body of POST /room_keys/{version}/keys:
// {roomId: {"sessions": [...]}}.
func ParseLegacyBatchBody(body []byte) ([]RoomKey, error) {
	obj, err := bodyObject(body)
	if err != nil {
		return nil, err
	}
	var keys []RoomKey
	for roomID, raw := range obj {
		room, err := object(raw, roomID)
		if err != nil {
			return nil, err
		}
		if keys, err = appendLegacyRoom(keys, roomID, room, roomID); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// appendLegacySessions reads the seed's array of sessions.
func appendLegacySessions(keys []RoomKey, roomID string, raw json.RawMessage, path string) ([]RoomKey, error) {
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, mxerr.BadJSON(path + " must be an array or an object")
	}
	for i, item := range items {
		p := path + "[" + strconv.Itoa(i) + "]"
		obj, err := object(item, p)
		if err != nil {
			return nil, err
		}
		sessionID, err := requiredString(obj, "session_id", p+".session_id")
		if err != nil {
			return nil, err
		}
		if err := checkSessionID(sessionID, p+".session_id"); err != nil {
			return nil, err
		}
		k, err := parseKeyData(obj, p, true)
		if err != nil {
			return nil, err
		}
		keys = append(keys, RoomKey{RoomID: roomID, SessionID: sessionID, KeyBackupData: k})
	}
	return keys, nil
}

// LegacyKeys is GET /room_keys/{version}: the spec's GET /room_keys/keys
// answer plus the etag, as the seed shows.
func (s *Service) LegacyKeys(user, v string) (json.RawMessage, error) {
	n, err := versionParam(v)
	if err != nil {
		return nil, err
	}
	out := append(s.keysBuffer(user, n), `{"rooms":`...)
	out, b, err := s.appendRooms(out, user, n, "")
	if err != nil {
		return nil, err
	}
	out = append(out, `,"etag":`...)
	out = appendString(out, etagOf(b))
	return append(out, '}'), nil
}

// LegacyRoomKeys is GET /room_keys/{version}/keys/{roomId}: the room's
// sessions under "rooms", {"rooms": {}} when it has none.
func (s *Service) LegacyRoomKeys(user, v, roomID string) (json.RawMessage, error) {
	n, err := versionParam(v)
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, 1024), `{"rooms":`...)
	out, _, err = s.appendRooms(out, user, n, roomID)
	if err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// LegacySession is the answer of GET
// /room_keys/{version}/keys/{roomId}/{sessionId}.
type LegacySession struct {
	RoomID    string `json:"room_id"`
	SessionID string `json:"session_id"`
	KeyBackupData
}

// LegacySessionKey is GET /room_keys/{version}/keys/{roomId}/{sessionId}
// (404 M_NOT_FOUND when the backup lacks the session).
func (s *Service) LegacySessionKey(user, v, roomID, sessionID string) (LegacySession, error) {
	k, err := s.SessionKey(user, v, roomID, sessionID)
	if err != nil {
		return LegacySession{}, err
	}
	return LegacySession{RoomID: roomID, SessionID: sessionID, KeyBackupData: k}, nil
}

// MegolmAlgorithm is the encryption algorithm of the sessions a backup of
// AlgorithmCurve25519 holds (key_backup_session_data.yaml: "Must be
// m.megolm.v1.aes-sha2").
const MegolmAlgorithm = "m.megolm.v1.aes-sha2"

// RoomKeyDistribution is the answer of GET /rooms/{roomId}/keys/distribution.
type RoomKeyDistribution struct {
	RoomID    string `json:"room_id"`
	Algorithm string `json:"algorithm"`
	SessionID string `json:"session_id"`
	Version   string `json:"version"`
	KeyBackupData
}

// Distribution is the seed's GET /rooms/{roomId}/keys/distribution (7.5),
// which answers {room_id, algorithm, session_id, session_key}: the room's
// current megolm session and its key. A server never holds a session key
// in the clear (end-to-end encryption is the point), so it is mapped onto
// what the server does hold: the session of the room most recently written
// to the user's latest backup, with its room_id, algorithm and session_id
// as the seed names them, and in place of session_key the backup's
// encrypted copy (version, first_message_index, forwarded_count,
// is_verified, session_data) that the user's own devices can decrypt.
// 404 M_NOT_FOUND when there is no backup or it holds nothing for the room.
func (s *Service) Distribution(user, roomID string) (RoomKeyDistribution, error) {
	b, err := s.store.LatestBackup(user)
	if errors.Is(err, ErrNotFound) {
		return RoomKeyDistribution{}, mxerr.NotFound("No current backup version")
	}
	if err != nil {
		return RoomKeyDistribution{}, err
	}
	var best RoomKey
	found := false
	_, err = s.store.RoomKeys(user, b.Version, roomID, "", func(k RoomKey) error {
		if !found || k.Written > best.Written {
			best, found = k, true
			best.SessionData = append(json.RawMessage(nil), k.SessionData...)
		}
		return nil
	})
	if err != nil {
		return RoomKeyDistribution{}, storeErr(err)
	}
	if !found {
		return RoomKeyDistribution{}, mxerr.NotFound("No backed-up session for this room")
	}
	return RoomKeyDistribution{RoomID: roomID, Algorithm: MegolmAlgorithm, SessionID: best.SessionID,
		Version: strconv.FormatUint(b.Version, 10), KeyBackupData: best.KeyBackupData}, nil
}
