package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore and memFiles are in-memory Store and FileStore with the same
// rules as boltstore's (which has its own tests against real files).
type memStore struct {
	mu     sync.Mutex
	recs   map[string]Record
	usage  map[string]int64
	refs   map[string]int
	thumbs map[string]Thumb
}

func newMemStore() *memStore {
	return &memStore{recs: map[string]Record{}, usage: map[string]int64{}, refs: map[string]int{}, thumbs: map[string]Thumb{}}
}

func (m *memStore) CreatePending(rec Record, maxPending int, now int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.recs {
		if r.Pending() && r.Uploader == rec.Uploader && r.ExpiresMs > now {
			n++
		}
	}
	if n >= maxPending {
		return ErrTooManyPending
	}
	m.recs[rec.ID] = rec
	return nil
}

func (m *memStore) Commit(rec Record, quota, now int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.recs[rec.ID]; ok {
		switch {
		case !prev.Pending():
			return ErrExists
		case prev.Uploader != rec.Uploader:
			return ErrNotCreator
		case now >= prev.ExpiresMs:
			return ErrNotFound
		}
		rec.ExpiresMs = 0
	}
	if quota > 0 && m.usage[rec.Uploader]+rec.Size > quota {
		return ErrQuota
	}
	m.usage[rec.Uploader] += rec.Size
	m.refs[rec.SHA256]++
	m.recs[rec.ID] = rec
	return nil
}

func (m *memStore) Get(id string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	return r, nil
}

func (m *memStore) Delete(id string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return nil, ErrNotFound
	}
	delete(m.recs, id)
	if r.Pending() {
		return nil, nil
	}
	m.usage[r.Uploader] -= r.Size
	if m.refs[r.SHA256]--; m.refs[r.SHA256] > 0 {
		return nil, nil
	}
	delete(m.refs, r.SHA256)
	gone := []string{r.SHA256}
	for k, t := range m.thumbs {
		if strings.HasPrefix(k, r.SHA256+"\x00") {
			delete(m.thumbs, k)
			if m.refs[t.SHA256]--; m.refs[t.SHA256] <= 0 {
				delete(m.refs, t.SHA256)
				gone = append(gone, t.SHA256)
			}
		}
	}
	return gone, nil
}

func (m *memStore) CreatedBefore(ms int64) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, r := range m.recs {
		if r.CreatedMs < ms {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (m *memStore) Thumb(sha, spec string) (Thumb, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.thumbs[sha+"\x00"+spec]
	if !ok {
		return Thumb{}, ErrNotFound
	}
	return t, nil
}

func (m *memStore) PutThumb(sha, spec string, t Thumb) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refs[sha] == 0 {
		return ErrNotFound
	}
	m.thumbs[sha+"\x00"+spec] = t
	m.refs[t.SHA256]++
	return nil
}

func (m *memStore) Referenced(sha string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refs[sha] > 0, nil
}

type memFiles struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (f *memFiles) Put(r io.Reader, max int64) (string, int64, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return "", 0, err
	}
	if int64(len(b)) > max {
		return "", 0, ErrTooLarge
	}
	h := sha256.Sum256(b)
	sha := hex.EncodeToString(h[:])
	f.mu.Lock()
	f.files[sha] = b
	f.mu.Unlock()
	return sha, int64(len(b)), nil
}

func (f *memFiles) Open(sha string) (ReadSeekCloser, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[sha]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return nopSeekCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

func (f *memFiles) Remove(sha string) error {
	f.mu.Lock()
	delete(f.files, sha)
	f.mu.Unlock()
	return nil
}

func (f *memFiles) List(fn func(string) error) error {
	f.mu.Lock()
	var shas []string
	for s := range f.files {
		shas = append(shas, s)
	}
	f.mu.Unlock()
	for _, s := range shas {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

func (f *memFiles) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.files)
}

func newTestService(thumb Thumbnailer) (*Service, *memStore, *memFiles) {
	st, fs := newMemStore(), &memFiles{files: map[string][]byte{}}
	s := New(Config{ServerName: "hub", MaxUpload: 100, Quota: 150, MaxPending: 2, MaxWait: 2 * time.Second}, st, fs, thumb)
	return s, st, fs
}

func read(t *testing.T, c *Content) string {
	t.Helper()
	defer c.Body.Close()
	b, err := io.ReadAll(c.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUploadLimits(t *testing.T) {
	s, _, fs := newTestService(Thumbnailer{})
	ctx := context.Background()
	id, err := s.Upload("@a:hub", strings.NewReader("hello"), "", "h.txt")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Download(ctx, id, 0)
	if err != nil || read(t, c) != "hello" || c.ContentType != "application/octet-stream" || c.Filename != "h.txt" {
		t.Fatalf("download: %+v %v", c, err)
	}
	// Quota 150: "hello" (5) is stored; each case uses its own bytes so
	// none is deduplicated with another.
	for _, tc := range []struct {
		name, user, fill string
		size             int
		want             error
	}{
		{"over the upload limit", "@a:hub", "a", 101, ErrTooLarge},
		{"at the upload limit", "@a:hub", "b", 100, nil},
		{"over the quota", "@a:hub", "c", 50, ErrQuota},
		{"up to the quota", "@a:hub", "d", 45, nil},
		{"another user's quota", "@b:hub", "e", 100, nil},
	} {
		before := fs.count()
		_, err := s.Upload(tc.user, strings.NewReader(strings.Repeat(tc.fill, tc.size)), "", "")
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want != nil && fs.count() != before {
			t.Errorf("%s: refused upload left a file", tc.name)
		}
	}
}

func TestAsyncUpload(t *testing.T) {
	s, _, _ := newTestService(Thumbnailer{})
	now := time.Unix(1_700_000_000, 0)
	s.SetClock(func() time.Time { return now })
	ctx := context.Background()
	id, exp, err := s.Create("@a:hub")
	if err != nil || exp != now.Add(24*time.Hour).UnixMilli() {
		t.Fatalf("create: %v %d", err, exp)
	}
	if _, err := s.Download(ctx, id, 10*time.Millisecond); !errors.Is(err, ErrNotYetUploaded) {
		t.Fatalf("pending download: %v", err)
	}
	s.mu.Lock()
	left := len(s.waiters)
	s.mu.Unlock()
	if left != 0 {
		t.Fatalf("a timed-out download left %d waiters", left)
	}
	done := make(chan string)
	go func() {
		c, err := s.Download(ctx, id, time.Second)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- read(t, c)
	}()
	time.Sleep(20 * time.Millisecond)
	for _, tc := range []struct {
		user string
		want error
	}{
		{"@b:hub", ErrNotCreator},
		{"@a:hub", nil},
		{"@a:hub", ErrExists},
	} {
		if err := s.UploadTo(tc.user, id, strings.NewReader("late"), "text/plain", ""); !errors.Is(err, tc.want) {
			t.Errorf("UploadTo by %s: %v, want %v", tc.user, err, tc.want)
		}
	}
	if got := <-done; got != "late" {
		t.Fatalf("waiting download: %q", got)
	}
	// Pending limit, and expiry frees a slot and makes the ID unknown.
	a, _, _ := s.Create("@c:hub")
	if _, _, err := s.Create("@c:hub"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create("@c:hub"); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("third pending: %v", err)
	}
	now = now.Add(25 * time.Hour)
	if err := s.UploadTo("@c:hub", a, strings.NewReader("x"), "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired upload: %v", err)
	}
	if _, err := s.Download(ctx, a, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired download: %v", err)
	}
	if _, _, err := s.Create("@c:hub"); err != nil {
		t.Fatalf("create after expiry: %v", err)
	}
}

func TestDeleteKeepsSharedContent(t *testing.T) {
	s, _, fs := newTestService(Thumbnailer{})
	a, _ := s.Upload("@a:hub", strings.NewReader("same"), "", "")
	b, _ := s.Upload("@b:hub", strings.NewReader("same"), "", "")
	if fs.count() != 1 {
		t.Fatalf("%d files for one content", fs.count())
	}
	if err := s.Delete(a); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Download(context.Background(), b, 0); err != nil || read(t, c) != "same" {
		t.Fatalf("shared content after delete: %v", err)
	}
	if err := s.Delete(b); err != nil || fs.count() != 0 {
		t.Fatalf("last delete: %v, %d files", err, fs.count())
	}
	if err := s.Delete(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPurgeAndSweep(t *testing.T) {
	s, _, fs := newTestService(Thumbnailer{})
	now := time.Unix(1_700_000_000, 0)
	s.SetClock(func() time.Time { return now })
	old, _ := s.Upload("@a:hub", strings.NewReader("old"), "", "")
	now = now.Add(10 * 24 * time.Hour)
	recent, _ := s.Upload("@a:hub", strings.NewReader("new"), "", "")
	if n, err := s.PurgeOlderThan(5); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := s.Download(context.Background(), old, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purged: %v", err)
	}
	if _, err := s.Download(context.Background(), recent, 0); err != nil {
		t.Fatalf("kept: %v", err)
	}
	// A file with no record (a crash between rename and commit) is swept.
	_, _, _ = fs.Put(strings.NewReader("orphan"), 100)
	if n, err := s.Sweep(); err != nil || n != 1 || fs.count() != 1 {
		t.Fatalf("sweep: %d %v, %d files", n, err, fs.count())
	}
}

func TestThumbnail(t *testing.T) {
	calls := 0
	thumb := Thumbnailer{
		Make: func(src []byte, ct string, w, h int, method string) ([]byte, string, error) {
			calls++
			if ct != "image/png" {
				return nil, "", ErrCannotThumb
			}
			return []byte("thumb " + method), "image/png", nil
		},
		Dimensions: func(src []byte, ct string) (int, int, error) {
			if string(src) == "tiny" {
				return 10, 10, nil
			}
			return 1000, 1000, nil
		},
	}
	s, _, _ := newTestService(thumb)
	ctx := context.Background()
	png, _ := s.Upload("@a:hub", strings.NewReader("big"), "image/png", "")
	tiny, _ := s.Upload("@a:hub", strings.NewReader("tiny"), "image/png", "")
	pdf, _ := s.Upload("@a:hub", strings.NewReader("pdf"), "application/pdf", "")
	for i := 0; i < 2; i++ {
		c, err := s.Thumbnail(ctx, png, 64, 64, "crop", 0)
		if err != nil || read(t, c) != "thumb crop" {
			t.Fatalf("thumbnail: %v", err)
		}
	}
	if calls != 1 {
		t.Errorf("thumbnail made %d times, want once (then stored)", calls)
	}
	if c, err := s.Thumbnail(ctx, tiny, 64, 64, "crop", 0); err != nil || read(t, c) != "tiny" {
		t.Errorf("small content should come back as is: %v", err)
	}
	if _, err := s.Thumbnail(ctx, pdf, 64, 64, "crop", 0); !errors.Is(err, ErrCannotThumb) {
		t.Errorf("pdf: %v", err)
	}
	// Larger than every size (the 800×600 thumbnail exists now): only the
	// original is not smaller than asked.
	if _, err := s.Thumbnail(ctx, png, 800, 600, "scale", 0); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Thumbnail(ctx, png, 1600, 1200, "scale", 0); err != nil || read(t, c) != "big" {
		t.Errorf("1600×1200 of a 1000×1000 image should be the original: %v", err)
	}
	none, _, _ := newTestService(Thumbnailer{})
	id, _ := none.Upload("@a:hub", strings.NewReader("big"), "image/png", "")
	if _, err := none.Thumbnail(ctx, id, 64, 64, "crop", 0); !errors.Is(err, ErrCannotThumb) {
		t.Errorf("no thumbnailer: %v", err)
	}
}

// TestThumbnailLargerRotated: a request larger than every size gets a
// rotated photo's largest thumbnail (never the sideways original), made
// once and then read from the store.
func TestThumbnailLargerRotated(t *testing.T) {
	calls := 0
	s, _, _ := newTestService(Thumbnailer{
		Make: func(src []byte, ct string, w, h int, method string) ([]byte, string, error) {
			calls++
			return []byte(fmt.Sprintf("upright %dx%d", w, h)), "image/jpeg", nil
		},
		Dimensions: func(src []byte, ct string) (int, int, error) { return 1000, 1000, nil },
		Upright:    func(src []byte, ct string) bool { return false },
	})
	ctx := context.Background()
	id, _ := s.Upload("@a:hub", strings.NewReader("rotated photo"), "image/jpeg", "")
	for i := 0; i < 3; i++ {
		c, err := s.Thumbnail(ctx, id, 1600, 1200, "scale", 0)
		if err != nil || read(t, c) != "upright 800x600" {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if calls != 1 {
		t.Errorf("made %d times, want once", calls)
	}
}
