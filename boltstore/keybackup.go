package boltstore

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/keybackup"
)

// Key backups (core/keybackup). A version's record holds its short backup
// ID, and each room of a backup gets a small number, so that a session's
// key is 8 + 4 + 33 bytes instead of the user ID, version, room ID (44
// bytes in room version 12) and session ID (43 base64 characters). bbolt
// stores every key in full: with keys of backup ID|room ID\0session ID
// (96 bytes) a session took 441 bytes of page space in use and 678 of
// pages; with these, 379 and 550 (TestKeyBackupScale). A backup's sessions
// are one prefix, grouped by room, so deleting a version or reading it
// whole is a range scan.
var (
	bucketKeyBackupLast = register("user_keybackuplast")    // user -> u64 highest version ever given
	bucketKeyBackups    = register("userversion_keybackup") // user\0u64 version -> cbor keyBackupRec
	bucketRoomKeys      = register("backup_roomkey")        // u64 backup ID|u32 room number|session key -> roomKeyRec
	bucketBackupRoomNum = register("backuproom_num")        // u64 backup ID|room ID -> u32 room number
	bucketBackupNumRoom = register("backupnum_room")        // u64 backup ID|u32 room number -> room ID
)

var _ keybackup.Store = (*Store)(nil)

// keyBackupRec is a version. ID is the backup's prefix in the room key
// buckets (from bucketRoomKeys' sequence, so never reused); Rooms is how
// many room numbers it has given out.
type keyBackupRec struct {
	ID        uint64
	Algorithm string
	AuthData  []byte
	Count     int64
	Etag      uint64
	Rooms     uint32 `cbor:",omitempty"`
}

// A session's value (roomKeyRec) is
//
//	byte     flags: bit 0 is_verified, bits 1-7 the format of session_data
//	uvarint  written: the etag of the write that stored it
//	uvarint  first_message_index
//	uvarint  forwarded_count
//	payload  format 0: session_data's JSON as stored (compacted)
//	         format 1: uvarint n, ephemeral (n bytes), uvarint m, mac
//	                   (m bytes), ciphertext (the rest)
//
// Format 1 is session_data as m.megolm_backup.v1.curve25519-aes-sha2
// clients send it ({ephemeral, ciphertext, mac}, each unpadded base64; spec
// "Backup algorithm"), stored as the decoded bytes: base64 is a third
// larger, and the ciphertext (about 350 characters) is most of a session.
// The JSON it is read back as is the same object, keys in another order.
// Anything else is format 0. Format numbers are never reused.
const (
	rkVerified   byte = 1
	rkFormatJSON byte = 0 << 1
	rkFormatB64  byte = 1 << 1
)

// roomKeyFill: sessions arrive in random key order (session IDs are
// random), so pages keep bbolt's default slack for later inserts. Denser
// splits only split again sooner: for 10,000 sessions in uploads of 500,
// fill 0.5 took 683 bytes of pages a session, 0.7 686, 0.9 782, 1.0 822
// (TestKeyBackupScale, with the first key layout).
const roomKeyFill = bolt.DefaultFillPercent

var b64Session = base64.RawStdEncoding.Strict()

// preparedRoomKey is a session encoded but for its room number and written
// etag, which are only known inside the write transaction.
type preparedRoomKey struct {
	roomID  string
	session []byte // sessionKey
	flags   byte
	body    []byte // what follows written
	data    keybackup.KeyBackupData
}

func (p *preparedRoomKey) value(written uint64) []byte {
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(p.body))
	out = append(out, p.flags)
	out = binary.AppendUvarint(out, written)
	return append(out, p.body...)
}

func prepareRoomKey(k keybackup.RoomKey) preparedRoomKey {
	p := preparedRoomKey{roomID: k.RoomID, session: sessionKey(k.SessionID), data: k.KeyBackupData}
	if k.IsVerified {
		p.flags |= rkVerified
	}
	body := make([]byte, 0, 2*binary.MaxVarintLen64+len(k.SessionData))
	body = binary.AppendUvarint(body, uint64(k.FirstMessageIndex))
	body = binary.AppendUvarint(body, uint64(k.ForwardedCount))
	if packed, ok := packSessionData(body, k.SessionData); ok {
		p.flags |= rkFormatB64
		p.body = packed
	} else {
		p.flags |= rkFormatJSON
		p.body = append(body, k.SessionData...)
	}
	return p
}

// packSessionData appends the format 1 payload of js to out, if js is
// exactly {ephemeral, ciphertext, mac} with canonical unpadded base64
// strings (no escapes, so the strings are the JSON bytes).
func packSessionData(out []byte, js json.RawMessage) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(js, &m) != nil || len(m) != 3 {
		return nil, false
	}
	var raw [3][]byte
	for i, name := range [3]string{"ephemeral", "mac", "ciphertext"} {
		v := m[name]
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || bytes.IndexByte(v, '\\') >= 0 {
			return nil, false
		}
		b, err := b64Session.AppendDecode(nil, v[1:len(v)-1])
		if err != nil {
			return nil, false
		}
		raw[i] = b
	}
	out = binary.AppendUvarint(out, uint64(len(raw[0])))
	out = append(out, raw[0]...)
	out = binary.AppendUvarint(out, uint64(len(raw[1])))
	out = append(out, raw[1]...)
	return append(out, raw[2]...), true
}

var errBadRoomKey = errors.New("boltstore: damaged room key record")

// decodeRoomKey reads a value; session_data is appended to buf (and
// left out when meta, for the replacement rules, which need none).
func decodeRoomKey(v []byte, buf []byte, meta bool) (k keybackup.KeyBackupData, written uint64, out []byte, err error) {
	if len(v) < 1 {
		return k, 0, buf, errBadRoomKey
	}
	flags := v[0]
	p := v[1:]
	var vals [3]uint64
	for i := range vals {
		n, w := binary.Uvarint(p)
		if w <= 0 {
			return k, 0, buf, errBadRoomKey
		}
		vals[i], p = n, p[w:]
	}
	written = vals[0]
	k.FirstMessageIndex, k.ForwardedCount = int64(vals[1]), int64(vals[2])
	k.IsVerified = flags&rkVerified != 0
	if meta {
		return k, written, buf, nil
	}
	start := len(buf)
	switch flags &^ rkVerified {
	case rkFormatJSON:
		buf = append(buf, p...)
	case rkFormatB64:
		var parts [2][]byte
		for i := range parts {
			n, w := binary.Uvarint(p)
			if w <= 0 || uint64(len(p)-w) < n {
				return k, 0, buf, errBadRoomKey
			}
			parts[i], p = p[w:w+int(n)], p[w+int(n):]
		}
		buf = append(buf, `{"ephemeral":"`...)
		buf = b64Session.AppendEncode(buf, parts[0])
		buf = append(buf, `","ciphertext":"`...)
		buf = b64Session.AppendEncode(buf, p)
		buf = append(buf, `","mac":"`...)
		buf = b64Session.AppendEncode(buf, parts[1])
		buf = append(buf, `"}`...)
	default:
		return k, 0, buf, errors.New("boltstore: unknown room key format")
	}
	k.SessionData = buf[start:len(buf):len(buf)]
	return k, written, buf, nil
}

// A session key is 0x00 and the 32 bytes of a megolm session ID (the
// unpadded standard base64 of the session's Ed25519 key, 43 characters),
// or 0x01 and the ID as is when it is anything else.
const (
	sessionRaw    byte = 0
	sessionString byte = 1
)

func sessionKey(id string) []byte {
	if len(id) == 43 {
		if b, err := b64Session.AppendDecode([]byte{sessionRaw}, []byte(id)); err == nil && len(b) == 33 {
			return b
		}
	}
	return append([]byte{sessionString}, id...)
}

func sessionIDOf(k []byte) (string, error) {
	switch {
	case len(k) == 33 && k[0] == sessionRaw:
		return b64Session.EncodeToString(k[1:]), nil
	case len(k) > 1 && k[0] == sessionString:
		return string(k[1:]), nil
	}
	return "", errBadRoomKey
}

// roomKeyKey is backup ID|room number|session key.
func roomKeyKey(id uint64, num uint32, session []byte) []byte {
	b := make([]byte, 12, 12+len(session))
	binary.BigEndian.PutUint64(b, id)
	binary.BigEndian.PutUint32(b[8:], num)
	return append(b, session...)
}

func backupRoomKey(id uint64, roomID string) []byte { return append(u64(id), roomID...) }

func backupNumKey(id uint64, num uint32) []byte { return binary.BigEndian.AppendUint32(u64(id), num) }

// roomNumber is a room's number in backup rec; with create, one is given
// to a room that has none (and rec.Rooms counts it: the caller stores rec).
func roomNumber(tx *bolt.Tx, rec *keyBackupRec, roomID string, create bool) (uint32, bool, error) {
	nums := tx.Bucket(bucketBackupRoomNum)
	if v := nums.Get(backupRoomKey(rec.ID, roomID)); len(v) == 4 {
		return binary.BigEndian.Uint32(v), true, nil
	}
	if !create {
		return 0, false, nil
	}
	if rec.Rooms == 1<<32-1 {
		return 0, false, errors.New("boltstore: a key backup ran out of room numbers")
	}
	rec.Rooms++
	num := rec.Rooms
	if err := nums.Put(backupRoomKey(rec.ID, roomID), binary.BigEndian.AppendUint32(nil, num)); err != nil {
		return 0, false, err
	}
	return num, true, tx.Bucket(bucketBackupNumRoom).Put(backupNumKey(rec.ID, num), []byte(roomID))
}

func keyBackupKey(user string, version uint64) []byte {
	return append(append([]byte(user), 0), u64(version)...)
}

func getKeyBackup(tx *bolt.Tx, user string, version uint64) (keyBackupRec, bool, error) {
	var rec keyBackupRec
	raw := tx.Bucket(bucketKeyBackups).Get(keyBackupKey(user, version))
	if raw == nil {
		return rec, false, nil
	}
	return rec, true, cbor.Unmarshal(raw, &rec)
}

// existingKeyBackup is getKeyBackup for a version that must exist:
// keybackup.ErrNotFound otherwise.
func existingKeyBackup(tx *bolt.Tx, user string, version uint64) (keyBackupRec, error) {
	rec, ok, err := getKeyBackup(tx, user, version)
	if err == nil && !ok {
		err = keybackup.ErrNotFound
	}
	return rec, err
}

// latestKeyBackup is the user's highest existing version (0 if none).
func latestKeyBackup(tx *bolt.Tx, user string) (uint64, keyBackupRec, error) {
	var rec keyBackupRec
	prefix := append([]byte(user), 0)
	c := tx.Bucket(bucketKeyBackups).Cursor()
	// Seek past the user's last possible key, then step back.
	k, v := c.Seek(append(prefix, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		return 0, rec, nil
	}
	return binary.BigEndian.Uint64(k[len(prefix):]), rec, cbor.Unmarshal(v, &rec)
}

func backupOf(version uint64, rec keyBackupRec) keybackup.Backup {
	return keybackup.Backup{Version: version, Algorithm: rec.Algorithm, AuthData: rec.AuthData,
		Count: rec.Count, Etag: rec.Etag}
}

func (s *Store) CreateBackup(user, algorithm string, authData json.RawMessage) (uint64, error) {
	var version uint64
	err := s.write(func(w *wtx) error {
		last := w.Bucket(bucketKeyBackupLast)
		v := getU64(last, []byte(user)) + 1
		id, err := w.Bucket(bucketRoomKeys).NextSequence()
		if err != nil {
			return err
		}
		rec := keyBackupRec{ID: id, Algorithm: algorithm, AuthData: authData}
		if err := w.Bucket(bucketKeyBackups).Put(keyBackupKey(user, v), enc(rec)); err != nil {
			return err
		}
		version = v
		return putU64(last, []byte(user), v)
	})
	return version, err
}

func (s *Store) Backup(user string, version uint64) (keybackup.Backup, error) {
	var out keybackup.Backup
	err := s.view(func(tx *bolt.Tx) error {
		rec, err := existingKeyBackup(tx, user, version)
		if err != nil {
			return err
		}
		out = backupOf(version, rec)
		return nil
	})
	return out, err
}

func (s *Store) LatestBackup(user string) (keybackup.Backup, error) {
	var out keybackup.Backup
	err := s.view(func(tx *bolt.Tx) error {
		v, rec, err := latestKeyBackup(tx, user)
		if err != nil {
			return err
		}
		if v == 0 {
			return keybackup.ErrNotFound
		}
		out = backupOf(v, rec)
		return nil
	})
	return out, err
}

func (s *Store) LastVersion(user string) (uint64, error) {
	var v uint64
	err := s.view(func(tx *bolt.Tx) error {
		v = getU64(tx.Bucket(bucketKeyBackupLast), []byte(user))
		return nil
	})
	return v, err
}

func (s *Store) SetAuthData(user string, version uint64, authData json.RawMessage) error {
	return s.write(func(w *wtx) error {
		rec, err := existingKeyBackup(w.Tx, user, version)
		if err != nil {
			return err
		}
		rec.AuthData = authData
		return w.Bucket(bucketKeyBackups).Put(keyBackupKey(user, version), enc(rec))
	})
}

func (s *Store) DeleteBackup(user string, version uint64) (bool, error) {
	var existed bool
	err := s.write(func(w *wtx) error {
		existed = false
		rec, ok, err := getKeyBackup(w.Tx, user, version)
		if err != nil || !ok {
			return err
		}
		for _, b := range [][]byte{bucketRoomKeys, bucketBackupRoomNum, bucketBackupNumRoom} {
			if _, err := deletePrefix(w.Bucket(b), u64(rec.ID)); err != nil {
				return err
			}
		}
		existed = true
		return w.Bucket(bucketKeyBackups).Delete(keyBackupKey(user, version))
	})
	return existed, err
}

// deletePrefix deletes every key with the prefix. The keys are collected
// first: deleting under a moving bbolt cursor can skip the next key.

func (s *Store) PutRoomKeys(user string, version uint64, keys []keybackup.RoomKey,
	replaces func(current, candidate keybackup.KeyBackupData) bool) (keybackup.Backup, error) {
	// Encoding (base64 decoding, mostly) runs before the transaction, out
	// of the committer's critical section.
	prepared := make([]preparedRoomKey, len(keys))
	for i, k := range keys {
		prepared[i] = prepareRoomKey(k)
	}
	// Room by room, in key order: fewer pages touched. The sort is stable,
	// so a session given twice keeps its upload order and the rules weigh
	// the later copy against the earlier one.
	slices.SortStableFunc(prepared, func(a, b preparedRoomKey) int {
		if c := strings.Compare(a.roomID, b.roomID); c != 0 {
			return c
		}
		return bytes.Compare(a.session, b.session)
	})

	var out keybackup.Backup
	err := s.write(func(w *wtx) error {
		latest, _, err := latestKeyBackup(w.Tx, user)
		if err != nil {
			return err
		}
		rec, err := existingKeyBackup(w.Tx, user, version)
		if err != nil {
			return err
		}
		if latest != version {
			return &keybackup.NotLatestError{Latest: latest}
		}
		b := w.Bucket(bucketRoomKeys)
		b.FillPercent = roomKeyFill
		etag := rec.Etag + 1
		changed := false
		room, num := "", uint32(0)
		for i := range prepared {
			p := &prepared[i]
			if p.roomID != room || i == 0 {
				if num, _, err = roomNumber(w.Tx, &rec, p.roomID, true); err != nil {
					return err
				}
				room = p.roomID
			}
			k := roomKeyKey(rec.ID, num, p.session)
			if cur := b.Get(k); cur != nil {
				meta, _, _, err := decodeRoomKey(cur, nil, true)
				if err != nil {
					return err
				}
				if !replaces(meta, p.data) {
					continue
				}
			} else {
				rec.Count++
			}
			if err := b.Put(k, p.value(etag)); err != nil {
				return err
			}
			changed = true
		}
		if changed {
			rec.Etag = etag
			// A room numbered here always gets a session, so rec is
			// stored whenever its Rooms moved.
			if err := w.Bucket(bucketKeyBackups).Put(keyBackupKey(user, version), enc(rec)); err != nil {
				return err
			}
		}
		out = backupOf(version, rec)
		return nil
	})
	return out, err
}

func (s *Store) RoomKeys(user string, version uint64, roomID, sessionID string, fn func(keybackup.RoomKey) error) (keybackup.Backup, error) {
	var out keybackup.Backup
	err := s.view(func(tx *bolt.Tx) error {
		rec, err := existingKeyBackup(tx, user, version)
		if err != nil {
			return err
		}
		out = backupOf(version, rec)
		rooms := tx.Bucket(bucketBackupNumRoom)
		b := tx.Bucket(bucketRoomKeys)
		var buf []byte
		room, roomNum := roomID, uint32(0)
		emit := func(k, v []byte) error {
			if len(k) < 13 {
				return errBadRoomKey
			}
			if num := binary.BigEndian.Uint32(k[8:12]); roomID == "" && (num != roomNum || room == "") {
				room, roomNum = string(rooms.Get(backupNumKey(rec.ID, num))), num
				if room == "" {
					return errBadRoomKey
				}
			}
			session, err := sessionIDOf(k[12:])
			if err != nil {
				return err
			}
			data, written, nb, err := decodeRoomKey(v, buf[:0], false)
			if err != nil {
				return err
			}
			buf = nb
			return fn(keybackup.RoomKey{RoomID: room, SessionID: session, KeyBackupData: data, Written: written})
		}
		prefix := u64(rec.ID)
		if roomID != "" {
			num, ok, err := roomNumber(tx, &rec, roomID, false)
			if err != nil || !ok {
				return err
			}
			if sessionID != "" {
				k := roomKeyKey(rec.ID, num, sessionKey(sessionID))
				if v := b.Get(k); v != nil {
					return emit(k, v)
				}
				return nil
			}
			prefix = backupNumKey(rec.ID, num)
		} else if sessionID != "" {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := emit(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func (s *Store) DeleteRoomKeys(user string, version uint64, roomID, sessionID string) (keybackup.Backup, error) {
	var out keybackup.Backup
	err := s.write(func(w *wtx) error {
		rec, err := existingKeyBackup(w.Tx, user, version)
		if err != nil {
			return err
		}
		b := w.Bucket(bucketRoomKeys)
		prefix := u64(rec.ID)
		if roomID != "" {
			// A room keeps its number when its keys go: it is small, and
			// a later upload for the room reuses it.
			num, ok, err := roomNumber(w.Tx, &rec, roomID, false)
			if err != nil || !ok {
				out = backupOf(version, rec)
				return err
			}
			prefix = backupNumKey(rec.ID, num)
			if sessionID != "" {
				prefix = roomKeyKey(rec.ID, num, sessionKey(sessionID))
			}
		} else if sessionID != "" {
			out = backupOf(version, rec)
			return nil
		}
		var n int
		if sessionID != "" {
			if b.Get(prefix) != nil {
				n = 1
				err = b.Delete(prefix)
			}
		} else {
			n, err = deletePrefix(b, prefix)
		}
		if err != nil {
			return err
		}
		if n > 0 {
			rec.Count -= int64(n)
			rec.Etag++
			if err := w.Bucket(bucketKeyBackups).Put(keyBackupKey(user, version), enc(rec)); err != nil {
				return err
			}
		}
		out = backupOf(version, rec)
		return nil
	})
	return out, err
}
