package voice

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/lichen-hs/lichen/core/audio"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Result is a converted or optimised copy of a voice message: a new media
// item owned by the caller. The message itself is never changed (media
// is immutable, and the room event points at the original).
type Result struct {
	ContentURI  string `json:"content_uri"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	DurationMs  int64  `json:"duration_ms"`
	SampleRate  int    `json:"sample_rate"`
	Channels    int    `json:"channels"`
	// Bitrate is the Opus target bitrate for audio/ogg, and the PCM bit
	// rate (rate × channels × bits) for audio/wav.
	Bitrate int `json:"bitrate"`
}

// Bounds of the seed's parameters.
const (
	minQualityKbps = 32
	maxQualityKbps = 320
	minBitrate     = 64000
	maxBitrate     = 320000
	minTargetKB    = 10
	maxTargetKB    = 10000
)

// ConvertRequest is POST /voice/convert's body.
type ConvertRequest struct {
	MessageID    string
	TargetFormat string
	Quality      int // kb/s, 0 = unset
	Bitrate      int // b/s, 0 = unset; wins over Quality
}

// Convert re-encodes a voice message into another format.
func (s *Service) Convert(c Caller, req ConvertRequest) (Result, error) {
	target := canonical(req.TargetFormat)
	if req.TargetFormat == "" {
		return Result{}, mxerr.MissingParam("target_format is required")
	}
	if !encodable(target) {
		return Result{}, mxerr.InvalidParam(fmt.Sprintf("cannot convert to %q: supported target formats are %s", req.TargetFormat, strings.Join(audio.Encodable(), ", ")))
	}
	if req.Quality != 0 && (req.Quality < minQualityKbps || req.Quality > maxQualityKbps) {
		return Result{}, mxerr.InvalidParam(fmt.Sprintf("quality must be %d to %d kb/s", minQualityKbps, maxQualityKbps))
	}
	if req.Bitrate != 0 && (req.Bitrate < minBitrate || req.Bitrate > maxBitrate) {
		return Result{}, mxerr.InvalidParam(fmt.Sprintf("bitrate must be %d to %d b/s", minBitrate, maxBitrate))
	}
	if target == audio.WAV && (req.Quality != 0 || req.Bitrate != 0) {
		return Result{}, mxerr.InvalidParam("quality and bitrate apply to audio/ogg (Opus); audio/wav is uncompressed 16-bit PCM")
	}
	m, err := s.ownMessage(c, req.MessageID)
	if err != nil {
		return Result{}, err
	}
	key := fmt.Sprintf("%s convert %s q%d b%d", c.User, target, req.Quality, req.Bitrate)
	if r, ok := s.reuse(c, m, key); ok {
		return r.Result, nil
	}
	s.acquire()
	defer s.release()
	pcm, err := s.decode(m, 0)
	if err != nil {
		return Result{}, err
	}
	opt := audio.EncodeOptions{}
	if target == audio.Ogg {
		opt.Bitrate = 64000
		if req.Quality != 0 {
			opt.Bitrate = req.Quality * 1000
		}
		if req.Bitrate != 0 {
			opt.Bitrate = req.Bitrate
		}
	}
	out, err := audio.Encode(pcm, target, opt)
	if err != nil {
		return Result{}, err
	}
	r, mediaID, err := s.store(c, out, target, opt)
	if err != nil {
		return Result{}, err
	}
	return s.remember(m.ID, key, Derived{Owner: c.User, MediaID: mediaID, Result: OptimizeResult{Result: r}}).Result, nil
}

// OptimizeRequest is POST /voice/optimize's body.
type OptimizeRequest struct {
	MessageID       string
	TargetSizeKB    int // KiB, 0 = unset
	PreserveQuality bool
	RemoveSilence   bool
	NormalizeVolume bool
}

// OptimizeResult adds what the processing did.
type OptimizeResult struct {
	Result
	OriginalSize       int64   `json:"original_size"`
	OriginalDurationMs int64   `json:"original_duration_ms"`
	RemovedSilenceMs   int64   `json:"removed_silence_ms"`
	GainDB             float64 `json:"gain_db"`
}

// Silence and loudness settings for speech: a pause is under -45 dBFS RMS
// for half a second or more, and is shortened to 200 ms so speech keeps
// its rhythm; speech is brought to -20 dBFS RMS (a common dialogue level)
// with peaks kept under -1 dBFS.
const (
	silenceDBFS    = -45
	minSilence     = 500 * time.Millisecond
	keepSilence    = 200 * time.Millisecond
	targetRMSDBFS  = -20
	peakCeilDBFS   = -1
	speechBitrate  = 24000 // Opus wideband speech is transparent-ish here
	qualityBitrate = 32000
	minOpusBitrate = 6000
)

// Optimize removes silence, normalises loudness and re-encodes a voice
// message towards a size. Opus sources (and MP3, which can't be
// re-encoded) become Opus at the bitrate that fits; WAV stays WAV and
// fits by downmixing to mono, lowering the sample rate and, without
// preserve_quality, the sample size.
func (s *Service) Optimize(c Caller, req OptimizeRequest) (OptimizeResult, error) {
	if req.TargetSizeKB != 0 && (req.TargetSizeKB < minTargetKB || req.TargetSizeKB > maxTargetKB) {
		return OptimizeResult{}, mxerr.InvalidParam(fmt.Sprintf("target_size_kb must be %d to %d", minTargetKB, maxTargetKB))
	}
	m, err := s.ownMessage(c, req.MessageID)
	if err != nil {
		return OptimizeResult{}, err
	}
	key := fmt.Sprintf("%s optimize t%d p%v s%v n%v", c.User, req.TargetSizeKB, req.PreserveQuality, req.RemoveSilence, req.NormalizeVolume)
	if r, ok := s.reuse(c, m, key); ok {
		return r, nil
	}
	s.acquire()
	defer s.release()
	pcm, err := s.decode(m, optimizeRate)
	if err != nil {
		return OptimizeResult{}, err
	}
	res := OptimizeResult{OriginalSize: m.Size, OriginalDurationMs: pcm.Duration().Milliseconds()}
	if req.RemoveSilence {
		before := pcm.Duration()
		pcm = audio.RemoveSilence(pcm, silenceDBFS, minSilence, keepSilence)
		res.RemovedSilenceMs = (before - pcm.Duration()).Milliseconds()
		// The decoded audio (tens of MiB for minutes) is garbage now:
		// reclaim it before encoding allocates, so the peak is two
		// copies, not three.
		runtime.GC()
	}
	if req.NormalizeVolume {
		before := audio.RMSDBFS(pcm)
		audio.NormalizeInPlace(pcm, targetRMSDBFS, peakCeilDBFS)
		if after := audio.RMSDBFS(pcm); before > -200 && after > -200 {
			res.GainDB = float64(int((after-before)*10+0.5)) / 10
		}
	}
	if pcm.Frames() == 0 {
		return OptimizeResult{}, mxerr.InvalidParam("nothing is left after removing silence")
	}
	target := audio.Ogg
	if m.ContentType == audio.WAV {
		target = audio.WAV
	}
	limit := int64(req.TargetSizeKB) * 1024
	var out []byte
	var opt audio.EncodeOptions
	if target == audio.WAV {
		out, opt, err = fitWAV(pcm, limit, req.PreserveQuality)
	} else {
		out, opt, err = fitOpus(pcm, limit, req.PreserveQuality)
	}
	if err != nil {
		return OptimizeResult{}, err
	}
	var mediaID string
	res.Result, mediaID, err = s.store(c, out, target, opt)
	if err != nil {
		return OptimizeResult{}, err
	}
	return s.remember(m.ID, key, Derived{Owner: c.User, MediaID: mediaID, Result: res}), nil
}

// fitOpus encodes mono Opus (voice) at the highest bitrate whose file
// fits limit. File size is not proportional to the target bitrate: Opus
// switches between SILK bandwidths and hybrid mode as the bitrate moves
// (a 20 s tone is 16.8 KB at 8 kb/s, 26.8 KB at 10, 40.7 KB at 12.3), so
// the bitrate is found by bisection over real encodes. For long audio
// the bisection runs on an excerpt (calibrate) and the whole message is
// encoded once or twice: a 5-minute message took seven full encodes
// (52 s on this machine) before.
func fitOpus(pcm *audio.PCM, limit int64, preserve bool) ([]byte, audio.EncodeOptions, error) {
	floor, ceil := minOpusBitrate, qualityBitrate
	if preserve {
		floor = speechBitrate
	}
	opt := audio.EncodeOptions{Channels: 1, Bitrate: speechBitrate}
	if preserve {
		opt.Bitrate = qualityBitrate
	}
	if limit <= 0 {
		out, err := audio.Encode(pcm, audio.Ogg, opt)
		return out, opt, err
	}
	tooSmall := func(size int) error {
		return mxerr.InvalidParam(fmt.Sprintf("target_size_kb is too small: this audio is %d KB at the lowest bitrate allowed (%d b/s%s)",
			(size+1023)/1024, floor, map[bool]string{true: " with preserve_quality", false: ""}[preserve]))
	}
	ex, exLimit := excerpt(pcm, limit)
	if ex == pcm {
		out, o, size, err := bisectOpus(pcm, limit, floor, ceil)
		if err != nil {
			return nil, o, err
		}
		if out == nil {
			return nil, o, tooSmall(size)
		}
		return out, o, nil
	}
	_, o, _, err := bisectOpus(ex, exLimit, floor, ceil)
	if err != nil {
		return nil, o, err
	}
	// The excerpt's bitrate (or the floor when even that did not fit),
	// then a few steps down if the whole message still comes out larger.
	for i := 0; i < 4; i++ {
		out, err := audio.Encode(pcm, audio.Ogg, o)
		if err != nil {
			return nil, o, err
		}
		if int64(len(out)) <= limit {
			return out, o, nil
		}
		if o.Bitrate == floor {
			return nil, o, tooSmall(len(out))
		}
		over := float64(len(out)) / float64(limit)
		o.Bitrate = clamp(int(float64(o.Bitrate)/over)-500, floor, ceil)
	}
	return nil, o, tooSmall(int(limit) + 1)
}

// excerptSeconds is how much of a long message the bitrate search
// encodes: eight 5-second pieces spread over it, so speech, pauses and
// level changes are all sampled.
const (
	excerptPieces = 8
	excerptPiece  = 5 * time.Second
)

// excerpt returns the audio to calibrate on and its share of limit: the
// audio itself when it is short, else evenly spaced pieces of it. The
// Ogg headers (about 100 bytes) are in both files, so they are taken out
// of the share and added back.
func excerpt(pcm *audio.PCM, limit int64) (*audio.PCM, int64) {
	piece := int(excerptPiece.Seconds() * float64(pcm.Rate))
	if pcm.Frames() <= 2*excerptPieces*piece {
		return pcm, limit
	}
	ch := pcm.Channels
	ex := &audio.PCM{Rate: pcm.Rate, Channels: ch, Samples: make([]float32, 0, excerptPieces*piece*ch)}
	stride := (pcm.Frames() - piece) / (excerptPieces - 1)
	for i := 0; i < excerptPieces; i++ {
		at := i * stride
		ex.Samples = append(ex.Samples, pcm.Samples[at*ch:(at+piece)*ch]...)
	}
	const headers = 128
	share := float64(ex.Frames()) / float64(pcm.Frames())
	return ex, headers + int64(float64(limit-headers)*share)
}

// bisectOpus finds the highest bitrate in [floor, ceil] whose encode of
// pcm fits limit, to within 1 kb/s. It returns nil output (and the size
// at the floor) when none fits.
func bisectOpus(pcm *audio.PCM, limit int64, floor, ceil int) ([]byte, audio.EncodeOptions, int, error) {
	opt := audio.EncodeOptions{Channels: 1}
	secs := pcm.Duration().Seconds()
	lo, hi := floor, ceil
	try := clamp(int(float64(limit)*8/secs), floor, ceil)
	var best []byte
	bestOpt := audio.EncodeOptions{Channels: 1, Bitrate: floor}
	smallest := 0
	for i := 0; i < 7 && lo <= hi; i++ {
		opt.Bitrate = try
		out, err := audio.Encode(pcm, audio.Ogg, opt)
		if err != nil {
			return nil, opt, 0, err
		}
		if int64(len(out)) <= limit {
			if best == nil || opt.Bitrate > bestOpt.Bitrate {
				best, bestOpt = out, opt
			}
			lo = try + 1
		} else {
			if try == floor {
				smallest = len(out)
				break
			}
			hi = try - 1
		}
		// Within 1 kb/s is as close as a speech bitrate needs to be; with
		// nothing fitting yet, the floor is the last thing to try.
		switch {
		case hi-lo >= 1000:
			try = lo + (hi-lo)/2
		case best != nil:
			return best, bestOpt, 0, nil
		default:
			try = floor
		}
	}
	return best, bestOpt, smallest, nil
}

// wavShape is one PCM layout, from the best to the smallest.
type wavShape struct{ rate, channels, bits int }

// wavShapes lists the layouts to try for a source, largest first: mono
// first (it costs speech nothing), then lower rates down to telephone
// quality and 8-bit samples, ordered by bytes per second (at equal size
// the higher rate wins: 16 kHz 8-bit is wideband speech, 8 kHz 16-bit
// is not). preserve_quality stops at 16 kHz 16-bit.
func wavShapes(rate, channels int, preserve bool) []wavShape {
	var out []wavShape
	if channels > 1 {
		out = append(out, wavShape{rate, channels, 16})
	}
	rates := []int{rate}
	for _, r := range []int{32000, 24000, 22050, 16000, 11025, 8000} {
		if r < rate {
			rates = append(rates, r)
		}
	}
	var mono []wavShape
	for _, bits := range []int{16, 8} {
		if bits == 8 && preserve {
			break
		}
		for _, r := range rates {
			if preserve && r < 16000 && r < rate {
				break
			}
			mono = append(mono, wavShape{r, 1, bits})
		}
	}
	sort.SliceStable(mono, func(i, j int) bool {
		bi, bj := mono[i].rate*mono[i].bits, mono[j].rate*mono[j].bits
		if bi != bj {
			return bi > bj
		}
		return mono[i].rate > mono[j].rate
	})
	return append(out, mono...)
}

// wavSize is the size of a canonical WAV file of the given shape.
func wavSize(frames int64, sh wavShape) int64 {
	return 44 + frames*int64(sh.channels*sh.bits/8)
}

func fitWAV(pcm *audio.PCM, limit int64, preserve bool) ([]byte, audio.EncodeOptions, error) {
	shapes := wavShapes(pcm.Rate, pcm.Channels, preserve)
	pick := shapes[0]
	if pcm.Channels > 1 && limit <= 0 {
		pick = wavShape{pcm.Rate, pcm.Channels, 16}
	}
	if limit > 0 {
		found := false
		for _, sh := range shapes {
			frames := int64(float64(pcm.Frames()) * float64(sh.rate) / float64(pcm.Rate))
			if wavSize(frames, sh) <= limit {
				pick, found = sh, true
				break
			}
		}
		if !found {
			last := shapes[len(shapes)-1]
			frames := int64(float64(pcm.Frames()) * float64(last.rate) / float64(pcm.Rate))
			return nil, audio.EncodeOptions{}, mxerr.InvalidParam(fmt.Sprintf(
				"target_size_kb is too small: this audio is %d KB as WAV at %d Hz %d-bit mono; convert it to audio/ogg for smaller files",
				(wavSize(frames, last)+1023)/1024, last.rate, last.bits))
		}
	}
	opt := audio.EncodeOptions{Rate: pick.rate, Channels: pick.channels, Bits: pick.bits}
	out, err := audio.Encode(pcm, audio.WAV, opt)
	return out, opt, err
}

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// optimizeRate is the rate Opus sources are decoded at for optimize:
// speech at the bitrates optimize aims for is encoded super-wideband at
// most (12 kHz of audio), which 24 kHz samples carry, at half the memory
// and encoder work of 48 kHz.
const optimizeRate = 24000

// ownMessage loads a message the caller may process: its owner or an
// admin, and a format this server decodes.
func (s *Service) ownMessage(c Caller, id string) (Message, error) {
	if id == "" {
		return Message{}, mxerr.MissingParam("message_id is required")
	}
	m, err := s.get(c, id)
	if err != nil {
		return Message{}, err
	}
	if c.User != m.Owner && !c.Admin {
		return Message{}, mxerr.Forbidden("only the sender or a server admin may convert or optimise a voice message")
	}
	if !decodable(m.ContentType) {
		return Message{}, mxerr.InvalidParam(fmt.Sprintf("cannot decode %s in this server; convertible sources are %s",
			m.ContentType, strings.Join(audio.Decodable(), ", ")))
	}
	return m, nil
}

// decode decodes a message within the sample budget; an Ogg Opus source
// is decoded at rate when rate is not 0.
func (s *Service) decode(m Message, rate int) (*audio.PCM, error) {
	b, err := s.media.Open(m.MediaID)
	if err != nil {
		return nil, err
	}
	var pcm *audio.PCM
	if rate != 0 && m.ContentType == audio.Ogg {
		pcm, err = audio.DecodeAt(b, m.ContentType, rate, s.cfg.MaxProcessSamples)
	} else {
		pcm, err = audio.Decode(b, m.ContentType, s.cfg.MaxProcessSamples)
	}
	switch {
	case errors.Is(err, audio.ErrTooLong):
		return nil, mxerr.TooLarge(fmt.Sprintf("voice message is too long to process on this server (limit %d samples)", s.cfg.MaxProcessSamples))
	case err != nil:
		return nil, mxerr.InvalidParam(fmt.Sprintf("cannot decode the voice message: %v", err))
	}
	return pcm, nil
}

// reuse returns the result of an earlier identical request by the same
// caller whose media still exists, so repeating a conversion neither
// redoes the work nor fills the caller's quota with copies.
func (s *Service) reuse(c Caller, m Message, key string) (OptimizeResult, bool) {
	d, ok := m.Derived[key]
	if !ok || d.Owner != c.User || !s.media.Exists(d.MediaID) {
		return OptimizeResult{}, false
	}
	return d.Result, true
}

// remember records a result on its message, in one store transaction so
// a concurrent update is not undone. When the message is gone, or an
// identical request finished first, the new media is deleted and the
// result that stays is returned.
func (s *Service) remember(id, key string, d Derived) OptimizeResult {
	kept := d
	err := s.st.UpdateVoice(id, func(m *Message) error {
		if old, ok := m.Derived[key]; ok && old.MediaID != d.MediaID && s.media.Exists(old.MediaID) {
			kept = old
			return nil
		}
		if m.Derived == nil {
			m.Derived = map[string]Derived{}
		}
		m.Derived[key] = d
		return nil
	})
	if err != nil || kept.MediaID != d.MediaID {
		_ = s.media.Delete(d.MediaID)
	}
	if err != nil {
		return d.Result // the caller's copy is gone with the message
	}
	return kept.Result
}

// store keeps an encoded result as the caller's media and describes it.
func (s *Service) store(c Caller, out []byte, ct string, opt audio.EncodeOptions) (Result, string, error) {
	info, err := audio.Probe(out, ct)
	if err != nil {
		return Result{}, "", fmt.Errorf("voice: re-encoded audio does not parse: %w", err)
	}
	id, err := s.media.Upload(c.User, bytes.NewReader(out), ct, "voice-message"+extension(ct))
	if err != nil {
		return Result{}, "", err
	}
	r := Result{
		ContentURI: s.media.MXC(id), ContentType: ct, Size: int64(len(out)),
		DurationMs: info.Duration.Milliseconds(), SampleRate: info.Rate, Channels: info.Channels, Bitrate: opt.Bitrate,
	}
	if ct == audio.WAV {
		bits := opt.Bits
		if bits == 0 {
			bits = 16
		}
		r.Bitrate = info.Rate * info.Channels * bits
	}
	return r, id, nil
}
