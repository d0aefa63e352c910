package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lichen-hs/lichen/core/media"
)

// failingReader gives n bytes and then fails, as a connection that drops
// mid-upload does.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestMediaFilesPut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	m, err := OpenMediaFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789"), 600_000) // 6 MB, streamed
	sha, n, err := m.Put(bytes.NewReader(body), 10<<20)
	want := sha256.Sum256(body)
	if err != nil || n != int64(len(body)) || sha != hex.EncodeToString(want[:]) {
		t.Fatalf("Put: %s %d %v", sha, n, err)
	}
	f, size, err := m.Open(sha)
	if err != nil || size != n {
		t.Fatalf("Open: %d %v", size, err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, body) {
		t.Fatal("content differs")
	}
	// Same bytes: one file.
	if sha2, _, err := m.Put(bytes.NewReader(body), 10<<20); err != nil || sha2 != sha || countFiles(t, dir) != 1 {
		t.Fatalf("duplicate Put: %v, %d files", err, countFiles(t, dir))
	}
	// Too large, or a body that fails midway: nothing is left behind.
	if _, _, err := m.Put(bytes.NewReader(make([]byte, 101)), 100); !errors.Is(err, media.ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if _, _, err := m.Put(&failingReader{n: 1 << 20}, 10<<20); err == nil {
		t.Fatal("failed body stored")
	}
	if countFiles(t, dir) != 1 {
		t.Fatalf("%d files after refused puts, want 1", countFiles(t, dir))
	}
	// Hashes are checked before they become paths.
	for _, bad := range []string{"../../etc/passwd", "", sha[:10], "ZZ" + sha[2:]} {
		if _, _, err := m.Open(bad); !errors.Is(err, media.ErrNotFound) {
			t.Errorf("Open(%q): %v", bad, err)
		}
	}
	if err := m.Remove(sha); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Open(sha); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("removed file opens: %v", err)
	}
}

// TestMediaFilesCleansTemp: a temporary file an interrupted upload left
// (the process died before the rename) is removed at start and is never
// listed or served.
func TestMediaFilesCleansTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "media")
	if _, err := OpenMediaFiles(dir); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, "tmp", "up-123")
	if err := os.WriteFile(half, []byte("half an upl"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := OpenMediaFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file survived start: %v", err)
	}
	n := 0
	_ = m.List(func(string) error { n++; return nil })
	if n != 0 {
		t.Fatalf("listed %d files", n)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
