package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/accountdata"
)

// Filters: canonical JSON under a per-user counter, plus a digest index so
// that a client uploading the same filter at every start gets its old ID
// back instead of growing the file.
var (
	bucketFilters      = register("userfilter_json")   // user\0 id(8) -> canonical JSON
	bucketFilterDigest = register("userfilterhash_id") // user\0 sha256(JSON) -> id(8)
	bucketFilterSeq    = register("user_filterseq")    // user -> next id(8)
)

func filterKey(user string, id uint64) []byte { return append(append([]byte(user), 0), u64(id)...) }

func (s *Store) PutFilter(user string, canonical []byte) (string, error) {
	sum := sha256.Sum256(canonical)
	dk := append(append([]byte(user), 0), sum[:]...)
	var id uint64
	err := s.write(func(w *wtx) error {
		digests := w.Bucket(bucketFilterDigest)
		if v := digests.Get(dk); len(v) == 8 {
			id = binary.BigEndian.Uint64(v)
			return nil
		}
		seq := w.Bucket(bucketFilterSeq)
		id = getU64(seq, []byte(user))
		if err := putU64(seq, []byte(user), id+1); err != nil {
			return err
		}
		if err := w.Bucket(bucketFilters).Put(filterKey(user, id), canonical); err != nil {
			return err
		}
		return digests.Put(dk, u64(id))
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(id, 10), nil
}

func (s *Store) Filter(user, id string) ([]byte, error) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, accountdata.ErrNotFound
	}
	var out []byte
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFilters).Get(filterKey(user, n))
		if v == nil {
			return accountdata.ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}
