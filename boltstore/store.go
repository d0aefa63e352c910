// Package boltstore is Lichen's only bbolt user: it opens the database file,
// owns the bucket layout and the schema version, and implements the storage
// interfaces that core declares. Writes go through a group committer so one
// fsync serves many concurrent requests (see commit.go).
package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the on-disk layout version written at creation.
// Bump it together with an entry in migrations.
const SchemaVersion = 1

// migrations[v] upgrades a database at version v to v+1, inside one
// transaction. The first release is version 1, so the list starts empty.
var migrations = map[uint64]func(tx *bolt.Tx) error{}

var (
	bucketMeta = register("meta")
	keySchema  = []byte("schema_version")
	keyPos     = []byte("stream_pos")
)

// bucketNames collects every bucket a file of this package declares with
// register, so each concern keeps its bucket names next to its code.
var bucketNames [][]byte

func register(name string) []byte {
	b := []byte(name)
	bucketNames = append(bucketNames, b)
	return b
}

// Store is the database. It is safe for concurrent use.
type Store struct {
	db    *bolt.DB
	c     *committer
	pos   atomic.Uint64 // last committed stream position (see Pos)
	cache *eventCache
}

// eventCacheSize bounds the decoded-record cache: about 1 KiB each, so
// 4 MiB at most, within the board's memory budget, and enough for an
// initial sync of 50 rooms x 20 events with their state.
const eventCacheSize = 4096

// Open opens (or creates) the database file at path.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      2 * time.Second,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, cache: newEventCache(eventCacheSize)}
	caches.Store(db, s.cache)
	if err := db.Update(s.initSchema); err != nil {
		db.Close()
		return nil, err
	}
	_ = db.View(func(tx *bolt.Tx) error {
		s.pos.Store(getU64(tx.Bucket(bucketMeta), keyPos))
		return nil
	})
	s.c = newCommitter(db, s.pos.Store)
	return s, nil
}

func (s *Store) initSchema(tx *bolt.Tx) error {
	for _, name := range bucketNames {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := getU64(meta, keySchema)
	if v == 0 {
		// Stream positions start at 1, so no sync token of this database
		// is ever the zero position that means "everything".
		if err := putU64(meta, keyPos, 1); err != nil {
			return err
		}
		return putU64(meta, keySchema, SchemaVersion)
	}
	if v > SchemaVersion {
		return fmt.Errorf("database schema %d is newer than this binary (%d)", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		m, ok := migrations[v]
		if !ok {
			return fmt.Errorf("no migration from schema %d", v)
		}
		if err := m(tx); err != nil {
			return fmt.Errorf("migrate schema %d: %w", v, err)
		}
		if err := putU64(meta, keySchema, v+1); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the committer after flushing queued writes and closes the file.
func (s *Store) Close() error {
	caches.Delete(s.db)
	s.c.close()
	return s.db.Close()
}

// Pos is the highest stream position whose data is committed.
func (s *Store) Pos() uint64 { return s.pos.Load() }

// Size is the database file size in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// ErrNotFound is returned by lookups that find nothing.
var ErrNotFound = errors.New("not found")

// wtx is a write transaction handed to functions queued on the committer.
// It allocates stream positions; the store publishes the last one only
// after the commit is durable.
type wtx struct {
	*bolt.Tx
	pos   uint64
	hooks []func()
}

// afterCommit runs fn once the transaction is durable, before its
// positions are published and its writers answered.
func (w *wtx) afterCommit(fn func()) { w.hooks = append(w.hooks, fn) }

// nextPos allocates the next stream position inside this transaction.
func (w *wtx) nextPos() uint64 {
	w.pos++
	return w.pos
}

// write runs fn in a grouped write transaction and returns once it is
// durable. fn may run more than once (when another function in the same
// group fails the group is retried without it), so it must not have side
// effects outside tx.
func (s *Store) write(fn func(w *wtx) error) error {
	return s.c.submit(fn)
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error { return b.Put(k, u64(v)) }

// key joins parts with a 0x00 separator (Matrix identifiers never contain NUL).
func key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

// deletePrefix deletes every key of b that starts with prefix and returns
// how many it deleted.
func deletePrefix(b *bolt.Bucket, prefix []byte) (int, error) {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
