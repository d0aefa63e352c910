package boltstore

import (
	"bytes"
	"crypto/sha256"
	"sync"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/rooms"
)

// Room and event layout (DESIGN.md "On disk"): rooms get a short numeric ID
// (NID) so per-room keys are 8-byte prefixes; a room's timeline is a prefix
// of room_pos, never a filter over all events; state is an index over the
// events (history keyed by tuple then position), never a copy.
var (
	bucketRoomMeta    = register("roomid_meta")       // room ID -> cbor roomMeta
	bucketEvents      = register("pos_event")         // pos -> record
	bucketEventIDs    = register("eventid_pos")       // event ID -> pos
	bucketRoomPos     = register("roomnid_pos")       // NID|pos -> ""
	bucketStateHist   = register("roomnid_statehist") // NID|type\0key\0|pos -> ""
	bucketStateNow    = register("roomnid_state")     // NID|type\0key -> pos
	bucketMembers     = register("user_membership")   // user\0room -> cbor memberEntry
	bucketTxns        = register("txnhash_pos")       // txnKey(user, device, scope, txn) -> pos
	bucketAliases     = register("alias_room")        // alias -> room\0creator
	bucketRoomAliases = register("room_alias")        // room\0alias -> ""
	bucketPublished   = register("room_published")    // room -> ""
	bucketLastEvent   = register("roomnid_lastevent") // NID -> newest event ID (compare-and-append)
	keyRoomNID        = []byte("room_nid")
)

type roomMeta struct {
	NID     uint64
	Version string
	Creator string
}

type memberEntry struct {
	Membership string
	Pos        uint64
	Forgotten  bool `cbor:",omitempty"`
}

var cborEnc, _ = cbor.CoreDetEncOptions().EncMode()

func enc(v any) []byte {
	b, err := cborEnc.Marshal(v)
	if err != nil {
		panic(err) // only fixed struct types are encoded
	}
	return b
}

// txnKey is a 16-byte hash of a transaction's scope: transaction IDs are
// looked up, never listed, and every sent message has one, so a short
// fixed key (with the event's position as value) keeps this index at a
// fraction of the raw strings' size (DESIGN.md disk budget).
func txnKey(user, device, scope, txnID string) []byte {
	h := sha256.Sum256(key(user, device, scope, txnID))
	return h[:16]
}

// roomNIDs caches room ID -> NID; NIDs never change once assigned.
var roomNIDs sync.Map

func (s *Store) nid(tx *bolt.Tx, roomID string) (uint64, bool) {
	if v, ok := roomNIDs.Load(s.cacheKey(roomID)); ok {
		return v.(uint64), true
	}
	raw := tx.Bucket(bucketRoomMeta).Get([]byte(roomID))
	if raw == nil {
		return 0, false
	}
	var m roomMeta
	if cbor.Unmarshal(raw, &m) != nil {
		return 0, false
	}
	roomNIDs.Store(s.cacheKey(roomID), m.NID)
	return m.NID, true
}

// cacheKey scopes the NID cache to this store (tests open several).
func (s *Store) cacheKey(roomID string) string { return s.db.Path() + "\x00" + roomID }

func (s *Store) CreateRoom(m rooms.RoomMeta) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketRoomMeta)
		if b.Get([]byte(m.RoomID)) != nil {
			return nil
		}
		meta := w.Bucket(bucketMeta)
		nid := getU64(meta, keyRoomNID) + 1
		if err := putU64(meta, keyRoomNID, nid); err != nil {
			return err
		}
		return b.Put([]byte(m.RoomID), enc(roomMeta{NID: nid, Version: m.Version, Creator: m.Creator}))
	})
}

func (s *Store) Room(roomID string) (rooms.RoomMeta, error) {
	var out rooms.RoomMeta
	err := s.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketRoomMeta).Get([]byte(roomID))
		if raw == nil {
			return rooms.ErrNotFound
		}
		var m roomMeta
		if err := cbor.Unmarshal(raw, &m); err != nil {
			return err
		}
		out = rooms.RoomMeta{RoomID: roomID, Version: m.Version, Creator: m.Creator}
		return nil
	})
	return out, err
}

func stateTuple(typ, key string) []byte { return append(append(append([]byte(typ), 0), key...), 0) }

func (s *Store) AppendEvents(roomID string, evs []rooms.Append) func() ([]uint64, error) {
	poss := make([]uint64, len(evs))
	// Encode (scan, compress) before queueing: the committer runs one
	// transaction at a time, so work done inside it is work all writers
	// wait for.
	prepared := make([]preparedRecord, len(evs))
	for i := range evs {
		prepared[i] = prepareRecord(&evs[i].Event)
	}
	ch := s.c.enqueue(func(w *wtx) error {
		var redactedPos []uint64
		nid, ok := s.nid(w.Tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		if err := checkBuiltOn(w.Tx, nid, evs[0].BuiltOn); err != nil {
			return err
		}
		if err := w.Bucket(bucketLastEvent).Put(u64(nid), []byte(evs[len(evs)-1].Event.EventID)); err != nil {
			return err
		}
		// These keys grow with the stream position (per room for
		// roomnid_pos), so a page once split is never written again: fill
		// it, where bbolt's default 0.5 leaves every page half empty.
		w.Bucket(bucketEvents).FillPercent = appendFill
		w.Bucket(bucketRoomPos).FillPercent = appendFill
		for i := range evs {
			a := &evs[i]
			pos := w.nextPos()
			poss[i] = pos
			rec := a.Event
			rec.Pos = pos
			if err := w.Bucket(bucketEvents).Put(u64(pos), prepared[i].at(pos)); err != nil {
				return err
			}
			if err := w.Bucket(bucketEventIDs).Put([]byte(rec.EventID), u64(pos)); err != nil {
				return err
			}
			if err := w.Bucket(bucketRoomPos).Put(append(u64(nid), u64(pos)...), nil); err != nil {
				return err
			}
			if rec.StateKey != nil {
				t := stateTuple(rec.Type, *rec.StateKey)
				hk := append(append(u64(nid), t...), u64(pos)...)
				if err := w.Bucket(bucketStateHist).Put(hk, nil); err != nil {
					return err
				}
				if err := w.Bucket(bucketStateNow).Put(append(u64(nid), t[:len(t)-1]...), u64(pos)); err != nil {
					return err
				}
				if rec.Type == "m.room.member" {
					m := memberEntry{Membership: membershipOfJSON(rec.JSON), Pos: pos}
					if err := w.Bucket(bucketMembers).Put(key(*rec.StateKey, roomID), enc(m)); err != nil {
						return err
					}
				}
			}
			if rec.TxnID != "" {
				if err := w.Bucket(bucketTxns).Put(txnKey(rec.TxnUser, rec.TxnDevice, rec.TxnScope, rec.TxnID), u64(pos)); err != nil {
					return err
				}
			}
			if a.Redacts != "" {
				p, err := redactStored(w.Tx, a.Redacts, a.RedactedJSON, rec.EventID)
				if err != nil {
					return err
				}
				if len(redactedPos) == 0 {
					txID := int64(w.ID())
					// Invalidate right after the commit, before the new
					// position is published or anyone is answered.
					w.afterCommit(func() { s.cache.invalidate(txID, redactedPos...) })
				}
				redactedPos = append(redactedPos, p)
			}
		}
		return nil
	})
	return func() ([]uint64, error) {
		if err := <-ch; err != nil {
			return nil, err
		}
		return poss, nil
	}
}

// checkBuiltOn makes appends compare-and-append: the room's newest stored
// event must be the one the batch was built on.
func checkBuiltOn(tx *bolt.Tx, nid uint64, builtOn string) error {
	// The newest event ID is kept beside the timeline so this check, which
	// runs inside the serialized commit, reads one key instead of decoding
	// the newest record.
	if last := tx.Bucket(bucketLastEvent).Get(u64(nid)); last != nil {
		if string(last) != builtOn {
			return rooms.ErrConflict
		}
		return nil
	}
	c := tx.Bucket(bucketRoomPos).Cursor()
	k, _ := c.Seek(u64(nid + 1))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, u64(nid)) {
		if builtOn == "" {
			return nil
		}
		return rooms.ErrConflict
	}
	rec, err := getRecord(tx, k[8:])
	if err != nil {
		return err
	}
	if rec.EventID != builtOn {
		return rooms.ErrConflict
	}
	return nil
}

func redactStored(tx *bolt.Tx, eventID string, redacted []byte, by string) (uint64, error) {
	p := tx.Bucket(bucketEventIDs).Get([]byte(eventID))
	if p == nil {
		return 0, nil
	}
	rec, err := getRecord(tx, p)
	if err != nil {
		return 0, err
	}
	rec.JSON, rec.RedactedBy = redacted, by
	return rec.Pos, putRecord(tx, &rec)
}

func putRecord(tx *bolt.Tx, rec *rooms.EventRecord) error {
	return tx.Bucket(bucketEvents).Put(u64(rec.Pos), encodeRecord(rec))
}

func getRecord(tx *bolt.Tx, pos []byte) (rooms.EventRecord, error) { return cachedRecord(tx, pos) }

func membershipOfJSON(pdu []byte) string {
	var f struct {
		Content struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	_ = jsonUnmarshal(pdu, &f)
	return f.Content.Membership
}

func (s *Store) Event(eventID string) (rooms.EventRecord, error) {
	var rec rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketEventIDs).Get([]byte(eventID))
		if p == nil {
			return rooms.ErrNotFound
		}
		var err error
		rec, err = getRecord(tx, p)
		return err
	})
	return rec, err
}

func (s *Store) EventAt(pos uint64) (rooms.EventRecord, error) {
	var rec rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		rec, err = getRecord(tx, u64(pos))
		return err
	})
	return rec, err
}

func (s *Store) CurrentState(roomID string) ([]rooms.EventRecord, error) {
	var out []rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		nid, ok := s.nid(tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		prefix := u64(nid)
		c := tx.Bucket(bucketStateNow).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec, err := getRecord(tx, v)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

func (s *Store) StateAt(roomID string, pos uint64) ([]rooms.EventRecord, error) {
	if pos == ^uint64(0) {
		return s.CurrentState(roomID)
	}
	var out []rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		nid, ok := s.nid(tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		prefix := u64(nid)
		c := tx.Bucket(bucketStateHist).Cursor()
		var lastTuple []byte
		var best uint64
		flush := func() error {
			if best == 0 {
				return nil
			}
			rec, err := getRecord(tx, u64(best))
			if err != nil {
				return err
			}
			out = append(out, rec)
			best = 0
			return nil
		}
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			t, p := k[8:len(k)-8], getPosSuffix(k)
			if !bytes.Equal(t, lastTuple) {
				if err := flush(); err != nil {
					return err
				}
				lastTuple = append(lastTuple[:0], t...)
			}
			if p <= pos {
				best = p
			}
		}
		return flush()
	})
	return out, err
}

func getPosSuffix(k []byte) uint64 {
	var v uint64
	for _, b := range k[len(k)-8:] {
		v = v<<8 | uint64(b)
	}
	return v
}

func (s *Store) StateHistory(roomID, typ, stateKey string) ([]rooms.EventRecord, error) {
	var out []rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		nid, ok := s.nid(tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		t := append(u64(nid), stateTuple(typ, stateKey)...)
		c := tx.Bucket(bucketStateHist).Cursor()
		for k, _ := c.Seek(t); k != nil && bytes.HasPrefix(k, t) && len(k) == len(t)+8; k, _ = c.Next() {
			rec, err := getRecord(tx, k[len(t):])
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

func (s *Store) StateEventAt(roomID string, pos uint64, typ, stateKey string) (rooms.EventRecord, error) {
	var rec rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		nid, ok := s.nid(tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		t := append(u64(nid), stateTuple(typ, stateKey)...)
		if pos == ^uint64(0) {
			p := tx.Bucket(bucketStateNow).Get(t[:len(t)-1])
			if p == nil {
				return rooms.ErrNotFound
			}
			var err error
			rec, err = getRecord(tx, p)
			return err
		}
		c := tx.Bucket(bucketStateHist).Cursor()
		k, _ := c.Seek(append(append([]byte{}, t...), u64(pos+1)...))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k == nil || !bytes.HasPrefix(k, t) || len(k) != len(t)+8 {
			return rooms.ErrNotFound
		}
		var err error
		rec, err = getRecord(tx, k[len(t):])
		return err
	})
	return rec, err
}

func (s *Store) Latest(roomID string) (rooms.EventRecord, error) {
	var rec rooms.EventRecord
	err := s.view(func(tx *bolt.Tx) error {
		nid, ok := s.nid(tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		prefix := u64(nid)
		c := tx.Bucket(bucketRoomPos).Cursor()
		k, _ := c.Seek(u64(nid + 1))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return rooms.ErrNotFound
		}
		var err error
		rec, err = getRecord(tx, k[8:])
		return err
	})
	return rec, err
}

// Timeline reads in chunks, each in its own read transaction, and calls fn
// outside any transaction: fn may read the store again, and nesting bbolt
// read transactions in one goroutine can deadlock against a remapping writer.
//
// Chunks start small and double up to 128: most callers stop early (an
// incremental sync wants one or two events, a sync timeline 10 or 20),
// and records are decoded as they are read.
func (s *Store) Timeline(roomID string, from uint64, dir rooms.Direction, fn func(rooms.EventRecord) bool) error {
	chunk := 8
	cur := from
	for {
		var recs []rooms.EventRecord
		err := s.view(func(tx *bolt.Tx) error {
			nid, ok := s.nid(tx, roomID)
			if !ok {
				return rooms.ErrNotFound
			}
			prefix := u64(nid)
			c := tx.Bucket(bucketRoomPos).Cursor()
			var k []byte
			if dir == rooms.Forward {
				if cur == ^uint64(0) {
					return nil
				}
				k, _ = c.Seek(append(u64(nid), u64(cur+1)...))
			} else {
				if cur == ^uint64(0) {
					k, _ = c.Seek(u64(nid + 1))
				} else {
					k, _ = c.Seek(append(u64(nid), u64(cur+1)...))
				}
				if k == nil {
					k, _ = c.Last()
				} else {
					k, _ = c.Prev()
				}
			}
			for k != nil && bytes.HasPrefix(k, prefix) && len(recs) < chunk {
				rec, err := getRecord(tx, k[8:])
				if err != nil {
					return err
				}
				recs = append(recs, rec)
				if dir == rooms.Forward {
					k, _ = c.Next()
				} else {
					k, _ = c.Prev()
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !fn(r) {
				return nil
			}
		}
		if len(recs) < chunk {
			return nil
		}
		chunk = min(chunk*2, 128)
		last := recs[len(recs)-1].Pos
		if dir == rooms.Forward {
			cur = last
		} else {
			if last <= 1 {
				return nil
			}
			cur = last - 1
		}
	}
}

func (s *Store) TxnEvent(user, device, scope, txnID string) (string, bool) {
	var id string
	_ = s.view(func(tx *bolt.Tx) error {
		p := tx.Bucket(bucketTxns).Get(txnKey(user, device, scope, txnID))
		if p == nil {
			return nil
		}
		if rec, err := getRecord(tx, p); err == nil {
			id = rec.EventID
		}
		return nil
	})
	return id, id != ""
}

func (s *Store) Memberships(user string) ([]rooms.MemberEntry, error) {
	var out []rooms.MemberEntry
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(user), 0)
		c := tx.Bucket(bucketMembers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m memberEntry
			if err := cbor.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, rooms.MemberEntry{RoomID: string(k[len(prefix):]), Membership: m.Membership, Pos: m.Pos, Forgotten: m.Forgotten})
		}
		return nil
	})
	return out, err
}

func (s *Store) Membership(user, roomID string) (rooms.MemberEntry, error) {
	var out rooms.MemberEntry
	err := s.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMembers).Get(key(user, roomID))
		if raw == nil {
			return rooms.ErrNotFound
		}
		var m memberEntry
		if err := cbor.Unmarshal(raw, &m); err != nil {
			return err
		}
		out = rooms.MemberEntry{RoomID: roomID, Membership: m.Membership, Pos: m.Pos, Forgotten: m.Forgotten}
		return nil
	})
	return out, err
}

func (s *Store) Forget(user, roomID string) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketMembers)
		k := key(user, roomID)
		raw := b.Get(k)
		if raw == nil {
			return rooms.ErrNotFound
		}
		var m memberEntry
		if err := cbor.Unmarshal(raw, &m); err != nil {
			return err
		}
		m.Forgotten = true
		return b.Put(k, enc(m))
	})
}

func (s *Store) PutAlias(alias, roomID, creator string) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketAliases)
		if b.Get([]byte(alias)) != nil {
			return rooms.ErrAliasExists
		}
		if err := b.Put([]byte(alias), key(roomID, creator)); err != nil {
			return err
		}
		return w.Bucket(bucketRoomAliases).Put(key(roomID, alias), nil)
	})
}

func (s *Store) DeleteAlias(alias string) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketAliases)
		v := b.Get([]byte(alias))
		if v == nil {
			return rooms.ErrNotFound
		}
		roomID, _, _ := bytes.Cut(v, []byte{0})
		if err := w.Bucket(bucketRoomAliases).Delete(key(string(roomID), alias)); err != nil {
			return err
		}
		return b.Delete([]byte(alias))
	})
}

func (s *Store) Alias(alias string) (string, string, error) {
	var roomID, creator string
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAliases).Get([]byte(alias))
		if v == nil {
			return rooms.ErrNotFound
		}
		r, c, _ := bytes.Cut(v, []byte{0})
		roomID, creator = string(r), string(c)
		return nil
	})
	return roomID, creator, err
}

func (s *Store) RoomAliases(roomID string) ([]string, error) {
	out := []string{}
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(roomID), 0)
		c := tx.Bucket(bucketRoomAliases).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[len(prefix):]))
		}
		return nil
	})
	return out, err
}

func (s *Store) SetPublished(roomID string, public bool) error {
	return s.write(func(w *wtx) error {
		if public {
			return w.Bucket(bucketPublished).Put([]byte(roomID), nil)
		}
		return w.Bucket(bucketPublished).Delete([]byte(roomID))
	})
}

func (s *Store) Published(roomID string) (bool, error) {
	var ok bool
	err := s.view(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketPublished).Get([]byte(roomID)) != nil
		return nil
	})
	return ok, err
}

func (s *Store) PublishedRooms() ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPublished).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}
