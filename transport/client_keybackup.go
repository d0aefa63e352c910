package transport

import (
	"github.com/lichen-hs/lichen/core/keybackup"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// MountKeyBackup registers server-side key backups (spec "Server-side key
// backups", key_backup.yaml) and the seed's older r0 shapes of them (see
// core/keybackup/legacy.go). The spec's paths are registered first: the
// router takes the first match, and /room_keys/version and /room_keys/keys
// would otherwise also match the seed's /room_keys/{version}.
func (s *Server) MountKeyBackup(kb *keybackup.Service) {
	s.r.client("POST", "/room_keys/version", authRequired, func(r *Request) (any, error) {
		body, err := r.Body()
		if err != nil {
			return nil, err
		}
		v, err := kb.CreateVersion(r.Session.UserID, body)
		if err != nil {
			return nil, err
		}
		return map[string]string{"version": v}, nil
	})
	s.r.client("GET", "/room_keys/version", authRequired, func(r *Request) (any, error) {
		return kb.Version(r.Session.UserID, "")
	})
	s.r.client("GET", "/room_keys/version/{version}", authRequired, func(r *Request) (any, error) {
		v := r.Param("version")
		if v == "" {
			return nil, mxerr.NotFound("Unknown backup version")
		}
		return kb.Version(r.Session.UserID, v)
	})
	s.r.client("PUT", "/room_keys/version/{version}", authRequired, func(r *Request) (any, error) {
		body, err := r.Body()
		if err != nil {
			return nil, err
		}
		return map[string]any{}, kb.UpdateVersion(r.Session.UserID, r.Param("version"), body)
	})
	s.r.client("DELETE", "/room_keys/version/{version}", authRequired, func(r *Request) (any, error) {
		return map[string]any{}, kb.DeleteVersion(r.Session.UserID, r.Param("version"))
	})

	// The keys, at three levels: the whole backup, a room, a session.
	putKeys := func(parse func(r *Request, body []byte) ([]keybackup.RoomKey, error)) Handler {
		return func(r *Request) (any, error) {
			body, err := r.Body()
			if err != nil {
				return nil, err
			}
			keys, err := parse(r, body)
			if err != nil {
				return nil, err
			}
			return kb.PutKeys(r.Session.UserID, r.Query("version"), keys)
		}
	}
	deleteKeys := func(r *Request) (any, error) {
		return kb.DeleteKeys(r.Session.UserID, r.Query("version"), r.Param("roomId"), r.Param("sessionId"))
	}
	s.r.client("PUT", "/room_keys/keys", authRequired, putKeys(func(_ *Request, b []byte) ([]keybackup.RoomKey, error) {
		return keybackup.ParseKeysBody(b)
	}))
	s.r.client("GET", "/room_keys/keys", authRequired, func(r *Request) (any, error) {
		return keyBackupJSON(kb.Keys(r.Session.UserID, r.Query("version")))
	})
	s.r.client("DELETE", "/room_keys/keys", authRequired, deleteKeys)
	s.r.client("PUT", "/room_keys/keys/{roomId}", authRequired, putKeys(func(r *Request, b []byte) ([]keybackup.RoomKey, error) {
		return keybackup.ParseRoomBody(r.Param("roomId"), b)
	}))
	s.r.client("GET", "/room_keys/keys/{roomId}", authRequired, func(r *Request) (any, error) {
		return keyBackupJSON(kb.RoomKeys(r.Session.UserID, r.Query("version"), r.Param("roomId")))
	})
	s.r.client("DELETE", "/room_keys/keys/{roomId}", authRequired, deleteKeys)
	s.r.client("PUT", "/room_keys/keys/{roomId}/{sessionId}", authRequired, putKeys(func(r *Request, b []byte) ([]keybackup.RoomKey, error) {
		return keybackup.ParseSessionBody(r.Param("roomId"), r.Param("sessionId"), b)
	}))
	s.r.client("GET", "/room_keys/keys/{roomId}/{sessionId}", authRequired, func(r *Request) (any, error) {
		return kb.SessionKey(r.Session.UserID, r.Query("version"), r.Param("roomId"), r.Param("sessionId"))
	})
	s.r.client("DELETE", "/room_keys/keys/{roomId}/{sessionId}", authRequired, deleteKeys)

	s.mountLegacyKeyBackup(kb)
}

// mountLegacyKeyBackup registers the seed's r0 paths that the spec does
// not have (seeds/001 sections 11.6-11.10 and 7.5), with the version in
// the path instead of the query.
func (s *Server) mountLegacyKeyBackup(kb *keybackup.Service) {
	// legacyVersion is the {version} of a seed path. "version" and "keys"
	// are the spec's literal segments: such a path is a spec path with a
	// method it does not have.
	legacyVersion := func(r *Request) (string, error) {
		v := r.Param("version")
		if v == "version" || v == "keys" {
			return "", mxerr.Unrecognized(405)
		}
		return v, nil
	}
	putLegacy := func(parse func(body []byte) ([]keybackup.RoomKey, error)) Handler {
		return func(r *Request) (any, error) {
			v, err := legacyVersion(r)
			if err != nil {
				return nil, err
			}
			body, err := r.Body()
			if err != nil {
				return nil, err
			}
			keys, err := parse(body)
			if err != nil {
				return nil, err
			}
			return kb.PutKeys(r.Session.UserID, v, keys)
		}
	}
	s.r.client("GET", "/room_keys/{version}", authRequired, func(r *Request) (any, error) {
		v, err := legacyVersion(r)
		if err != nil {
			return nil, err
		}
		return keyBackupJSON(kb.LegacyKeys(r.Session.UserID, v))
	})
	s.r.client("PUT", "/room_keys/{version}", authRequired, putLegacy(keybackup.ParseLegacyRoomBody))
	s.r.client("POST", "/room_keys/{version}/keys", authRequired, putLegacy(keybackup.ParseLegacyBatchBody))
	s.r.client("GET", "/room_keys/{version}/keys/{roomId}", authRequired, func(r *Request) (any, error) {
		v, err := legacyVersion(r)
		if err != nil {
			return nil, err
		}
		return keyBackupJSON(kb.LegacyRoomKeys(r.Session.UserID, v, r.Param("roomId")))
	})
	s.r.client("GET", "/room_keys/{version}/keys/{roomId}/{sessionId}", authRequired, func(r *Request) (any, error) {
		v, err := legacyVersion(r)
		if err != nil {
			return nil, err
		}
		return kb.LegacySessionKey(r.Session.UserID, v, r.Param("roomId"), r.Param("sessionId"))
	})
	s.r.client("GET", "/rooms/{roomId}/keys/distribution", authRequired, func(r *Request) (any, error) {
		return kb.Distribution(r.Session.UserID, r.Param("roomId"))
	})
}

// keyBackupJSON passes a core answer that is JSON already.
func keyBackupJSON(js []byte, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return Raw(js), nil
}
