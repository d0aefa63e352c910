package e2e

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	gmsl "github.com/matrix-org/gomatrixserverlib"
)

// signObj signs obj (a JSON-able map) as signer with keyID/priv.
func signObj(t *testing.T, obj map[string]any, signer, keyID string, priv ed25519.PrivateKey) map[string]any {
	t.Helper()
	b, _ := json.Marshal(obj)
	signed, err := gmsl.SignJSON(signer, gmsl.KeyID(keyID), priv, b)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal(signed, &out)
	return out
}

func b64(pub ed25519.PublicKey) string { return base64.RawStdEncoding.EncodeToString(pub) }

// deviceKeysFor makes u's signed device keys and returns them with the
// device's signing key.
func deviceKeysFor(t *testing.T, u user) (map[string]any, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	dk := map[string]any{
		"user_id": u.ID, "device_id": u.Device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + u.Device: b64(pub), "curve25519:" + u.Device: "Y3VydmUyNTUxOQ"},
	}
	return signObj(t, dk, u.ID, "ed25519:"+u.Device, priv), priv
}

func syncFrom(s *server, u user, since string) response {
	s.t.Helper()
	q := "?timeout=0"
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	return s.must(200, "GET", cs+"/sync"+q, u.Token, nil)
}

func strList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Keys over HTTP: upload, query, claim, device lists in /sync and
// keys/changes, one-time key counts, and the refusals that change nothing.
func TestKeysUploadQueryClaim(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)
	bobSince := syncFrom(s, bob, "").str("next_batch")

	dk, _ := deviceKeysFor(t, alice)
	otks := map[string]any{}
	for _, id := range []string{"AAAA", "AAAB", "AAAC"} {
		otks["signed_curve25519:"+id] = map[string]any{"key": "k" + id, "signatures": map[string]any{}}
	}
	r := s.must(200, "POST", cs+"/keys/upload", alice.Token, map[string]any{
		"device_keys": dk, "one_time_keys": otks,
		"fallback_keys": map[string]any{"signed_curve25519:FFFF": map[string]any{"key": "kF", "fallback": true}},
	})
	if n := obj(r.Body, "one_time_key_counts", "signed_curve25519"); n != float64(3) {
		t.Fatalf("one_time_key_counts after upload: %s", r.Raw)
	}

	// Refusals: each 400, nothing stored.
	forged, _ := deviceKeysFor(t, alice)
	forged["keys"].(map[string]any)["curve25519:"+alice.Device] = "dGFtcGVyZWQ"
	otherUser, _ := deviceKeysFor(t, bob)
	newIdentity, _ := deviceKeysFor(t, alice)
	for name, body := range map[string]map[string]any{
		"forged signature":        {"device_keys": forged},
		"another user's keys":     {"device_keys": otherUser},
		"changed identity keys":   {"device_keys": newIdentity},
		"one-time key conflict":   {"one_time_keys": map[string]any{"signed_curve25519:AAAA": map[string]any{"key": "different"}}},
		"two fallback keys":       {"fallback_keys": map[string]any{"signed_curve25519:F1": map[string]any{"key": "a"}, "signed_curve25519:F2": map[string]any{"key": "b"}}},
		"malformed one-time keys": {"one_time_keys": map[string]any{"nocolon": map[string]any{"key": "a"}}},
	} {
		if st := s.do("POST", cs+"/keys/upload", alice.Token, body).Status; st != 400 {
			t.Errorf("%s: status %d, want 400", name, st)
		}
	}

	// bob sees alice's keys, unchanged, with her device's display name.
	q := s.must(200, "POST", cs+"/keys/query", bob.Token, map[string]any{"device_keys": map[string]any{alice.ID: []string{}}})
	got := obj(q.Body, "device_keys", alice.ID, alice.Device)
	if got == nil || objStr(got, "keys", "curve25519:"+alice.Device) != "Y3VydmUyNTUxOQ" {
		t.Fatalf("query: %s", q.Raw)
	}
	wantErr(t, s.do("POST", cs+"/keys/query", bob.Token, map[string]any{"device_keys": map[string]any{alice.ID: map[string]any{}}}), 400, "M_BAD_JSON")

	// bob hears of alice's new keys through /sync and keys/changes.
	sy := syncFrom(s, bob, bobSince)
	if !slices.Contains(strList(obj(sy.Body, "device_lists", "changed")), alice.ID) {
		t.Errorf("device_lists.changed lacks alice: %s", sy.Raw)
	}
	ch := s.must(200, "GET", cs+"/keys/changes?from="+url.QueryEscape(bobSince)+"&to="+url.QueryEscape(sy.str("next_batch")), bob.Token, nil)
	if !slices.Contains(strList(ch.Body["changed"]), alice.ID) {
		t.Errorf("keys/changes: %s", ch.Raw)
	}

	// Claims take one-time keys, then the fallback key.
	claim := map[string]any{"one_time_keys": map[string]any{alice.ID: map[string]any{alice.Device: "signed_curve25519"}}}
	var claimed []string
	for i := 0; i < 4; i++ {
		c := s.must(200, "POST", cs+"/keys/claim", bob.Token, claim)
		for name := range objMap(c.Body, "one_time_keys", alice.ID, alice.Device) {
			claimed = append(claimed, name)
		}
	}
	slices.Sort(claimed)
	want := []string{"signed_curve25519:AAAA", "signed_curve25519:AAAB", "signed_curve25519:AAAC", "signed_curve25519:FFFF"}
	if !slices.Equal(claimed, want) {
		t.Errorf("claimed %v, want %v", claimed, want)
	}
	a := syncFrom(s, alice, "")
	if n := obj(a.Body, "device_one_time_keys_count", "signed_curve25519"); n != float64(0) {
		t.Errorf("alice's count after claims: %v", n)
	}
	if fb := strList(a.Body["device_unused_fallback_key_types"]); len(fb) != 0 {
		t.Errorf("used fallback still reported unused: %v", fb)
	}

	// bob leaving the only shared room puts alice in device_lists.left.
	since := syncFrom(s, alice, "").str("next_batch")
	s.must(200, "POST", rpath(room, "/leave"), bob.Token, map[string]any{})
	if left := strList(obj(syncFrom(s, alice, since).Body, "device_lists", "left")); !slices.Contains(left, bob.ID) {
		t.Errorf("device_lists.left lacks bob: %v", left)
	}
}

// Cross-signing: the first upload needs no UIA, a replacement does; the
// self-signing key must be signed by the master key; signatures upload
// accepts a valid self-signature on an own device and reports a bad one.
func TestKeysCrossSigning(t *testing.T) {
	s := start(t)
	alice, bob := s.register("xs_alice"), s.register("")
	dk, _ := deviceKeysFor(t, alice)
	s.must(200, "POST", cs+"/keys/upload", alice.Token, map[string]any{"device_keys": dk})

	mPub, mPriv, _ := ed25519.GenerateKey(nil)
	sPub, sPriv, _ := ed25519.GenerateKey(nil)
	csKey := func(usage string, pub ed25519.PublicKey) map[string]any {
		return map[string]any{"user_id": alice.ID, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + b64(pub): b64(pub)}}
	}
	master := csKey("master", mPub)
	ssk := signObj(t, csKey("self_signing", sPub), alice.ID, "ed25519:"+b64(mPub), mPriv)

	_, badPriv, _ := ed25519.GenerateKey(nil)
	badSSK := signObj(t, csKey("self_signing", sPub), alice.ID, "ed25519:"+b64(mPub), badPriv)
	wantErr(t, s.do("POST", cs+"/keys/device_signing/upload", alice.Token, map[string]any{"master_key": master, "self_signing_key": badSSK}), 400, "M_INVALID_SIGNATURE")
	wantErr(t, s.do("POST", cs+"/keys/device_signing/upload", alice.Token, map[string]any{"self_signing_key": ssk}), 400, "M_MISSING_PARAM")

	s.must(200, "POST", cs+"/keys/device_signing/upload", alice.Token, map[string]any{"master_key": master, "self_signing_key": ssk})
	// The same keys again: no challenge (a retry after a lost response).
	s.must(200, "POST", cs+"/keys/device_signing/upload", alice.Token, map[string]any{"master_key": master, "self_signing_key": ssk})
	// New keys: UIA with the password.
	m2Pub, _, _ := ed25519.GenerateKey(nil)
	body := map[string]any{"master_key": csKey("master", m2Pub)}
	ch := s.do("POST", cs+"/keys/device_signing/upload", alice.Token, body)
	if ch.Status != 401 || ch.str("session") == "" {
		t.Fatalf("replacing keys without UIA: %d %s", ch.Status, ch.Raw)
	}
	body["auth"] = map[string]any{"type": "m.login.password", "session": ch.str("session"),
		"identifier": map[string]any{"type": "m.id.user", "user": "xs_alice"}, "password": "wrong"}
	if r := s.do("POST", cs+"/keys/device_signing/upload", alice.Token, body); r.Status != 401 {
		t.Fatalf("wrong password accepted: %d %s", r.Status, r.Raw)
	}
	q := s.must(200, "POST", cs+"/keys/query", bob.Token, map[string]any{"device_keys": map[string]any{alice.ID: []string{}}})
	if !strings.Contains(string(q.Raw), b64(mPub)) || q.Body["user_signing_keys"].(map[string]any)[alice.ID] != nil {
		t.Fatalf("query after refused replacement: %s", q.Raw)
	}

	// alice's self-signing key signs her device; a forged one is reported.
	signedDev := signObj(t, dk, alice.ID, "ed25519:"+b64(sPub), sPriv)
	forgedDev := signObj(t, dk, alice.ID, "ed25519:"+b64(sPub), badPriv)
	r := s.must(200, "POST", cs+"/keys/signatures/upload", alice.Token, map[string]any{alice.ID: map[string]any{alice.Device: forgedDev}})
	if objStr(r.Body, "failures", alice.ID, alice.Device, "errcode") != "M_INVALID_SIGNATURE" {
		t.Errorf("forged signature: %s", r.Raw)
	}
	r = s.must(200, "POST", cs+"/keys/signatures/upload", alice.Token, map[string]any{alice.ID: map[string]any{alice.Device: signedDev}})
	if len(objMap(r.Body, "failures")) != 0 {
		t.Errorf("valid signature refused: %s", r.Raw)
	}
	q = s.must(200, "POST", cs+"/keys/query", bob.Token, map[string]any{"device_keys": map[string]any{alice.ID: []string{alice.Device}}})
	if objStr(q.Body, "device_keys", alice.ID, alice.Device, "signatures", alice.ID, "ed25519:"+b64(sPub)) == "" {
		t.Errorf("device not cross-signed in query: %s", q.Raw)
	}
}

// Secret storage lives in account data (spec "Secret Storage"): the key
// description, the default key and encrypted secrets round-trip
// unchanged and reach other devices through /sync.
func TestKeysSecretStorageAccountData(t *testing.T) {
	s := start(t)
	alice := s.register("")
	enc := map[string]any{"encrypted": map[string]any{"KEYID": map[string]any{
		"iv": "gH2iNpiETFhApvW6/FFEJQ", "ciphertext": "2Sxc9nRn+1KHMu9+NtfCpgRHyP1PnKEVu3Q+7AdoBm4", "mac": "bAQX4KD8eeaSSXUCLsNRWqeXUBXgdFdWmJwhD8t+B2M"}}}
	types := map[string]any{
		"m.secret_storage.key.KEYID": map[string]any{"algorithm": "m.secret_storage.v1.aes-hmac-sha2", "iv": "abc", "mac": "def",
			"passphrase": map[string]any{"algorithm": "m.pbkdf2", "salt": "s", "iterations": 500000}},
		"m.secret_storage.default_key": map[string]any{"key": "KEYID"},
		"m.cross_signing.master":       enc,
		"m.cross_signing.self_signing": enc,
		"m.cross_signing.user_signing": enc,
		"m.megolm_backup.v1":           enc,
	}
	for typ, content := range types {
		s.must(200, "PUT", cs+"/user/"+esc(alice.ID)+"/account_data/"+typ, alice.Token, content)
	}
	other := loginDevice(s, alice.ID[1:strings.IndexByte(alice.ID, ':')])
	seen := map[string]string{}
	for _, ev := range objList(syncFrom(s, other, "").Body, "account_data", "events") {
		b, _ := json.Marshal(obj(ev, "content"))
		seen[objStr(ev, "type")] = string(b)
	}
	for typ, content := range types {
		want, _ := json.Marshal(content)
		got := s.must(200, "GET", cs+"/user/"+esc(alice.ID)+"/account_data/"+typ, other.Token, nil)
		if string(got.Raw) != string(want) && !jsonEqual(got.Raw, want) {
			t.Errorf("%s = %s, want %s", typ, got.Raw, want)
		}
		if !jsonEqual([]byte(seen[typ]), want) {
			t.Errorf("%s in the new device's sync = %s", typ, seen[typ])
		}
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// Encrypted rooms: m.room.encryption cannot be removed, emptied or
// redacted once set, and m.room.encrypted events reach members untouched.
func TestKeysEncryptedRoom(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat", "initial_state": []map[string]any{
		{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	mustJoin(s, bob, room)
	encEvent := s.must(200, "GET", rpath(room, "/state/m.room.encryption/?format=event"), alice.Token, nil).str("event_id")
	wantErr(t, s.do("PUT", rpath(room, "/state/m.room.encryption/"), alice.Token, map[string]any{}), 403, "M_FORBIDDEN")
	wantErr(t, s.do("PUT", rpath(room, "/redact/"+esc(encEvent)+"/r1"), alice.Token, map[string]any{}), 403, "M_FORBIDDEN")
	if alg := s.must(200, "GET", rpath(room, "/state/m.room.encryption/"), bob.Token, nil).str("algorithm"); alg != "m.megolm.v1.aes-sha2" {
		t.Fatalf("encryption state changed: %q", alg)
	}

	since := syncFrom(s, bob, "").str("next_batch")
	content := map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "c2VuZGVy", "device_id": alice.Device,
		"session_id": "c2Vzc2lvbg", "ciphertext": "AwgAEnB4b3BhcXVlIGJ5dGVzIGZvciB0aGUgc2VydmVy"}
	id := s.must(200, "PUT", rpath(room, "/send/m.room.encrypted/t1"), alice.Token, content).str("event_id")
	want, _ := json.Marshal(content)
	found := false
	for _, ev := range objList(syncFrom(s, bob, since).Body, "rooms", "join", room, "timeline", "events") {
		if objStr(ev, "event_id") == id {
			found = true
			got, _ := json.Marshal(obj(ev, "content"))
			if objStr(ev, "type") != "m.room.encrypted" || !jsonEqual(got, want) {
				t.Errorf("encrypted event changed: %s", got)
			}
		}
	}
	if !found {
		t.Error("encrypted event not synced")
	}
}
