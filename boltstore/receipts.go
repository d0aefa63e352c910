package boltstore

import (
	"bytes"
	"encoding/binary"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/receipts"
	"github.com/lichen-hs/lichen/core/rooms"
)

// Receipts: a per-room position index holding only the latest receipt of
// each (type, user, thread), so the sync read "receipts in (since, upto]"
// is a range scan of the room's prefix and the index never grows beyond
// members x types x threads.
var (
	bucketReceipts      = register("roomnid_receipts")   // NID|pos -> cbor receiptRec
	bucketReceiptLatest = register("roomnid_receiptpos") // NID|type\0user\0thread -> pos
)

var _ receipts.Store = (*Store)(nil)

type receiptRec struct {
	Type     string
	User     string
	ThreadID string `cbor:",omitempty"`
	EventID  string
	TS       int64
}

func (s *Store) PutReceipt(roomID string, r receipts.Receipt) (uint64, error) {
	var pos uint64
	err := s.write(func(w *wtx) error {
		nid, ok := s.nid(w.Tx, roomID)
		if !ok {
			return rooms.ErrNotFound
		}
		lk := append(u64(nid), key(r.Type, r.User, r.ThreadID)...)
		latest := w.Bucket(bucketReceiptLatest)
		idx := w.Bucket(bucketReceipts)
		if old := latest.Get(lk); len(old) == 8 {
			if err := idx.Delete(append(u64(nid), old...)); err != nil {
				return err
			}
		}
		pos = w.nextPos()
		rec := receiptRec{Type: r.Type, User: r.User, ThreadID: r.ThreadID, EventID: r.EventID, TS: r.TS}
		if err := idx.Put(append(u64(nid), u64(pos)...), enc(rec)); err != nil {
			return err
		}
		return latest.Put(lk, u64(pos))
	})
	if err != nil {
		return 0, err
	}
	return pos, nil
}

func (s *Store) Receipts(roomID string, since, upto uint64) ([]receipts.Receipt, error) {
	var out []receipts.Receipt
	err := s.view(func(tx *bolt.Tx) error {
		nid, ok := s.nid(tx, roomID)
		if !ok {
			return nil
		}
		prefix := u64(nid)
		c := tx.Bucket(bucketReceipts).Cursor()
		for k, v := c.Seek(append(u64(nid), u64(since+1)...)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			pos := binary.BigEndian.Uint64(k[8:])
			if pos > upto {
				break
			}
			var rec receiptRec
			if err := cbor.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, receipts.Receipt{Type: rec.Type, User: rec.User, ThreadID: rec.ThreadID,
				EventID: rec.EventID, TS: rec.TS, Pos: pos})
		}
		return nil
	})
	return out, err
}
