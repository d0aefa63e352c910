package audio

import (
	"math"
	"testing"
	"time"
)

func TestPeakAndRMS(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         *PCM
		peak, rms float64
	}{
		{"full-scale sine", tone(48000, 1, 1000, 1, time.Second), 0, -3.0103},
		{"half-scale stereo sine", tone(48000, 2, 1000, 0.5, time.Second), -6.0206, -9.0309},
		{"square wave", &PCM{Rate: 8000, Channels: 1, Samples: []float32{0.1, -0.1, 0.1, -0.1}}, -20, -20},
	} {
		near(t, tc.name+" peak", PeakDBFS(tc.p), tc.peak, 0.01)
		near(t, tc.name+" RMS", RMSDBFS(tc.p), tc.rms, 0.01)
	}
	for _, p := range []*PCM{nil, {Rate: 8000, Channels: 1}, silence(8000, 1, time.Second)} {
		if !math.IsInf(PeakDBFS(p), -1) || !math.IsInf(RMSDBFS(p), -1) {
			t.Errorf("silence: peak %v, RMS %v, want -Inf", PeakDBFS(p), RMSDBFS(p))
		}
	}
}

func TestNormalize(t *testing.T) {
	// Speech-like: 200 ms bursts with 200 ms pauses of -70 dBFS hiss.
	bursts := func(db float64) *PCM {
		var parts []*PCM
		for range 5 {
			parts = append(parts, toneDBFS(48000, 1, 300, db, 200*time.Millisecond), noise(48000, 1, fromDBFS(-70)*math.Sqrt(3), 200*time.Millisecond))
		}
		return concat(parts...)
	}
	// A quiet tone with one loud click: the ceiling, not the target,
	// sets the gain.
	clicky := toneDBFS(48000, 1, 440, -40, time.Second)
	clicky.Samples[1000] = 0.5

	for _, tc := range []struct {
		name         string
		in           *PCM
		activeRMS    float64 // wanted level of the active part, dBFS
		activeTol    float64
		active       func(*PCM) *PCM // the part to measure
		maxPeak      float64
		wantGainDB   float64 // when the gain, not the level, is the point
		checkGainDBs bool
	}{
		{name: "quiet tone", in: toneDBFS(48000, 1, 440, -40, time.Second), activeRMS: -20, activeTol: 0.1},
		{name: "loud tone turned down", in: toneDBFS(48000, 2, 440, -6, time.Second), activeRMS: -20, activeTol: 0.1},
		{name: "speech-like bursts: pauses do not count", in: bursts(-35), activeRMS: -20, activeTol: 0.2,
			active: func(p *PCM) *PCM { return &PCM{Rate: p.Rate, Channels: 1, Samples: p.Samples[1000:9000]} }},
		{name: "peak limited", in: clicky, wantGainDB: -1 - dBFS(0.5), checkGainDBs: true},
		{name: "noise floor gains at most 30 dB", in: noise(48000, 1, fromDBFS(-75), time.Second), wantGainDB: 30, checkGainDBs: true},
		{name: "very quiet tone gains at most 30 dB", in: toneDBFS(48000, 1, 440, -65, time.Second), wantGainDB: 30, checkGainDBs: true},
	} {
		orig := tc.in.clone()
		out := Normalize(tc.in, -20, -1)
		if PeakDBFS(out) > -1+1e-4 {
			t.Errorf("%s: peak %.2f dBFS above the -1 dBFS ceiling", tc.name, PeakDBFS(out))
		}
		if tc.checkGainDBs {
			near(t, tc.name+": gain (dB)", RMSDBFS(out)-RMSDBFS(orig), tc.wantGainDB, 0.05)
		} else {
			m := out
			if tc.active != nil {
				m = tc.active(out)
			}
			near(t, tc.name+": active RMS", RMSDBFS(m), tc.activeRMS, tc.activeTol)
		}
		for i := range orig.Samples {
			if orig.Samples[i] != tc.in.Samples[i] {
				t.Errorf("%s: input modified", tc.name)
				break
			}
		}
	}
	if out := Normalize(silence(8000, 1, time.Second), -20, -1); PeakDBFS(out) != math.Inf(-1) {
		t.Error("Normalize amplified digital silence")
	}
}

// TestNormalizeInPlace: the in-place form scales exactly as Normalize and
// leaves no copy.
func TestNormalizeInPlace(t *testing.T) {
	in := toneDBFS(48000, 1, 440, -40, time.Second)
	want := Normalize(in, -20, -1)
	NormalizeInPlace(in, -20, -1)
	for i := range want.Samples {
		if in.Samples[i] != want.Samples[i] {
			t.Fatalf("sample %d: %v, want %v", i, in.Samples[i], want.Samples[i])
		}
	}
	NormalizeInPlace(nil, -20, -1) // no panic
}
