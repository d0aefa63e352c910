package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ThumbSize is one of the sizes the spec says servers SHOULD produce.
type ThumbSize struct {
	W, H   int
	Method string
}

// ThumbSizes are the spec's sizes ("Thumbnails"), smallest first.
// The larger crops are not in the spec's list; without them a 320×240
// crop request could only get 96×96, smaller than asked, which the spec
// forbids. Square and 4:3 crops of each size let a crop keep the
// request's shape ("crop" returns the requested aspect ratio).
var ThumbSizes = []ThumbSize{
	{32, 32, "crop"}, {96, 96, "crop"}, {320, 320, "crop"}, {320, 240, "crop"},
	{640, 640, "crop"}, {640, 480, "crop"}, {800, 800, "crop"}, {800, 600, "crop"},
	{320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"},
}

// PickThumbSize chooses the smallest spec size of the requested method
// that is at least w x h ("Servers MUST NOT return a smaller thumbnail than
// requested"), or the largest one when none is that large. Thumbnails are
// made once per size and stored, so a client cannot make the server
// render arbitrary sizes.
func PickThumbSize(w, h int, method string) (ThumbSize, error) {
	if w <= 0 || h <= 0 {
		return ThumbSize{}, fmt.Errorf("%w: width and height must be positive", ErrBadRequest)
	}
	if method == "" {
		method = "scale"
	}
	if method != "scale" && method != "crop" {
		return ThumbSize{}, fmt.Errorf("%w: method must be crop or scale", ErrBadRequest)
	}
	// The smallest size class with a size at least w×h; for crop, within
	// it, the size closest to the requested shape.
	var best, last ThumbSize
	found := false
	want := float64(w) / float64(h)
	for _, t := range ThumbSizes {
		if t.Method != method {
			continue
		}
		if last.W*last.H < t.W*t.H {
			last = t
		}
		if t.W < w || t.H < h {
			continue
		}
		if !found || better(t, best, want, method) {
			best, found = t, true
		}
	}
	if !found {
		return last, nil
	}
	return best, nil
}

// better says whether t is a better pick than b for a request of aspect
// ratio want: the smaller size class (the width: 32, 96, 320, 640, 800)
// first, then for crop the closer shape, then the smaller area.
func better(t, b ThumbSize, want float64, method string) bool {
	if t.W != b.W {
		return t.W < b.W
	}
	if method == "crop" {
		dt, db := shapeDiff(t, want), shapeDiff(b, want)
		if dt != db {
			return dt < db
		}
	}
	return t.W*t.H < b.W*b.H
}

func shapeDiff(t ThumbSize, want float64) float64 {
	r := float64(t.W) / float64(t.H) / want
	if r < 1 {
		r = 1 / r
	}
	return r
}

func (t ThumbSize) key() string { return fmt.Sprintf("%dx%d-%s", t.W, t.H, t.Method) }

// Thumbnail returns a thumbnail of local media id at least w x h. When the
// content is smaller than the chosen size it is returned itself, as the
// spec asks ("servers should return the original content rather than
// thumbnail it"); content of a type that cannot be thumbnailed is
// ErrCannotThumb (400 M_UNKNOWN: "the server cannot thumbnail the
// content").
func (s *Service) Thumbnail(ctx context.Context, id string, w, h int, method string, wait time.Duration) (*Content, error) {
	size, err := PickThumbSize(w, h, method)
	if err != nil {
		return nil, err
	}
	rec, err := s.complete(ctx, id, wait)
	if err != nil {
		return nil, err
	}
	// Larger than every size: the original is the only answer that is not
	// smaller than asked ("Servers MUST NOT return a smaller thumbnail
	// than requested, unless the original content makes that impossible").
	larger := size.W < w || size.H < h
	stored := func() *Content {
		if t, err := s.st.Thumb(rec.SHA256, size.key()); err == nil {
			if f, n, err := s.files.Open(t.SHA256); err == nil {
				return &Content{Body: f, Size: n, ContentType: t.ContentType}
			}
		}
		return nil
	}
	// A request larger than every size is usually answered with the
	// original, which needs the source read first; a rotated photo gets
	// the largest (stored) thumbnail instead.
	if !larger {
		if c := stored(); c != nil {
			return c, nil
		}
	}
	if s.thumb.Make == nil {
		return nil, ErrCannotThumb
	}
	if s.cfg.MaxThumbSource > 0 && rec.Size > s.cfg.MaxThumbSource {
		return nil, ErrThumbTooLarge
	}
	f, _, err := s.files.Open(rec.SHA256)
	if err != nil {
		return nil, err
	}
	src, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	if s.thumb.Dimensions != nil {
		sw, sh, err := s.thumb.Dimensions(src, rec.ContentType)
		if err != nil {
			return nil, err
		}
		// Never upscale: content no larger than the size is served as is,
		// unless it is a rotated photo, which is re-encoded upright.
		upright := s.thumb.Upright == nil || s.thumb.Upright(src, rec.ContentType)
		if (larger || sw <= size.W && sh <= size.H) && upright {
			return &Content{Body: nopSeekCloser{bytes.NewReader(src)}, Size: int64(len(src)), ContentType: rec.ContentType}, nil
		}
		if larger {
			if c := stored(); c != nil {
				return c, nil
			}
		}
	}
	out, outType, err := s.thumb.Make(src, rec.ContentType, size.W, size.H, size.Method)
	if err != nil {
		return nil, err
	}
	// Store it like any content, by hash, so the next request is a read.
	sha, n, err := s.files.Put(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		return nil, err
	}
	s.gc.RLock()
	err = s.st.PutThumb(rec.SHA256, size.key(), Thumb{SHA256: sha, ContentType: outType, Size: n})
	s.gc.RUnlock()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return &Content{Body: nopSeekCloser{bytes.NewReader(out)}, Size: n, ContentType: outType}, nil
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }
