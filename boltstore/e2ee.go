package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"maps"
	"slices"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/e2ee"
)

// End-to-end encryption keys. One-time keys are keyed by upload position
// so a claim takes the oldest with one cursor seek (keys.yaml: "given out
// in the order that they were uploaded"); a name index makes re-uploads
// idempotent. The device-list stream is a position index holding each
// user's latest change only, so it never grows beyond the user count.
var (
	bucketDeviceKeys   = register("e2ee_devicekeys")   // user\0device -> device keys JSON
	bucketOTK          = register("e2ee_otk")          // user\0device\0alg\0 + pos + keyID -> key JSON
	bucketOTKName      = register("e2ee_otkname")      // user\0device\0alg:keyID -> pos
	bucketFallback     = register("e2ee_fallback")     // user\0device\0alg -> cbor fallbackRec
	bucketCrossSigning = register("e2ee_crosssigning") // user\0usage -> key JSON
	bucketDevListPos   = register("e2ee_devlist_pos")  // pos -> user
	bucketDevListUser  = register("e2ee_devlist_user") // user -> pos
)

var _ e2ee.Store = (*Store)(nil)

type fallbackRec struct {
	KeyID string
	JSON  []byte
	Used  bool `cbor:",omitempty"`
}

// noteDevList records a device-list change of user at a new position,
// dropping the user's previous entry.
func noteDevList(w *wtx, user string) error {
	byUser := w.Bucket(bucketDevListUser)
	byPos := w.Bucket(bucketDevListPos)
	if old := byUser.Get([]byte(user)); len(old) == 8 {
		if err := byPos.Delete(old); err != nil {
			return err
		}
	}
	pos := u64(w.nextPos())
	if err := byPos.Put(pos, []byte(user)); err != nil {
		return err
	}
	return byUser.Put([]byte(user), pos)
}

func (s *Store) DeviceKeys(user, device string) (json.RawMessage, bool, error) {
	var out json.RawMessage
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDeviceKeys).Get(key(user, device)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	return out, out != nil, err
}

func (s *Store) UserDeviceKeys(user string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.view(func(tx *bolt.Tx) error {
		prefix := keyPrefix(user)
		c := tx.Bucket(bucketDeviceKeys).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out[string(k[len(prefix):])] = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

func (s *Store) UpdateDeviceKeys(user, device string, fn func(old json.RawMessage) (json.RawMessage, error)) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketDeviceKeys)
		k := key(user, device)
		var old json.RawMessage
		if v := b.Get(k); v != nil {
			old = bytes.Clone(v)
		}
		n, err := fn(old)
		if err != nil {
			return err
		}
		if bytes.Equal(n, old) {
			return nil
		}
		if err := b.Put(k, n); err != nil {
			return err
		}
		return noteDevList(w, user)
	})
}

func (s *Store) AddOneTimeKeys(user, device string, keys []e2ee.OneTimeKey) error {
	return s.write(func(w *wtx) error {
		names := w.Bucket(bucketOTKName)
		otk := w.Bucket(bucketOTK)
		// Check every key before writing any: a conflict stores nothing.
		var fresh []e2ee.OneTimeKey
		for _, k := range keys {
			nk := key(user, device, k.Name())
			if p := names.Get(nk); len(p) == 8 {
				stored := otk.Get(append(append(keyPrefix(user, device, k.Algorithm), p...), k.KeyID...))
				if stored != nil && !bytes.Equal(stored, k.JSON) {
					return e2ee.ErrKeyConflict
				}
				continue // the same key again, or one already claimed
			}
			fresh = append(fresh, k)
		}
		if len(fresh) == 0 {
			return nil
		}
		// One position per upload: keys of one request are equivalent.
		pos := u64(w.nextPos())
		for _, k := range fresh {
			if err := otk.Put(append(append(keyPrefix(user, device, k.Algorithm), pos...), k.KeyID...), k.JSON); err != nil {
				return err
			}
			if err := names.Put(key(user, device, k.Name()), pos); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) OneTimeKeyCounts(user, device string) (map[string]int, error) {
	out := map[string]int{}
	err := s.view(func(tx *bolt.Tx) error {
		prefix := keyPrefix(user, device)
		c := tx.Bucket(bucketOTK).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			if i := bytes.IndexByte(rest, 0); i > 0 {
				out[string(rest[:i])]++
			}
		}
		return nil
	})
	return out, err
}

func (s *Store) SetFallbackKeys(user, device string, keys []e2ee.OneTimeKey) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketFallback)
		for _, k := range keys {
			fk := key(user, device, k.Algorithm)
			if v := b.Get(fk); v != nil {
				var old fallbackRec
				if cbor.Unmarshal(v, &old) == nil && old.KeyID == k.KeyID && bytes.Equal(old.JSON, k.JSON) {
					continue // a retry keeps the used mark
				}
			}
			if err := b.Put(fk, enc(fallbackRec{KeyID: k.KeyID, JSON: k.JSON})); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) UnusedFallbackAlgorithms(user, device string) ([]string, error) {
	out := []string{}
	err := s.view(func(tx *bolt.Tx) error {
		prefix := keyPrefix(user, device)
		c := tx.Bucket(bucketFallback).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r fallbackRec
			if err := cbor.Unmarshal(v, &r); err != nil {
				return err
			}
			if !r.Used {
				out = append(out, string(k[len(prefix):]))
			}
		}
		return nil
	})
	return out, err
}

func (s *Store) ClaimKeys(claims []e2ee.Claim) ([]e2ee.Claimed, error) {
	var out []e2ee.Claimed
	err := s.write(func(w *wtx) error {
		out = out[:0] // fn may run again
		otk := w.Bucket(bucketOTK)
		fb := w.Bucket(bucketFallback)
		for _, c := range claims {
			prefix := keyPrefix(c.User, c.Device, c.Algorithm)
			cur := otk.Cursor()
			if k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) > len(prefix)+8 {
				keyID := string(k[len(prefix)+8:])
				got := e2ee.OneTimeKey{Algorithm: c.Algorithm, KeyID: keyID, JSON: bytes.Clone(v)}
				if err := cur.Delete(); err != nil {
					return err
				}
				// The name stays in the index: a client re-uploading a
				// claimed key must not resurrect it.
				out = append(out, e2ee.Claimed{Claim: c, Key: got})
				continue
			}
			fk := key(c.User, c.Device, c.Algorithm)
			if v := fb.Get(fk); v != nil {
				var r fallbackRec
				if err := cbor.Unmarshal(v, &r); err != nil {
					return err
				}
				out = append(out, e2ee.Claimed{Claim: c, Key: e2ee.OneTimeKey{Algorithm: c.Algorithm, KeyID: r.KeyID, JSON: bytes.Clone(r.JSON)}})
				if !r.Used {
					r.Used = true
					if err := fb.Put(fk, enc(r)); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	return out, err
}

func (s *Store) CrossSigningKeys(user string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.view(func(tx *bolt.Tx) error {
		readCrossSigning(tx.Bucket(bucketCrossSigning), user, out)
		return nil
	})
	return out, err
}

func readCrossSigning(b *bolt.Bucket, user string, out map[string]json.RawMessage) {
	prefix := keyPrefix(user)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out[string(k[len(prefix):])] = bytes.Clone(v)
	}
}

func (s *Store) UpdateCrossSigningKeys(user string, fn func(map[string]json.RawMessage) (map[string]json.RawMessage, error)) error {
	return s.write(func(w *wtx) error {
		b := w.Bucket(bucketCrossSigning)
		old := map[string]json.RawMessage{}
		readCrossSigning(b, user, old)
		before := map[string]json.RawMessage{}
		for k, v := range old {
			before[k] = v
		}
		n, err := fn(old)
		if err != nil {
			return err
		}
		changed := false
		for usage := range before {
			if _, ok := n[usage]; !ok {
				if err := b.Delete(key(user, usage)); err != nil {
					return err
				}
				changed = true
			}
		}
		for _, usage := range slices.Sorted(maps.Keys(n)) {
			if bytes.Equal(before[usage], n[usage]) {
				continue
			}
			if err := b.Put(key(user, usage), n[usage]); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
		return noteDevList(w, user)
	})
}

func (s *Store) DeleteDeviceKeys(user string, devices []string) error {
	return s.write(func(w *wtx) error {
		had := false
		for _, dev := range devices {
			dk := key(user, dev)
			if w.Bucket(bucketDeviceKeys).Get(dk) != nil {
				had = true
				if err := w.Bucket(bucketDeviceKeys).Delete(dk); err != nil {
					return err
				}
			}
			for _, b := range []*bolt.Bucket{w.Bucket(bucketOTK), w.Bucket(bucketOTKName), w.Bucket(bucketFallback)} {
				if _, err := deletePrefix(b, keyPrefix(user, dev)); err != nil {
					return err
				}
			}
		}
		if !had {
			return nil
		}
		return noteDevList(w, user)
	})
}

// keyPrefix is key(parts...) followed by the separator: the prefix of the
// keys that continue with more parts.
func keyPrefix(parts ...string) []byte { return append(key(parts...), 0) }

func (s *Store) NoteDeviceListChange(user string) error {
	return s.write(func(w *wtx) error { return noteDevList(w, user) })
}

func (s *Store) DeviceListChanges(since, upto uint64) ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDevListPos).Cursor()
		for k, v := c.Seek(u64(since + 1)); k != nil; k, v = c.Next() {
			if binary.BigEndian.Uint64(k) > upto {
				break
			}
			out = append(out, string(v))
		}
		return nil
	})
	return out, err
}
