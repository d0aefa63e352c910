package boltstore

import (
	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/accountdata"
)

// Push rules are one JSON blob per user (core/pushrules.UserRules: only the
// user's own rules and changes to defaults). A change also rewrites the
// user's global m.push_rules account data in the same transaction, so /sync
// sees it on the account data stream.
var bucketPushRules = register("user_pushrules") // user -> JSON blob

func (s *Store) PushRules(user string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketPushRules).Get([]byte(user)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

func (s *Store) UpdatePushRules(user string, fn func(old []byte) (rules, accountData []byte, err error)) (uint64, error) {
	var pos uint64
	err := s.write(func(w *wtx) error {
		pos = 0
		b := w.Bucket(bucketPushRules)
		var old []byte
		if v := b.Get([]byte(user)); v != nil {
			old = append([]byte(nil), v...)
		}
		rules, ad, err := fn(old)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(user), rules); err != nil {
			return err
		}
		pos, err = putAD(w, user, "", accountdata.TypePushRules, ad)
		return err
	})
	if err != nil {
		return 0, err
	}
	return pos, nil
}
