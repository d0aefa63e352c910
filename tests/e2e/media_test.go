package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mediaReq sends a raw media request and returns status, headers and body.
func mediaReq(t *testing.T, s *server, method, path, token, ctype string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// startMedia starts a server and skips the test when the binary does not
// serve the media endpoints yet (cmd/lichen not wired to mountMedia).
func startMedia(t *testing.T, env ...string) *server {
	t.Helper()
	s := start(t, env...)
	if st, _, _ := mediaReq(t, s, "GET", "/_matrix/client/v1/media/config", "", "", nil); st == 404 {
		t.Skip("media endpoints are not mounted in this binary")
	}
	return s
}

func upload(t *testing.T, s *server, u user, ctype, filename string, body []byte) string {
	t.Helper()
	st, _, raw := mediaReq(t, s, "POST", "/_matrix/media/v3/upload?filename="+url.QueryEscape(filename), u.Token, ctype, body)
	if st != 200 {
		t.Fatalf("upload: %d %s", st, raw)
	}
	uri := jsonField(t, raw, "content_uri")
	if !strings.HasPrefix(uri, "mxc://localhost/") {
		t.Fatalf("content_uri %q", uri)
	}
	return strings.TrimPrefix(uri, "mxc://localhost/")
}

func jsonField(t *testing.T, raw []byte, k string) string {
	t.Helper()
	r := response{Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r.str(k)
}

// mediaFiles counts the content files under the data directory.
func mediaFiles(t *testing.T, dir string) int {
	n := 0
	_ = filepath.Walk(filepath.Join(dir, "media"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestMediaRoundTrip(t *testing.T) {
	s := startMedia(t)
	alice := s.register("")
	big := make([]byte, 5<<20)
	_, _ = rand.Read(big)
	for _, tc := range []struct {
		name, ctype, filename string
		body                  []byte
		disposition           string
	}{
		{"small png", "image/png", "cat.png", []byte("\x89PNG not really"), `inline; filename="cat.png"`},
		{"5 MB binary", "application/octet-stream", "blob.bin", big, `attachment; filename="blob.bin"`},
		{"html is an attachment", "text/html", "x.html", []byte("<script>alert(1)</script>"), `attachment; filename="x.html"`},
		{"utf-8 name", "text/plain", "naïve résumé.txt", []byte("hello"), "inline; filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := upload(t, s, alice, tc.ctype, tc.filename, tc.body)
			st, h, got := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+id, alice.Token, "", nil)
			if st != 200 || !bytes.Equal(got, tc.body) {
				t.Fatalf("download: %d, %d bytes, want %d", st, len(got), len(tc.body))
			}
			want := map[string]string{
				"Content-Type":                 tc.ctype,
				"Content-Disposition":          tc.disposition,
				"X-Content-Type-Options":       "nosniff",
				"Cross-Origin-Resource-Policy": "cross-origin",
			}
			for k, v := range want {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if !strings.HasPrefix(h.Get("Content-Security-Policy"), "sandbox; default-src 'none'") {
				t.Errorf("CSP %q", h.Get("Content-Security-Policy"))
			}
			// Legacy unauthenticated download, on by default.
			st, _, got = mediaReq(t, s, "GET", "/_matrix/media/v3/download/localhost/"+id, "", "", nil)
			if st != 200 || !bytes.Equal(got, tc.body) {
				t.Fatalf("legacy download: %d", st)
			}
		})
	}
	// Same bytes twice are stored once.
	before := mediaFiles(t, s.DataDir)
	upload(t, s, alice, "image/png", "again.png", []byte("\x89PNG not really"))
	if after := mediaFiles(t, s.DataDir); after != before {
		t.Errorf("duplicate upload: %d files, want %d", after, before)
	}
	// A name in the path overrides the stored one.
	id := upload(t, s, alice, "text/plain", "a.txt", []byte("x"))
	_, h, _ := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+id+"/b.txt", alice.Token, "", nil)
	if h.Get("Content-Disposition") != `inline; filename="b.txt"` {
		t.Errorf("disposition %q", h.Get("Content-Disposition"))
	}
}

func TestMediaAuthAndErrors(t *testing.T) {
	s := startMedia(t)
	alice := s.register("")
	id := upload(t, s, alice, "text/plain", "a.txt", []byte("x"))
	for _, tc := range []struct {
		method, path, token string
		status              int
		errcode             string
	}{
		{"GET", "/_matrix/client/v1/media/download/localhost/" + id, "", 401, "M_MISSING_TOKEN"},
		{"GET", "/_matrix/client/v1/media/thumbnail/localhost/" + id + "?width=32&height=32", "", 401, "M_MISSING_TOKEN"},
		{"GET", "/_matrix/client/v1/media/config", "", 401, "M_MISSING_TOKEN"},
		{"GET", "/_matrix/client/v1/media/preview_url?url=https://example.org", "", 401, "M_MISSING_TOKEN"},
		{"POST", "/_matrix/media/v3/upload", "", 401, "M_MISSING_TOKEN"},
		{"POST", "/_matrix/media/v1/create", "", 401, "M_MISSING_TOKEN"},
		{"GET", "/_matrix/client/v1/media/download/localhost/nope", alice.Token, 404, "M_NOT_FOUND"},
		{"GET", "/_matrix/client/v1/media/download/localhost/..%2F..%2Fetc", alice.Token, 404, "M_NOT_FOUND"},
		{"GET", "/_matrix/client/v1/media/download/remote.example/" + id, alice.Token, 404, "M_NOT_FOUND"},
		{"GET", "/_matrix/client/v1/media/thumbnail/localhost/" + id + "?width=32&height=32", alice.Token, 400, "M_UNKNOWN"},
		{"GET", "/_matrix/client/v1/media/preview_url", alice.Token, 400, "M_MISSING_PARAM"},
	} {
		st, _, raw := mediaReq(t, s, tc.method, tc.path, tc.token, "", nil)
		if st != tc.status || jsonField(t, raw, "errcode") != tc.errcode {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, st, raw, tc.status, tc.errcode)
		}
	}
	st, _, raw := mediaReq(t, s, "GET", "/_matrix/client/v1/media/config", alice.Token, "", nil)
	if st != 200 || !strings.Contains(string(raw), `"m.upload.size":52428800`) {
		t.Errorf("config: %d %s", st, raw)
	}
	// The seed's unauthenticated /_matrix/media/v1/config.
	st, _, raw = mediaReq(t, s, "GET", "/_matrix/media/v1/config", "", "", nil)
	if st != 200 || !strings.Contains(string(raw), `"m.upload.size":52428800`) {
		t.Errorf("v1 config: %d %s", st, raw)
	}
}

func TestMediaAsyncUpload(t *testing.T) {
	s := startMedia(t)
	alice, bob := s.register(""), s.register("")
	st, _, raw := mediaReq(t, s, "POST", "/_matrix/media/v1/create", alice.Token, "", nil)
	if st != 200 {
		t.Fatalf("create: %d %s", st, raw)
	}
	id := strings.TrimPrefix(jsonField(t, raw, "content_uri"), "mxc://localhost/")
	if !strings.Contains(string(raw), "unused_expires_at") {
		t.Fatalf("create: %s", raw)
	}
	st, _, raw = mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+id+"?timeout_ms=100", alice.Token, "", nil)
	if st != 504 || jsonField(t, raw, "errcode") != "M_NOT_YET_UPLOADED" {
		t.Fatalf("pending download: %d %s", st, raw)
	}
	// A download waiting when the upload lands gets the content.
	got := make(chan []byte, 1)
	go func() {
		_, _, b := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+id+"?timeout_ms=10000", alice.Token, "", nil)
		got <- b
	}()
	time.Sleep(200 * time.Millisecond)
	put := "/_matrix/media/v3/upload/localhost/" + id + "?filename=late.txt"
	if st, _, raw := mediaReq(t, s, "PUT", put, bob.Token, "text/plain", []byte("late")); st != 403 {
		t.Fatalf("other user's upload: %d %s", st, raw)
	}
	if st, _, raw := mediaReq(t, s, "PUT", put, alice.Token, "text/plain", []byte("late")); st != 200 {
		t.Fatalf("upload: %d %s", st, raw)
	}
	select {
	case b := <-got:
		if string(b) != "late" {
			t.Fatalf("waiting download got %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting download did not return")
	}
	st, _, raw = mediaReq(t, s, "PUT", put, alice.Token, "text/plain", []byte("again"))
	if st != 409 || jsonField(t, raw, "errcode") != "M_CANNOT_OVERWRITE_MEDIA" {
		t.Fatalf("overwrite: %d %s", st, raw)
	}
	st, _, raw = mediaReq(t, s, "PUT", "/_matrix/media/v3/upload/localhost/neverCreated", alice.Token, "text/plain", []byte("x"))
	if st != 404 {
		t.Fatalf("unknown ID: %d %s", st, raw)
	}
	// The pending limit (default 10) answers 429 M_LIMIT_EXCEEDED.
	for i := 0; i < 10; i++ {
		mediaReq(t, s, "POST", "/_matrix/media/v1/create", bob.Token, "", nil)
	}
	st, _, raw = mediaReq(t, s, "POST", "/_matrix/media/v1/create", bob.Token, "", nil)
	if st != 429 || jsonField(t, raw, "errcode") != "M_LIMIT_EXCEEDED" {
		t.Fatalf("11th pending: %d %s", st, raw)
	}
}

func TestMediaLimits(t *testing.T) {
	s := startMedia(t, "LICHEN_MEDIA_MAX_UPLOAD_BYTES=2000000", "LICHEN_MEDIA_QUOTA_BYTES=3000000")
	alice := s.register("")
	big := make([]byte, 2000001)
	st, _, raw := mediaReq(t, s, "POST", "/_matrix/media/v3/upload", alice.Token, "application/octet-stream", big)
	if st != 413 || jsonField(t, raw, "errcode") != "M_TOO_LARGE" {
		t.Fatalf("oversize: %d %s", st, raw)
	}
	// Without a Content-Length (chunked), the limit is found while
	// streaming: the same 413 and nothing kept.
	req, _ := http.NewRequest("POST", s.URL+"/_matrix/media/v3/upload", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("chunked oversize: %v", err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || jsonField(t, raw, "errcode") != "M_TOO_LARGE" {
		t.Fatalf("chunked oversize: %d %s", resp.StatusCode, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != 0 {
		t.Fatalf("oversize left %d files", n)
	}
	// Within the limit, then over the quota: 403 and nothing new stored.
	one := make([]byte, 1900000)
	_, _ = rand.Read(one)
	upload(t, s, alice, "application/octet-stream", "", one)
	two := make([]byte, 1900000)
	_, _ = rand.Read(two)
	st, _, raw = mediaReq(t, s, "POST", "/_matrix/media/v3/upload", alice.Token, "application/octet-stream", two)
	if st != 403 || jsonField(t, raw, "errcode") != "M_FORBIDDEN" {
		t.Fatalf("over quota: %d %s", st, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != 1 {
		t.Fatalf("%d files after a refused upload, want 1", n)
	}
	// The server still answers on a fresh connection.
	s.must(200, "GET", "/_matrix/client/v3/account/whoami", alice.Token, nil)
}

func TestMediaLegacyOff(t *testing.T) {
	s := startMedia(t, "LICHEN_MEDIA_LEGACY_ENDPOINTS=off")
	alice := s.register("")
	id := upload(t, s, alice, "text/plain", "a.txt", []byte("x"))
	if st, _, _ := mediaReq(t, s, "GET", "/_matrix/media/v3/download/localhost/"+id, "", "", nil); st != 404 {
		t.Fatalf("legacy download when off: %d", st)
	}
}

func TestMediaThumbnail(t *testing.T) {
	s := startMedia(t)
	alice := s.register("")
	img := image.NewRGBA(image.Rect(0, 0, 1000, 800))
	for y := 0; y < 800; y++ {
		for x := 0; x < 1000; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	id := upload(t, s, alice, "image/png", "big.png", buf.Bytes())
	for _, tc := range []struct {
		query      string
		minW, minH int
	}{
		{"width=64&height=64&method=crop", 64, 64},
		{"width=300&height=200&method=scale", 300, 200},
		{"width=300&height=200&method=scale", 300, 200}, // stored the first time
	} {
		st, h, raw := mediaReq(t, s, "GET", "/_matrix/client/v1/media/thumbnail/localhost/"+id+"?"+tc.query, alice.Token, "", nil)
		if st != 200 {
			t.Fatalf("%s: %d %s", tc.query, st, raw)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
		if err != nil || cfg.Width < tc.minW || cfg.Height < tc.minH || cfg.Width >= 1000 {
			t.Fatalf("%s: %dx%d %v (%s)", tc.query, cfg.Width, cfg.Height, err, h.Get("Content-Type"))
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Disposition"), "inline") {
			t.Errorf("thumbnail headers: %v", h)
		}
	}
	if st, _, _ := mediaReq(t, s, "GET", "/_matrix/media/v3/thumbnail/localhost/"+id+"?width=32&height=32&method=crop", "", "", nil); st != 200 {
		t.Errorf("legacy thumbnail: %d", st)
	}
}
