package audio

import (
	"math"
	"testing"
	"time"
)

// Test signals are made in code; see testdata/README.md for the one file.

func framesIn(rate int, d time.Duration) int { return int(int64(rate) * int64(d) / int64(time.Second)) }

// tone is a sine of freq Hz and peak amplitude amp, the same on every
// channel.
func tone(rate, ch int, freq, amp float64, d time.Duration) *PCM {
	n := framesIn(rate, d)
	p := &PCM{Rate: rate, Channels: ch, Samples: make([]float32, n*ch)}
	for i := range n {
		v := float32(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		for c := range ch {
			p.Samples[i*ch+c] = v
		}
	}
	return p
}

// toneDBFS is a sine whose RMS is db dBFS.
func toneDBFS(rate, ch int, freq, db float64, d time.Duration) *PCM {
	return tone(rate, ch, freq, fromDBFS(db)*math.Sqrt2, d)
}

func silence(rate, ch int, d time.Duration) *PCM {
	return &PCM{Rate: rate, Channels: ch, Samples: make([]float32, framesIn(rate, d)*ch)}
}

// noise is uniform white noise of peak amplitude amp (RMS amp/√3), from a
// fixed seed so tests are repeatable.
func noise(rate, ch int, amp float64, d time.Duration) *PCM {
	p := silence(rate, ch, d)
	x := uint32(2463534242)
	for i := range p.Samples {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p.Samples[i] = float32(amp * (float64(x)/math.MaxUint32*2 - 1))
	}
	return p
}

func concat(ps ...*PCM) *PCM {
	out := &PCM{Rate: ps[0].Rate, Channels: ps[0].Channels}
	for _, p := range ps {
		out.Samples = append(out.Samples, p.Samples...)
	}
	return out
}

// channel returns one channel of p as a mono slice.
func channel(p *PCM, c int) []float32 {
	out := make([]float32, p.Frames())
	for i := range out {
		out[i] = p.Samples[i*p.Channels+c]
	}
	return out
}

// amplitude estimates the peak amplitude of the freq Hz component of s by
// the Goertzel algorithm (one DFT bin), with a Hann window so that nearby
// strong components leak little.
func amplitude(s []float32, rate int, freq float64) float64 {
	n := len(s)
	if n == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2, wsum float64
	for i, v := range s {
		h := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
		wsum += h
		s0 := float64(v)*h + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	re := s1 - s2*math.Cos(w)
	im := s2 * math.Sin(w)
	return 2 * math.Hypot(re, im) / wsum
}

// zeroCrossingFreq estimates the frequency of a pure tone from its
// rising zero crossings.
func zeroCrossingFreq(s []float32, rate int) float64 {
	first, last, count := -1, -1, 0
	for i := 1; i < len(s); i++ {
		if s[i-1] < 0 && s[i] >= 0 {
			if first < 0 {
				first = i
			} else {
				count++
			}
			last = i
		}
	}
	if count == 0 {
		return 0
	}
	return float64(count) * float64(rate) / float64(last-first)
}

// middle drops the first and last fraction of s, where codecs and
// filters have their edge effects.
func middle(s []float32, fraction float64) []float32 {
	k := int(float64(len(s)) * fraction)
	return s[k : len(s)-k]
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4g, want %.4g ± %.2g", what, got, want, tol)
	}
}

func TestHelpers(t *testing.T) {
	p := tone(48000, 1, 1000, 0.5, time.Second)
	near(t, "Goertzel amplitude of a 0.5 sine", amplitude(p.Samples, 48000, 1000), 0.5, 0.005)
	near(t, "Goertzel amplitude 200 Hz away", amplitude(p.Samples, 48000, 1200), 0, 0.001)
	near(t, "zero-crossing frequency", zeroCrossingFreq(p.Samples, 48000), 1000, 1)
	near(t, "RMS of a -30 dBFS tone", RMSDBFS(toneDBFS(48000, 2, 440, -30, time.Second)), -30, 0.05)
}
