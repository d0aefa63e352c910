package audio

import (
	"strconv"
	"testing"
	"time"
)

func TestResampleTone(t *testing.T) {
	for _, tc := range []struct {
		from, to, ch int
		freq         float64
	}{
		{48000, 16000, 1, 1000},
		{48000, 8000, 2, 1000},
		{44100, 48000, 1, 1000},
		{48000, 44100, 2, 1000},
		{16000, 48000, 1, 1000},
		{8000, 44100, 1, 440},
		{22050, 24000, 1, 3000},
		{48000, 47999, 1, 1000}, // 47999 phases: too many to cache
	} {
		in := tone(tc.from, tc.ch, tc.freq, 0.5, 500*time.Millisecond)
		out := Resample(in, tc.to)
		if out.Rate != tc.to || out.Channels != tc.ch {
			t.Errorf("%d→%d: got %d Hz ×%d", tc.from, tc.to, out.Rate, out.Channels)
		}
		if want := (in.Frames()*tc.to + tc.from - 1) / tc.from; out.Frames() != want {
			t.Errorf("%d→%d: %d frames, want %d", tc.from, tc.to, out.Frames(), want)
		}
		for c := range tc.ch {
			s := middle(channel(out, c), 0.1)
			near(t, "resampled frequency", zeroCrossingFreq(s, tc.to), tc.freq, 0.5)
			// The passband is flat: the tone keeps its level within 0.1 dB.
			near(t, "resampled level (dB)", dBFS(amplitude(s, tc.to, tc.freq)), dBFS(0.5), 0.1)
		}
		if !(in.Samples[len(in.Samples)/2] == tone(tc.from, tc.ch, tc.freq, 0.5, 500*time.Millisecond).Samples[len(in.Samples)/2]) {
			t.Errorf("%d→%d: input modified", tc.from, tc.to)
		}
	}
}

// TestResampleAntiAlias: what is above the new Nyquist frequency must go,
// not fold back into the audible band.
func TestResampleAntiAlias(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		freq     float64 // input tone, above to/2
		minDB    float64 // required attenuation
	}{
		{48000, 16000, 12000, 60}, // would alias to 4 kHz
		{48000, 16000, 9000, 40},  // just above Nyquist: would alias to 7 kHz
		{48000, 8000, 5000, 60},
		{44100, 16000, 10000, 60},
	} {
		in := tone(tc.from, 1, tc.freq, 0.5, 500*time.Millisecond)
		out := Resample(in, tc.to)
		s := middle(out.Samples, 0.1)
		att := dBFS(0.5/1.41421356) - dBFS(rms(s))
		if att < tc.minDB {
			t.Errorf("%d→%d: %.0f Hz tone attenuated %.1f dB, want > %.0f", tc.from, tc.to, tc.freq, att, tc.minDB)
		}
		t.Logf("%d→%d: %.0f Hz attenuated %.1f dB", tc.from, tc.to, tc.freq, att)
	}
}

// TestResampleImages: upsampling must not leave the spectral images of
// the input (1 kHz at 16 kHz has one at 15 kHz).
func TestResampleImages(t *testing.T) {
	out := Resample(tone(16000, 1, 1000, 0.5, 500*time.Millisecond), 48000)
	s := middle(out.Samples, 0.1)
	for _, f := range []float64{15000, 17000, 31000 - 16000} {
		if a := dBFS(amplitude(s, 48000, f)) - dBFS(0.5); a > -70 {
			t.Errorf("image at %.0f Hz is %.1f dB below the tone, want < -70", f, a)
		}
	}
}

func TestResampleEdgeCases(t *testing.T) {
	in := tone(16000, 1, 1000, 0.5, 10*time.Millisecond)
	same := Resample(in, 16000)
	same.Samples[0] = 9
	if in.Samples[0] == 9 {
		t.Error("Resample to the same rate returned the input, not a copy")
	}
	if out := Resample(in, 0); out.Rate != 16000 || len(out.Samples) != len(in.Samples) {
		t.Errorf("Resample to 0 Hz: %d Hz, %d samples", out.Rate, len(out.Samples))
	}
	if out := Resample(&PCM{Rate: 8000, Channels: 1}, 48000); out.Frames() != 0 {
		t.Errorf("empty input: %d frames", out.Frames())
	}
	if out := Resample(&PCM{Rate: 8000, Channels: 1, Samples: []float32{1}}, 48000); out.Frames() != 6 || out.Samples[0] < 0.5 {
		t.Errorf("one sample to 48k: %v", out.Samples)
	}
}

func TestMonoAndRemix(t *testing.T) {
	st := &PCM{Rate: 8000, Channels: 2, Samples: []float32{1, 0, 0.5, -0.5, -1, 1}}
	m := Mono(st)
	if m.Channels != 1 || len(m.Samples) != 3 || m.Samples[0] != 0.5 || m.Samples[1] != 0 || m.Samples[2] != 0 {
		t.Errorf("Mono = %+v", m)
	}
	if st.Samples[0] != 1 || st.Channels != 2 {
		t.Error("Mono modified its input")
	}
	up := remix(m, 2)
	if up.Channels != 2 || len(up.Samples) != 6 || up.Samples[0] != 0.5 || up.Samples[1] != 0.5 {
		t.Errorf("remix mono to stereo = %+v", up)
	}
	quad := &PCM{Rate: 8000, Channels: 4, Samples: []float32{1, 1, 0, 0}}
	if st := remix(quad, 2); st.Channels != 2 || st.Samples[0] != 0.5 || st.Samples[1] != 0.5 {
		t.Errorf("remix 4 to 2 = %+v", st)
	}
}

// BenchmarkResample60s: a minute of 48 kHz mono to 16 kHz (cached
// weights) and to 44.1 kHz (147 phases).
func BenchmarkResample60s(b *testing.B) {
	in := tone(48000, 1, 440, 0.5, 60*time.Second)
	for _, rate := range []int{16000, 44100} {
		b.Run(strconv.Itoa(rate), func(b *testing.B) {
			for range b.N {
				Resample(in, rate)
			}
		})
	}
}
