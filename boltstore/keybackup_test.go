package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/keybackup"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Store tests for key backups (core/keybackup) over a real bbolt file.

const kbCreate = `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"}}`

// kbSessionData is session_data as clients send it: unpadded base64 of a
// 32-byte ephemeral key, the AES-CBC ciphertext, and an 8-byte MAC.
func kbSessionData(tb testing.TB, ciphertextBytes int) string {
	tb.Helper()
	raw := func(n int) string {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			tb.Fatal(err)
		}
		return base64.RawStdEncoding.EncodeToString(b)
	}
	return `{"ephemeral":"` + raw(32) + `","ciphertext":"` + raw(ciphertextBytes) + `","mac":"` + raw(8) + `"}`
}

func kbRandomID(tb testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

func kbSession(verified bool, index, forwarded int, data string) string {
	return fmt.Sprintf(`{"first_message_index":%d,"forwarded_count":%d,"is_verified":%v,"session_data":%s}`, index, forwarded, verified, data)
}

func kbMust[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func TestKeyBackupStore(t *testing.T) {
	st, path := udOpenStore(t)
	kb := keybackup.New(st)
	_, err := kb.Version(udAlice, "")
	udWantErr(t, "no backup", err, 404, "M_NOT_FOUND")
	v := kbMust[string](t, "create")(kb.CreateVersion(udAlice, []byte(kbCreate)))
	if v != "1" {
		t.Fatalf("first version %q", v)
	}
	if v := kbMust[string](t, "create bob")(kb.CreateVersion(udBob, []byte(kbCreate))); v != "1" {
		t.Fatalf("bob's first version %q: versions are per user", v)
	}

	data := kbSessionData(t, 262)
	put := func(session, body string) keybackup.KeysUpdate {
		t.Helper()
		keys := kbMust[[]keybackup.RoomKey](t, "parse")(keybackup.ParseSessionBody(udRoom1, session, []byte(body)))
		return kbMust[keybackup.KeysUpdate](t, "put")(kb.PutKeys(udAlice, v, keys))
	}
	up := put("s1", kbSession(false, 4, 1, data))
	if up.Count != 1 || up.Etag != "1" {
		t.Fatalf("first put %+v", up)
	}
	if up2 := put("s1", kbSession(false, 5, 0, kbSessionData(t, 262))); up2 != up {
		t.Fatalf("a worse copy changed the backup: %+v -> %+v", up, up2)
	}
	got := kbMust[keybackup.KeyBackupData](t, "get")(kb.SessionKey(udAlice, v, udRoom1, "s1"))
	if !sameJSON(got.SessionData, data) || got.FirstMessageIndex != 4 || got.ForwardedCount != 1 || got.IsVerified {
		t.Fatalf("stored %+v (%s), want the first copy %s", got, got.SessionData, data)
	}
	better := kbSessionData(t, 300)
	up = put("s1", kbSession(true, 7, 2, better))
	if up.Count != 1 || up.Etag != "2" {
		t.Fatalf("after a verified copy %+v", up)
	}
	// session_data that is not the curve25519 shape is kept as JSON.
	odd := `{"ciphertext":"not base64!","ephemeral":"e","mac":"m","extra":[1,2]}`
	put("s2", kbSession(false, 0, 0, odd))
	padded := `{"ephemeral":"AAAA","ciphertext":"AA==","mac":"AAAA"}`
	put("s3", kbSession(false, 0, 0, padded))
	up = put("s4", kbSession(false, 0, 0, `{}`))
	if up.Count != 4 || up.Etag != "5" {
		t.Fatalf("after four sessions %+v", up)
	}

	// A second version: writes to the first are refused with the current one.
	v2 := kbMust[string](t, "create 2")(kb.CreateVersion(udAlice, []byte(kbCreate)))
	keys, _ := keybackup.ParseSessionBody(udRoom1, "s5", []byte(kbSession(false, 0, 0, data)))
	_, err = kb.PutKeys(udAlice, v, keys)
	e := udWantErr2(t, "write to an old version", err, 403, "M_WRONG_ROOM_KEYS_VERSION")
	if e.Fields["current_version"] != v2 {
		t.Fatalf("current_version %v, want %s", e.Fields, v2)
	}
	_, err = kb.PutKeys(udBob, "2", keys)
	udWantErr(t, "bob writes a version he does not have", err, 404, "M_NOT_FOUND")
	_, err = kb.Keys(udBob, v2)
	udWantErr(t, "bob reads alice's version 2", err, 404, "M_NOT_FOUND")

	// Everything survives closing and reopening the file.
	st.Close()
	st2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	kb = keybackup.New(st2)
	info := kbMust[keybackup.VersionInfo](t, "version 1")(kb.Version(udAlice, v))
	if info.Count != 4 || info.Etag != "5" || info.Algorithm != keybackup.AlgorithmCurve25519 || !sameJSON(info.AuthData, `{"public_key":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"}`) {
		t.Fatalf("after reopen: %+v", info)
	}
	if info := kbMust[keybackup.VersionInfo](t, "latest")(kb.Version(udAlice, "")); info.Version != v2 || info.Count != 0 {
		t.Fatalf("latest after reopen: %+v", info)
	}
	all := kbMust[json.RawMessage](t, "keys")(kb.Keys(udAlice, v))
	var decoded struct {
		Rooms map[string]struct {
			Sessions map[string]keybackup.KeyBackupData `json:"sessions"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(all, &decoded); err != nil {
		t.Fatalf("keys are not JSON: %v\n%s", err, all)
	}
	sessions := decoded.Rooms[udRoom1].Sessions
	for id, want := range map[string]string{"s1": better, "s2": odd, "s3": padded, "s4": `{}`} {
		if !sameJSON(sessions[id].SessionData, want) {
			t.Errorf("%s: session_data %s, want %s", id, sessions[id].SessionData, want)
		}
	}
	if s1 := sessions["s1"]; !s1.IsVerified || s1.FirstMessageIndex != 7 || s1.ForwardedCount != 2 {
		t.Errorf("s1 metadata %+v", s1)
	}

	// Deleting: a session, then the version with the rest of its keys.
	up = kbMust[keybackup.KeysUpdate](t, "delete s4")(kb.DeleteKeys(udAlice, v, udRoom1, "s4"))
	if up.Count != 3 || up.Etag != "6" {
		t.Fatalf("after delete %+v", up)
	}
	if err := kb.DeleteVersion(udAlice, v); err != nil {
		t.Fatal(err)
	}
	if err := kb.DeleteVersion(udAlice, v); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	udWantErr(t, "delete a version never made", kb.DeleteVersion(udAlice, "3"), 404, "M_NOT_FOUND")
	_, err = kb.Keys(udAlice, v)
	udWantErr(t, "keys of a deleted version", err, 404, "M_NOT_FOUND")
	if n := kbRoomKeyCount(t, st2); n != 0 {
		t.Fatalf("%d session records left after deleting the only version with keys", n)
	}
}

// udWantErr2 is udWantErr returning the error for its fields.
func udWantErr2(t *testing.T, what string, err error, status int, code string) *mxerr.Error {
	t.Helper()
	udWantErr(t, what, err, status, code)
	return mxerr.As(err)
}

// kbRoomKeyCount counts the records of every backup's sessions and rooms.
func kbRoomKeyCount(t *testing.T, st *Store) int {
	var n int
	_ = st.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRoomKeys, bucketBackupRoomNum, bucketBackupNumRoom} {
			n += tx.Bucket(b).Stats().KeyN
		}
		return nil
	})
	return n
}

// TestSessionKey: megolm session IDs are stored as their 32 bytes, any
// other ID as is, and both come back as they were.
func TestSessionKey(t *testing.T) {
	megolm := kbRandomID(t)
	for _, tc := range []struct {
		id  string
		len int
	}{
		{megolm, 33},
		{strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 32)), "="), 33},
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), 45},    // padded: kept as is
		{strings.NewReplacer("+", "-", "/", "_").Replace(megolm), 0}, // URL-safe: as is unless it has neither
		{"s1", 3},
	} {
		k := sessionKey(tc.id)
		if tc.len > 0 && len(k) != tc.len {
			t.Errorf("%q: key of %d bytes, want %d", tc.id, len(k), tc.len)
		}
		if back, err := sessionIDOf(k); err != nil || back != tc.id {
			t.Errorf("%q came back as %q (%v)", tc.id, back, err)
		}
	}
}

// TestKeyBackupRooms: a room's keys can go and come back, other rooms and
// other versions keep theirs.
func TestKeyBackupRooms(t *testing.T) {
	st, _ := udOpenStore(t)
	kb := keybackup.New(st)
	v := kbMust[string](t, "create")(kb.CreateVersion(udAlice, []byte(kbCreate)))
	upload := func(room, session string) keybackup.KeysUpdate {
		keys := kbMust[[]keybackup.RoomKey](t, "parse")(keybackup.ParseSessionBody(room, session, []byte(kbSession(false, 0, 0, `{}`))))
		return kbMust[keybackup.KeysUpdate](t, "put")(kb.PutKeys(udAlice, v, keys))
	}
	megolm := kbRandomID(t)
	upload(udRoom1, megolm)
	upload(udRoom1, "s2")
	upload("!two:test.local", megolm) // the same session ID in another room
	kbMust[keybackup.KeysUpdate](t, "delete room")(kb.DeleteKeys(udAlice, v, udRoom1, ""))
	if r := kbMust[json.RawMessage](t, "room")(kb.RoomKeys(udAlice, v, udRoom1)); string(r) != `{"sessions":{}}` {
		t.Fatalf("deleted room: %s", r)
	}
	if got := kbMust[keybackup.KeyBackupData](t, "other room")(kb.SessionKey(udAlice, v, "!two:test.local", megolm)); string(got.SessionData) != `{}` {
		t.Fatalf("other room's session: %+v", got)
	}
	if up := upload(udRoom1, megolm); up.Count != 2 {
		t.Fatalf("re-upload to a deleted room: %+v", up)
	}
	all := kbMust[json.RawMessage](t, "all")(kb.Keys(udAlice, v))
	want := `{"rooms":{"` + udRoom1 + `":{"sessions":{"` + megolm + `":{"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}}}},` +
		`"!two:test.local":{"sessions":{"` + megolm + `":{"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}}}}}}`
	if string(all) != want {
		t.Fatalf("all:\n got %s\nwant %s", all, want)
	}
	// Another version's rooms are its own.
	v2 := kbMust[string](t, "create 2")(kb.CreateVersion(udAlice, []byte(kbCreate)))
	if r := kbMust[json.RawMessage](t, "v2")(kb.Keys(udAlice, v2)); string(r) != `{"rooms":{}}` {
		t.Fatalf("new version: %s", r)
	}
	if err := kb.DeleteVersion(udAlice, v); err != nil {
		t.Fatal(err)
	}
	if n := kbRoomKeyCount(t, st); n != 0 {
		t.Fatalf("%d records left", n)
	}
}

func sameJSON(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// TestRoomKeyRecord: the curve25519 session_data shape is packed to its
// bytes and comes back as the same object; other shapes are kept as JSON.
func TestRoomKeyRecord(t *testing.T) {
	canonical := kbSessionData(t, 262)
	for _, tc := range []struct {
		data   string
		packed bool
	}{
		{canonical, true},
		{`{"mac":"AAAAAAAAAAA","ciphertext":"AQID","ephemeral":""}`, true},
		{`{"ephemeral":"AAAA","ciphertext":"AA==","mac":"AAAA"}`, false},       // padded
		{`{"ephemeral":"AAB","ciphertext":"AAAA","mac":"AAAA"}`, false},        // non-zero trailing bits
		{`{"ephemeral":"A\/AA","ciphertext":"AAAA","mac":"AAAA"}`, false},      // an escape
		{`{"ephemeral":"AAAA","ciphertext":"AAAA","mac":1}`, false},            // not a string
		{`{"ephemeral":"AAAA","ciphertext":"AAAA","mac":"AAAA","x":1}`, false}, // more fields
		{`{}`, false},
	} {
		k := keybackup.RoomKey{RoomID: udRoom1, SessionID: "s", KeyBackupData: keybackup.KeyBackupData{
			FirstMessageIndex: 300, ForwardedCount: 2, IsVerified: true, SessionData: json.RawMessage(tc.data)}}
		p := prepareRoomKey(k)
		if got := p.flags&^rkVerified == rkFormatB64; got != tc.packed {
			t.Errorf("%s: packed %v, want %v", tc.data, got, tc.packed)
		}
		v := p.value(12345)
		back, written, _, err := decodeRoomKey(v, nil, false)
		if err != nil || written != 12345 || back.FirstMessageIndex != 300 || back.ForwardedCount != 2 || !back.IsVerified {
			t.Fatalf("%s: decoded %+v written %d: %v", tc.data, back, written, err)
		}
		if !sameJSON(back.SessionData, tc.data) {
			t.Errorf("%s: came back as %s", tc.data, back.SessionData)
		}
		if tc.packed && len(v) >= len(tc.data) && len(tc.data) > 100 {
			t.Errorf("packed record is %d bytes for %d bytes of JSON", len(v), len(tc.data))
		}
	}
}

// TestKeyBackupConcurrentUploads: devices uploading at once through the
// group commit lose nothing, and count stays the number of sessions.
func TestKeyBackupConcurrentUploads(t *testing.T) {
	st, _ := udOpenStore(t)
	kb := keybackup.New(st)
	v := kbMust[string](t, "create")(kb.CreateVersion(udAlice, []byte(kbCreate)))
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Every writer also re-uploads a shared session.
				for _, id := range []string{fmt.Sprintf("w%d-%d", w, i), "shared"} {
					keys, err := keybackup.ParseSessionBody(udRoom1, id, []byte(kbSession(false, i, 0, `{}`)))
					if err == nil {
						_, err = kb.PutKeys(udAlice, v, keys)
					}
					if err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info := kbMust[keybackup.VersionInfo](t, "version")(kb.Version(udAlice, v))
	if info.Count != writers*each+1 {
		t.Fatalf("count %d, want %d", info.Count, writers*each+1)
	}
	if got := kbMust[keybackup.KeyBackupData](t, "shared")(kb.SessionKey(udAlice, v, udRoom1, "shared")); got.FirstMessageIndex != 0 {
		t.Fatalf("shared session kept index %d, want the lowest (0)", got.FirstMessageIndex)
	}
}

// TestKeyBackupScale measures a realistic backup: 10,000 sessions of one
// user in 200 rooms, uploaded as a client does (PUT /room_keys/keys bodies
// of 500 sessions, parsed and stored through the service), then read back
// whole (GET /room_keys/keys). It logs the database growth and the times.
// Run: LICHEN_KEYBACKUP_SCALE=1 go test -run TestKeyBackupScale -v ./boltstore/
// (LICHEN_KEYBACKUP_BATCH=100 or 1000 for other upload sizes)
func TestKeyBackupScale(t *testing.T) {
	if os.Getenv("LICHEN_KEYBACKUP_SCALE") == "" {
		t.Skip("set LICHEN_KEYBACKUP_SCALE=1 to run")
	}
	const sessions, rooms = 10000, 200
	batch := 500 // sessions per upload; LICHEN_KEYBACKUP_BATCH overrides
	if n, err := strconv.Atoi(os.Getenv("LICHEN_KEYBACKUP_BATCH")); err == nil && n > 0 {
		batch = n
	}
	// About 262 bytes of ciphertext: 352 base64 characters, as the
	// encrypted BackedUpSessionData of a megolm session comes out.
	const ciphertextBytes = 262
	dir := t.TempDir()
	path := filepath.Join(dir, "lichen.db")
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kb := keybackup.New(st)
	v := kbMust[string](t, "create")(kb.CreateVersion(udAlice, []byte(kbCreate)))

	roomIDs := make([]string, rooms)
	for i := range roomIDs {
		roomIDs[i] = "!" + strings.NewReplacer("+", "-", "/", "_").Replace(kbRandomID(t)) // a v12 room ID
	}
	var bodies [][]byte
	var jsonBytes int
	for start := 0; start < sessions; start += batch {
		byRoom := map[string]map[string]json.RawMessage{}
		for i := start; i < start+batch && i < sessions; i++ {
			r := roomIDs[i%rooms]
			if byRoom[r] == nil {
				byRoom[r] = map[string]json.RawMessage{}
			}
			s := json.RawMessage(kbSession(i%3 == 0, i%50, i%2, kbSessionData(t, ciphertextBytes)))
			jsonBytes += len(s)
			byRoom[r][kbRandomID(t)] = s
		}
		body := map[string]any{"rooms": map[string]any{}}
		for r, ss := range byRoom {
			body["rooms"].(map[string]any)[r] = map[string]any{"sessions": ss}
		}
		b, _ := json.Marshal(body)
		bodies = append(bodies, b)
	}
	fileBefore := kbFileSize(t, path)
	sizeBefore := st.Size()

	startUp := time.Now()
	for _, b := range bodies {
		keys, err := keybackup.ParseKeysBody(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kb.PutKeys(udAlice, v, keys); err != nil {
			t.Fatal(err)
		}
	}
	upload := time.Since(startUp)

	startGet := time.Now()
	all, err := kb.Keys(udAlice, v)
	if err != nil {
		t.Fatal(err)
	}
	fetch := time.Since(startGet)
	info := kbMust[keybackup.VersionInfo](t, "version")(kb.Version(udAlice, v))
	if info.Count != sessions {
		t.Fatalf("count %d", info.Count)
	}
	var decoded struct {
		Rooms map[string]struct {
			Sessions map[string]json.RawMessage `json:"sessions"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(all, &decoded); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range decoded.Rooms {
		n += len(r.Sessions)
	}
	if n != sessions {
		t.Fatalf("fetched %d sessions", n)
	}

	buckets, free, _ := densityOf(t, st)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%d sessions in %d rooms, %d uploads of %d; session JSON %.0f B each (%.2f MB in all)\n",
		sessions, rooms, len(bodies), batch, float64(jsonBytes)/sessions, float64(jsonBytes)/1e6)
	fmt.Fprintf(&sb, "upload: %v (%.0f sessions/s, %.1f ms per upload)\n", upload.Round(time.Millisecond),
		sessions/upload.Seconds(), float64(upload.Microseconds())/1000/float64(len(bodies)))
	fmt.Fprintf(&sb, "fetch all: %v (%.2f MB of JSON)\n", fetch.Round(time.Millisecond), float64(len(all))/1e6)
	fmt.Fprintf(&sb, "database (bbolt high-water mark): %.2f MB -> %.2f MB, +%.0f B/session\n",
		float64(sizeBefore)/1e6, float64(st.Size())/1e6, float64(st.Size()-sizeBefore)/sessions)
	fmt.Fprintf(&sb, "file on disk: %.2f MB -> %.2f MB (bbolt grows the file in steps)\n",
		float64(fileBefore)/1e6, float64(kbFileSize(t, path))/1e6)
	for _, d := range buckets {
		if d.name == string(bucketRoomKeys) {
			fmt.Fprintf(&sb, "%s: %d pages, %.0f B/session of pages, %.0f B/session in use (fill %.0f%%)\n",
				d.name, d.pages, float64(d.alloc)/sessions, float64(d.inuse)/sessions, 100*float64(d.inuse)/float64(d.alloc))
		}
	}
	fmt.Fprintf(&sb, "free pages: %.2f MB", float64(free)/1e6)
	t.Log(sb.String())
}

func kbFileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
