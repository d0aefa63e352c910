package boltstore

import (
	"bytes"
	"encoding/binary"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/accountdata"
)

// Account data layout: the content of each (user, room, type) once, and a
// per-user position index holding only each entry's latest position, so
// that the sync read "what changed in (since, upto]" is a prefix range scan
// over the user's own index, never a scan of other users.
var (
	bucketAccountData    = register("user_accountdata")    // user\0room\0type -> cbor adEntry (room "" is global)
	bucketAccountDataPos = register("userpos_accountdata") // user\0 pos -> room\0type
)

var _ accountdata.Store = (*Store)(nil)

type adEntry struct {
	Pos     uint64
	Content []byte
}

func adPosKey(user string, pos uint64) []byte {
	return append(append([]byte(user), 0), u64(pos)...)
}

func getAD(tx *bolt.Tx, user, roomID, typ string) (adEntry, bool, error) {
	raw := tx.Bucket(bucketAccountData).Get(key(user, roomID, typ))
	if raw == nil {
		return adEntry{}, false, nil
	}
	var e adEntry
	if err := cbor.Unmarshal(raw, &e); err != nil {
		return adEntry{}, false, err
	}
	return e, true, nil
}

// putAD stores content at a new position and moves the entry in the
// position index.
func putAD(w *wtx, user, roomID, typ string, content []byte) (uint64, error) {
	old, ok, err := getAD(w.Tx, user, roomID, typ)
	if err != nil {
		return 0, err
	}
	idx := w.Bucket(bucketAccountDataPos)
	if ok {
		if err := idx.Delete(adPosKey(user, old.Pos)); err != nil {
			return 0, err
		}
	}
	pos := w.nextPos()
	if err := w.Bucket(bucketAccountData).Put(key(user, roomID, typ), enc(adEntry{Pos: pos, Content: content})); err != nil {
		return 0, err
	}
	return pos, idx.Put(adPosKey(user, pos), key(roomID, typ))
}

func (s *Store) AccountData(user, roomID, typ string) (content []byte, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		e, ok, err := getAD(tx, user, roomID, typ)
		if err != nil {
			return err
		}
		if !ok {
			return accountdata.ErrNotFound
		}
		content = e.Content
		return nil
	})
	return content, err
}

func (s *Store) UpdateAccountData(user, roomID, typ string, fn func(old []byte) ([]byte, error)) (uint64, error) {
	var pos uint64
	err := s.write(func(w *wtx) error {
		pos = 0
		e, _, err := getAD(w.Tx, user, roomID, typ)
		if err != nil {
			return err
		}
		content, err := fn(e.Content)
		if err != nil || content == nil {
			return err
		}
		pos, err = putAD(w, user, roomID, typ, content)
		return err
	})
	if err != nil {
		return 0, err
	}
	return pos, nil
}

func (s *Store) AccountDataChanges(user string, since, upto uint64) ([]accountdata.Change, error) {
	var out []accountdata.Change
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(user), 0)
		c := tx.Bucket(bucketAccountDataPos).Cursor()
		for k, v := c.Seek(adPosKey(user, since+1)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			pos := binary.BigEndian.Uint64(k[len(prefix):])
			if pos > upto {
				break
			}
			roomID, typ, ok := bytes.Cut(v, []byte{0})
			if !ok {
				continue
			}
			e, found, err := getAD(tx, user, string(roomID), string(typ))
			if err != nil {
				return err
			}
			if !found || e.Pos != pos {
				continue // cannot happen: the index moves with the entry
			}
			out = append(out, accountdata.Change{RoomID: string(roomID), Type: string(typ), Content: e.Content, Pos: pos})
		}
		return nil
	})
	return out, err
}
