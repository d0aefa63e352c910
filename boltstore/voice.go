package boltstore

import (
	"bytes"
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/voice"
)

// Voice messages (core/voice): the record by ID, and two indexes whose
// keys sort newest first (the creation time is stored inverted), so a
// user's or a room's list is one forward prefix scan.
var (
	bucketVoice       = register("voiceid_msg")  // message ID -> JSON voice.Message
	bucketVoiceByUser = register("uservoice_ts") // owner\0 ^created ms | message ID -> nil
	bucketVoiceByRoom = register("roomvoice_ts") // room ID\0 ^created ms | message ID -> nil
)

var _ voice.Store = (*Store)(nil)

func voiceIndexKey(owner string, created int64, id string) []byte {
	k := key(owner, "")
	k = append(k, u64(^uint64(created))...)
	return append(k, id...)
}

// PutVoice implements voice.Store: a new record or an update of one (the
// event ID once the room event is sent). Owner, room and creation time
// never change, so the indexes are written once.
func (s *Store) PutVoice(m voice.Message) error {
	val, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.write(func(w *wtx) error {
		if err := w.Bucket(bucketVoice).Put([]byte(m.ID), val); err != nil {
			return err
		}
		if err := w.Bucket(bucketVoiceByUser).Put(voiceIndexKey(m.Owner, m.CreatedMs, m.ID), nil); err != nil {
			return err
		}
		if m.RoomID == "" {
			return nil
		}
		return w.Bucket(bucketVoiceByRoom).Put(voiceIndexKey(m.RoomID, m.CreatedMs, m.ID), nil)
	})
}

// UpdateVoice implements voice.Store: fn changes the record inside one
// write transaction, so concurrent updates and a concurrent delete are
// never undone by a stale copy. Owner, room and creation time (the index
// keys) must not change.
func (s *Store) UpdateVoice(id string, fn func(m *voice.Message) error) error {
	return s.write(func(w *wtx) error {
		recs := w.Bucket(bucketVoice)
		m, err := getVoice(recs, id)
		if err != nil {
			return err
		}
		if err := fn(&m); err != nil {
			return err
		}
		val, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return recs.Put([]byte(id), val)
	})
}

// Voice implements voice.Store.
func (s *Store) Voice(id string) (voice.Message, error) {
	var m voice.Message
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		m, err = getVoice(tx.Bucket(bucketVoice), id)
		return err
	})
	return m, err
}

// getVoice reads one record from the voice bucket.
func getVoice(recs *bolt.Bucket, id string) (voice.Message, error) {
	var m voice.Message
	v := recs.Get([]byte(id))
	if v == nil {
		return m, voice.ErrNotFound
	}
	return m, json.Unmarshal(v, &m)
}

// DeleteVoice implements voice.Store.
func (s *Store) DeleteVoice(id string) error {
	return s.write(func(w *wtx) error {
		recs := w.Bucket(bucketVoice)
		m, err := getVoice(recs, id)
		if err != nil {
			return err
		}
		if err := recs.Delete([]byte(id)); err != nil {
			return err
		}
		if err := w.Bucket(bucketVoiceByUser).Delete(voiceIndexKey(m.Owner, m.CreatedMs, m.ID)); err != nil {
			return err
		}
		if m.RoomID == "" {
			return nil
		}
		return w.Bucket(bucketVoiceByRoom).Delete(voiceIndexKey(m.RoomID, m.CreatedMs, m.ID))
	})
}

// VoiceByUser implements voice.Store.
func (s *Store) VoiceByUser(user string) ([]voice.Message, error) {
	return s.voiceList(bucketVoiceByUser, user)
}

// VoiceByRoom implements voice.Store.
func (s *Store) VoiceByRoom(roomID string) ([]voice.Message, error) {
	return s.voiceList(bucketVoiceByRoom, roomID)
}

func (s *Store) voiceList(index []byte, owner string) ([]voice.Message, error) {
	var out []voice.Message
	err := s.view(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketVoice)
		prefix := key(owner, "")
		c := tx.Bucket(index).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) < len(prefix)+8 {
				continue
			}
			v := recs.Get(k[len(prefix)+8:])
			if v == nil {
				continue
			}
			var m voice.Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}
