package audio

import "math"

// Waveform returns the MSC3246 waveform of p: n values in 0..1024, one per
// equal slice of p, scaled so that the loudest slice is 1024 (all zeros
// for silence). Each value is the slice's RMS rather than its peak: RMS
// follows how loud a syllable sounds, where a peak is set by a single
// plosive or click, which would flatten the rest of the picture.
func Waveform(p *PCM, n int) []int {
	if n <= 0 {
		return nil
	}
	out := make([]int, n)
	if p == nil || p.Channels <= 0 || p.Frames() == 0 {
		return out
	}
	frames, ch := p.Frames(), p.Channels
	levels := make([]float64, n)
	loudest := 0.0
	for i := range levels {
		// Slice i is frames [i·F/n, (i+1)·F/n), at least one frame long
		// so that audio shorter than n frames still draws.
		lo := int(int64(i) * int64(frames) / int64(n))
		hi := max(lo+1, int(int64(i+1)*int64(frames)/int64(n)))
		lo = min(lo, frames-1)
		levels[i] = rms(p.Samples[lo*ch : min(hi, frames)*ch])
		loudest = max(loudest, levels[i])
	}
	if loudest == 0 {
		return out
	}
	for i, l := range levels {
		out[i] = int(math.Round(l / loudest * 1024))
	}
	return out
}
