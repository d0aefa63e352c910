package audio

import (
	"math"
	"time"
)

// Levels are in dBFS: 20·log10 of the amplitude relative to 1.0, so a
// full-scale sine has a peak of 0 dBFS and an RMS of -3 dBFS. Silence is
// -Inf.

// PeakDBFS is the largest absolute sample value, in dBFS.
func PeakDBFS(p *PCM) float64 {
	if p == nil {
		return math.Inf(-1)
	}
	return dBFS(peak(p.Samples))
}

// RMSDBFS is the RMS level of all samples (all channels), in dBFS.
func RMSDBFS(p *PCM) float64 {
	if p == nil {
		return math.Inf(-1)
	}
	return dBFS(rms(p.Samples))
}

func peak(s []float32) float64 {
	var m float32
	for _, v := range s {
		m = max(m, v, -v)
	}
	return float64(m)
}

func meanSquare(s []float32) float64 {
	if len(s) == 0 {
		return 0
	}
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return sum / float64(len(s))
}

func rms(s []float32) float64 { return math.Sqrt(meanSquare(s)) }

// windows splits p's samples into windows of d (the last one may be
// shorter), each a whole number of frames.
func windows(p *PCM, d time.Duration) (size int, n int) {
	size = max(1, int(durationFrames(d, p.Rate))) * p.Channels
	return size, (len(p.Samples) + size - 1) / size
}

// Loudness normalisation settings.
const (
	// normalizeWindow is the block over which level is measured: long
	// enough to span a syllable, short enough to tell speech from pauses.
	normalizeWindow = 50 * time.Millisecond
	// normalizeFloorDBFS is the absolute gate: quieter blocks are the
	// noise floor and do not count towards the speech level (EBU R128 uses
	// -70 LUFS for broadcast; phone microphones are noisier).
	normalizeFloorDBFS = -60
	// normalizeRelativeGate drops blocks this far below the level of the
	// blocks above the floor (R128's relative gate is 10 LU on 400 ms
	// blocks; speech on 50 ms blocks varies more).
	normalizeRelativeGate = 20
	// maxNormalizeGain caps amplification, so that a recording of nothing
	// but room noise is not turned up into loud hiss.
	maxNormalizeGain = 30
)

// Normalize returns p scaled by one gain so that the RMS level of its
// active parts (50 ms blocks above -60 dBFS and within 20 dB of the
// average of those) reaches targetRMSDBFS, unless that would put the peak
// above peakCeilingDBFS, and never by more than +30 dB. Digital silence is
// returned unchanged.
func Normalize(p *PCM, targetRMSDBFS, peakCeilingDBFS float64) *PCM {
	if p == nil {
		return nil
	}
	out := p.clone()
	NormalizeInPlace(out, targetRMSDBFS, peakCeilingDBFS)
	return out
}

// NormalizeInPlace is Normalize changing p itself: minutes of audio are
// tens of MiB, and a copy per processing step is what a board can least
// afford.
func NormalizeInPlace(p *PCM, targetRMSDBFS, peakCeilingDBFS float64) {
	if p == nil {
		return
	}
	pk := peak(p.Samples)
	if pk == 0 || p.Rate <= 0 || p.Channels <= 0 {
		return
	}
	level := activeLevel(p)
	gain := min(targetRMSDBFS-level, maxNormalizeGain, peakCeilingDBFS-dBFS(pk))
	g := float32(fromDBFS(gain))
	for i, v := range p.Samples {
		p.Samples[i] = v * g
	}
}

// activeLevel is the RMS level in dBFS of p's gated blocks (see
// Normalize), or of all of p when every block is below the floor.
func activeLevel(p *PCM) float64 {
	size, n := windows(p, normalizeWindow)
	ms := make([]float64, n)
	floor := math.Pow(10, normalizeFloorDBFS/10) // as a mean square
	sum, count := 0.0, 0
	for i := range ms {
		ms[i] = meanSquare(p.Samples[i*size : min((i+1)*size, len(p.Samples))])
		if ms[i] >= floor {
			sum += ms[i]
			count++
		}
	}
	if count == 0 {
		return dBFS(rms(p.Samples))
	}
	gate := max(floor, sum/float64(count)*math.Pow(10, -normalizeRelativeGate/10.0))
	sum, count = 0, 0
	for _, m := range ms {
		if m >= gate {
			sum += m
			count++
		}
	}
	return 10 * math.Log10(sum/float64(count))
}
