// Package media is the content repository (spec "Content repository"):
// uploads, asynchronous uploads via /create, downloads, thumbnails, the
// per-user limits and the administrative deletion and purge. It decides;
// the bytes live in a FileStore and the metadata in a Store.
package media

import (
	"errors"
	"io"
	"time"
)

// Record is one media item's metadata. A record with an empty SHA256 is a
// pending asynchronous upload (POST /_matrix/media/v1/create).
type Record struct {
	ID          string `json:"id"`
	SHA256      string `json:"sha256,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Filename    string `json:"filename,omitempty"`
	Size        int64  `json:"size"`
	Uploader    string `json:"uploader"`
	CreatedMs   int64  `json:"created_ms"`
	// ExpiresMs is when a pending upload's ID lapses (unused_expires_at).
	ExpiresMs int64 `json:"expires_ms,omitempty"`
}

// Pending reports whether the content has not been uploaded yet.
func (r *Record) Pending() bool { return r.SHA256 == "" }

// Thumb is a stored thumbnail of some content, keyed by that content's
// hash and the spec size it was made for.
type Thumb struct {
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// Store keeps media metadata (implemented by boltstore). Every method that
// changes records is one durable transaction.
type Store interface {
	// CreatePending records a pending upload unless the uploader already
	// has maxPending unexpired ones (ErrTooManyPending).
	CreatePending(rec Record, maxPending int, nowMs int64) error
	// Commit stores rec's content fields: a new record, or the completion
	// of a pending one by its uploader. It enforces quota (ErrQuota when
	// the uploader's stored bytes would exceed it; 0 = no quota), refuses
	// an existing complete record (ErrExists), a pending one that expired
	// before nowMs (ErrNotFound) and another uploader's (ErrNotCreator).
	Commit(rec Record, quota int64, nowMs int64) error
	Get(id string) (Record, error)
	// Delete removes a record and returns the content hashes (of the
	// content and of its thumbnails) that no record references any more.
	Delete(id string) (unreferenced []string, err error)
	// CreatedBefore lists the IDs of records created before ms.
	CreatedBefore(ms int64) ([]string, error)
	Thumb(sha, spec string) (Thumb, error)
	PutThumb(sha, spec string, t Thumb) error
	// Referenced reports whether any record or thumbnail uses sha.
	Referenced(sha string) (bool, error)
}

// FileStore keeps content as files named by their SHA-256 (implemented by
// boltstore.MediaFiles).
type FileStore interface {
	// Put streams r to a durable file named by its hash. More than max
	// bytes is ErrTooLarge and leaves nothing behind.
	Put(r io.Reader, max int64) (sha string, size int64, err error)
	Open(sha string) (ReadSeekCloser, int64, error)
	Remove(sha string) error
	// List calls fn with the hash of every stored file.
	List(fn func(sha string) error) error
}

// ReadSeekCloser is an open content file.
type ReadSeekCloser interface {
	io.ReadSeekCloser
}

// Errors the store and service return; transport maps them to the spec's
// error codes.
var (
	ErrNotFound       = errors.New("media: not found")
	ErrExists         = errors.New("media: already uploaded")
	ErrNotCreator     = errors.New("media: not the creator")
	ErrQuota          = errors.New("media: quota exceeded")
	ErrTooLarge       = errors.New("media: too large")
	ErrTooManyPending = errors.New("media: too many pending uploads")
	ErrNotYetUploaded = errors.New("media: not yet uploaded")
	ErrCannotThumb    = errors.New("media: cannot thumbnail this content")
	ErrThumbTooLarge  = errors.New("media: image too large to thumbnail")
	ErrBadRequest     = errors.New("media: bad request")
)

// Config are the limits.
type Config struct {
	ServerName string
	MaxUpload  int64 // bytes per upload
	Quota      int64 // bytes per user, 0 = none
	MaxPending int   // pending /create IDs per user
	// UnusedExpiry is how long a /create ID waits for its content; the
	// spec recommends 24 hours.
	UnusedExpiry time.Duration
	// MaxWait caps a download's timeout_ms ("The content repository
	// SHOULD impose a maximum value for this parameter").
	MaxWait time.Duration
	// MaxThumbSource is the largest content that is thumbnailed; larger
	// is 413 M_TOO_LARGE per "Security considerations".
	MaxThumbSource int64
}
