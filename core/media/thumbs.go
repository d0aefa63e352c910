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
// forbids.
var ThumbSizes = []ThumbSize{
	{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "crop"}, {640, 480, "crop"}, {800, 600, "crop"},
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
	var last ThumbSize
	for _, t := range ThumbSizes {
		if t.Method != method {
			continue
		}
		last = t
		if t.W >= w && t.H >= h {
			return t, nil
		}
	}
	return last, nil
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
	if t, err := s.st.Thumb(rec.SHA256, size.key()); err == nil && !larger {
		if f, n, err := s.files.Open(t.SHA256); err == nil {
			return &Content{Body: f, Size: n, ContentType: t.ContentType}, nil
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
