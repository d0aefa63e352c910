package boltstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/lichen-hs/lichen/core/e2ee"
)

func openE2EE(t *testing.T) *Store {
	t.Helper()
	st, err := Open(filepath.Join(t.TempDir(), "lichen.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func otk(id string) e2ee.OneTimeKey {
	return e2ee.OneTimeKey{Algorithm: "signed_curve25519", KeyID: id, JSON: json.RawMessage(`{"key":"` + id + `"}`)}
}

// One-time keys come out oldest upload first, each once; re-uploads are
// idempotent, a changed key under a known name is refused whole.
func TestE2EEOneTimeKeys(t *testing.T) {
	st := openE2EE(t)
	const u, d = "@a:t", "DEV"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.AddOneTimeKeys(u, d, []e2ee.OneTimeKey{otk("B")}))
	must(st.AddOneTimeKeys(u, d, []e2ee.OneTimeKey{otk("A"), otk("B")})) // B again: skipped
	must(st.AddOneTimeKeys(u, d, []e2ee.OneTimeKey{{Algorithm: "curve25519", KeyID: "X", JSON: json.RawMessage(`"x"`)}}))
	if c, _ := st.OneTimeKeyCounts(u, d); !reflect.DeepEqual(c, map[string]int{"signed_curve25519": 2, "curve25519": 1}) {
		t.Fatalf("counts %v", c)
	}
	bad := otk("A")
	bad.JSON = json.RawMessage(`{"key":"other"}`)
	if err := st.AddOneTimeKeys(u, d, []e2ee.OneTimeKey{otk("C"), bad}); !errors.Is(err, e2ee.ErrKeyConflict) {
		t.Fatalf("conflict: %v", err)
	}
	if c, _ := st.OneTimeKeyCounts(u, d); c["signed_curve25519"] != 2 {
		t.Fatalf("a refused upload stored keys: %v", c)
	}
	claim := []e2ee.Claim{{User: u, Device: d, Algorithm: "signed_curve25519"}}
	for _, want := range []string{"B", "A"} { // B was uploaded first
		got, err := st.ClaimKeys(claim)
		must(err)
		if len(got) != 1 || got[0].Key.KeyID != want {
			t.Fatalf("claimed %+v, want %s", got, want)
		}
	}
	// Exhausted, no fallback: nothing. A claimed key re-uploaded stays gone.
	must(st.AddOneTimeKeys(u, d, []e2ee.OneTimeKey{otk("A")}))
	if got, _ := st.ClaimKeys(claim); len(got) != 0 {
		t.Fatalf("claimed %+v from an empty pool", got)
	}
	// The fallback key is handed out repeatedly and marked used.
	must(st.SetFallbackKeys(u, d, []e2ee.OneTimeKey{otk("F")}))
	if fb, _ := st.UnusedFallbackAlgorithms(u, d); !reflect.DeepEqual(fb, []string{"signed_curve25519"}) {
		t.Fatalf("unused fallback %v", fb)
	}
	for i := 0; i < 2; i++ {
		got, err := st.ClaimKeys(claim)
		must(err)
		if len(got) != 1 || got[0].Key.KeyID != "F" {
			t.Fatalf("fallback claim %+v", got)
		}
	}
	if fb, _ := st.UnusedFallbackAlgorithms(u, d); len(fb) != 0 {
		t.Fatalf("used fallback still listed unused: %v", fb)
	}
	// Re-uploading the same fallback keeps it used; a new one is unused.
	must(st.SetFallbackKeys(u, d, []e2ee.OneTimeKey{otk("F")}))
	if fb, _ := st.UnusedFallbackAlgorithms(u, d); len(fb) != 0 {
		t.Fatal("re-upload reset the used mark")
	}
	must(st.SetFallbackKeys(u, d, []e2ee.OneTimeKey{otk("G")}))
	if fb, _ := st.UnusedFallbackAlgorithms(u, d); len(fb) != 1 {
		t.Fatal("a new fallback key is not unused")
	}
}

// Concurrent claimers never get the same key (keys.yaml claimKeys).
func TestE2EEConcurrentClaims(t *testing.T) {
	st := openE2EE(t)
	const u, d, n = "@a:t", "DEV", 50
	var keys []e2ee.OneTimeKey
	for i := 0; i < n; i++ {
		keys = append(keys, otk(fmt.Sprintf("K%02d", i)))
	}
	if err := st.AddOneTimeKeys(u, d, keys); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	for i := 0; i < 80; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := st.ClaimKeys([]e2ee.Claim{{User: u, Device: d, Algorithm: "signed_curve25519"}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, k := range c {
				got = append(got, k.Key.KeyID)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != n || len(slices.Compact(slices.Clone(got))) != n {
		t.Fatalf("%d claims succeeded with %d distinct keys, want %d each", len(got), len(slices.Compact(got)), n)
	}
}

// Device-list changes: one entry per user, at the latest position; device
// deletion drops every key of the device.
func TestE2EEDeviceListsAndDeletion(t *testing.T) {
	st := openE2EE(t)
	p0 := st.Pos()
	upd := func(user, dev, keys string) {
		t.Helper()
		if err := st.UpdateDeviceKeys(user, dev, func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(keys), nil }); err != nil {
			t.Fatal(err)
		}
	}
	upd("@a:t", "D1", `{"k":1}`)
	upd("@b:t", "D1", `{"k":2}`)
	p1 := st.Pos()
	upd("@a:t", "D2", `{"k":3}`)
	upd("@a:t", "D2", `{"k":3}`) // unchanged: no new entry
	if got, _ := st.DeviceListChanges(p0, st.Pos()); !reflect.DeepEqual(got, []string{"@b:t", "@a:t"}) {
		t.Errorf("changes since p0 = %v", got)
	}
	if got, _ := st.DeviceListChanges(p1, st.Pos()); !reflect.DeepEqual(got, []string{"@a:t"}) {
		t.Errorf("changes since p1 = %v", got)
	}
	if err := st.AddOneTimeKeys("@a:t", "D2", []e2ee.OneTimeKey{otk("A")}); err != nil {
		t.Fatal(err)
	}
	p2 := st.Pos()
	if err := st.DeleteDeviceKeys("@a:t", []string{"D2"}); err != nil {
		t.Fatal(err)
	}
	if all, _ := st.UserDeviceKeys("@a:t"); len(all) != 1 || all["D1"] == nil {
		t.Errorf("after deletion: %v", all)
	}
	if c, _ := st.OneTimeKeyCounts("@a:t", "D2"); len(c) != 0 {
		t.Errorf("deleted device keeps one-time keys: %v", c)
	}
	if got, _ := st.DeviceListChanges(p2, st.Pos()); !reflect.DeepEqual(got, []string{"@a:t"}) {
		t.Errorf("deletion not a device-list change: %v", got)
	}
}
