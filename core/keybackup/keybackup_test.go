package keybackup

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// memStore is the Store contract in memory (boltstore tests the real one).
type memStore struct {
	last    map[string]uint64
	backups map[string]map[uint64]*memBackup
}

type memBackup struct {
	Backup
	keys map[string]RoomKey // room\0session
}

func newMemStore() *memStore {
	return &memStore{last: map[string]uint64{}, backups: map[string]map[uint64]*memBackup{}}
}

func (m *memStore) CreateBackup(user, algorithm string, authData json.RawMessage) (uint64, error) {
	m.last[user]++
	v := m.last[user]
	if m.backups[user] == nil {
		m.backups[user] = map[uint64]*memBackup{}
	}
	m.backups[user][v] = &memBackup{Backup: Backup{Version: v, Algorithm: algorithm, AuthData: authData}, keys: map[string]RoomKey{}}
	return v, nil
}

func (m *memStore) get(user string, v uint64) (*memBackup, error) {
	b := m.backups[user][v]
	if b == nil {
		return nil, ErrNotFound
	}
	return b, nil
}

func (m *memStore) Backup(user string, v uint64) (Backup, error) {
	b, err := m.get(user, v)
	if err != nil {
		return Backup{}, err
	}
	return b.Backup, nil
}

func (m *memStore) LatestBackup(user string) (Backup, error) {
	var best *memBackup
	for v, b := range m.backups[user] {
		if best == nil || v > best.Version {
			best = b
		}
	}
	if best == nil {
		return Backup{}, ErrNotFound
	}
	return best.Backup, nil
}

func (m *memStore) LastVersion(user string) (uint64, error) { return m.last[user], nil }

func (m *memStore) SetAuthData(user string, v uint64, authData json.RawMessage) error {
	b, err := m.get(user, v)
	if err == nil {
		b.AuthData = authData
	}
	return err
}

func (m *memStore) DeleteBackup(user string, v uint64) (bool, error) {
	_, ok := m.backups[user][v]
	delete(m.backups[user], v)
	return ok, nil
}

func (m *memStore) PutRoomKeys(user string, v uint64, keys []RoomKey, replaces func(current, candidate KeyBackupData) bool) (Backup, error) {
	b, err := m.get(user, v)
	if err != nil {
		return Backup{}, err
	}
	if l, _ := m.LatestBackup(user); l.Version != v {
		return Backup{}, &NotLatestError{Latest: l.Version}
	}
	changed := false
	for _, k := range keys {
		id := k.RoomID + "\x00" + k.SessionID
		if cur, ok := b.keys[id]; ok && !replaces(cur.KeyBackupData, k.KeyBackupData) {
			continue
		}
		k.Written = b.Etag + 1
		b.keys[id] = k
		changed = true
	}
	if changed {
		b.Etag++
	}
	b.Count = int64(len(b.keys))
	return b.Backup, nil
}

func (m *memStore) sorted(b *memBackup, roomID, sessionID string) []RoomKey {
	var out []RoomKey
	for _, k := range b.keys {
		if (roomID == "" || k.RoomID == roomID) && (sessionID == "" || k.SessionID == sessionID) {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].RoomID+"\x00"+out[i].SessionID < out[j].RoomID+"\x00"+out[j].SessionID
	})
	return out
}

func (m *memStore) RoomKeys(user string, v uint64, roomID, sessionID string, fn func(RoomKey) error) (Backup, error) {
	b, err := m.get(user, v)
	if err != nil {
		return Backup{}, err
	}
	for _, k := range m.sorted(b, roomID, sessionID) {
		if err := fn(k); err != nil {
			return Backup{}, err
		}
	}
	return b.Backup, nil
}

func (m *memStore) DeleteRoomKeys(user string, v uint64, roomID, sessionID string) (Backup, error) {
	b, err := m.get(user, v)
	if err != nil {
		return Backup{}, err
	}
	gone := m.sorted(b, roomID, sessionID)
	for _, k := range gone {
		delete(b.keys, k.RoomID+"\x00"+k.SessionID)
	}
	if len(gone) > 0 {
		b.Etag++
	}
	b.Count = int64(len(b.keys))
	return b.Backup, nil
}

const (
	alice = "@alice:example.org"
	bob   = "@bob:example.org"
)

func mustCode(t *testing.T, what string, err error, status int, code string) *mxerr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %d %s", what, status, code)
	}
	e := mxerr.As(err)
	if e.Status != status || e.Code != code {
		t.Fatalf("%s: %d %s (%v), want %d %s", what, e.Status, e.Code, err, status, code)
	}
	return e
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

const createBody = `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"pk1"}}`

func TestVersions(t *testing.T) {
	s := New(newMemStore())
	_, err := s.Version(alice, "")
	mustCode(t, "latest of none", err, 404, "M_NOT_FOUND")

	v1 := must[string](t, "create")(s.CreateVersion(alice, []byte(createBody)))
	v2 := must[string](t, "create")(s.CreateVersion(alice, []byte(createBody)))
	vb := must[string](t, "create bob")(s.CreateVersion(bob, []byte(createBody)))
	if v1 != "1" || v2 != "2" || vb != "1" {
		t.Fatalf("versions %q %q %q: want increasing integers per user", v1, v2, vb)
	}
	info := must[VersionInfo](t, "latest")(s.Version(alice, ""))
	if info.Version != "2" || info.Algorithm != AlgorithmCurve25519 || string(info.AuthData) != `{"public_key":"pk1"}` || info.Count != 0 || info.Etag != "0" {
		t.Fatalf("latest: %+v", info)
	}

	for _, tc := range []struct {
		name, version, body string
		status              int
		code                string
	}{
		{"new auth_data", "1", `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"pk2"},"version":"1"}`, 200, ""},
		{"body version differs", "1", `{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2","auth_data":{"public_key":"pk3"},"version":"2"}`, 400, "M_INVALID_PARAM"},
		{"algorithm differs", "1", `{"algorithm":"org.example.other","auth_data":{"public_key":"pk3"}}`, 400, "M_INVALID_PARAM"},
		{"algorithm missing", "1", `{"auth_data":{"public_key":"pk3"}}`, 400, "M_MISSING_PARAM"},
		{"unknown version", "9", createBody, 404, "M_NOT_FOUND"},
		{"not a version", "abc", createBody, 404, "M_NOT_FOUND"},
	} {
		err := s.UpdateVersion(alice, tc.version, []byte(tc.body))
		if tc.code == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			continue
		}
		mustCode(t, tc.name, err, tc.status, tc.code)
	}
	if info := must[VersionInfo](t, "get 1")(s.Version(alice, "1")); string(info.AuthData) != `{"public_key":"pk2"}` {
		t.Fatalf("auth_data after failed updates: %s", info.AuthData)
	}
	// Bob's version 1 is his own: alice's update did not touch it.
	if info := must[VersionInfo](t, "bob")(s.Version(bob, "1")); string(info.AuthData) != `{"public_key":"pk1"}` {
		t.Fatalf("bob's backup changed: %s", info.AuthData)
	}

	// Delete: the latest falls back to 1; deleting again succeeds; a
	// version never created is 404; new versions are not reused.
	if err := s.DeleteVersion(alice, "2"); err != nil {
		t.Fatal(err)
	}
	if info := must[VersionInfo](t, "latest")(s.Version(alice, "")); info.Version != "1" {
		t.Fatalf("latest after delete: %+v", info)
	}
	if err := s.DeleteVersion(alice, "2"); err != nil {
		t.Fatalf("deleting a deleted version: %v", err)
	}
	mustCode(t, "delete never created", s.DeleteVersion(alice, "3"), 404, "M_NOT_FOUND")
	mustCode(t, "delete not a version", s.DeleteVersion(alice, "x"), 404, "M_NOT_FOUND")
	_, err = s.Version(alice, "2")
	mustCode(t, "get deleted", err, 404, "M_NOT_FOUND")
	if v := must[string](t, "create")(s.CreateVersion(alice, []byte(createBody))); v != "3" {
		t.Fatalf("version after a deleted 2: %s", v)
	}
	_, err = s.CreateVersion(alice, []byte(`{"algorithm":"m.megolm_backup.v1.curve25519-aes-sha2"}`))
	mustCode(t, "create without auth_data", err, 400, "M_MISSING_PARAM")
}

func sessionJSON(verified bool, index, forwarded int, data string) string {
	b, _ := json.Marshal(map[string]any{"is_verified": verified, "first_message_index": index,
		"forwarded_count": forwarded, "session_data": json.RawMessage(data)})
	return string(b)
}

func TestKeys(t *testing.T) {
	s := New(newMemStore())
	v := must[string](t, "create")(s.CreateVersion(alice, []byte(createBody)))
	put := func(roomID, sessionID, body string) (KeysUpdate, error) {
		keys, err := ParseSessionBody(roomID, sessionID, []byte(body))
		if err != nil {
			return KeysUpdate{}, err
		}
		return s.PutKeys(alice, v, keys)
	}
	up := must[KeysUpdate](t, "put")(put(room, "s1", sessionJSON(false, 5, 1, `{"n":1}`)))
	if up.Count != 1 || up.Etag != "1" {
		t.Fatalf("after first put: %+v", up)
	}
	// The spec's rules decide each re-upload; etag moves only on a change.
	steps := []struct {
		name    string
		body    string
		replace bool
	}{
		{"higher index", sessionJSON(false, 6, 0, `{"n":2}`), false},
		{"same, more forwards", sessionJSON(false, 5, 2, `{"n":3}`), false},
		{"identical metadata", sessionJSON(false, 5, 1, `{"n":4}`), false},
		{"fewer forwards", sessionJSON(false, 5, 0, `{"n":5}`), true},
		{"lower index", sessionJSON(false, 2, 3, `{"n":6}`), true},
		{"verified, worse index", sessionJSON(true, 9, 9, `{"n":7}`), true},
		{"unverified, better index", sessionJSON(false, 0, 0, `{"n":8}`), false},
	}
	want := `{"n":1}`
	etag := up.Etag
	for _, st := range steps {
		up := must[KeysUpdate](t, st.name)(put(room, "s1", st.body))
		var sent struct {
			SessionData json.RawMessage `json:"session_data"`
		}
		_ = json.Unmarshal([]byte(st.body), &sent)
		if st.replace {
			want = string(sent.SessionData)
			if up.Etag == etag {
				t.Errorf("%s: etag unchanged", st.name)
			}
		} else if up.Etag != etag {
			t.Errorf("%s: etag changed without a change", st.name)
		}
		etag = up.Etag
		got := must[KeyBackupData](t, "get")(s.SessionKey(alice, v, room, "s1"))
		if string(got.SessionData) != want || up.Count != 1 {
			t.Errorf("%s: stored %s (count %d), want %s", st.name, got.SessionData, up.Count, want)
		}
	}

	// A room-level and an all-rooms upload, then the three reads.
	keys := must[[]RoomKey](t, "parse")(ParseRoomBody(room, []byte(`{"sessions":{"s2":`+sessionJSON(false, 0, 0, `{}`)+`}}`)))
	must[KeysUpdate](t, "put room")(s.PutKeys(alice, v, keys))
	keys = must[[]RoomKey](t, "parse")(ParseKeysBody([]byte(`{"rooms":{"!other:example.org":{"sessions":{"s3":` + sessionJSON(true, 1, 0, `{"x":"\"q\""}`) + `}}}}`)))
	up = must[KeysUpdate](t, "put all")(s.PutKeys(alice, v, keys))
	if up.Count != 3 {
		t.Fatalf("count %d", up.Count)
	}
	all := must[json.RawMessage](t, "keys")(s.Keys(alice, v))
	wantAll := `{"rooms":{"!other:example.org":{"sessions":{"s3":{"first_message_index":1,"forwarded_count":0,"is_verified":true,"session_data":{"x":"\"q\""}}}},` +
		`"!room:example.org":{"sessions":{"s1":{"first_message_index":9,"forwarded_count":9,"is_verified":true,"session_data":{"n":7}},` +
		`"s2":{"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}}}}}}`
	if string(all) != wantAll || !json.Valid(all) {
		t.Fatalf("keys:\n got %s\nwant %s", all, wantAll)
	}
	roomKeys := must[json.RawMessage](t, "room keys")(s.RoomKeys(alice, v, "!other:example.org"))
	if string(roomKeys) != `{"sessions":{"s3":{"first_message_index":1,"forwarded_count":0,"is_verified":true,"session_data":{"x":"\"q\""}}}}` {
		t.Fatalf("room keys: %s", roomKeys)
	}
	if r := must[json.RawMessage](t, "empty room")(s.RoomKeys(alice, v, "!none:example.org")); string(r) != `{"sessions":{}}` {
		t.Fatalf("room without keys: %s", r)
	}
	_, err := s.SessionKey(alice, v, room, "nope")
	mustCode(t, "missing session", err, 404, "M_NOT_FOUND")

	// Errors: missing and unknown versions, another user's version, a
	// version that is not the latest.
	_, err = s.Keys(alice, "")
	mustCode(t, "no version", err, 400, "M_MISSING_PARAM")
	_, err = s.Keys(alice, "7")
	mustCode(t, "unknown version", err, 404, "M_NOT_FOUND")
	_, err = s.Keys(bob, v)
	mustCode(t, "bob reads alice's version", err, 404, "M_NOT_FOUND")
	_, err = s.PutKeys(bob, v, keys)
	mustCode(t, "bob writes alice's version", err, 404, "M_NOT_FOUND")
	must[string](t, "create 2")(s.CreateVersion(alice, []byte(createBody)))
	_, err = s.PutKeys(alice, v, keys)
	e := mustCode(t, "old version", err, 403, "M_WRONG_ROOM_KEYS_VERSION")
	if e.Fields["current_version"] != "2" {
		t.Fatalf("current_version %v", e.Fields)
	}
	// Reading and deleting an old version is allowed.
	up = must[KeysUpdate](t, "delete session")(s.DeleteKeys(alice, v, room, "s2"))
	if up.Count != 2 {
		t.Fatalf("after deleting a session: %+v", up)
	}
	up2 := must[KeysUpdate](t, "delete missing")(s.DeleteKeys(alice, v, room, "s2"))
	if up2 != up {
		t.Fatalf("deleting nothing changed %+v to %+v", up, up2)
	}
	up = must[KeysUpdate](t, "delete room")(s.DeleteKeys(alice, v, room, ""))
	if up.Count != 1 {
		t.Fatalf("after deleting a room: %+v", up)
	}
	up = must[KeysUpdate](t, "delete all")(s.DeleteKeys(alice, v, "", ""))
	if up.Count != 0 {
		t.Fatalf("after deleting all: %+v", up)
	}
	if all := must[json.RawMessage](t, "keys")(s.Keys(alice, v)); string(all) != `{"rooms":{}}` {
		t.Fatalf("empty backup: %s", all)
	}
}

func TestLegacy(t *testing.T) {
	s := New(newMemStore())
	_, err := s.Distribution(alice, room)
	mustCode(t, "distribution without backup", err, 404, "M_NOT_FOUND")
	v := must[string](t, "create")(s.CreateVersion(alice, []byte(createBody)))
	keys := must[[]RoomKey](t, "parse")(ParseLegacyRoomBody([]byte(`{"room_id":"` + room + `","sessions":[{"session_id":"a","session_data":{"c":1}}]}`)))
	up := must[KeysUpdate](t, "put")(s.PutKeys(alice, v, keys))
	if up.Count != 1 || up.Etag != "1" {
		t.Fatalf("%+v", up)
	}
	keys = must[[]RoomKey](t, "parse")(ParseLegacyBatchBody([]byte(`{"` + room + `":{"sessions":[{"session_id":"b","session_data":{"c":2}}]}}`)))
	must[KeysUpdate](t, "batch")(s.PutKeys(alice, v, keys))

	all := must[json.RawMessage](t, "legacy keys")(s.LegacyKeys(alice, v))
	if !strings.HasSuffix(string(all), `,"etag":"2"}`) || !strings.Contains(string(all), `"b":{"first_message_index":0`) {
		t.Fatalf("legacy keys: %s", all)
	}
	r := must[json.RawMessage](t, "legacy room")(s.LegacyRoomKeys(alice, v, room))
	if !strings.HasPrefix(string(r), `{"rooms":{"!room:example.org":{"sessions":{"a":`) {
		t.Fatalf("legacy room: %s", r)
	}
	if r := must[json.RawMessage](t, "legacy room")(s.LegacyRoomKeys(alice, v, "!none:x")); string(r) != `{"rooms":{}}` {
		t.Fatalf("legacy empty room: %s", r)
	}
	sess := must[LegacySession](t, "legacy session")(s.LegacySessionKey(alice, v, room, "a"))
	b, _ := json.Marshal(sess)
	if string(b) != `{"room_id":"!room:example.org","session_id":"a","first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{"c":1}}` {
		t.Fatalf("legacy session: %s", b)
	}
	// The most recently written session of the room is "b".
	d := must[RoomKeyDistribution](t, "distribution")(s.Distribution(alice, room))
	if d.SessionID != "b" || d.Algorithm != MegolmAlgorithm || d.Version != "1" || string(d.SessionData) != `{"c":2}` {
		t.Fatalf("distribution: %+v", d)
	}
	_, err = s.Distribution(alice, "!none:x")
	mustCode(t, "distribution of a room without keys", err, 404, "M_NOT_FOUND")
}
