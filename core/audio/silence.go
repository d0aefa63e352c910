package audio

import "time"

// Silence detection and cutting.
const (
	silenceWindow = 10 * time.Millisecond
	cutFade       = 5 * time.Millisecond
)

// RemoveSilence returns p with every run of silence longer than
// minSilence shortened to keep: an inner run keeps half of keep on each
// side of the cut, so speech keeps its natural decay and onset; a leading
// run keeps its last keep and a trailing one its first. Silence is a 10 ms
// window (all channels) whose RMS is below thresholdDBFS, e.g. -45. Each
// cut gets a 5 ms fade out and in, so that a residual hum or hiss does not
// click where it jumps.
func RemoveSilence(p *PCM, thresholdDBFS float64, minSilence, keep time.Duration) *PCM {
	if p == nil {
		return nil
	}
	if p.Rate <= 0 || p.Channels <= 0 || len(p.Samples) == 0 {
		return p.clone()
	}
	ch := p.Channels
	toSamples := func(d time.Duration) int {
		f := min(max(0, durationFrames(d, p.Rate)), int64(p.Frames())+1)
		return int(f) * ch
	}
	minRun, keepN := toSamples(minSilence), toSamples(keep)
	size, n := windows(p, silenceWindow)
	thr := fromDBFS(thresholdDBFS)
	thrMS := thr * thr

	silent := make([]bool, n)
	for w := range silent {
		silent[w] = meanSquare(p.Samples[w*size:min((w+1)*size, len(p.Samples))]) < thrMS
	}

	// Find the sample ranges [from, to) to cut.
	type cut struct{ from, to int }
	var cuts []cut
	for w := 0; w < n; {
		if !silent[w] {
			w++
			continue
		}
		start := w
		for w < n && silent[w] {
			w++
		}
		from, to := start*size, min(w*size, len(p.Samples))
		if to-from <= minRun {
			continue
		}
		leading, trailing := from == 0, to == len(p.Samples)
		switch {
		case trailing: // (also all-silent audio): keep the start
			from += keepN
		case leading:
			to -= keepN
		default:
			head := keepN / ch / 2 * ch
			from, to = from+head, to-(keepN-head)
		}
		if from < to {
			cuts = append(cuts, cut{from, to})
		}
	}
	if len(cuts) == 0 {
		return p.clone()
	}

	removed := 0
	for _, c := range cuts {
		removed += c.to - c.from
	}
	out := &PCM{Rate: p.Rate, Channels: ch, Samples: make([]float32, 0, len(p.Samples)-removed)}
	fade := toSamples(cutFade) / ch
	prev := 0
	for i, c := range cuts {
		seg := out.appendSegment(p.Samples[prev:c.from])
		fadeIn(seg, ch, fade, i > 0)
		fadeOut(seg, ch, fade, true)
		prev = c.to
	}
	seg := out.appendSegment(p.Samples[prev:])
	fadeIn(seg, ch, fade, true)
	return out
}

// appendSegment appends s to p's samples and returns the appended part.
func (p *PCM) appendSegment(s []float32) []float32 {
	n := len(p.Samples)
	p.Samples = append(p.Samples, s...)
	return p.Samples[n:]
}

// fadeIn ramps the first frames of interleaved s up from zero, if on.
func fadeIn(s []float32, ch, frames int, on bool) {
	frames = min(frames, len(s)/ch)
	if !on || frames == 0 {
		return
	}
	for f := range frames {
		g := float32(f) / float32(frames)
		for c := range ch {
			s[f*ch+c] *= g
		}
	}
}

// fadeOut ramps the last frames of interleaved s down to zero, if on.
func fadeOut(s []float32, ch, frames int, on bool) {
	total := len(s) / ch
	frames = min(frames, total)
	if !on || frames == 0 {
		return
	}
	for f := range frames {
		g := float32(f) / float32(frames)
		i := (total - 1 - f) * ch
		for c := range ch {
			s[i+c] *= g
		}
	}
}
