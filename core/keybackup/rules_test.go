package keybackup

import "testing"

func TestReplaces(t *testing.T) {
	k := func(verified bool, index, forwarded int64) KeyBackupData {
		return KeyBackupData{IsVerified: verified, FirstMessageIndex: index, ForwardedCount: forwarded}
	}
	tests := []struct {
		name               string
		current, candidate KeyBackupData
		want               bool
	}{
		// Rule 1: is_verified decides first, whatever the other fields say.
		{"verified beats unverified", k(false, 0, 0), k(true, 9, 9), true},
		{"unverified never beats verified", k(true, 9, 9), k(false, 0, 0), false},
		// Rule 2: same is_verified, the lower first_message_index wins.
		{"lower index wins (unverified)", k(false, 5, 0), k(false, 4, 7), true},
		{"lower index wins (verified)", k(true, 5, 0), k(true, 0, 3), true},
		{"higher index loses", k(false, 4, 7), k(false, 5, 0), false},
		// Rule 3: same is_verified and index, the lower forwarded_count wins.
		{"fewer forwards win", k(false, 3, 2), k(false, 3, 1), true},
		{"more forwards lose", k(true, 3, 1), k(true, 3, 2), false},
		// All equal: the stored copy stays (and the etag with it).
		{"tie keeps current", k(true, 3, 1), k(true, 3, 1), false},
		{"tie of zero values keeps current", k(false, 0, 0), k(false, 0, 0), false},
	}
	for _, tc := range tests {
		if got := Replaces(tc.current, tc.candidate); got != tc.want {
			t.Errorf("%s: Replaces(%+v, %+v) = %v, want %v", tc.name, tc.current, tc.candidate, got, tc.want)
		}
	}
}
