// Package urlpreview fetches a web page on a client's behalf and describes
// it as OpenGraph data (GET /_matrix/client/v1/media/preview_url).
//
// A home hub is a network client inside someone's LAN, so every fetch is
// confined by an address Policy checked at dial time; a page's og:image
// is fetched under the same rules and stored as local media so that
// clients load it from the homeserver, not from the site.
package urlpreview

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/gif" // dimensions of previewed images
	_ "image/jpeg"
	_ "image/png"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "golang.org/x/image/webp"
)

// Store keeps fetched images as local media: core/media.Service.
type Store interface {
	Upload(user string, body io.Reader, contentType, filename string) (string, error)
	MXC(id string) string
}

// Config is the previewer's limits and policy.
type Config struct {
	// Timeout bounds one preview: the page and its image (default 10 s).
	Timeout time.Duration
	// AllowPrivate admits LAN destinations; AllowLoopback admits the hub
	// itself and is for tests only (see Policy).
	AllowPrivate  bool
	AllowLoopback bool
	// MaxPageBytes is how much of an HTML page is read (default 1 MiB);
	// og tags are in the <head>, so a longer page is parsed truncated.
	MaxPageBytes int64
	// MaxImageBytes is the largest image stored (the media upload limit;
	// default 10 MiB). A larger og:image is left out of the preview.
	MaxImageBytes int64
	// UserAgent names the fetcher to the sites it visits.
	UserAgent string
	// CacheSize (default 256) and CacheTTL (default 1 h) bound the
	// in-memory cache of previews; failures are cached for ErrorTTL
	// (default 1 min) so that clients re-rendering a timeline do not make
	// an offline hub retry an unreachable site on every render.
	CacheSize int
	CacheTTL  time.Duration
	ErrorTTL  time.Duration
	// MaxConcurrent bounds fetches in progress (default 4): each holds up
	// to MaxPageBytes and its decoded copy, and a burst of links must not
	// take a board's memory. Others queue, within their Timeout.
	MaxConcurrent int
}

// Previewer makes previews. It is safe for concurrent use.
type Previewer struct {
	cfg    Config
	store  Store
	client *http.Client
	now    func() time.Time

	sem chan struct{} // MaxConcurrent slots

	mu       sync.Mutex
	cache    *lru
	inflight map[string]*call
}

// call is one fetch that concurrent requests for the same URL share.
type call struct {
	done chan struct{}
	og   map[string]any
	err  error
}

// New makes a previewer storing images in store.
func New(cfg Config, store Store) *Previewer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = 1 << 20
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = 10 << 20
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Lichen (Matrix homeserver; URL preview)"
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 256
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Hour
	}
	if cfg.ErrorTTL <= 0 {
		cfg.ErrorTTL = time.Minute
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 4
	}
	return &Previewer{
		cfg:      cfg,
		store:    store,
		client:   newClient(Policy{AllowPrivate: cfg.AllowPrivate, AllowLoopback: cfg.AllowLoopback}, cfg.Timeout),
		now:      time.Now,
		sem:      make(chan struct{}, cfg.MaxConcurrent),
		cache:    newLRU(cfg.CacheSize),
		inflight: map[string]*call{},
	}
}

// ParseURL accepts only absolute http and https URLs with a host. The
// fragment is dropped: it never reaches the site.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return nil, ErrInvalidURL
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// Fetch returns the OpenGraph data of rawURL for user, whose quota pays
// for a stored image (so that one account cannot fill the disk through
// previews). ts, the client's preferred point in time, is ignored: the
// spec lets the server "return a newer version if it does not have the
// requested version", and Lichen keeps only the latest.
//
// Errors: ErrInvalidURL, ErrBlocked, a FetchError (ErrFetch), or the
// Store's error when a URL that is itself an image cannot be stored.
// Nothing is stored when an error is returned.
func (p *Previewer) Fetch(ctx context.Context, user, rawURL string, ts int64) (map[string]any, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	key := u.String()
	p.mu.Lock()
	if e, ok := p.cache.get(key, p.now()); ok {
		p.mu.Unlock()
		return maps.Clone(e.og), e.err
	}
	c, ok := p.inflight[key]
	if !ok {
		c = &call{done: make(chan struct{})}
		p.inflight[key] = c
		// The fetch is not tied to the first caller's context: others
		// may be waiting for it, and its result is cached.
		go p.run(key, u, user, c)
	}
	p.mu.Unlock()
	select {
	case <-c.done:
		return maps.Clone(c.og), c.err
	case <-ctx.Done():
		return nil, &FetchError{Reason: "timed out", Err: ctx.Err()}
	}
}

func (p *Previewer) run(key string, u *url.URL, user string, c *call) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	busy := false
	select {
	case p.sem <- struct{}{}:
		c.og, c.err = p.preview(ctx, u, user)
		<-p.sem
	case <-ctx.Done():
		// Says nothing about the site: not cached.
		c.err, busy = &FetchError{Reason: "timed out waiting for other previews", Err: ctx.Err()}, true
	}
	cancel()
	p.mu.Lock()
	delete(p.inflight, key)
	switch {
	case busy:
	case c.err == nil:
		p.cache.put(key, entry{og: c.og, expires: p.now().Add(p.cfg.CacheTTL)})
	case errors.Is(c.err, ErrBlocked), errors.Is(c.err, ErrFetch):
		p.cache.put(key, entry{err: c.err, expires: p.now().Add(p.cfg.ErrorTTL)})
	}
	p.mu.Unlock()
	close(c.done)
}

const (
	acceptPage  = "text/html,application/xhtml+xml;q=0.9,image/*;q=0.8,*/*;q=0.1"
	acceptImage = "image/*"
)

// preview fetches u and describes it.
func (p *Previewer) preview(ctx context.Context, u *url.URL, user string) (map[string]any, error) {
	resp, err := p.get(ctx, u, acceptPage)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "" {
		// No declared type: sniff it as a browser would.
		head := make([]byte, 512)
		n, _ := io.ReadFull(body, head)
		mt, params, _ = mime.ParseMediaType(http.DetectContentType(head[:n]))
		body = io.MultiReader(bytes.NewReader(head[:n]), body)
	}
	mt = strings.ToLower(mt)
	og := map[string]any{}
	switch {
	case strings.HasPrefix(mt, "image/"):
		img, err := p.storeImage(user, body, mt, resp.Request.URL)
		if err != nil {
			return nil, err
		}
		img.describe(og, nil)
	case mt == "text/html" || mt == "application/xhtml+xml":
		raw, err := io.ReadAll(io.LimitReader(body, p.cfg.MaxPageBytes))
		if err != nil && len(raw) == 0 {
			return nil, classifyErr(ctx, err)
		}
		props := parseHTML(decodeHTML(raw, params["charset"]))
		var img *storedImage
		if src := props["og:image"]; src != "" {
			// Relative to the page's final URL, after redirects.
			if iu, err := resp.Request.URL.Parse(src); err == nil && (iu.Scheme == "http" || iu.Scheme == "https") {
				// An image that cannot be fetched or stored leaves the
				// preview without one: the text is still worth showing.
				img, _ = p.fetchImage(ctx, user, iu)
			}
		}
		for k, v := range props {
			if !strings.HasPrefix(k, "og:image") {
				og[k] = v
			}
		}
		if img != nil {
			img.describe(og, props)
		}
	}
	// Anything else (PDF, video, ...) has no OpenGraph data: the spec's
	// 200 with an empty object.
	return og, nil
}

// storedImage is an image kept as local media.
type storedImage struct {
	mxc           string
	contentType   string
	size          int64
	width, height int
}

// describe adds the image to og as the spec asks: og:image is the mxc
// URI, matrix:image:size its byte size, with the type and, when known,
// the dimensions (decoded ones, else those the page declared). The
// page's own og:image:url/secure_url are dropped: they point at the site,
// and clients should not load from it.
func (img *storedImage) describe(og map[string]any, props map[string]string) {
	og["og:image"] = img.mxc
	og["og:image:type"] = img.contentType
	og["matrix:image:size"] = img.size
	if alt := props["og:image:alt"]; alt != "" {
		og["og:image:alt"] = alt
	}
	w, h := img.width, img.height
	if w == 0 || h == 0 {
		w, _ = strconv.Atoi(props["og:image:width"])
		h, _ = strconv.Atoi(props["og:image:height"])
	}
	if w > 0 && h > 0 {
		og["og:image:width"], og["og:image:height"] = w, h
	}
}

// fetchImage fetches and stores a page's og:image.
func (p *Previewer) fetchImage(ctx context.Context, user string, u *url.URL) (*storedImage, error) {
	resp, err := p.get(ctx, u, acceptImage)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt = strings.ToLower(mt); !strings.HasPrefix(mt, "image/") {
		return nil, &FetchError{Reason: "og:image is not an image"}
	}
	if resp.ContentLength > p.cfg.MaxImageBytes {
		return nil, &FetchError{Reason: "the image is too large"}
	}
	return p.storeImage(user, resp.Body, mt, resp.Request.URL)
}

// headBytes is how much of an image is kept to read its dimensions
// (every supported format has them in its first few KiB).
const headBytes = 64 << 10

// storeImage streams an image into the store (never whole in memory: it
// may be as large as the upload limit), counting its size and keeping
// its head to read the dimensions.
func (p *Previewer) storeImage(user string, body io.Reader, contentType string, src *url.URL) (*storedImage, error) {
	cr := &capReader{r: body, max: p.cfg.MaxImageBytes}
	var head headBuf
	id, err := p.store.Upload(user, io.TeeReader(cr, &head), contentType, imageName(src))
	if cr.over {
		// The store saw a read error and kept nothing.
		return nil, &FetchError{Reason: "the image is too large"}
	}
	if err != nil {
		if cr.err != nil {
			return nil, &FetchError{Reason: "the image could not be read", Err: cr.err}
		}
		return nil, err
	}
	img := &storedImage{mxc: p.store.MXC(id), contentType: contentType, size: cr.n}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(head.b)); err == nil {
		img.width, img.height = cfg.Width, cfg.Height
	}
	return img, nil
}

// imageName is the last path segment of the image's URL, as the stored
// media's filename.
func imageName(u *url.URL) string {
	name := path.Base(u.Path)
	if name == "/" || name == "." || len(name) > 128 {
		return ""
	}
	return name
}

// capReader fails a read past max bytes, and remembers why reading
// stopped.
type capReader struct {
	r    io.Reader
	n    int64
	max  int64
	over bool
	err  error
}

var errImageTooLarge = &FetchError{Reason: "the image is too large"}

func (c *capReader) Read(b []byte) (int, error) {
	if c.n >= c.max {
		// One byte more tells "exactly max" from "larger".
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		switch {
		case n > 0:
			c.over = true
			return 0, errImageTooLarge
		case err == io.EOF:
			return 0, io.EOF
		}
		c.err = err
		return 0, err
	}
	if rem := c.max - c.n; int64(len(b)) > rem {
		b = b[:rem]
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// headBuf keeps the first headBytes written to it.
type headBuf struct{ b []byte }

func (h *headBuf) Write(p []byte) (int, error) {
	if room := headBytes - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
