package boltstore

import (
	"bytes"
	"encoding/json"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/media"
)

// Media metadata (core/media). The content itself is in files
// (mediafiles.go); these buckets say which media ID is which file, how
// many records use each file, and how much each user stores, so that the
// quota check and the reference count change in the same transaction as
// the record.
var (
	bucketMediaRecord  = register("mediaid_record")    // media ID -> JSON media.Record
	bucketMediaUsage   = register("user_mediabytes")   // user -> u64 bytes of completed uploads
	bucketMediaPending = register("usermedia_pending") // user\0media ID -> u64 expiry ms
	bucketMediaRefs    = register("sha_mediarefs")     // sha256 hex -> u64 records + thumbnails using it
	bucketMediaThumb   = register("shaspec_thumb")     // sha256\0size spec -> JSON media.Thumb
)

var _ media.Store = (*Store)(nil)

// Dir is the directory of the database file (the data directory), where
// the media files live beside it.
func (s *Store) Dir() string { return filepath.Dir(s.db.Path()) }

// CreatePending implements media.Store.
func (s *Store) CreatePending(rec media.Record, maxPending int, nowMs int64) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.write(func(w *wtx) error {
		recs, pend := w.Bucket(bucketMediaRecord), w.Bucket(bucketMediaPending)
		if recs.Get([]byte(rec.ID)) != nil {
			return media.ErrExists
		}
		prefix := key(rec.Uploader, "")
		n := 0
		var expired [][]byte
		c := pend.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if int64(getU64Bytes(v)) <= nowMs {
				expired = append(expired, append([]byte(nil), k...))
				continue
			}
			n++
		}
		if n >= maxPending {
			return media.ErrTooManyPending
		}
		// Expired IDs lapse here: their records go too, so an expired
		// ID is 404 and never fills the bucket.
		for _, k := range expired {
			if err := pend.Delete(k); err != nil {
				return err
			}
			if err := recs.Delete(k[len(prefix):]); err != nil {
				return err
			}
		}
		if err := pend.Put(key(rec.Uploader, rec.ID), u64(uint64(rec.ExpiresMs))); err != nil {
			return err
		}
		return recs.Put([]byte(rec.ID), val)
	})
}

func getU64Bytes(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
		uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7])
}

// Commit implements media.Store.
func (s *Store) Commit(rec media.Record, quota int64, nowMs int64) error {
	return s.write(func(w *wtx) error {
		recs := w.Bucket(bucketMediaRecord)
		if old := recs.Get([]byte(rec.ID)); old != nil {
			var prev media.Record
			if err := json.Unmarshal(old, &prev); err != nil {
				return err
			}
			switch {
			case !prev.Pending():
				return media.ErrExists
			case prev.Uploader != rec.Uploader:
				return media.ErrNotCreator
			case nowMs >= prev.ExpiresMs:
				return media.ErrNotFound
			}
			if err := w.Bucket(bucketMediaPending).Delete(key(rec.Uploader, rec.ID)); err != nil {
				return err
			}
			rec.CreatedMs, rec.ExpiresMs = prev.CreatedMs, 0
		}
		usage := w.Bucket(bucketMediaUsage)
		used := getU64(usage, []byte(rec.Uploader))
		if quota > 0 && int64(used)+rec.Size > quota {
			return media.ErrQuota
		}
		if err := putU64(usage, []byte(rec.Uploader), used+uint64(rec.Size)); err != nil {
			return err
		}
		if err := addRef(w.Tx, rec.SHA256, 1); err != nil {
			return err
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return recs.Put([]byte(rec.ID), val)
	})
}

// addRef changes sha's reference count by d and returns the new count.
func addRef(tx *bolt.Tx, sha string, d int) error {
	refs := tx.Bucket(bucketMediaRefs)
	n := int64(getU64(refs, []byte(sha))) + int64(d)
	if n <= 0 {
		return refs.Delete([]byte(sha))
	}
	return putU64(refs, []byte(sha), uint64(n))
}

// Get implements media.Store.
func (s *Store) Get(id string) (media.Record, error) {
	var rec media.Record
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMediaRecord).Get([]byte(id))
		if v == nil {
			return media.ErrNotFound
		}
		return json.Unmarshal(v, &rec)
	})
	return rec, err
}

// Delete implements media.Store.
func (s *Store) Delete(id string) ([]string, error) {
	var gone []string
	err := s.write(func(w *wtx) error {
		gone = gone[:0]
		recs := w.Bucket(bucketMediaRecord)
		v := recs.Get([]byte(id))
		if v == nil {
			return media.ErrNotFound
		}
		var rec media.Record
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		if err := recs.Delete([]byte(id)); err != nil {
			return err
		}
		if rec.Pending() {
			return w.Bucket(bucketMediaPending).Delete(key(rec.Uploader, rec.ID))
		}
		usage := w.Bucket(bucketMediaUsage)
		used := getU64(usage, []byte(rec.Uploader))
		if used < uint64(rec.Size) {
			used = uint64(rec.Size)
		}
		if err := putU64(usage, []byte(rec.Uploader), used-uint64(rec.Size)); err != nil {
			return err
		}
		if err := addRef(w.Tx, rec.SHA256, -1); err != nil {
			return err
		}
		if w.Bucket(bucketMediaRefs).Get([]byte(rec.SHA256)) != nil {
			return nil
		}
		gone = append(gone, rec.SHA256)
		// The content is no longer used: its thumbnails go with it.
		thumbs := w.Bucket(bucketMediaThumb)
		prefix := key(rec.SHA256, "")
		var keys [][]byte
		c := thumbs.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var t media.Thumb
			if json.Unmarshal(v, &t) == nil {
				if err := addRef(w.Tx, t.SHA256, -1); err != nil {
					return err
				}
				if w.Bucket(bucketMediaRefs).Get([]byte(t.SHA256)) == nil {
					gone = append(gone, t.SHA256)
				}
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := thumbs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return gone, err
}

// CreatedBefore implements media.Store.
func (s *Store) CreatedBefore(ms int64) ([]string, error) {
	var ids []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMediaRecord).ForEach(func(k, v []byte) error {
			var rec media.Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.CreatedMs < ms {
				ids = append(ids, string(k))
			}
			return nil
		})
	})
	return ids, err
}

// Thumb implements media.Store.
func (s *Store) Thumb(sha, spec string) (media.Thumb, error) {
	var t media.Thumb
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMediaThumb).Get(key(sha, spec))
		if v == nil {
			return media.ErrNotFound
		}
		return json.Unmarshal(v, &t)
	})
	return t, err
}

// PutThumb implements media.Store. A thumbnail of content that is no
// longer referenced (deleted while it was made) is refused with
// ErrNotFound, so it cannot outlive its content.
func (s *Store) PutThumb(sha, spec string, t media.Thumb) error {
	val, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.write(func(w *wtx) error {
		if w.Bucket(bucketMediaRefs).Get([]byte(sha)) == nil {
			return media.ErrNotFound
		}
		thumbs := w.Bucket(bucketMediaThumb)
		if thumbs.Get(key(sha, spec)) != nil {
			return nil
		}
		if err := addRef(w.Tx, t.SHA256, 1); err != nil {
			return err
		}
		return thumbs.Put(key(sha, spec), val)
	})
}

// Referenced implements media.Store.
func (s *Store) Referenced(sha string) (bool, error) {
	var used bool
	err := s.view(func(tx *bolt.Tx) error {
		used = tx.Bucket(bucketMediaRefs).Get([]byte(sha)) != nil
		return nil
	})
	return used, err
}

// MediaUsage is the bytes user's completed uploads take.
func (s *Store) MediaUsage(user string) int64 {
	var n uint64
	_ = s.view(func(tx *bolt.Tx) error { n = getU64(tx.Bucket(bucketMediaUsage), []byte(user)); return nil })
	return int64(n)
}
