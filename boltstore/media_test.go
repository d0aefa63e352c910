package boltstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/media"
)

func openMedia(t *testing.T, dir string) (*Store, *MediaFiles, *media.Service) {
	t.Helper()
	st, err := Open(filepath.Join(dir, "lichen.db"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := OpenMediaFiles(filepath.Join(st.Dir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	ms := media.New(media.Config{ServerName: "hub", MaxUpload: 1 << 20, Quota: 2 << 20}, st, files, media.Thumbnailer{})
	return st, files, ms
}

func TestMediaStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, _, ms := openMedia(t, dir)
	id, err := ms.Upload("@a:hub", strings.NewReader("hello"), "text/plain", "h.txt")
	if err != nil {
		t.Fatal(err)
	}
	pending, _, err := ms.Create("@a:hub")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Everything survives a restart.
	st, _, ms = openMedia(t, dir)
	defer st.Close()
	c, err := ms.Download(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c.Body)
	c.Body.Close()
	if string(b) != "hello" || c.ContentType != "text/plain" || c.Filename != "h.txt" {
		t.Fatalf("after restart: %q %+v", b, c)
	}
	if st.MediaUsage("@a:hub") != 5 {
		t.Fatalf("usage %d", st.MediaUsage("@a:hub"))
	}
	if err := ms.UploadTo("@b:hub", pending, strings.NewReader("x"), "", ""); !errors.Is(err, media.ErrNotCreator) {
		t.Fatalf("other user: %v", err)
	}
	if err := ms.UploadTo("@a:hub", pending, strings.NewReader("later"), "", ""); err != nil {
		t.Fatal(err)
	}
	if err := ms.UploadTo("@a:hub", pending, strings.NewReader("again"), "", ""); !errors.Is(err, media.ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	// Direct commit over an existing record is refused too (the check
	// inside the transaction, not only the service's early one).
	if err := st.Commit(media.Record{ID: id, SHA256: strings.Repeat("0", 64), Uploader: "@a:hub"}, 0, time.Now().UnixMilli()); !errors.Is(err, media.ErrExists) {
		t.Fatalf("commit over a record: %v", err)
	}
	if st.MediaUsage("@a:hub") != 10 {
		t.Fatalf("usage %d", st.MediaUsage("@a:hub"))
	}
}

func TestMediaStoreQuotaAndDelete(t *testing.T) {
	st, files, ms := openMedia(t, t.TempDir())
	defer st.Close()
	big := bytes.Repeat([]byte{1}, 1<<20)
	a, err := ms.Upload("@a:hub", bytes.NewReader(big), "", "")
	if err != nil {
		t.Fatal(err)
	}
	big[0] = 2
	if _, err := ms.Upload("@a:hub", bytes.NewReader(big), "", ""); err != nil {
		t.Fatal(err)
	}
	big[0] = 3
	if _, err := ms.Upload("@a:hub", bytes.NewReader(big), "", ""); !errors.Is(err, media.ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if _, err := ms.Upload("@a:hub", bytes.NewReader(append(big, 0)), "", ""); !errors.Is(err, media.ErrTooLarge) {
		t.Fatalf("over the upload limit: %v", err)
	}
	if n := countFiles(t, filepath.Join(st.Dir(), "media")); n != 2 {
		t.Fatalf("%d files, want 2 (refused uploads store nothing)", n)
	}
	if err := ms.Delete(a); err != nil {
		t.Fatal(err)
	}
	if st.MediaUsage("@a:hub") != 1<<20 {
		t.Fatalf("usage after delete %d", st.MediaUsage("@a:hub"))
	}
	if n := countFiles(t, filepath.Join(st.Dir(), "media")); n != 1 {
		t.Fatalf("%d files after delete, want 1", n)
	}
	// Quota freed: the upload fits now.
	if _, err := ms.Upload("@a:hub", bytes.NewReader(big), "", ""); err != nil {
		t.Fatalf("after delete: %v", err)
	}
	_ = files
}

// TestMediaCrashSafety: the states a crash can leave are a temp file (no
// rename yet) or a renamed file with no record (no commit yet). Neither is
// served, both are cleaned at start, and no record ever names a missing
// file.
func TestMediaCrashSafety(t *testing.T) {
	dir := t.TempDir()
	st, files, ms := openMedia(t, dir)
	kept, err := ms.Upload("@a:hub", strings.NewReader("kept"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	// "Crash" after the file is durable but before the record commits.
	orphan, _, err := files.Put(strings.NewReader("never committed"), 100)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := writeFile(filepath.Join(dir, "media", "tmp", "up-999"), "half"); err != nil {
		t.Fatal(err)
	}

	st, files, ms = openMedia(t, dir)
	defer st.Close()
	if n, err := ms.Sweep(); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if _, _, err := files.Open(orphan); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("orphan survived: %v", err)
	}
	if n := countFiles(t, filepath.Join(dir, "media")); n != 1 {
		t.Fatalf("%d files after start, want 1", n)
	}
	// Every record names a file that exists.
	ids, err := st.CreatedBefore(time.Now().Add(time.Hour).UnixMilli())
	if err != nil || len(ids) != 1 || ids[0] != kept {
		t.Fatalf("records: %v %v", ids, err)
	}
	for _, id := range ids {
		rec, err := st.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := files.Open(rec.SHA256); err != nil {
			t.Fatalf("record %s names a missing file: %v", id, err)
		}
	}
}

func TestMediaStoreThumbs(t *testing.T) {
	st, files, _ := openMedia(t, t.TempDir())
	defer st.Close()
	sha, _, _ := files.Put(strings.NewReader("image"), 100)
	th, _, _ := files.Put(strings.NewReader("thumb"), 100)
	if err := st.PutThumb(sha, "32x32-crop", media.Thumb{SHA256: th}); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("thumb of unreferenced content: %v", err)
	}
	if err := st.Commit(media.Record{ID: "img", SHA256: sha, Size: 5, Uploader: "@a:hub"}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.PutThumb(sha, "32x32-crop", media.Thumb{SHA256: th, ContentType: "image/png", Size: 5}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Thumb(sha, "32x32-crop"); err != nil || got.SHA256 != th {
		t.Fatalf("Thumb: %+v %v", got, err)
	}
	gone, err := st.Delete("img")
	if err != nil || len(gone) != 2 {
		t.Fatalf("Delete: %v %v (want the content and its thumbnail)", gone, err)
	}
	if _, err := st.Thumb(sha, "32x32-crop"); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("thumb after delete: %v", err)
	}
}
