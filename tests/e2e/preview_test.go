package e2e

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// allowLoopback is the test-only setting that lets the server preview the
// test's own pages on 127.0.0.1.
const allowLoopback = "LICHEN_MEDIA_URL_PREVIEW_ALLOW_LOOPBACK_FOR_TESTS_ONLY=on"

// previewSite serves a page whose og:image is a PNG on the same server.
func previewSite(t *testing.T) (*httptest.Server, []byte, *atomic.Int64) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 12, 7))
	img.Set(3, 3, color.RGBA{G: 255, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	pic := b.Bytes()
	hits := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(`<!doctype html><html><head><title>fallback</title>
				<meta property="og:title" content="Greenhouse sensors">
				<meta property="og:description" content="Humidity is fine &amp; so is the temperature">
				<meta property="og:image" content="/img/leaf.png">
				</head><body>...</body></html>`))
		case "/img/leaf.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(pic)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, pic, hits
}

func previewPath(prefix, target string) string {
	return prefix + "/preview_url?url=" + url.QueryEscape(target)
}

func TestPreviewURL(t *testing.T) {
	site, pic, _ := previewSite(t)
	s := startMedia(t, allowLoopback)
	alice := s.register("")

	st, _, raw := mediaReq(t, s, "GET", previewPath("/_matrix/client/v1/media", site.URL+"/page")+"&ts=1510610716656", alice.Token, "", nil)
	if st != 200 {
		t.Fatalf("preview_url: %d %s", st, raw)
	}
	var og map[string]any
	if err := json.Unmarshal(raw, &og); err != nil {
		t.Fatal(err)
	}
	if og["og:title"] != "Greenhouse sensors" || og["og:description"] != "Humidity is fine & so is the temperature" {
		t.Errorf("og: %s", raw)
	}
	mxc, _ := og["og:image"].(string)
	if !strings.HasPrefix(mxc, "mxc://localhost/") {
		t.Fatalf("og:image %q", mxc)
	}
	if og["og:image:type"] != "image/png" || og["matrix:image:size"] != float64(len(pic)) ||
		og["og:image:width"] != float64(12) || og["og:image:height"] != float64(7) {
		t.Errorf("image fields: %s (png is %d bytes)", raw, len(pic))
	}
	st, h, body := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+strings.TrimPrefix(mxc, "mxc://localhost/"), alice.Token, "", nil)
	if st != 200 || !bytes.Equal(body, pic) || h.Get("Content-Type") != "image/png" {
		t.Errorf("download of og:image: %d %q, %d bytes", st, h.Get("Content-Type"), len(body))
	}

	// The legacy endpoint answers the same (from the cache: same mxc).
	bob := s.register("")
	st, _, raw = mediaReq(t, s, "GET", previewPath("/_matrix/media/v3", site.URL+"/page"), bob.Token, "", nil)
	if st != 200 || jsonField(t, raw, "og:image") != mxc {
		t.Errorf("legacy preview_url: %d %s", st, raw)
	}

	// A URL that is itself an image is stored and described the same way.
	st, _, raw = mediaReq(t, s, "GET", previewPath("/_matrix/client/v1/media", site.URL+"/img/leaf.png"), alice.Token, "", nil)
	if st != 200 || !strings.HasPrefix(jsonField(t, raw, "og:image"), "mxc://localhost/") || !strings.Contains(string(raw), `"matrix:image:size":`) {
		t.Errorf("image URL: %d %s", st, raw)
	}

	for _, tc := range []struct {
		query, token string
		status       int
		errcode      string
	}{
		{"?url=" + url.QueryEscape(site.URL+"/page"), "", 401, "M_MISSING_TOKEN"},
		{"", alice.Token, 400, "M_MISSING_PARAM"},
		{"?url=ftp%3A%2F%2Fexample.org%2F", alice.Token, 400, "M_INVALID_PARAM"},
		{"?url=not-a-url", alice.Token, 400, "M_INVALID_PARAM"},
		{"?url=" + url.QueryEscape(site.URL+"/missing"), alice.Token, 502, "M_UNKNOWN"},
	} {
		st, _, raw := mediaReq(t, s, "GET", "/_matrix/client/v1/media/preview_url"+tc.query, tc.token, "", nil)
		if st != tc.status || jsonField(t, raw, "errcode") != tc.errcode {
			t.Errorf("%q: %d %s, want %d %s", tc.query, st, raw, tc.status, tc.errcode)
		}
	}
}

// TestPreviewUnreachable: a site that cannot be reached (what every site
// is on an offline mesh) is 502, and nothing is stored.
func TestPreviewUnreachable(t *testing.T) {
	s := startMedia(t, allowLoopback)
	alice := s.register("")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	st, _, raw := mediaReq(t, s, "GET", previewPath("/_matrix/client/v1/media", closed), alice.Token, "", nil)
	if st != 502 || jsonField(t, raw, "errcode") != "M_UNKNOWN" || !strings.Contains(jsonField(t, raw, "error"), "Could not fetch the URL") {
		t.Errorf("closed port: %d %s", st, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != 0 {
		t.Errorf("%d media files stored", n)
	}
}

// TestPreviewBlockedByDefault: without the test-only setting the server
// refuses to fetch from loopback: 403, the site never sees a request,
// nothing is stored.
func TestPreviewBlockedByDefault(t *testing.T) {
	site, _, hits := previewSite(t)
	s := startMedia(t)
	alice := s.register("")
	for _, target := range []string{site.URL + "/page", strings.Replace(site.URL, "127.0.0.1", "localhost", 1) + "/page"} {
		st, _, raw := mediaReq(t, s, "GET", previewPath("/_matrix/client/v1/media", target), alice.Token, "", nil)
		if st != 403 || jsonField(t, raw, "errcode") != "M_FORBIDDEN" || jsonField(t, raw, "error") != "IP address blocked" {
			t.Errorf("%s: %d %s", target, st, raw)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the site got %d requests", hits.Load())
	}
	if n := mediaFiles(t, s.DataDir); n != 0 {
		t.Errorf("%d media files stored", n)
	}
}

// TestPreviewDisabled: url_preview = false answers as Synapse does with
// previews off.
func TestPreviewDisabled(t *testing.T) {
	site, _, hits := previewSite(t)
	s := startMedia(t, "LICHEN_MEDIA_URL_PREVIEW=off", allowLoopback)
	alice := s.register("")
	for _, prefix := range []string{"/_matrix/client/v1/media", "/_matrix/media/v3"} {
		st, _, raw := mediaReq(t, s, "GET", previewPath(prefix, site.URL+"/page"), alice.Token, "", nil)
		if st != 404 || jsonField(t, raw, "errcode") != "M_UNRECOGNIZED" {
			t.Errorf("%s: %d %s", prefix, st, raw)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the site got %d requests", hits.Load())
	}
}
