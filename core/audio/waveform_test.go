package audio

import (
	"slices"
	"testing"
	"time"
)

func TestWaveform(t *testing.T) {
	// Loud, then 20 dB quieter, then silent: one second each.
	p := concat(tone(8000, 1, 300, 0.8, time.Second), tone(8000, 1, 300, 0.08, time.Second), silence(8000, 1, time.Second))
	w := Waveform(p, 30)
	if len(w) != 30 {
		t.Fatalf("%d values, want 30", len(w))
	}
	for i, v := range w {
		want := [3]int{1024, 102, 0}[i/10]
		if v < want-2 || v > want+2 {
			t.Errorf("value %d = %d, want %d: %v", i, v, want, w)
			break
		}
	}

	for _, tc := range []struct {
		name string
		p    *PCM
		n    int
		want []int
	}{
		{"n = 0", p, 0, nil},
		{"silence", silence(8000, 2, time.Second), 4, []int{0, 0, 0, 0}},
		{"nil", nil, 3, []int{0, 0, 0}},
		{"fewer frames than values", &PCM{Rate: 8000, Channels: 1, Samples: []float32{0.5, -1}}, 4, []int{512, 512, 1024, 1024}},
		{"stereo, one channel", &PCM{Rate: 8000, Channels: 2, Samples: []float32{1, 0, 0, 0}}, 2, []int{1024, 0}},
	} {
		if got := Waveform(tc.p, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
