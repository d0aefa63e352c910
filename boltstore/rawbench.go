package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file holds the two measurements cmd/lichen-bench needs from inside
// the store (DESIGN.md, "Budgets"): the raw group-commit rate that message
// ingest is compared with, and how much of a database file bbolt really
// uses, since the file itself grows in large steps.

// bucketRawBench holds MeasureRawCommit's records. It is created inside
// the benchmark's own write transactions, not with register, so that real
// databases never get it.
var bucketRawBench = []byte("bench_raw")

// MeasureRawCommit opens (or creates) a Store at path and runs writers
// goroutines, each in a closed loop (it waits for its commit before the
// next write, as a client waits for its 200), putting a recSize-byte value
// under a unique key through the store's group committer for dur. It
// returns the committed writes per second. Keys come from one shared
// counter, big-endian, so records are appended in order as a room
// timeline is. path should be a fresh file on the disk under test; the
// store is closed on return.
func MeasureRawCommit(path string, writers int, recSize int, dur time.Duration) (writesPerSec float64, err error) {
	if writers < 1 || recSize < 0 || dur <= 0 {
		return 0, fmt.Errorf("MeasureRawCommit: want writers >= 1, recSize >= 0, dur > 0")
	}
	s, err := Open(path)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	value := make([]byte, recSize)
	for i := range value {
		// Not all zeroes, though bbolt does not compress either way.
		value[i] = byte(i*131 + 7)
	}
	var (
		seq    atomic.Uint64
		done   atomic.Int64
		wg     sync.WaitGroup
		errMu  sync.Mutex
		errRun error
	)
	start := time.Now()
	deadline := start.Add(dur)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				k := binary.BigEndian.AppendUint64(nil, seq.Add(1))
				werr := s.write(func(w *wtx) error {
					b, err := w.CreateBucketIfNotExists(bucketRawBench)
					if err != nil {
						return err
					}
					return b.Put(k, value)
				})
				if werr != nil {
					errMu.Lock()
					errRun = errors.Join(errRun, werr)
					errMu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if errRun != nil {
		return 0, errRun
	}
	return float64(done.Load()) / elapsed.Seconds(), nil
}

// DiskUsage is how much of a database file bbolt uses, from its own
// accounting rather than the file size.
type DiskUsage struct {
	FileBytes int64 // size of the file
	PageSize  int
	// PagesInUse is the high-water mark minus free and pending pages:
	// the pages the data occupies, fragmentation included.
	PagesInUse int64
	// BytesInUse is the bytes of branch and leaf pages that hold page
	// headers, element headers, keys and values (bbolt's BucketStats
	// BranchInuse + LeafInuse over the whole tree): a lower bound.
	BytesInUse int64
}

// MeasureDiskUsage opens the database at path read-only and reports its
// usage. The file must not be open in another process (bbolt holds an
// exclusive lock while a server runs), so stop the server first.
func MeasureDiskUsage(path string) (DiskUsage, error) {
	var u DiskUsage
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		ReadOnly:        true,
		Timeout:         2 * time.Second,
		PreLoadFreelist: true,
		FreelistType:    bolt.FreelistMapType,
	})
	if err != nil {
		return u, fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer db.Close()
	u.PageSize = db.Info().PageSize
	st := db.Stats()
	err = db.View(func(tx *bolt.Tx) error {
		hwm := tx.Size() / int64(u.PageSize)
		u.PagesInUse = hwm - int64(st.FreePageN) - int64(st.PendingPageN)
		// The root bucket's stats cover every bucket, with inline
		// buckets counted inside their parents' leaf pages.
		bs := tx.Cursor().Bucket().Stats()
		u.BytesInUse = int64(bs.BranchInuse + bs.LeafInuse)
		return nil
	})
	if err != nil {
		return u, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return u, err
	}
	u.FileBytes = fi.Size()
	return u, nil
}
