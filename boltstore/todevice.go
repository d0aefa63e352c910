package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/todevice"
)

// To-device layout: one queue per device, the prefix user\0device\0 followed
// by the stream position, so "the device's messages in (since, upto]" is a
// range scan and the acknowledged ones are the head of the prefix. User and
// device IDs never contain NUL, so one device's prefix never covers
// another's. Applied transactions sit under the sender device's prefix, so
// that deleting a device drops them with its queue.
var (
	bucketToDevice    = register("userdevice_todevice")    // user\0device\0|pos -> event JSON
	bucketToDeviceTxn = register("userdevice_todevicetxn") // user\0device\0|txnhash -> pos
)

var _ todevice.Store = (*Store)(nil)

func tdPrefix(user, device string) []byte { return append(key(user, device), 0) }

// tdTxnKey keys a transaction by a 16-byte hash of its ID: IDs are only
// ever looked up, and clients make them long (UUIDs, timestamps), so a
// fixed short key keeps the index small (as txnKey does for room sends).
func tdTxnKey(t todevice.Txn) []byte {
	h := sha256.Sum256([]byte(t.ID))
	return append(tdPrefix(t.User, t.Device), h[:16]...)
}

func (s *Store) PutToDevice(txn todevice.Txn, msgs []todevice.Message) (dup bool, users []string, err error) {
	err = s.write(func(w *wtx) error {
		// This may run twice (see write): start from nothing each time.
		dup, users = false, nil
		txns := w.Bucket(bucketToDeviceTxn)
		tk := tdTxnKey(txn)
		if txns.Get(tk) != nil {
			dup = true
			return nil
		}
		inbox := w.Bucket(bucketToDevice)
		// The device is checked in this transaction, not by the caller
		// earlier: a device deleted meanwhile (its queue dropped in the
		// deleting transaction) must not get a queue again.
		devices := w.Bucket(bucketAcctDevices)
		got := map[string]bool{}
		for _, m := range msgs {
			if devices.Get(key(m.User, m.Device)) == nil {
				continue
			}
			if err := inbox.Put(append(tdPrefix(m.User, m.Device), u64(w.nextPos())...), m.Event); err != nil {
				return err
			}
			if !got[m.User] {
				got[m.User] = true
				users = append(users, m.User)
			}
		}
		return txns.Put(tk, u64(w.pos))
	})
	if err != nil {
		return false, nil, err
	}
	sort.Strings(users)
	return dup, users, nil
}

func (s *Store) ToDevice(user, device string, since, upto uint64, limit int) (events []json.RawMessage, last uint64, more bool, err error) {
	p := tdPrefix(user, device)
	last = since
	var acked bool
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketToDevice).Cursor()
		// The head of the queue tells whether anything was acknowledged,
		// so the common sync, with nothing to delete, writes nothing.
		if k, _ := c.Seek(p); k != nil {
			pos, ok := tdPos(k, p)
			acked = ok && pos <= since
		}
		if since == math.MaxUint64 {
			return nil
		}
		for k, v := c.Seek(append(p, u64(since+1)...)); k != nil; k, v = c.Next() {
			pos, ok := tdPos(k, p)
			if !ok || pos > upto {
				break
			}
			if len(events) >= limit {
				more = true
				break
			}
			events = append(events, bytes.Clone(v)) // v lives only as long as tx
			last = pos
		}
		return nil
	})
	if err != nil || !acked {
		return events, last, more, err
	}
	// The client synced from a token that covered these: they were
	// delivered (send_to_device.md, "Server behaviour"), and go now.
	err = s.write(func(w *wtx) error {
		b := w.Bucket(bucketToDevice)
		for _, k := range tdKeysThrough(b, p, since) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, since, false, err
	}
	return events, last, more, nil
}

func (s *Store) DeleteDeviceInbox(user, device string) error {
	return s.write(func(w *wtx) error { return dropDeviceInbox(w.Tx, user, device) })
}

// dropDeviceInbox deletes the device's queue and the transactions it sent,
// inside tx: a device deletion can call it in its own transaction, so no
// queue outlives its device even across a crash.
func dropDeviceInbox(tx *bolt.Tx, user, device string) error {
	p := tdPrefix(user, device)
	for _, name := range [][]byte{bucketToDevice, bucketToDeviceTxn} {
		b := tx.Bucket(name)
		for _, k := range tdKeysThrough(b, p, math.MaxUint64) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// tdPos is the position in a queue key of prefix p; ok is false for a key
// outside the prefix.
func tdPos(k, p []byte) (uint64, bool) {
	if len(k) != len(p)+8 || !bytes.HasPrefix(k, p) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(p):]), true
}

// tdKeysThrough collects (copies of) the keys under prefix p whose first 8
// bytes after it are at most through, so the caller can delete them
// without mutating under a cursor. Transaction keys (16-byte hashes) are
// all collected when through is MaxUint64.
func tdKeysThrough(b *bolt.Bucket, p []byte, through uint64) [][]byte {
	var out [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(k) >= len(p)+8; k, _ = c.Next() {
		if binary.BigEndian.Uint64(k[len(p):]) > through {
			break
		}
		out = append(out, bytes.Clone(k))
	}
	return out
}
