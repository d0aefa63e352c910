package e2ee

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	gmsl "github.com/matrix-org/gomatrixserverlib"

	"github.com/lichen-hs/lichen/core/mxerr"
)

const alice = "@alice:test.local"

// signedDeviceKeys builds device keys for user/device signed by priv.
func signedDeviceKeys(t *testing.T, user, device string, priv ed25519.PrivateKey, mutate func(map[string]any)) json.RawMessage {
	t.Helper()
	pub := base64.RawStdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	m := map[string]any{
		"user_id": user, "device_id": device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + device: pub, "curve25519:" + device: "Y3VydmU"},
	}
	b, _ := json.Marshal(m)
	signed, err := gmsl.SignJSON(user, gmsl.KeyID("ed25519:"+device), priv, b)
	if err != nil {
		t.Fatal(err)
	}
	if mutate == nil {
		return signed
	}
	var out map[string]any
	_ = json.Unmarshal(signed, &out)
	mutate(out)
	b, _ = json.Marshal(out)
	return b
}

func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	me := mxerr.As(err)
	if me == nil || me.Status != status || me.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
}

func TestCheckDeviceKeys(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	tests := []struct {
		name   string
		keys   json.RawMessage
		status int
		code   string
	}{
		{"valid", signedDeviceKeys(t, alice, "DEV", priv, nil), 0, ""},
		{"another user's keys", signedDeviceKeys(t, "@bob:test.local", "DEV", priv, nil), 400, "M_INVALID_PARAM"},
		{"another device's keys", signedDeviceKeys(t, alice, "OTHER", priv, nil), 400, "M_INVALID_PARAM"},
		{"forged signature", signedDeviceKeys(t, alice, "DEV", priv, func(m map[string]any) {
			m["keys"].(map[string]any)["ed25519:DEV"] = base64.RawStdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))
		}), 400, "M_INVALID_SIGNATURE"},
		{"tampered after signing", signedDeviceKeys(t, alice, "DEV", priv, func(m map[string]any) {
			m["algorithms"] = []string{"m.megolm.v1.aes-sha2"}
		}), 400, "M_INVALID_SIGNATURE"},
		{"missing signatures", signedDeviceKeys(t, alice, "DEV", priv, func(m map[string]any) { delete(m, "signatures") }), 400, "M_BAD_JSON"},
		{"missing algorithms", signedDeviceKeys(t, alice, "DEV", priv, func(m map[string]any) { delete(m, "algorithms") }), 400, "M_BAD_JSON"},
		{"no ed25519 key for the device", signedDeviceKeys(t, alice, "DEV", priv, func(m map[string]any) {
			delete(m["keys"].(map[string]any), "ed25519:DEV")
		}), 400, "M_BAD_JSON"},
		{"wrong types", json.RawMessage(`{"user_id":1}`), 400, "M_BAD_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkDeviceKeys(alice, "DEV", tt.keys)
			if tt.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.status, tt.code)
		})
	}
}

func TestReplaceDeviceKeys(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	_, priv2, _ := ed25519.GenerateKey(nil)
	first := signedDeviceKeys(t, alice, "DEV", priv, nil)
	// Someone (the self-signing key) signed the stored keys since.
	stored, err := addSignature(first, alice, "ed25519:SSK", "c2ln")
	if err != nil {
		t.Fatal(err)
	}
	got, err := replaceDeviceKeys(stored, first)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	_ = json.Unmarshal(got, &m)
	if m.Signatures[alice]["ed25519:SSK"] != "c2ln" || m.Signatures[alice]["ed25519:DEV"] == "" {
		t.Errorf("re-upload lost signatures: %s", got)
	}
	_, err = replaceDeviceKeys(stored, signedDeviceKeys(t, alice, "DEV", priv2, nil))
	wantCode(t, err, 400, "M_INVALID_PARAM")
	if got, _ := replaceDeviceKeys(stored, first); string(got) != string(stored) {
		t.Error("a plain retry should leave the stored keys as they are")
	}
	if got, _ := replaceDeviceKeys(nil, first); string(got) != string(first) {
		t.Error("first upload not stored as is")
	}
}

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]json.RawMessage
		ok   bool
	}{
		{"signed key", map[string]json.RawMessage{"signed_curve25519:AAAA": json.RawMessage(`{"key":"k","signatures":{}}`)}, true},
		{"unsigned key string", map[string]json.RawMessage{"curve25519:AAAA": json.RawMessage(`"k"`)}, true},
		{"no key id", map[string]json.RawMessage{"signed_curve25519": json.RawMessage(`{"key":"k"}`)}, false},
		{"empty algorithm", map[string]json.RawMessage{":AAAA": json.RawMessage(`{"key":"k"}`)}, false},
		{"number", map[string]json.RawMessage{"curve25519:A": json.RawMessage(`5`)}, false},
		{"object without key", map[string]json.RawMessage{"signed_curve25519:A": json.RawMessage(`{"signatures":{}}`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseKeys(tt.in, "one_time_keys")
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				wantCode(t, err, 400, "M_BAD_JSON")
			}
		})
	}
}

func TestSameKeyIgnoresSignatures(t *testing.T) {
	a := json.RawMessage(`{"user_id":"@a:x","usage":["master"],"keys":{"ed25519:K":"K"},"signatures":{"@a:x":{"ed25519:D":"s1"}}}`)
	b := json.RawMessage(`{"keys":{"ed25519:K":"K"},"usage":["master"],"user_id":"@a:x"}`)
	c := json.RawMessage(`{"keys":{"ed25519:L":"L"},"usage":["master"],"user_id":"@a:x"}`)
	if !sameKey(a, b) || sameKey(a, c) || sameKey(nil, a) {
		t.Error("sameKey wrong")
	}
}

func TestVisibleSignatures(t *testing.T) {
	k := json.RawMessage(`{"keys":{"ed25519:K":"K"},"signatures":{"@bob:x":{"ed25519:K":"own"},"@alice:x":{"ed25519:U":"a"},"@carol:x":{"ed25519:V":"c"}}}`)
	var m struct {
		Signatures map[string]any `json:"signatures"`
	}
	_ = json.Unmarshal(visibleSignatures(k, "@bob:x", "@alice:x"), &m)
	if len(m.Signatures) != 2 || m.Signatures["@carol:x"] != nil {
		t.Errorf("alice sees %v", m.Signatures)
	}
}
