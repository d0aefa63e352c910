package e2e

// The media admin API, in Synapse's shapes: DELETE one item by ID, and
// POST .../media/delete?before_ts= to purge what was uploaded before a time.
// Only a server admin (here, one made by shared-secret registration) may
// call either.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"slices"
	"strconv"
	"testing"
	"time"
)

const mediaAdmin = "/_synapse/admin/v1/media"

// registerAdmin makes a server admin through Synapse's shared-secret
// registration (the server must run with LICHEN_REGISTRATION_SHARED_SECRET
// set to secret).
func registerAdmin(s *server, secret, name string) user {
	s.t.Helper()
	const path = "/_synapse/admin/v1/register"
	n := s.must(200, "GET", path, "", nil).str("nonce")
	r := s.must(200, "POST", path, "", map[string]any{
		"nonce": n, "username": name, "password": "pw", "admin": true,
		"mac": sharedSecretMAC(secret, n, name, "pw", true),
	})
	return user{ID: r.str("user_id"), Token: r.str("access_token"), Device: r.str("device_id")}
}

// deletedMedia decodes an admin answer's {"deleted_media": [...], "total": n}.
func deletedMedia(t *testing.T, r response) ([]string, int) {
	t.Helper()
	var body struct {
		Deleted []string `json:"deleted_media"`
		Total   *int     `json:"total"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil || body.Total == nil || body.Deleted == nil {
		t.Fatalf("answer is not {deleted_media, total}: %v %s", err, r.Raw)
	}
	return body.Deleted, *body.Total
}

// downloadStatus is the status and errcode of an authenticated download.
func downloadStatus(t *testing.T, s *server, u user, id string) (int, string) {
	t.Helper()
	st, _, raw := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+id+"?timeout_ms=0", u.Token, "", nil)
	if st == 200 {
		return st, ""
	}
	return st, jsonField(t, raw, "errcode")
}

func TestMediaAdminDelete(t *testing.T) {
	const secret = "media admin secret"
	s := startMedia(t, "LICHEN_REGISTRATION_SHARED_SECRET="+secret)
	alice := s.register("")
	admin := registerAdmin(s, secret, "mediaadmin")

	// Distinct bytes, so that deleting one never frees a file another
	// record shares (content is stored once per hash).
	id := upload(t, s, alice, "text/plain", "a.txt", []byte("delete me"))
	keep := upload(t, s, alice, "text/plain", "b.txt", []byte("keep me"))
	files := mediaFiles(t, s.DataDir)

	// Refusals: nothing may be deleted by any of them.
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		errcode                   string
	}{
		{"non-admin delete", "DELETE", mediaAdmin + "/localhost/" + id, alice.Token, 403, "M_FORBIDDEN"},
		{"non-admin delete of own media", "DELETE", mediaAdmin + "/localhost/" + keep, alice.Token, 403, "M_FORBIDDEN"},
		{"no token", "DELETE", mediaAdmin + "/localhost/" + id, "", 401, "M_MISSING_TOKEN"},
		{"remote server name", "DELETE", mediaAdmin + "/remote.example/" + id, admin.Token, 400, ""},
		{"unknown media id", "DELETE", mediaAdmin + "/localhost/NoSuchMediaID", admin.Token, 404, "M_NOT_FOUND"},
		{"path-like media id", "DELETE", mediaAdmin + "/localhost/..%2F..%2Fetc", admin.Token, 404, "M_NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(tc.method, tc.path, tc.token, nil)
			if tc.errcode == "" {
				wantErr(t, r, tc.status)
			} else {
				wantErr(t, r, tc.status, tc.errcode)
			}
			for _, m := range []string{id, keep} {
				if st, code := downloadStatus(t, s, alice, m); st != 200 {
					t.Fatalf("%s after a refused delete: %d %s", m, st, code)
				}
			}
			if n := mediaFiles(t, s.DataDir); n != files {
				t.Fatalf("%d content files after a refused delete, want %d", n, files)
			}
		})
	}

	// The admin deletes it: the answer names it, the download is 404
	// M_NOT_FOUND, its file is gone, and the other item is untouched.
	deleted, total := deletedMedia(t, s.must(200, "DELETE", mediaAdmin+"/localhost/"+id, admin.Token, nil))
	if total != 1 || !slices.Equal(deleted, []string{id}) {
		t.Errorf("delete answered deleted_media=%v total=%d, want [%s] 1", deleted, total, id)
	}
	if st, code := downloadStatus(t, s, alice, id); st != 404 || code != "M_NOT_FOUND" {
		t.Errorf("download after delete: %d %s, want 404 M_NOT_FOUND", st, code)
	}
	st, _, raw := mediaReq(t, s, "GET", "/_matrix/media/v3/download/localhost/"+id, "", "", nil)
	if st != 404 || jsonField(t, raw, "errcode") != "M_NOT_FOUND" {
		t.Errorf("legacy download after delete: %d %s, want 404 M_NOT_FOUND", st, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != files-1 {
		t.Errorf("%d content files after delete, want %d", n, files-1)
	}
	if st, code := downloadStatus(t, s, alice, keep); st != 200 {
		t.Errorf("the other item after delete: %d %s", st, code)
	}
	// Deleting it again is 404: there is nothing left to delete.
	wantErr(t, s.do("DELETE", mediaAdmin+"/localhost/"+id, admin.Token, nil), 404, "M_NOT_FOUND")
}

// TestMediaAdminDeleteSharedAndThumbnails: content is stored once per hash,
// so deleting one of two uploads of the same bytes must keep the file for
// the other; and deleting an image also removes the thumbnails made of it.
func TestMediaAdminDeleteSharedAndThumbnails(t *testing.T) {
	const secret = "media admin secret"
	s := startMedia(t, "LICHEN_REGISTRATION_SHARED_SECRET="+secret)
	alice := s.register("")
	admin := registerAdmin(s, secret, "mediaadmin")

	same := []byte("the same bytes twice")
	first := upload(t, s, alice, "text/plain", "1.txt", same)
	second := upload(t, s, alice, "text/plain", "2.txt", same)
	s.must(200, "DELETE", mediaAdmin+"/localhost/"+first, admin.Token, nil)
	st, _, raw := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/localhost/"+second, alice.Token, "", nil)
	if st != 200 || string(raw) != string(same) {
		t.Fatalf("the other upload of the same bytes after delete: %d %q", st, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != 1 {
		t.Fatalf("%d content files, want the shared one", n)
	}

	// A PNG and its thumbnail: two files, both gone after the delete.
	img := image.NewRGBA(image.Rect(0, 0, 400, 300))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	pic := upload(t, s, alice, "image/png", "pic.png", buf.Bytes())
	thumb := "/_matrix/client/v1/media/thumbnail/localhost/" + pic + "?width=32&height=32&method=crop"
	if st, _, raw := mediaReq(t, s, "GET", thumb, alice.Token, "", nil); st != 200 {
		t.Fatalf("thumbnail: %d %s", st, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != 3 {
		t.Fatalf("%d content files after upload and thumbnail, want 3", n)
	}
	s.must(200, "DELETE", mediaAdmin+"/localhost/"+pic, admin.Token, nil)
	st, _, raw = mediaReq(t, s, "GET", thumb, alice.Token, "", nil)
	if st != 404 || jsonField(t, raw, "errcode") != "M_NOT_FOUND" {
		t.Errorf("thumbnail after delete: %d %s, want 404 M_NOT_FOUND", st, raw)
	}
	if n := mediaFiles(t, s.DataDir); n != 1 {
		t.Errorf("%d content files after deleting the image, want 1 (its thumbnail left behind?)", n)
	}
}

func TestMediaAdminPurge(t *testing.T) {
	const secret = "media admin secret"
	s := startMedia(t, "LICHEN_REGISTRATION_SHARED_SECRET="+secret)
	alice := s.register("")
	admin := registerAdmin(s, secret, "mediaadmin")

	older := upload(t, s, alice, "text/plain", "old.txt", []byte("older upload"))
	// The server stamps uploads in milliseconds from the same clock; leave
	// clear gaps either side of the cut.
	time.Sleep(50 * time.Millisecond)
	cut := time.Now().UnixMilli()
	time.Sleep(50 * time.Millisecond)
	newer := upload(t, s, alice, "text/plain", "new.txt", []byte("newer upload"))
	purge := func(ts int64) string { return mediaAdmin + "/delete?before_ts=" + strconv.FormatInt(ts, 10) }
	bothThere := func(after string) {
		t.Helper()
		for _, m := range []string{older, newer} {
			if st, code := downloadStatus(t, s, alice, m); st != 200 {
				t.Fatalf("%s after %s: %d %s", m, after, st, code)
			}
		}
	}

	// A non-admin may not purge, even everything.
	wantErr(t, s.do("POST", purge(time.Now().Add(time.Hour).UnixMilli()), alice.Token, "{}"), 403, "M_FORBIDDEN")
	bothThere("a non-admin purge")

	// before_ts is required and must be a timestamp.
	for _, q := range []string{"", "?before_ts=", "?before_ts=yesterday", "?before_ts=-1"} {
		t.Run(fmt.Sprintf("before_ts %q", q), func(t *testing.T) {
			r := s.do("POST", mediaAdmin+"/delete"+q, admin.Token, "{}")
			wantErr(t, r, 400)
			bothThere("a refused purge")
		})
	}

	// A cut before both uploads deletes nothing.
	deleted, total := deletedMedia(t, s.must(200, "POST", purge(cut-time.Hour.Milliseconds()), admin.Token, "{}"))
	if total != 0 || len(deleted) != 0 {
		t.Errorf("purge before both: deleted_media=%v total=%d, want none", deleted, total)
	}
	bothThere("a purge before both")

	// The cut between them deletes only the older one.
	deleted, total = deletedMedia(t, s.must(200, "POST", purge(cut), admin.Token, "{}"))
	if total != 1 || !slices.Equal(deleted, []string{older}) {
		t.Errorf("purge at the cut: deleted_media=%v total=%d, want [%s] 1", deleted, total, older)
	}
	if st, code := downloadStatus(t, s, alice, older); st != 404 || code != "M_NOT_FOUND" {
		t.Errorf("older upload after purge: %d %s, want 404 M_NOT_FOUND", st, code)
	}
	if st, code := downloadStatus(t, s, alice, newer); st != 200 {
		t.Errorf("newer upload after purge: %d %s, want 200", st, code)
	}
	if n := mediaFiles(t, s.DataDir); n != 1 {
		t.Errorf("%d content files after purge, want 1", n)
	}

	// The same purge again finds nothing more to delete.
	deleted, total = deletedMedia(t, s.must(200, "POST", purge(cut), admin.Token, "{}"))
	if total != 0 || len(deleted) != 0 {
		t.Errorf("repeated purge: deleted_media=%v total=%d, want none", deleted, total)
	}
}
