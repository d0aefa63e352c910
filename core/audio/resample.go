package audio

import (
	"math"
	"sync"
)

// Resampling by band-limited interpolation (J. O. Smith, "Digital Audio
// Resampling"): each output sample is the input convolved with a
// Kaiser-windowed sinc low-pass centred on its exact position in the
// input. The low-pass cutoff sits just below the lower of the two Nyquist
// frequencies, so downsampling removes what would alias and upsampling
// removes the images.
const (
	// sincZeroCrossings is the kernel's half-width in zero crossings of
	// the cutoff; with sincBeta it sets the stopband (about 80 dB) and the
	// transition width (about 12% of the cutoff).
	sincZeroCrossings = 16
	sincBeta          = 8.0
	// sincRolloff puts the cutoff at 90% of the lower Nyquist frequency,
	// so that the transition band ends near Nyquist: 16 kHz output keeps
	// up to ~6.5 kHz flat, plenty for speech.
	sincRolloff = 0.9
	// sincTableRes is the kernel table's points per zero crossing; linear
	// interpolation between them is accurate to about -100 dB.
	sincTableRes = 512
	// maxPhaseCache bounds the cached weights (float32s) for ratios with
	// few distinct phases (48k→16k has 1, 44.1k→48k has 160); other
	// ratios compute weights per output sample.
	maxPhaseCache = 1 << 18
)

var (
	sincTableOnce sync.Once
	sincTable     []float64 // windowed sinc at x = i/sincTableRes zero crossings
)

func kernelTable() []float64 {
	sincTableOnce.Do(func() {
		n := sincZeroCrossings*sincTableRes + 2
		sincTable = make([]float64, n)
		i0b := besselI0(sincBeta)
		for i := range sincTable {
			x := float64(i) / sincTableRes
			if x >= sincZeroCrossings {
				continue
			}
			r := x / sincZeroCrossings
			w := besselI0(sincBeta*math.Sqrt(1-r*r)) / i0b
			s := 1.0
			if x > 0 {
				s = math.Sin(math.Pi*x) / (math.Pi * x)
			}
			sincTable[i] = s * w
		}
	})
	return sincTable
}

// besselI0 is the zeroth-order modified Bessel function of the first kind,
// by its power series (converges fast for the arguments used here).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

// Resample returns p at rate. A non-positive rate, or p's own, returns a
// copy.
func Resample(p *PCM, rate int) *PCM {
	if p == nil {
		return nil
	}
	if rate <= 0 || rate == p.Rate || p.Rate <= 0 || p.Channels <= 0 {
		return p.clone()
	}
	in, out, ch := int64(p.Rate), int64(rate), p.Channels
	inFrames := int64(p.Frames())
	outFrames := (inFrames*out + in - 1) / in
	res := &PCM{Rate: rate, Channels: ch, Samples: make([]float32, outFrames*int64(ch))}
	if inFrames == 0 {
		return res
	}

	// Cutoff in cycles per input sample; the kernel is scaled to it.
	fc := 0.5 * sincRolloff * math.Min(1, float64(out)/float64(in))
	reach := sincZeroCrossings / (2 * fc) // kernel half-width in input samples
	half := int(math.Ceil(reach))
	taps := 2*half + 1
	table := kernelTable()

	// Output sample j sits at input position j·in/out = k0 + phase/out.
	// With g = gcd(in, out) there are out/g distinct phases.
	g := gcd(in, out)
	phases := out / g
	var cache []float32
	var cached []bool
	if phases*int64(taps) <= maxPhaseCache {
		cache = make([]float32, phases*int64(taps))
		cached = make([]bool, phases)
	}
	scratch := make([]float32, taps)
	weights := func(phase int64) []float32 {
		w := scratch
		if cache != nil {
			w = cache[phase/g*int64(taps):][:taps]
			if cached[phase/g] {
				return w
			}
			cached[phase/g] = true
		}
		frac := float64(phase) / float64(out)
		for d := -half; d <= half; d++ {
			// Tap d is input sample k0+d, at distance frac-d from the
			// output position; in zero crossings that is ×2fc.
			x := math.Abs(frac-float64(d)) * 2 * fc * sincTableRes
			i := int(x)
			v := 0.0
			if i+1 < len(table) {
				f := x - float64(i)
				v = table[i] + f*(table[i+1]-table[i])
			}
			w[d+half] = float32(2 * fc * v)
		}
		return w
	}

	src, dst := p.Samples, res.Samples
	for j := int64(0); j < outFrames; j++ {
		pos := j * in
		k0, phase := pos/out, pos%out
		w := weights(phase)
		// Clip the taps to the input; outside it the signal is silence.
		lo, hi := k0-int64(half), k0+int64(half)
		wlo := 0
		if lo < 0 {
			wlo = int(-lo)
			lo = 0
		}
		if hi > inFrames-1 {
			hi = inFrames - 1
		}
		w = w[wlo : wlo+int(hi-lo)+1]
		o := dst[j*int64(ch) : (j+1)*int64(ch)]
		if ch == 1 {
			s := src[lo : hi+1]
			var acc float32
			for i, wi := range w {
				acc += wi * s[i]
			}
			o[0] = acc
			continue
		}
		s := src[lo*int64(ch) : (hi+1)*int64(ch)]
		for c := range o {
			var acc float32
			for i, wi := range w {
				acc += wi * s[i*ch+c]
			}
			o[c] = acc
		}
	}
	return res
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (p *PCM) clone() *PCM {
	q := *p
	q.Samples = append([]float32(nil), p.Samples...)
	return &q
}

// Mono returns p with its channels averaged into one.
func Mono(p *PCM) *PCM {
	if p == nil {
		return nil
	}
	if p.Channels <= 1 {
		return p.clone()
	}
	ch := p.Channels
	out := &PCM{Rate: p.Rate, Channels: 1, Samples: make([]float32, p.Frames())}
	inv := 1 / float32(ch)
	for i := range out.Samples {
		var sum float32
		for _, v := range p.Samples[i*ch : (i+1)*ch] {
			sum += v
		}
		out.Samples[i] = sum * inv
	}
	return out
}

// remix returns p with ch channels: averaged down to mono, mono copied to
// every channel, and anything else through mono (keeping every channel's
// content, losing the stereo image). It may return p itself.
func remix(p *PCM, ch int) *PCM {
	switch {
	case ch == p.Channels:
		return p
	case ch == 1:
		return Mono(p)
	case p.Channels != 1:
		p = Mono(p)
	}
	out := &PCM{Rate: p.Rate, Channels: ch, Samples: make([]float32, len(p.Samples)*ch)}
	for i, v := range p.Samples {
		for c := range ch {
			out.Samples[i*ch+c] = v
		}
	}
	return out
}
