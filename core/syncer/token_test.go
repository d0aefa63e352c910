package syncer

import "testing"

func TestParseToken(t *testing.T) {
	tests := []struct {
		in   string
		want Token
		ok   bool
	}{
		{"", Token{}, true},
		{"s12_3", Token{12, 3}, true},
		{"s0_0", Token{}, true},
		{"t12", Token{}, false},
		{"s12", Token{}, false},
		{"sx_1", Token{}, false},
		{"s1_-1", Token{}, false},
	}
	for _, tt := range tests {
		got, err := ParseToken(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseToken(%q) = %v, %v", tt.in, got, err)
		}
		if tt.ok && tt.in != "" && got.String() != tt.in {
			t.Errorf("round trip %q -> %q", tt.in, got.String())
		}
	}
}
