package boltstore

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/rooms"
)

// eventCache keeps recently read event records decoded (DESIGN.md: "keep
// hot rooms' recent events decoded in a bounded cache"): when a message
// arrives, every member's sync reads the same record, and only the first
// pays for decompressing and decoding it. Records are immutable except for
// redaction, which bumps epoch so that a reader that raced the redaction
// cannot put the stale record back: a record read by a transaction older
// than the last redaction's is not cached.
type eventCache struct {
	mu           sync.Mutex
	max          int
	m            map[uint64]*cacheEntry
	clock        uint64
	lastRedactTx atomic.Int64
}

// caches maps a database to its event cache, so getRecord, which sees
// only a transaction, finds it.
var caches sync.Map // *bolt.DB -> *eventCache

// cachedRecord reads a record through the database's cache.
func cachedRecord(tx *bolt.Tx, pos []byte) (rooms.EventRecord, error) {
	c, _ := caches.Load(tx.DB())
	cache, _ := c.(*eventCache)
	p := binary.BigEndian.Uint64(pos)
	if cache != nil {
		if rec, ok := cache.get(p); ok {
			return rec, nil
		}
	}
	raw := tx.Bucket(bucketEvents).Get(pos)
	if raw == nil {
		return rooms.EventRecord{}, rooms.ErrNotFound
	}
	rec, err := decodeRecord(raw)
	if err == nil && cache != nil && !tx.Writable() {
		cache.put(rec, int64(tx.ID()))
	}
	return rec, err
}

type cacheEntry struct {
	rec  rooms.EventRecord
	used uint64
}

func newEventCache(max int) *eventCache {
	return &eventCache{max: max, m: make(map[uint64]*cacheEntry, max)}
}

func (c *eventCache) get(pos uint64) (rooms.EventRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[pos]
	if !ok {
		return rooms.EventRecord{}, false
	}
	c.clock++
	e.used = c.clock
	return e.rec, true
}

// put stores rec read by a transaction with ID txID, unless a redaction
// committed after that transaction began.
func (c *eventCache) put(rec rooms.EventRecord, txID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if txID < c.lastRedactTx.Load() {
		return
	}
	if len(c.m) >= c.max {
		c.evict()
	}
	c.clock++
	c.m[rec.Pos] = &cacheEntry{rec: rec, used: c.clock}
}

// evict drops the least recently used quarter (amortised O(1) per put).
func (c *eventCache) evict() {
	var cutoff uint64
	if c.clock > uint64(c.max) {
		cutoff = c.clock - uint64(c.max)*3/4
	}
	for k, e := range c.m {
		if e.used <= cutoff {
			delete(c.m, k)
		}
	}
	if len(c.m) >= c.max { // all recent: drop arbitrary entries
		n := len(c.m) / 4
		for k := range c.m {
			if n == 0 {
				break
			}
			delete(c.m, k)
			n--
		}
	}
}

// invalidate removes records changed by the committed write txID.
func (c *eventCache) invalidate(txID int64, pos ...uint64) {
	c.mu.Lock()
	if txID > c.lastRedactTx.Load() {
		c.lastRedactTx.Store(txID)
	}
	for _, p := range pos {
		delete(c.m, p)
	}
	c.mu.Unlock()
}
