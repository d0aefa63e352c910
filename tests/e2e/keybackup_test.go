package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server-side key backups (spec "Server-side key backups",
// key_backup.yaml) over HTTP, and the seed's r0 shapes of them.

const kbAlgorithm = "m.megolm_backup.v1.curve25519-aes-sha2"

func kbB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// kbData is session_data as a client sends it for the curve25519 scheme.
func kbData() map[string]any {
	return map[string]any{"ephemeral": kbB64(32), "ciphertext": kbB64(262), "mac": kbB64(8)}
}

func kbKey(verified bool, index, forwarded int, data map[string]any) map[string]any {
	return map[string]any{"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified, "session_data": data}
}

// wantErr checks a Matrix error answer.
func (r response) wantErr(t *testing.T, what string, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("errcode") != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.Status, r.Raw, status, code)
	}
}

func (r response) num(key string) int { f, _ := r.Body[key].(float64); return int(f) }

func TestKeyBackup(t *testing.T) {
	s := start(t)
	alice, bob := s.register("kb_alice"), s.register("kb_bob")
	const v3 = "/_matrix/client/v3"
	roomA, roomB := "!roomA:localhost", "!roomB:localhost"
	keysPath := func(version string, parts ...string) string {
		p := v3 + "/room_keys/keys"
		for _, x := range parts {
			p += "/" + url.PathEscape(x)
		}
		if version != "" {
			p += "?version=" + version
		}
		return p
	}

	// --- versions ---
	s.do("GET", v3+"/room_keys/version", "", nil).wantErr(t, "no token", 401, "M_MISSING_TOKEN")
	s.do("GET", v3+"/room_keys/version", alice.Token, nil).wantErr(t, "no backup yet", 404, "M_NOT_FOUND")
	authData := map[string]any{"public_key": kbB64(32), "signatures": map[string]any{alice.ID: map[string]any{"ed25519:" + alice.Device: kbB64(64)}}}
	for _, bad := range []struct {
		body   any
		status int
		code   string
	}{
		{`{"algorithm":`, 400, "M_NOT_JSON"},
		{map[string]any{"algorithm": kbAlgorithm}, 400, "M_MISSING_PARAM"},
		{map[string]any{"auth_data": authData}, 400, "M_MISSING_PARAM"},
		{map[string]any{"algorithm": 1, "auth_data": authData}, 400, "M_BAD_JSON"},
		{map[string]any{"algorithm": kbAlgorithm, "auth_data": "x"}, 400, "M_BAD_JSON"},
		{map[string]any{"algorithm": kbAlgorithm, "auth_data": map[string]any{}}, 400, "M_MISSING_PARAM"}, // public_key
	} {
		s.do("POST", v3+"/room_keys/version", alice.Token, bad.body).wantErr(t, fmt.Sprintf("create %v", bad.body), bad.status, bad.code)
	}
	create := map[string]any{"algorithm": kbAlgorithm, "auth_data": authData}
	if v := s.must(200, "POST", v3+"/room_keys/version", alice.Token, create).str("version"); v != "1" {
		t.Fatalf("first version %q", v)
	}
	if v := s.must(200, "POST", v3+"/room_keys/version", alice.Token, create).str("version"); v != "2" {
		t.Fatalf("second version %q", v)
	}
	if v := s.must(200, "POST", v3+"/room_keys/version", bob.Token, create).str("version"); v != "1" {
		t.Fatalf("bob's first version %q", v)
	}
	latest := s.must(200, "GET", v3+"/room_keys/version", alice.Token, nil)
	if latest.str("version") != "2" || latest.str("algorithm") != kbAlgorithm || latest.num("count") != 0 || latest.str("etag") == "" ||
		!reflect.DeepEqual(latest.Body["auth_data"], jsonRoundTrip(authData)) {
		t.Fatalf("latest version: %s", latest.Raw)
	}
	s.must(200, "GET", v3+"/room_keys/version/1", alice.Token, nil)
	s.do("GET", v3+"/room_keys/version/3", alice.Token, nil).wantErr(t, "unknown version", 404, "M_NOT_FOUND")
	s.do("GET", v3+"/room_keys/version/abc", alice.Token, nil).wantErr(t, "not a version", 404, "M_NOT_FOUND")

	newAuth := map[string]any{"public_key": kbB64(32)}
	s.must(200, "PUT", v3+"/room_keys/version/1", alice.Token, map[string]any{"algorithm": kbAlgorithm, "auth_data": newAuth, "version": "1"})
	s.do("PUT", v3+"/room_keys/version/1", alice.Token, map[string]any{"algorithm": kbAlgorithm, "auth_data": authData, "version": "2"}).
		wantErr(t, "body version differs", 400, "M_INVALID_PARAM")
	s.do("PUT", v3+"/room_keys/version/1", alice.Token, map[string]any{"algorithm": "org.example.other", "auth_data": authData}).
		wantErr(t, "algorithm differs", 400, "M_INVALID_PARAM")
	s.do("PUT", v3+"/room_keys/version/9", alice.Token, create).wantErr(t, "update unknown", 404, "M_NOT_FOUND")
	if got := s.must(200, "GET", v3+"/room_keys/version/1", alice.Token, nil); !reflect.DeepEqual(got.Body["auth_data"], jsonRoundTrip(newAuth)) {
		t.Fatalf("auth_data after update and refused updates: %s", got.Raw)
	}
	// Bob's version 1 is his own.
	if got := s.must(200, "GET", v3+"/room_keys/version/1", bob.Token, nil); !reflect.DeepEqual(got.Body["auth_data"], jsonRoundTrip(authData)) {
		t.Fatalf("bob's backup: %s", got.Raw)
	}

	// --- keys: upload, errors ---
	upload := map[string]any{"rooms": map[string]any{
		roomA: map[string]any{"sessions": map[string]any{"sA1": kbKey(false, 5, 1, kbData()), "sA2": kbKey(true, 0, 0, kbData())}},
		roomB: map[string]any{"sessions": map[string]any{"sB1": kbKey(false, 0, 0, kbData())}},
	}}
	s.do("PUT", keysPath(""), alice.Token, upload).wantErr(t, "no version", 400, "M_MISSING_PARAM")
	s.do("PUT", keysPath("9"), alice.Token, upload).wantErr(t, "unknown version", 404, "M_NOT_FOUND")
	r := s.do("PUT", keysPath("1"), alice.Token, upload)
	r.wantErr(t, "old version", 403, "M_WRONG_ROOM_KEYS_VERSION")
	if r.str("current_version") != "2" {
		t.Fatalf("current_version: %s", r.Raw)
	}
	s.do("PUT", keysPath("2"), bob.Token, upload).wantErr(t, "bob writes a version he lacks", 404, "M_NOT_FOUND")
	up := s.must(200, "PUT", keysPath("2"), alice.Token, upload)
	if up.num("count") != 3 || up.str("etag") == "" {
		t.Fatalf("upload: %s", up.Raw)
	}
	etag := up.str("etag")

	// Bad input anywhere in an upload stores nothing of it.
	for _, bad := range []struct {
		what   string
		body   any
		status int
		code   string
	}{
		{"no rooms", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"bad room ID", map[string]any{"rooms": map[string]any{"roomC": map[string]any{"sessions": map[string]any{}}}}, 400, "M_INVALID_PARAM"},
		{"index a string", map[string]any{"rooms": map[string]any{roomA: map[string]any{"sessions": map[string]any{
			"sNew": kbKey(true, 0, 0, kbData()),
			"sBad": map[string]any{"first_message_index": "0", "forwarded_count": 0, "is_verified": true, "session_data": kbData()}}}}}, 400, "M_BAD_JSON"},
		{"is_verified missing", map[string]any{"rooms": map[string]any{roomA: map[string]any{"sessions": map[string]any{
			"sNew": map[string]any{"first_message_index": 0, "forwarded_count": 0, "session_data": kbData()}}}}}, 400, "M_MISSING_PARAM"},
		{"session_data not an object", map[string]any{"rooms": map[string]any{roomA: map[string]any{"sessions": map[string]any{
			"sNew": map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": "x"}}}}}, 400, "M_BAD_JSON"},
		{"negative index", map[string]any{"rooms": map[string]any{roomA: map[string]any{"sessions": map[string]any{
			"sNew": kbKey(false, -1, 0, kbData())}}}}, 400, "M_INVALID_PARAM"},
		{"not an object", `[]`, 400, "M_BAD_JSON"},
	} {
		s.do("PUT", keysPath("2"), alice.Token, bad.body).wantErr(t, bad.what, bad.status, bad.code)
	}
	if v := s.must(200, "GET", v3+"/room_keys/version/2", alice.Token, nil); v.num("count") != 3 || v.str("etag") != etag {
		t.Fatalf("refused uploads changed the backup: %s", v.Raw)
	}

	// --- the spec's replacement rules, one step after another on sA1
	// (stored: unverified, index 5, forwarded 1) ---
	current := jsonRoundTrip(s.must(200, "GET", keysPath("2", roomA, "sA1"), alice.Token, nil).Body)
	steps := []struct {
		what    string
		key     map[string]any
		replace bool
	}{
		{"higher index", kbKey(false, 6, 0, kbData()), false},
		{"same index, more forwards", kbKey(false, 5, 2, kbData()), false},
		{"equal metadata", kbKey(false, 5, 1, kbData()), false},
		{"fewer forwards", kbKey(false, 5, 0, kbData()), true},
		{"lower index", kbKey(false, 3, 4, kbData()), true},
		{"verified with a worse index", kbKey(true, 8, 8, kbData()), true},
		{"unverified with a better index", kbKey(false, 0, 0, kbData()), false},
		{"verified, lower index", kbKey(true, 2, 8, kbData()), true},
	}
	for _, st := range steps {
		up := s.must(200, "PUT", keysPath("2", roomA, "sA1"), alice.Token, st.key)
		if up.num("count") != 3 {
			t.Fatalf("%s: count %s", st.what, up.Raw)
		}
		got := jsonRoundTrip(s.must(200, "GET", keysPath("2", roomA, "sA1"), alice.Token, nil).Body)
		if st.replace {
			current = jsonRoundTrip(st.key)
			if up.str("etag") == etag {
				t.Errorf("%s: replaced, but the etag did not change", st.what)
			}
		} else if up.str("etag") != etag {
			t.Errorf("%s: kept, but the etag changed", st.what)
		}
		if !reflect.DeepEqual(got, current) {
			t.Fatalf("%s: stored %v, want %v", st.what, got, current)
		}
		etag = up.str("etag")
	}

	// --- reads at three levels ---
	all := s.must(200, "GET", keysPath("2"), alice.Token, nil)
	rooms, _ := all.Body["rooms"].(map[string]any)
	if len(rooms) != 2 || len(rooms[roomA].(map[string]any)["sessions"].(map[string]any)) != 2 {
		t.Fatalf("all keys: %s", all.Raw)
	}
	if !reflect.DeepEqual(rooms[roomA].(map[string]any)["sessions"].(map[string]any)["sA1"], current) {
		t.Fatalf("sA1 in the whole backup differs from the session GET")
	}
	room := s.must(200, "GET", keysPath("2", roomB), alice.Token, nil)
	if _, ok := room.Body["sessions"].(map[string]any)["sB1"]; !ok {
		t.Fatalf("room keys: %s", room.Raw)
	}
	if r := s.must(200, "GET", keysPath("2", "!empty:localhost"), alice.Token, nil); string(r.Raw) != `{"sessions":{}}` {
		t.Fatalf("a room without keys: %s", r.Raw)
	}
	s.do("GET", keysPath("2", roomA, "nope"), alice.Token, nil).wantErr(t, "missing session", 404, "M_NOT_FOUND")
	s.do("GET", keysPath(""), alice.Token, nil).wantErr(t, "read without version", 400, "M_MISSING_PARAM")
	s.do("GET", keysPath("2"), bob.Token, nil).wantErr(t, "bob reads a version he lacks", 404, "M_NOT_FOUND")
	if r := s.must(200, "GET", keysPath("1"), bob.Token, nil); string(r.Raw) != `{"rooms":{}}` {
		t.Fatalf("bob's empty backup: %s", r.Raw)
	}

	// The same endpoints answer under r0.
	if r := s.must(200, "GET", "/_matrix/client/r0/room_keys/version", alice.Token, nil); r.str("version") != "2" {
		t.Fatalf("r0 latest: %s", r.Raw)
	}

	// --- the seed's r0 shapes, on the same backup ---
	const r0 = "/_matrix/client/r0"
	sessionsArray := []any{
		map[string]any{"session_id": "sC1", "session_data": kbData()},
		map[string]any{"session_id": "sC2", "session_data": kbData(), "is_verified": true, "first_message_index": 4},
	}
	up = s.must(200, "PUT", r0+"/room_keys/2", alice.Token, map[string]any{"room_id": "!roomC:localhost", "sessions": sessionsArray})
	if up.num("count") != 5 {
		t.Fatalf("seed PUT: %s", up.Raw)
	}
	s.do("PUT", r0+"/room_keys/1", alice.Token, map[string]any{"room_id": "!roomC:localhost", "sessions": sessionsArray}).
		wantErr(t, "seed PUT to an old version", 403, "M_WRONG_ROOM_KEYS_VERSION")
	s.do("PUT", r0+"/room_keys/2", alice.Token, map[string]any{"sessions": sessionsArray}).wantErr(t, "seed PUT without room", 400, "M_MISSING_PARAM")
	up = s.must(200, "POST", r0+"/room_keys/2/keys", alice.Token, map[string]any{
		"!roomD:localhost": map[string]any{"sessions": []any{map[string]any{"session_id": "sD1", "session_data": kbData()}}}})
	if up.num("count") != 6 || up.str("etag") == "" {
		t.Fatalf("seed batch: %s", up.Raw)
	}
	seedAll := s.must(200, "GET", r0+"/room_keys/2", alice.Token, nil)
	if seedAll.str("etag") != up.str("etag") || len(seedAll.Body["rooms"].(map[string]any)) != 4 {
		t.Fatalf("seed GET: %s", seedAll.Raw)
	}
	seedRoom := s.must(200, "GET", r0+"/room_keys/2/keys/"+esc("!roomC:localhost"), alice.Token, nil)
	if len(seedRoom.Body["rooms"].(map[string]any)["!roomC:localhost"].(map[string]any)["sessions"].(map[string]any)) != 2 {
		t.Fatalf("seed room GET: %s", seedRoom.Raw)
	}
	seedSession := s.must(200, "GET", r0+"/room_keys/2/keys/"+esc("!roomC:localhost")+"/sC2", alice.Token, nil)
	if seedSession.str("room_id") != "!roomC:localhost" || seedSession.str("session_id") != "sC2" ||
		seedSession.Body["is_verified"] != true || seedSession.num("first_message_index") != 4 {
		t.Fatalf("seed session GET: %s", seedSession.Raw)
	}
	s.do("GET", r0+"/room_keys/2/keys/"+esc("!roomC:localhost")+"/nope", alice.Token, nil).wantErr(t, "seed missing session", 404, "M_NOT_FOUND")
	dist := s.must(200, "GET", r0+"/rooms/"+esc("!roomC:localhost")+"/keys/distribution", alice.Token, nil)
	if dist.str("room_id") != "!roomC:localhost" || dist.str("algorithm") != "m.megolm.v1.aes-sha2" ||
		(dist.str("session_id") != "sC1" && dist.str("session_id") != "sC2") || dist.Body["session_data"] == nil {
		t.Fatalf("distribution: %s", dist.Raw)
	}
	s.do("GET", r0+"/rooms/"+esc("!none:localhost")+"/keys/distribution", alice.Token, nil).wantErr(t, "distribution of a room without keys", 404, "M_NOT_FOUND")
	s.do("PUT", v3+"/room_keys/version", alice.Token, create).wantErr(t, "PUT on the version collection", 405, "M_UNRECOGNIZED")

	// --- a restart keeps everything ---
	before := s.must(200, "GET", keysPath("2"), alice.Token, nil).Raw
	info := s.must(200, "GET", v3+"/room_keys/version", alice.Token, nil).Raw
	s.stop()
	s.launch()
	if after := s.must(200, "GET", keysPath("2"), alice.Token, nil).Raw; string(after) != string(before) {
		t.Fatalf("keys after restart:\n%s\nbefore:\n%s", after, before)
	}
	if after := s.must(200, "GET", v3+"/room_keys/version", alice.Token, nil).Raw; string(after) != string(info) {
		t.Fatalf("version after restart: %s, before %s", after, info)
	}

	// --- deletes ---
	d := s.must(200, "DELETE", keysPath("2", roomA, "sA2"), alice.Token, nil)
	if d.num("count") != 5 || d.str("etag") == up.str("etag") {
		t.Fatalf("delete session: %s", d.Raw)
	}
	if again := s.must(200, "DELETE", keysPath("2", roomA, "sA2"), alice.Token, nil); again.num("count") != 5 || again.str("etag") != d.str("etag") {
		t.Fatalf("deleting a deleted session changed the backup: %s", again.Raw)
	}
	if d = s.must(200, "DELETE", keysPath("2", roomB), alice.Token, nil); d.num("count") != 4 {
		t.Fatalf("delete room: %s", d.Raw)
	}
	s.do("DELETE", keysPath("9"), alice.Token, nil).wantErr(t, "delete keys of an unknown version", 404, "M_NOT_FOUND")
	if d = s.must(200, "DELETE", keysPath("2"), alice.Token, nil); d.num("count") != 0 {
		t.Fatalf("delete all: %s", d.Raw)
	}
	s.must(200, "PUT", keysPath("2"), alice.Token, upload)
	s.must(200, "DELETE", v3+"/room_keys/version/2", alice.Token, nil)
	s.must(200, "DELETE", v3+"/room_keys/version/2", alice.Token, nil) // deleted before: still 200
	s.do("DELETE", v3+"/room_keys/version/7", alice.Token, nil).wantErr(t, "delete a version never created", 404, "M_NOT_FOUND")
	s.do("GET", keysPath("2"), alice.Token, nil).wantErr(t, "keys of a deleted version", 404, "M_NOT_FOUND")
	if v := s.must(200, "GET", v3+"/room_keys/version", alice.Token, nil); v.str("version") != "1" {
		t.Fatalf("latest after deleting 2: %s", v.Raw)
	}
	if v := s.must(200, "POST", v3+"/room_keys/version", alice.Token, create).str("version"); v != "3" {
		t.Fatalf("version after a deleted 2: %q (versions are never reused)", v)
	}
}

// jsonRoundTrip is v as a decoded JSON value, for comparing with answers.
func jsonRoundTrip(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// TestKeyBackupScaleHTTP is TestKeyBackupScale (boltstore) through the
// real binary: 10,000 sessions of one user in 200 rooms, uploaded as PUT
// /room_keys/keys bodies of 500 sessions, then fetched with one GET. It
// logs the times and the growth of the data directory.
// Run: make build; LICHEN_KEYBACKUP_SCALE=1 go test -run TestKeyBackupScaleHTTP -v ./tests/e2e/
func TestKeyBackupScaleHTTP(t *testing.T) {
	if os.Getenv("LICHEN_KEYBACKUP_SCALE") == "" {
		t.Skip("set LICHEN_KEYBACKUP_SCALE=1 to run")
	}
	const sessions, rooms = 10000, 200
	batch := 500 // sessions per upload; LICHEN_KEYBACKUP_BATCH overrides
	if n, err := strconv.Atoi(os.Getenv("LICHEN_KEYBACKUP_BATCH")); err == nil && n > 0 {
		batch = n
	}
	s := start(t)
	alice := s.register("kbscale")
	rssStart := peakRSS(s.cmd.Process.Pid)
	v := s.must(200, "POST", "/_matrix/client/v3/room_keys/version", alice.Token,
		map[string]any{"algorithm": kbAlgorithm, "auth_data": map[string]any{"public_key": kbB64(32)}}).str("version")
	roomIDs := make([]string, rooms)
	for i := range roomIDs {
		roomIDs[i] = "!" + base64.RawURLEncoding.EncodeToString([]byte(kbB64(24)))[:43]
	}
	var bodies [][]byte
	for start := 0; start < sessions; start += batch {
		byRoom := map[string]any{}
		for i := start; i < start+batch && i < sessions; i++ {
			r := roomIDs[i%rooms]
			if byRoom[r] == nil {
				byRoom[r] = map[string]any{"sessions": map[string]any{}}
			}
			byRoom[r].(map[string]any)["sessions"].(map[string]any)[kbB64(32)] = kbKey(i%3 == 0, i%50, i%2, kbData())
		}
		b, _ := json.Marshal(map[string]any{"rooms": byRoom})
		bodies = append(bodies, b)
	}
	db := filepath.Join(s.DataDir, "lichen.db")
	size := func() int64 {
		fi, err := os.Stat(db)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	t0 := time.Now()
	for _, b := range bodies {
		s.must(200, "PUT", "/_matrix/client/v3/room_keys/keys?version="+v, alice.Token, b)
	}
	upload := time.Since(t0)
	rssUpload := peakRSS(s.cmd.Process.Pid)
	// The GET, timed to the last byte read (not decoded), uncompressed
	// and as a client asking for gzip gets it.
	fetch := map[string]time.Duration{}
	var body []byte
	for _, enc := range []string{"identity", "gzip"} {
		req, _ := http.NewRequest("GET", s.URL+"/_matrix/client/v3/room_keys/keys?version="+v, nil)
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		req.Header.Set("Accept-Encoding", enc)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		fetch[enc] = time.Since(t0)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET all: %d %v", resp.StatusCode, err)
		}
		if enc == "identity" {
			body = b
		} else {
			fetch["gzip bytes"] = time.Duration(len(b))
		}
	}
	var all response
	if err := json.Unmarshal(body, &all.Body); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range all.Body["rooms"].(map[string]any) {
		n += len(r.(map[string]any)["sessions"].(map[string]any))
	}
	if n != sessions {
		t.Fatalf("fetched %d sessions", n)
	}
	t.Logf("%d sessions in %d PUTs of %d (%.2f MB of bodies): upload %v (%.0f sessions/s, %.1f ms per PUT); "+
		"GET all %v (%.2f MB JSON), with gzip %v (%.2f MB); lichen.db file %.2f MB -> %.2f MB; server peak RSS %s after registering, %s after the uploads, %s after the GETs",
		sessions, len(bodies), batch, float64(totalLen(bodies))/1e6, upload.Round(time.Millisecond), sessions/upload.Seconds(),
		float64(upload.Microseconds())/1000/float64(len(bodies)),
		fetch["identity"].Round(time.Millisecond), float64(len(body))/1e6, fetch["gzip"].Round(time.Millisecond),
		float64(fetch["gzip bytes"])/1e6, float64(before)/1e6, float64(size())/1e6, rssStart, rssUpload, peakRSS(s.cmd.Process.Pid))
}

// peakRSS is VmHWM of a process (Linux), "?" elsewhere.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.Join(strings.Fields(line[len("VmHWM:"):]), " ")
		}
	}
	return "?"
}

func totalLen(bs [][]byte) (n int) {
	for _, b := range bs {
		n += len(b)
	}
	return n
}
