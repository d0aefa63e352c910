package keybackup

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Request bodies are checked whole before anything is stored, so a bad
// session anywhere in an upload changes nothing. Errors follow the rest of
// Lichen: a body that is not JSON is M_NOT_JSON, a missing required field
// M_MISSING_PARAM, a field of the wrong type M_BAD_JSON, a value out of
// range M_INVALID_PARAM; each names the field by its path.

// maxSessionID bounds session IDs (they are keys on disk). Megolm session
// IDs are 43 characters; 255 bytes is the bound the spec sets on its own
// identifiers (appendices, "Identifier Grammar").
const maxSessionID = ids.MaxIDLength

// maxSafeInt is the largest integer canonical JSON allows (appendices,
// "Canonical JSON": integers in [-(2**53)+1, (2**53)-1]).
const maxSafeInt = 1<<53 - 1

// versionBody is the body of POST /room_keys/version and PUT
// /room_keys/version/{version}.
type versionBody struct {
	algorithm string
	authData  json.RawMessage
	version   *string
}

func parseVersionBody(body []byte) (versionBody, error) {
	var out versionBody
	obj, err := bodyObject(body)
	if err != nil {
		return out, err
	}
	if out.algorithm, err = requiredString(obj, "algorithm", "algorithm"); err != nil {
		return out, err
	}
	if out.algorithm == "" {
		return out, mxerr.InvalidParam("algorithm must not be empty")
	}
	raw, ok := obj["auth_data"]
	if !ok {
		return out, mxerr.MissingParam("auth_data is required")
	}
	authData, err := object(raw, "auth_data")
	if err != nil {
		return out, err
	}
	if out.algorithm == AlgorithmCurve25519 {
		// definitions/key_backup_auth_data.yaml: public_key is required.
		if _, err := requiredString(authData, "public_key", "auth_data.public_key"); err != nil {
			return out, err
		}
	}
	if out.authData, err = compact(raw); err != nil {
		return out, err
	}
	if raw, ok := obj["version"]; ok {
		var v string
		if json.Unmarshal(raw, &v) != nil {
			return out, mxerr.BadJSON("version must be a string")
		}
		out.version = &v
	}
	return out, nil
}

// roomKeyBackup is a RoomKeyBackup as decoded: bodies are decoded in one
// pass into these types (a decode per nesting level would scan a 500 KB
// upload once per level), then each session's fields are checked.
type roomKeyBackup struct {
	Sessions *map[string]map[string]json.RawMessage `json:"sessions"`
}

// ParseKeysBody reads the body of PUT /room_keys/keys: {"rooms": {roomId:
// RoomKeyBackup}}.
func ParseKeysBody(body []byte) ([]RoomKey, error) {
	var req struct {
		Rooms *map[string]roomKeyBackup `json:"rooms"`
	}
	if err := decodeBody(body, &req); err != nil {
		return nil, err
	}
	if req.Rooms == nil {
		return nil, mxerr.MissingParam("rooms is required")
	}
	var keys []RoomKey
	for roomID, room := range *req.Rooms {
		var err error
		if keys, err = appendRoomKeys(keys, roomID, room, "rooms."+roomID); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// ParseRoomBody reads the body of PUT /room_keys/keys/{roomId}: a
// RoomKeyBackup, {"sessions": {sessionId: KeyBackupData}}.
func ParseRoomBody(roomID string, body []byte) ([]RoomKey, error) {
	var room roomKeyBackup
	if err := decodeBody(body, &room); err != nil {
		return nil, err
	}
	return appendRoomKeys(nil, roomID, room, "")
}

// appendRoomKeys checks a decoded RoomKeyBackup (room_key_backup.yaml:
// sessions is required) and appends its keys.
func appendRoomKeys(keys []RoomKey, roomID string, room roomKeyBackup, path string) ([]RoomKey, error) {
	if err := checkRoomID(roomID, path); err != nil {
		return nil, err
	}
	if room.Sessions == nil {
		return nil, mxerr.MissingParam(join(path, "sessions") + " is required")
	}
	path = join(path, "sessions")
	for sessionID, obj := range *room.Sessions {
		p := join(path, sessionID)
		if err := checkSessionID(sessionID, p); err != nil {
			return nil, err
		}
		k, err := parseKeyData(obj, p, false)
		if err != nil {
			return nil, err
		}
		keys = append(keys, RoomKey{RoomID: roomID, SessionID: sessionID, KeyBackupData: k})
	}
	return keys, nil
}

// ParseSessionBody reads the body of PUT
// /room_keys/keys/{roomId}/{sessionId}: a KeyBackupData.
func ParseSessionBody(roomID, sessionID string, body []byte) ([]RoomKey, error) {
	obj, err := bodyObject(body)
	if err != nil {
		return nil, err
	}
	if err := checkIDs(roomID, sessionID); err != nil {
		return nil, err
	}
	k, err := parseKeyData(obj, "", false)
	if err != nil {
		return nil, err
	}
	return []RoomKey{{RoomID: roomID, SessionID: sessionID, KeyBackupData: k}}, nil
}

// appendLegacyRoom reads a room of the seed's shapes: a RoomKeyBackup
// whose sessions may also be an array of sessions, each carrying its
// session_id, and whose sessions may leave the metadata out (legacy.go).
func appendLegacyRoom(keys []RoomKey, roomID string, room map[string]json.RawMessage, path string) ([]RoomKey, error) {
	if err := checkRoomID(roomID, path); err != nil {
		return nil, err
	}
	raw, ok := room["sessions"]
	if !ok {
		return nil, mxerr.MissingParam(join(path, "sessions") + " is required")
	}
	path = join(path, "sessions")
	if len(raw) > 0 && raw[0] == '[' {
		return appendLegacySessions(keys, roomID, raw, path)
	}
	sessions, err := object(raw, path)
	if err != nil {
		return nil, err
	}
	for sessionID, raw := range sessions {
		p := join(path, sessionID)
		if err := checkSessionID(sessionID, p); err != nil {
			return nil, err
		}
		obj, err := object(raw, p)
		if err != nil {
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

// parseKeyData reads a KeyBackupData (key_backup_data.yaml: all four
// fields are required). defaults lets the seed's shapes leave out the
// metadata (see legacy.go).
func parseKeyData(obj map[string]json.RawMessage, path string, defaults bool) (KeyBackupData, error) {
	var k KeyBackupData
	var err error
	if k.FirstMessageIndex, err = count(obj, "first_message_index", path, defaults); err != nil {
		return k, err
	}
	if k.ForwardedCount, err = count(obj, "forwarded_count", path, defaults); err != nil {
		return k, err
	}
	if raw, ok := obj["is_verified"]; ok {
		if json.Unmarshal(raw, &k.IsVerified) != nil || raw[0] == 'n' {
			return k, mxerr.BadJSON(join(path, "is_verified") + " must be a boolean")
		}
	} else if !defaults {
		return k, mxerr.MissingParam(join(path, "is_verified") + " is required")
	}
	raw, ok := obj["session_data"]
	if !ok {
		return k, mxerr.MissingParam(join(path, "session_data") + " is required")
	}
	// The body was decoded whole already, so raw is valid JSON: only its
	// kind is checked here.
	if len(raw) == 0 || raw[0] != '{' {
		return k, mxerr.BadJSON(join(path, "session_data") + " must be an object")
	}
	k.SessionData, err = compact(raw)
	return k, err
}

// count reads a non-negative integer field.
func count(obj map[string]json.RawMessage, name, path string, optional bool) (int64, error) {
	p := join(path, name)
	raw, ok := obj[name]
	if !ok {
		if optional {
			return 0, nil
		}
		return 0, mxerr.MissingParam(p + " is required")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		if len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') && bytes.IndexAny(raw, ".eE") < 0 {
			return 0, mxerr.InvalidParam(p + " is out of range")
		}
		return 0, mxerr.BadJSON(p + " must be an integer")
	}
	if n < 0 || n > maxSafeInt {
		return 0, mxerr.InvalidParam(p + " is out of range")
	}
	return n, nil
}

func checkIDs(roomID, sessionID string) error {
	if err := checkRoomID(roomID, ""); err != nil {
		return err
	}
	return checkSessionID(sessionID, "session ID")
}

func checkRoomID(roomID, path string) error {
	if _, _, err := ids.ParseRoomID(roomID); err != nil {
		return mxerr.InvalidParam(join(path, "") + "room ID " + strconv.Quote(roomID) + ": " + mxerr.As(err).Message)
	}
	return nil
}

func checkSessionID(id, path string) error {
	if id == "" || len(id) > maxSessionID || !utf8.ValidString(id) {
		return mxerr.InvalidParam(path + ": a session ID is 1 to 255 bytes of UTF-8")
	}
	return nil
}

// decodeBody decodes a request body, which must be a JSON object, into v.
func decodeBody(body []byte, v any) error {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return mxerr.NotJSON("request body must be a JSON object")
	}
	if body[0] != '{' {
		return mxerr.BadJSON("request body must be an object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return mxerr.BadJSON(te.Field + " must be " + typeName(te.Type.Kind()))
		}
		return mxerr.NotJSON("request body is not valid JSON")
	}
	return nil
}

func typeName(k reflect.Kind) string {
	switch k {
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return "a " + k.String()
}

// bodyObject decodes a request body that must be a JSON object.
func bodyObject(body []byte) (map[string]json.RawMessage, error) {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return nil, mxerr.NotJSON("request body must be a JSON object")
	}
	return object(body, "request body")
}

// object decodes raw, which must be a JSON object.
func object(raw json.RawMessage, what string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, mxerr.BadJSON(what + " must be an object")
	}
	return m, nil
}

func requiredString(obj map[string]json.RawMessage, name, path string) (string, error) {
	raw, ok := obj[name]
	if !ok {
		return "", mxerr.MissingParam(path + " is required")
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", mxerr.BadJSON(path + " must be a string")
	}
	return s, nil
}

// compact drops the whitespace of a JSON value (it is stored).
func compact(raw json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	b.Grow(len(raw))
	if err := json.Compact(&b, raw); err != nil {
		return nil, mxerr.BadJSON("invalid JSON")
	}
	return b.Bytes(), nil
}

func join(path, name string) string {
	switch {
	case path == "":
		return name
	case name == "":
		return path + ": "
	}
	return path + "." + name
}
