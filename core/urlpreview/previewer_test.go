package urlpreview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is the media store: it keeps what was uploaded.
type memStore struct {
	mu    sync.Mutex
	items map[string]storedItem
	quota bool // refuse every upload as over quota
}

type storedItem struct {
	user, contentType, filename string
	body                        []byte
}

var errQuota = errors.New("quota")

func newMemStore() *memStore { return &memStore{items: map[string]storedItem{}} }

func (m *memStore) Upload(user string, body io.Reader, contentType, filename string) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.quota {
		return "", errQuota
	}
	id := fmt.Sprintf("id%d", len(m.items)+1)
	m.items[id] = storedItem{user, contentType, filename, b}
	return id, nil
}

func (m *memStore) MXC(id string) string { return "mxc://hub.test/" + id }

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

func (m *memStore) get(mxc string) storedItem {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.items[strings.TrimPrefix(mxc, "mxc://hub.test/")]
}

func testPNG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		img.Set(x, 0, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// site is a test web server on loopback.
type site struct {
	*httptest.Server
	hits    atomic.Int64
	methods sync.Map // method -> true
	agents  sync.Map // user agent -> true
}

func newSite(t *testing.T, routes map[string]http.HandlerFunc) *site {
	s := &site{}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.HandleFunc(p, h)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.methods.Store(r.Method, true)
		s.agents.Store(r.UserAgent(), true)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func serve(ct, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		_, _ = io.WriteString(w, body)
	}
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
}

// testConfig admits loopback (the test sites) and nothing else private.
func testConfig() Config {
	return Config{AllowLoopback: true, Timeout: 5 * time.Second, MaxImageBytes: 1 << 20, UserAgent: "Lichen-test/1"}
}

func TestPreviewPage(t *testing.T) {
	pic := testPNG(40, 30)
	s := newSite(t, map[string]http.HandlerFunc{
		"/page": serve("text/html; charset=utf-8", `<html><head>
			<meta property="og:title" content="Hub news">
			<meta property="og:description" content="Sensors online">
			<meta property="og:image" content="/static/pic.png">
			<meta property="og:image:url" content="http://site/pic.png">
			<meta property="og:image:secure_url" content="https://site/pic.png">
			<meta property="og:image:alt" content="A red line">
			<meta property="og:image:width" content="999">
			<meta property="og:site_name" content="Hub">
			</head><body>x</body></html>`),
		"/static/pic.png": serve("image/png", string(pic)),
	})
	st := newMemStore()
	p := New(testConfig(), st)
	og, err := p.Fetch(context.Background(), "@alice:hub.test", s.URL+"/page#frag", 0)
	if err != nil {
		t.Fatal(err)
	}
	mxc, _ := og["og:image"].(string)
	want := map[string]any{
		"og:title": "Hub news", "og:description": "Sensors online", "og:site_name": "Hub",
		"og:image": mxc, "og:image:type": "image/png", "og:image:alt": "A red line",
		"og:image:width": 40, "og:image:height": 30, "matrix:image:size": int64(len(pic)),
	}
	if fmt.Sprint(og) != fmt.Sprint(want) || !strings.HasPrefix(mxc, "mxc://hub.test/") {
		t.Fatalf("og = %v\nwant %v", og, want)
	}
	item := st.get(mxc)
	if !bytes.Equal(item.body, pic) || item.user != "@alice:hub.test" || item.contentType != "image/png" || item.filename != "pic.png" {
		t.Errorf("stored %+v", item)
	}
	if _, ok := s.agents.Load("Lichen-test/1"); !ok {
		t.Error("User-Agent not sent")
	}
	s.methods.Range(func(k, _ any) bool {
		if k != "GET" {
			t.Errorf("method %v used", k)
		}
		return true
	})

	// Cached: same answer, no new request, nothing stored again; the
	// fragment is not part of the key.
	hits := s.hits.Load()
	og2, err := p.Fetch(context.Background(), "@bob:hub.test", s.URL+"/page", 0)
	if err != nil || fmt.Sprint(og2) != fmt.Sprint(og) || s.hits.Load() != hits || st.count() != 1 {
		t.Errorf("second fetch: %v %v, hits %d->%d, stored %d", og2, err, hits, s.hits.Load(), st.count())
	}
	// The caller's copy is its own.
	og2["og:title"] = "changed"
	if og3, _ := p.Fetch(context.Background(), "@bob:hub.test", s.URL+"/page", 0); og3["og:title"] != "Hub news" {
		t.Error("cache entry was modified through a returned map")
	}
}

func TestPreviewCases(t *testing.T) {
	pic := testPNG(8, 8)
	big := bytes.Repeat([]byte("x"), 2<<20)
	s := newSite(t, map[string]http.HandlerFunc{
		"/plain":     serve("text/html", `<title>Only a title</title><meta name="description" content="and a description">`),
		"/pic.png":   serve("image/png", string(pic)),
		"/image":     serve("image/png", string(pic)),
		"/sniffed":   serve("", `<!DOCTYPE html><html><head><title>Sniffed</title></head></html>`),
		"/pdf":       serve("application/pdf", "%PDF-1.4"),
		"/latin1":    serve("text/html; charset=iso-8859-1", "<title>Caf\xe9</title>"),
		"/huge":      serve("text/html", "<html><head><title>Huge</title></head><body>"+string(big)+`<meta property="og:description" content="too far">`),
		"/noimage":   serve("text/html", `<meta property="og:title" content="T"><meta property="og:image" content="/missing.png"><meta property="og:image:width" content="10">`),
		"/notimage":  serve("text/html", `<meta property="og:title" content="T"><meta property="og:image" content="/plain">`),
		"/bigimage":  serve("text/html", `<meta property="og:title" content="T"><meta property="og:image" content="/big.png">`),
		"/big.png":   serve("image/png", string(big)),
		"/metaimg":   serve("text/html", `<meta property="og:title" content="T"><meta property="og:image" content="http://169.254.169.254/latest/meta-data">`),
		"/dataimg":   serve("text/html", `<meta property="og:title" content="T"><meta property="og:image" content="data:image/png;base64,AAAA">`),
		"/r1":        redirect("/r2"),
		"/r2":        redirect("/plain"),
		"/status":    func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) },
		"/toblocked": redirect("http://169.254.169.254/latest/meta-data/"),
		"/tolan":     redirect("http://10.11.12.13/admin"),
		"/toftp":     redirect("ftp://example.org/file"),
		"/loop":      redirect("/loop"),
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		},
	})
	type want struct {
		og     map[string]any
		err    error
		reason string
		stored int
	}
	for _, tc := range []struct {
		path string
		want want
	}{
		{"/plain", want{og: map[string]any{"og:title": "Only a title", "og:description": "and a description"}}},
		{"/r1", want{og: map[string]any{"og:title": "Only a title", "og:description": "and a description"}}},
		{"/image", want{og: map[string]any{"og:image": "mxc://hub.test/id1", "og:image:type": "image/png",
			"og:image:width": 8, "og:image:height": 8, "matrix:image:size": int64(len(pic))}, stored: 1}},
		{"/sniffed", want{og: map[string]any{"og:title": "Sniffed"}}},
		{"/pdf", want{og: map[string]any{}}},
		{"/latin1", want{og: map[string]any{"og:title": "Café"}}},
		{"/huge", want{og: map[string]any{"og:title": "Huge"}}},
		// An og:image that cannot be had leaves a preview without image.
		{"/noimage", want{og: map[string]any{"og:title": "T"}}},
		{"/notimage", want{og: map[string]any{"og:title": "T"}}},
		{"/bigimage", want{og: map[string]any{"og:title": "T"}}},
		{"/metaimg", want{og: map[string]any{"og:title": "T"}}},
		{"/dataimg", want{og: map[string]any{"og:title": "T"}}},
		{"/big.png", want{err: ErrFetch, reason: "the image is too large"}},
		{"/status", want{err: ErrFetch, reason: "the site answered 410 Gone"}},
		{"/toblocked", want{err: ErrBlocked}},
		{"/tolan", want{err: ErrBlocked}},
		{"/toftp", want{err: ErrFetch, reason: "redirected to a non-HTTP URL"}},
		{"/loop", want{err: ErrFetch, reason: "too many redirects"}},
	} {
		st := newMemStore()
		p := New(testConfig(), st)
		og, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+tc.path, 0)
		if !errors.Is(err, tc.want.err) || (tc.want.err == nil && err != nil) {
			t.Errorf("%s: error %v, want %v", tc.path, err, tc.want.err)
			continue
		}
		var fe *FetchError
		if tc.want.reason != "" && (!errors.As(err, &fe) || fe.Reason != tc.want.reason) {
			t.Errorf("%s: error %v, want reason %q", tc.path, err, tc.want.reason)
		}
		if tc.want.err == nil && fmt.Sprint(og) != fmt.Sprint(tc.want.og) {
			t.Errorf("%s: og = %v, want %v", tc.path, og, tc.want.og)
		}
		if st.count() != tc.want.stored {
			t.Errorf("%s: %d items stored, want %d", tc.path, st.count(), tc.want.stored)
		}
	}

	// The slow site times out.
	cfg := testConfig()
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := New(cfg, newMemStore()).Fetch(context.Background(), "@u:hub.test", s.URL+"/slow", 0)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Reason != "timed out" || time.Since(start) > 3*time.Second {
		t.Errorf("slow site: %v after %v", err, time.Since(start))
	}

	// Over quota: a direct image URL fails with the store's error; a
	// page keeps its text.
	st := newMemStore()
	st.quota = true
	p := New(testConfig(), st)
	if _, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/image", 0); !errors.Is(err, errQuota) {
		t.Errorf("image over quota: %v", err)
	}
	if og, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/bigimage", 0); err != nil || og["og:title"] != "T" || og["og:image"] != nil {
		t.Errorf("page over quota: %v %v", og, err)
	}
}

// TestDefaultRefusesLoopback: without the test-only setting, the hub never
// connects to itself, and nothing is stored.
func TestDefaultRefusesLoopback(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{"/": serve("image/png", string(testPNG(2, 2)))})
	st := newMemStore()
	p := New(Config{Timeout: 5 * time.Second}, st)
	port := s.URL[strings.LastIndex(s.URL, ":"):]
	for _, u := range []string{s.URL + "/", "http://localhost" + port + "/", "http://[::ffff:127.0.0.1]" + port + "/", "http://0.0.0.0" + port + "/"} {
		if _, err := p.Fetch(context.Background(), "@u:hub.test", u, 0); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: %v, want ErrBlocked", u, err)
		}
	}
	if s.hits.Load() != 0 || st.count() != 0 {
		t.Errorf("%d requests reached the site, %d items stored", s.hits.Load(), st.count())
	}
	// Private admitted is still not loopback.
	p = New(Config{Timeout: 5 * time.Second, AllowPrivate: true}, st)
	if _, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/", 0); !errors.Is(err, ErrBlocked) {
		t.Errorf("allow_private admitted loopback: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	st := newMemStore()
	p := New(testConfig(), st)
	_, err = p.Fetch(context.Background(), "@u:hub.test", "http://"+addr+"/", 0)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Reason != "connection refused" {
		t.Errorf("closed port: %v", err)
	}
	// A name that cannot resolve (.invalid never does, RFC 2606).
	_, err = p.Fetch(context.Background(), "@u:hub.test", "http://preview.invalid/", 0)
	if !errors.As(err, &fe) {
		t.Errorf("unresolvable name: %v", err)
	}
	if st.count() != 0 {
		t.Error("something was stored")
	}
}

func TestInvalidURL(t *testing.T) {
	p := New(testConfig(), newMemStore())
	for _, u := range []string{"", "example.org", "ftp://example.org/", "file:///etc/passwd", "http://", "http:///path", "javascript:alert(1)", "http://%zz/"} {
		if _, err := p.Fetch(context.Background(), "@u:hub.test", u, 0); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("%q: %v", u, err)
		}
	}
}

// TestConcurrentFetches: requests for one URL share one fetch; the cache
// stays bounded.
func TestConcurrentFetches(t *testing.T) {
	release := make(chan struct{})
	s := newSite(t, map[string]http.HandlerFunc{
		"/slowpage": func(w http.ResponseWriter, r *http.Request) {
			<-release
			serve("text/html", `<meta property="og:title" content="Shared"><meta property="og:image" content="/p.png">`)(w, r)
		},
		"/p.png": serve("image/png", string(testPNG(3, 3))),
		"/":      serve("text/html", `<title>any</title>`),
	})
	st := newMemStore()
	cfg := testConfig()
	cfg.CacheSize = 4
	p := New(cfg, st)
	var wg sync.WaitGroup
	results := make([]map[string]any, 8)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], _ = p.Fetch(context.Background(), "@u:hub.test", s.URL+"/slowpage", 0)
		}(i)
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, og := range results {
		if og["og:title"] != "Shared" {
			t.Errorf("caller %d: %v", i, og)
		}
	}
	if st.count() != 1 || s.hits.Load() != 2 {
		t.Errorf("%d stored, %d requests: want one page and one image", st.count(), s.hits.Load())
	}
	for i := 0; i < 10; i++ {
		if _, err := p.Fetch(context.Background(), "@u:hub.test", fmt.Sprintf("%s/?n=%d", s.URL, i), 0); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	n := p.cache.len()
	p.mu.Unlock()
	if n > 4 {
		t.Errorf("cache holds %d entries, max 4", n)
	}
	// A waiting caller whose context ends gets an error at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Fetch(ctx, "@u:hub.test", s.URL+"/?n=new", 0); !errors.Is(err, ErrFetch) {
		t.Errorf("cancelled caller: %v", err)
	}
}

func TestFailuresCachedBriefly(t *testing.T) {
	fail := atomic.Bool{}
	fail.Store(true)
	s := newSite(t, map[string]http.HandlerFunc{"/": func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		serve("text/html", "<title>up</title>")(w, r)
	}})
	p := New(testConfig(), newMemStore())
	now := time.Now()
	p.now = func() time.Time { return now }
	if _, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/", 0); !errors.Is(err, ErrFetch) {
		t.Fatal(err)
	}
	fail.Store(false)
	if _, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/", 0); !errors.Is(err, ErrFetch) || s.hits.Load() != 1 {
		t.Errorf("failure not cached: %v, %d hits", err, s.hits.Load())
	}
	now = now.Add(2 * time.Minute)
	if og, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/", 0); err != nil || og["og:title"] != "up" {
		t.Errorf("after ErrorTTL: %v %v", og, err)
	}
}

// TestConcurrencyBound: fetches beyond MaxConcurrent queue within their
// timeout, and a queue timeout is not cached as the site's failure.
func TestConcurrencyBound(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{"/": serve("text/html", "<title>ok</title>")})
	cfg := testConfig()
	cfg.MaxConcurrent = 2
	cfg.Timeout = 200 * time.Millisecond
	p := New(cfg, newMemStore())
	// Both slots taken, as by two slow sites.
	p.sem <- struct{}{}
	p.sem <- struct{}{}
	_, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/", 0)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Reason != "timed out waiting for other previews" || s.hits.Load() != 0 {
		t.Errorf("queued fetch: %v, %d requests", err, s.hits.Load())
	}
	// One frees up while the next waits.
	go func() {
		time.Sleep(50 * time.Millisecond)
		<-p.sem
	}()
	if og, err := p.Fetch(context.Background(), "@u:hub.test", s.URL+"/", 0); err != nil || og["og:title"] != "ok" {
		t.Errorf("after a slot freed: %v %v", og, err)
	}
}
