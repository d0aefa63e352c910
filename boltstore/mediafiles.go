package boltstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lichen-hs/lichen/core/media"
)

// MediaFiles keeps media content as files named by their SHA-256 under
// dir/<first two hex digits>/<hash> (DESIGN "Media": bbolt is not a blob
// store). A file is written under dir/tmp, fsynced, renamed into place and
// its directory fsynced before Put returns, so a record committed after
// Put never names a missing or half-written file. Identical content is
// stored once.
type MediaFiles struct {
	dir string
}

// OpenMediaFiles opens (creating) the file store at dir and removes the
// temporary files an interrupted upload left behind.
func OpenMediaFiles(dir string) (*MediaFiles, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	tmps, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		return nil, err
	}
	for _, e := range tmps {
		_ = os.Remove(filepath.Join(dir, "tmp", e.Name()))
	}
	return &MediaFiles{dir: dir}, nil
}

func validSHA(sha string) bool {
	if len(sha) != 64 {
		return false
	}
	_, err := hex.DecodeString(sha)
	return err == nil && strings.ToLower(sha) == sha
}

func (m *MediaFiles) path(sha string) string { return filepath.Join(m.dir, sha[:2], sha) }

// Put streams r to disk, hashing as it writes, so a large upload never
// sits in memory. More than max bytes (max > 0) is media.ErrTooLarge and
// the temporary file is removed.
func (m *MediaFiles) Put(r io.Reader, max int64) (string, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(m.dir, "tmp"), "up-*")
	if err != nil {
		return "", 0, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	src := r
	if max > 0 {
		src = io.LimitReader(r, max+1)
	}
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), src, make([]byte, 64<<10))
	if err != nil {
		return "", 0, err
	}
	if max > 0 && n > max {
		return "", 0, media.ErrTooLarge
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", 0, err
	}
	sha := hex.EncodeToString(h.Sum(nil))
	sub := filepath.Join(m.dir, sha[:2])
	if _, err := os.Stat(sub); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(sub, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", 0, err
		}
		if err := syncDir(m.dir); err != nil {
			return "", 0, err
		}
	}
	// Renaming over an existing file of the same hash is harmless: the
	// bytes are the same.
	if err := os.Rename(tmp.Name(), m.path(sha)); err != nil {
		return "", 0, err
	}
	done = true
	if err := syncDir(sub); err != nil {
		return "", 0, err
	}
	return sha, n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open opens the content of sha.
func (m *MediaFiles) Open(sha string) (media.ReadSeekCloser, int64, error) {
	if !validSHA(sha) {
		return nil, 0, media.ErrNotFound
	}
	f, err := os.Open(m.path(sha))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, media.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Remove deletes the content of sha (no error when it is already gone).
func (m *MediaFiles) Remove(sha string) error {
	if !validSHA(sha) {
		return nil
	}
	if err := os.Remove(m.path(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// List calls fn with every stored hash.
func (m *MediaFiles) List(fn func(sha string) error) error {
	subs, err := os.ReadDir(m.dir)
	if err != nil {
		return err
	}
	for _, sd := range subs {
		if !sd.IsDir() || len(sd.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(m.dir, sd.Name()))
		if err != nil {
			return err
		}
		for _, f := range files {
			if validSHA(f.Name()) {
				if err := fn(f.Name()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
