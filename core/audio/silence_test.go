package audio

import (
	"math"
	"testing"
	"time"
)

func TestRemoveSilence(t *testing.T) {
	const rate = 16000
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	sound := func(d time.Duration) *PCM { return tone(rate, 1, 440, 0.5, d) }
	quiet := func(d time.Duration) *PCM { return silence(rate, 1, d) }
	hiss := func(d time.Duration) *PCM { return noise(rate, 1, fromDBFS(-60), d) } // below -45 dBFS
	for _, tc := range []struct {
		name string
		in   *PCM
		min  time.Duration
		keep time.Duration
		want time.Duration // ± one 10 ms window
	}{
		{"long gap shortened", concat(sound(ms(1000)), quiet(ms(2000)), sound(ms(1000))), ms(500), ms(300), ms(2300)},
		{"gap of hiss shortened", concat(sound(ms(1000)), hiss(ms(2000)), sound(ms(1000))), ms(500), ms(300), ms(2300)},
		{"short gap kept", concat(sound(ms(1000)), quiet(ms(400)), sound(ms(1000))), ms(500), ms(300), ms(2400)},
		{"two gaps", concat(sound(ms(500)), quiet(ms(1000)), sound(ms(500)), quiet(ms(800)), sound(ms(500))), ms(500), ms(200), ms(1900)},
		{"leading and trailing trimmed to keep", concat(quiet(ms(1500)), sound(ms(1000)), quiet(ms(1500))), ms(500), ms(200), ms(1400)},
		{"all silent", quiet(ms(3000)), ms(500), ms(250), ms(250)},
		{"no silence", sound(ms(1000)), ms(100), ms(50), ms(1000)},
		{"keep nothing", concat(sound(ms(500)), quiet(ms(1000)), sound(ms(500))), ms(200), 0, ms(1000)},
		{"absurd durations", concat(sound(ms(500)), quiet(ms(1000)), sound(ms(500))), 1 << 62, 1 << 62, ms(2000)},
		{"negative durations", concat(sound(ms(500)), quiet(ms(1000)), sound(ms(500))), -1, -1, ms(1000)},
	} {
		out := RemoveSilence(tc.in, -45, tc.min, tc.keep)
		if d := out.Duration() - tc.want; d < -ms(10) || d > ms(10) {
			t.Errorf("%s: %v long, want %v", tc.name, out.Duration(), tc.want)
		}
		// No clicks: no jump between samples larger than the tone's own
		// steepest step (2π·440/16000·0.5 ≈ 0.086).
		for i := 1; i < len(out.Samples); i++ {
			if math.Abs(float64(out.Samples[i]-out.Samples[i-1])) > 0.09 {
				t.Errorf("%s: click at %v", tc.name, time.Duration(i)*time.Second/rate)
				break
			}
		}
	}
}

func TestRemoveSilenceStereoKeepsChannels(t *testing.T) {
	left := concat(tone(8000, 2, 300, 0.5, time.Second), silence(8000, 2, time.Second), tone(8000, 2, 300, 0.5, time.Second))
	for i := 1; i < len(left.Samples); i += 2 {
		left.Samples[i] = 0 // right channel silent throughout
	}
	out := RemoveSilence(left, -45, 300*time.Millisecond, 100*time.Millisecond)
	if out.Channels != 2 || out.Duration() != 2100*time.Millisecond {
		t.Errorf("stereo: ×%d, %v", out.Channels, out.Duration())
	}
	if PeakDBFS(&PCM{Rate: 8000, Channels: 1, Samples: channel(out, 1)}) != math.Inf(-1) {
		t.Error("channels mixed up: the silent right channel has sound")
	}
	if left.Duration() != 3*time.Second {
		t.Error("input modified")
	}
}
