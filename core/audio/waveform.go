package audio

import (
	"math"
	"math/bits"
)

// Waveform returns the MSC3246 waveform of p: n values in 0..1024, one per
// equal slice of p, scaled so that the loudest slice is 1024 (all zeros
// for silence). Each value is the slice's RMS rather than its peak: RMS
// follows how loud a syllable sounds, where a peak is set by a single
// plosive or click, which would flatten the rest of the picture. The RMS
// is over every sample of the slice, all channels together.
func Waveform(p *PCM, n int) []int {
	if n <= 0 {
		return nil
	}
	if p == nil || p.Channels <= 0 || p.Frames() == 0 {
		return make([]int, n)
	}
	frames, ch := p.Frames(), p.Channels
	w := newWaveAcc(int64(frames), ch, n)
	w.add(p.Samples[:frames*ch])
	return w.result()
}

// WaveformOf is Waveform(Decode(data, format, maxSamples), n) without the
// decoded PCM: it decodes as a stream (Ogg Opus packet by packet, WAV
// straight from data, MP3 a few frames at a time) and sums each slice's
// squares as the samples go by, with the slices laid out on the length
// Probe reports. So memory is one packet's worth rather than 4 bytes per
// sample (a 5-minute 48 kHz voice message is 55 MiB decoded), while the
// values are Waveform's, bit for bit when the audio decodes to the length
// its headers declare. (An MP3 whose tail fails to decode keeps its
// probed length here, the missing part drawing as silence.)
//
// maxSamples caps the audio exactly as for Decode (ErrTooLong from the
// headers, before decoding), which bounds the CPU time; errors are
// Decode's. With n <= 0 it returns nil after checking the headers and the
// cap, decoding nothing.
func WaveformOf(data []byte, format string, n int, maxSamples int) ([]int, error) {
	f := Normalise(format)
	var (
		info   Info
		stream func(emit func([]float32)) error
	)
	switch f {
	case Ogg:
		s, err := probeOgg(data)
		if err != nil {
			return nil, err
		}
		info = s.Info
		stream = func(emit func([]float32)) error { return streamOgg(data, s, opusRate, emit) }
	case WAV:
		w, err := probeWAV(data)
		if err != nil {
			return nil, err
		}
		info = w.Info
		stream = func(emit func([]float32)) error { streamWAV(w, emit); return nil }
	case MPEG:
		m, err := probeMP3(data)
		if err != nil {
			return nil, err
		}
		info = m.Info
		stream = func(emit func([]float32)) error { return streamMP3(data, m, emit) }
	default:
		return nil, unsupported(format, Decodable())
	}
	if err := checkCap(info, maxSamples); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	if info.Frames == 0 || info.Channels <= 0 {
		return make([]int, n), nil
	}
	w := newWaveAcc(info.Frames, info.Channels, n)
	if err := stream(w.add); err != nil {
		return nil, err
	}
	return w.result(), nil
}

// waveAcc accumulates Waveform's per-slice sums of squares over samples
// that arrive in pieces. Slice i is frames [i·F/n, (i+1)·F/n), at least
// one frame long so that audio shorter than n frames still draws (such
// slices overlap). Every sample is added to its slice's sum in order, so
// the sums, and the waveform, do not depend on how the audio is split.
type waveAcc struct {
	frames int64 // F > 0
	ch, n  int
	sums   []float64
	pos    int64 // frames added so far
	cur    int   // first slice that may still get samples
}

func newWaveAcc(frames int64, ch, n int) *waveAcc {
	return &waveAcc{frames: frames, ch: ch, n: n, sums: make([]float64, n)}
}

// bounds is slice i's frames [lo, hi).
func (w *waveAcc) bounds(i int) (lo, hi int64) {
	lo = mulDiv(int64(i), w.frames, int64(w.n))
	hi = max(lo+1, mulDiv(int64(i+1), w.frames, int64(w.n)))
	return min(lo, w.frames-1), min(hi, w.frames)
}

// mulDiv is a·b/c for 0 ≤ a ≤ c, without overflowing.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}

// add takes the next whole frames of interleaved samples. Frames past F
// are ignored.
func (w *waveAcc) add(s []float32) {
	a := w.pos
	b := a + int64(len(s)/w.ch)
	w.pos = b
	for i := w.cur; i < w.n; i++ {
		lo, hi := w.bounds(i)
		if hi <= a {
			w.cur = i + 1 // bounds only grow: slices before i are done too
			continue
		}
		if lo >= b {
			break
		}
		sum := w.sums[i]
		for _, v := range s[(max(lo, a)-a)*int64(w.ch) : (min(hi, b)-a)*int64(w.ch)] {
			sum += float64(v) * float64(v)
		}
		w.sums[i] = sum
	}
}

// result is the waveform: each slice's RMS, scaled so that the loudest is
// 1024.
func (w *waveAcc) result() []int {
	out := make([]int, w.n)
	levels := make([]float64, w.n)
	loudest := 0.0
	for i := range levels {
		lo, hi := w.bounds(i)
		levels[i] = math.Sqrt(w.sums[i] / float64((hi-lo)*int64(w.ch)))
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
