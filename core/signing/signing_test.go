package signing

import "testing"

func TestRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Parse(k.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID != k.ID || !k2.Private.Equal(k.Private) {
		t.Fatalf("round trip changed key: %q vs %q", k2.ID, k.ID)
	}
	for _, bad := range []string{"", "ed25519 x", "rsa a abc", "ed25519 a !!!"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
