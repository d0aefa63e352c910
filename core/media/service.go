package media

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/lichen-hs/lichen/core/ids"
)

// Thumbnailer makes thumbnails: core/thumbnail's Make and Dimensions,
// adapted so that its ErrUnsupported is ErrCannotThumb and its ErrTooLarge
// ErrThumbTooLarge. A nil Make means no thumbnails: every request falls
// back as for an unsupported type.
type Thumbnailer struct {
	Make       func(src []byte, contentType string, width, height int, method string) ([]byte, string, error)
	Dimensions func(src []byte, contentType string) (w, h int, err error)
	// Upright reports whether the image displays as stored (no EXIF
	// rotation); nil means always.
	Upright func(src []byte, contentType string) bool
}

// Service is the content repository.
type Service struct {
	cfg   Config
	st    Store
	files FileStore
	thumb Thumbnailer
	now   func() time.Time

	// gc orders file removal against commits: a commit holds it shared
	// between checking its file exists and committing the record, and a
	// removal holds it exclusively between checking the hash is
	// unreferenced and deleting the file, so a record never points at a
	// deleted file (the same content may be uploaded while it is deleted).
	gc sync.RWMutex

	mu      sync.Mutex
	waiters map[string]*waiter // pending ID -> closed on upload
}

// New makes the service.
func New(cfg Config, st Store, files FileStore, thumb Thumbnailer) *Service {
	if cfg.UnusedExpiry <= 0 {
		cfg.UnusedExpiry = 24 * time.Hour
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10
	}
	return &Service{cfg: cfg, st: st, files: files, thumb: thumb, now: time.Now, waiters: map[string]*waiter{}}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Config returns the limits.
func (s *Service) Config() Config { return s.cfg }

// MXC is the content URI of a local media ID.
func (s *Service) MXC(id string) string { return "mxc://" + s.cfg.ServerName + "/" + id }

// newID is 24 random characters of [A-Za-z0-9] (spec "Matrix Content
// (mxc://) URIs": the media ID is only A-Za-z0-9, _ and -).
func newID() string { return ids.NewAlphanumericID(24) }

// ValidID reports whether id has only the characters the spec allows
// (security considerations: a whitelist, not a blacklist of '.' and '/').
func ValidID(id string) bool { return ids.ValidToken(id, 255) }

// Upload stores body as a new media item of user (POST /upload).
func (s *Service) Upload(user string, body io.Reader, contentType, filename string) (string, error) {
	rec := Record{ID: newID(), Uploader: user, ContentType: contentType, Filename: filename}
	if err := s.store(&rec, body); err != nil {
		return "", err
	}
	return rec.ID, nil
}

// Create reserves a media ID for a later UploadTo (POST /create) and
// returns it with its expiry in ms.
func (s *Service) Create(user string) (string, int64, error) {
	now := s.now()
	rec := Record{ID: newID(), Uploader: user, CreatedMs: now.UnixMilli(), ExpiresMs: now.Add(s.cfg.UnusedExpiry).UnixMilli()}
	if err := s.st.CreatePending(rec, s.cfg.MaxPending, rec.CreatedMs); err != nil {
		return "", 0, err
	}
	return rec.ID, rec.ExpiresMs, nil
}

// UploadTo fills a pending ID (PUT /upload/{serverName}/{mediaId}).
func (s *Service) UploadTo(user, id string, body io.Reader, contentType, filename string) error {
	rec, err := s.st.Get(id)
	if err != nil {
		return err
	}
	// Checked before the body is read so a refused upload costs nothing;
	// Commit checks again in its transaction.
	if !rec.Pending() {
		return ErrExists
	}
	if rec.Uploader != user {
		return ErrNotCreator
	}
	if s.now().UnixMilli() >= rec.ExpiresMs {
		return ErrNotFound
	}
	rec.ContentType, rec.Filename = contentType, filename
	if err := s.store(&rec, body); err != nil {
		return err
	}
	s.mu.Lock()
	if w, ok := s.waiters[id]; ok {
		close(w.ch)
		delete(s.waiters, id)
	}
	s.mu.Unlock()
	return nil
}

// store streams the content to its file, then commits the record: the file
// is durable before any record names it.
func (s *Service) store(rec *Record, body io.Reader) error {
	if rec.ContentType == "" {
		rec.ContentType = "application/octet-stream"
	}
	sha, size, err := s.files.Put(body, s.cfg.MaxUpload)
	if err != nil {
		return err
	}
	rec.SHA256, rec.Size = sha, size
	if rec.CreatedMs == 0 {
		rec.CreatedMs = s.now().UnixMilli()
	}
	s.gc.RLock()
	err = s.commitLocked(*rec)
	s.gc.RUnlock()
	if err != nil {
		// Nothing is stored for a refused upload: drop the file unless
		// other media share it.
		s.removeIfUnreferenced(sha)
	}
	return err
}

func (s *Service) commitLocked(rec Record) error {
	// A concurrent deletion of the same content may have removed the file
	// between Put and here; under gc no removal can run now.
	f, _, err := s.files.Open(rec.SHA256)
	if err != nil {
		return errors.New("media: content vanished during upload, retry")
	}
	f.Close()
	return s.st.Commit(rec, s.cfg.Quota, s.now().UnixMilli())
}

func (s *Service) removeIfUnreferenced(shas ...string) {
	s.gc.Lock()
	defer s.gc.Unlock()
	for _, sha := range shas {
		if used, err := s.st.Referenced(sha); err == nil && !used {
			_ = s.files.Remove(sha)
		}
	}
}

// Content is media ready to serve. The caller closes Body.
type Content struct {
	Body        ReadSeekCloser
	Size        int64
	ContentType string
	Filename    string
}

// Download opens a local media item, waiting up to wait (capped by
// MaxWait) for a pending upload (spec: timeout_ms, then 504
// M_NOT_YET_UPLOADED).
func (s *Service) Download(ctx context.Context, id string, wait time.Duration) (*Content, error) {
	rec, err := s.complete(ctx, id, wait)
	if err != nil {
		return nil, err
	}
	f, size, err := s.files.Open(rec.SHA256)
	if err != nil {
		return nil, err
	}
	return &Content{Body: f, Size: size, ContentType: rec.ContentType, Filename: rec.Filename}, nil
}

func (s *Service) complete(ctx context.Context, id string, wait time.Duration) (Record, error) {
	if !ValidID(id) {
		return Record{}, ErrNotFound
	}
	if wait > s.cfg.MaxWait {
		wait = s.cfg.MaxWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		rec, err := s.st.Get(id)
		if err != nil {
			return Record{}, err
		}
		if !rec.Pending() {
			return rec, nil
		}
		if s.now().UnixMilli() >= rec.ExpiresMs {
			return Record{}, ErrNotFound
		}
		w, done := s.wait(id)
		if done {
			continue // uploaded between Get and wait
		}
		select {
		case <-w.ch:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		s.unwait(id, w)
		return Record{}, ErrNotYetUploaded
	}
}

// waiter is a pending ID's wake-up channel and how many downloads hold it,
// so that an ID whose waiters all gave up leaves nothing in the map.
type waiter struct {
	ch chan struct{}
	n  int
}

// wait registers a download waiting for id. It re-reads the record under
// mu, which UploadTo takes to wake waiters, so an upload that lands
// between the caller's read and the registration is not missed (done).
func (s *Service) wait(id string) (*waiter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, err := s.st.Get(id); err != nil || !rec.Pending() {
		return nil, true
	}
	w, ok := s.waiters[id]
	if !ok {
		w = &waiter{ch: make(chan struct{})}
		s.waiters[id] = w
	}
	w.n++
	return w, false
}

func (s *Service) unwait(id string, w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.n--; w.n == 0 && s.waiters[id] == w {
		delete(s.waiters, id)
	}
}

// Exists reports whether id is a stored, completely uploaded media item.
func (s *Service) Exists(id string) bool {
	rec, err := s.st.Get(id)
	return err == nil && !rec.Pending()
}

// Delete removes one media item and any content no longer used.
func (s *Service) Delete(id string) error {
	gone, err := s.st.Delete(id)
	if err != nil {
		return err
	}
	s.removeIfUnreferenced(gone...)
	return nil
}

// PurgeBefore deletes every media item created before t (pending ones
// too) and returns the IDs it deleted.
func (s *Service) PurgeBefore(t time.Time) ([]string, error) {
	ids, err := s.st.CreatedBefore(t.UnixMilli())
	if err != nil {
		return nil, err
	}
	deleted := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := s.Delete(id); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return deleted, err
		}
		deleted = append(deleted, id)
	}
	return deleted, nil
}

// PurgeOlderThan deletes every media item created more than days days ago
// and returns how many it deleted.
func (s *Service) PurgeOlderThan(days int) (int, error) {
	ids, err := s.PurgeBefore(s.now().Add(-time.Duration(days) * 24 * time.Hour))
	return len(ids), err
}

// Sweep removes content files no record references: what a crash between
// a file's rename and its record's commit leaves. Run it at start.
func (s *Service) Sweep() (int, error) {
	var orphans []string
	err := s.files.List(func(sha string) error {
		used, err := s.st.Referenced(sha)
		if err == nil && !used {
			orphans = append(orphans, sha)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	s.removeIfUnreferenced(orphans...)
	return len(orphans), nil
}
