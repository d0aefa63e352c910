// Package audio decodes, encodes and cleans up the short recordings behind
// voice messages (MSC3245/MSC3246), in pure Go so that the binary stays
// static: Ogg Opus (what Element and FluffyChat record) and WAV both ways,
// MP3 decode only, plus resampling, silence removal, loudness
// normalisation and the MSC3246 waveform.
//
// Security: the format is taken from the declared content type but checked
// against the magic bytes, and Decode sizes its output from the headers
// (Probe) before decoding a single sample, so a decompression bomb is
// refused with ErrTooLong after reading a few pages of headers.
//
// Memory: Decode holds the compressed input, the decoded PCM (float32, 4
// bytes per sample per channel: 60 s of 48 kHz mono is 11 MiB) and one
// packet's worth of scratch. Every signal-processing function returns a new
// PCM, so a pipeline briefly holds two PCM buffers. WaveformOf computes the
// waveform without holding the PCM at all, and DecodeAt decodes Opus
// straight to a lower rate (16 kHz is a third of the 48 kHz PCM).
package audio

import (
	"errors"
	"fmt"
	"math"
	"mime"
	"slices"
	"strings"
	"time"
)

// Formats, as canonical content types (see Normalise).
const (
	// Ogg is Ogg Opus (RFC 7845): what Element and FluffyChat record voice
	// messages as. Other codecs in Ogg (Vorbis, FLAC) are ErrUnsupported.
	Ogg = "audio/ogg"
	// WAV is RIFF WAVE with integer PCM of 8, 16, 24 or 32 bits or IEEE
	// float of 32 or 64 bits (format tags 1 and 3, and
	// WAVE_FORMAT_EXTENSIBLE wrapping either).
	WAV = "audio/wav"
	// MPEG is MP3 (MPEG-1 and MPEG-2 Layer III); decode only.
	MPEG = "audio/mpeg"
)

// Errors; test them with errors.Is (they are wrapped with detail).
var (
	// ErrUnsupported: the format, or a feature of it (a codec in Ogg
	// other than Opus, MPEG-2.5, an 8-bit WAV float), is not handled. The
	// message names what is.
	ErrUnsupported = errors.New("audio: unsupported format")
	// ErrInvalid: the bytes are not the declared format, or are corrupt or
	// truncated beyond use; also a malformed PCM or option handed to
	// Encode.
	ErrInvalid = errors.New("audio: invalid or corrupt data")
	// ErrTooLong: the decoded audio would exceed the caller's sample cap.
	ErrTooLong = errors.New("audio: too long to process")
)

// Normalise canonicalises a content type: lowercase, parameters stripped,
// aliases mapped to Ogg, WAV or MPEG. Unknown types come back lowercased
// without parameters.
func Normalise(contentType string) string {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// Be lenient with sloppy clients ("audio/ogg;codecs=opus;" and the
		// like): whatever precedes the first ';' is the type.
		t, _, _ = strings.Cut(contentType, ";")
		t = strings.ToLower(strings.TrimSpace(t))
	}
	switch t {
	case "audio/ogg", "audio/opus", "application/ogg", "audio/x-ogg", "audio/x-opus+ogg":
		return Ogg
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/x-pn-wav":
		return WAV
	case "audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mp3", "audio/x-mpeg", "audio/x-mpeg-3":
		return MPEG
	}
	return t
}

// Decodable lists exactly the formats Decode (and Probe) handle.
func Decodable() []string { return []string{Ogg, WAV, MPEG} }

// Encodable lists exactly the formats Encode handles.
func Encodable() []string { return []string{Ogg, WAV} }

// unsupported wraps ErrUnsupported for a format, naming the ones that work
// so that the message can be shown to the uploader as is.
func unsupported(format string, supported []string) error {
	return fmt.Errorf("%w %q (supported: %s)", ErrUnsupported, format, strings.Join(supported, ", "))
}

// PCM is decoded audio: interleaved float32 samples, nominally in [-1, 1]
// (decoders may overshoot slightly; encoders clip).
type PCM struct {
	Rate, Channels int
	Samples        []float32
}

// Frames is the number of samples per channel.
func (p *PCM) Frames() int {
	if p == nil || p.Channels <= 0 {
		return 0
	}
	return len(p.Samples) / p.Channels
}

// Duration is Frames at Rate.
func (p *PCM) Duration() time.Duration {
	if p == nil || p.Rate <= 0 {
		return 0
	}
	return framesDuration(int64(p.Frames()), p.Rate)
}

// check reports whether p is well-formed enough to process.
func (p *PCM) check() error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: nil PCM", ErrInvalid)
	case p.Rate <= 0 || p.Rate > maxRate:
		return fmt.Errorf("%w: sample rate %d", ErrInvalid, p.Rate)
	case p.Channels <= 0 || p.Channels > maxChannels:
		return fmt.Errorf("%w: %d channels", ErrInvalid, p.Channels)
	case len(p.Samples)%p.Channels != 0:
		return fmt.Errorf("%w: %d samples is not a whole number of %d-channel frames", ErrInvalid, len(p.Samples), p.Channels)
	}
	return nil
}

// Limits on what headers may claim. They keep arithmetic in range and
// reject nonsense early; real recordings are far inside them.
const (
	maxRate     = 768000
	maxChannels = 255
)

// durationFrames is the whole number of frames in d at rate, without
// overflowing for any duration.
func durationFrames(d time.Duration, rate int) int64 {
	return int64(d/time.Second)*int64(rate) + int64(d%time.Second)*int64(rate)/int64(time.Second)
}

func framesDuration(frames int64, rate int) time.Duration {
	// Split to avoid overflow: frames*1e9 overflows int64 past ~9.2e9 frames.
	sec := frames / int64(rate)
	rem := frames % int64(rate)
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/int64(rate))
}

// Info is what Probe learns from headers.
type Info struct {
	Format string // canonical content type
	// Rate and Channels are those of the PCM Decode returns: always 48000
	// for Opus, which decodes at 48 kHz whatever it was recorded at.
	Rate, Channels int
	// InputRate is the rate the audio was recorded at, when the format
	// says: OpusHead's input_sample_rate for Opus (0 if the encoder left it
	// unset), Rate for WAV and MP3.
	InputRate int
	Duration  time.Duration
	// Frames is the number of samples per channel Decode will return
	// (Duration at Rate), so Frames*Channels is the sample count the
	// maxSamples cap of Decode is checked against.
	Frames int64
}

// Probe reads the headers of data, declared as format, without decoding
// audio. Bytes that are not the declared format are ErrInvalid; a format
// that is not one of Decodable() is ErrUnsupported.
//
// Ogg Opus: OpusHead, and the granule position of the last page for the
// duration (RFC 7845 §4: (last granule - pre-skip - start offset) at 48 kHz).
// WAV: the fmt chunk and the data chunk's size. MP3: a scan of every frame
// header (cheap: 4 bytes per ~26 ms frame).
func Probe(data []byte, format string) (Info, error) {
	f := Normalise(format)
	var (
		info Info
		err  error
	)
	switch f {
	case Ogg:
		var s oggStream
		s, err = probeOgg(data)
		info = s.Info
	case WAV:
		var w wavStream
		w, err = probeWAV(data)
		info = w.Info
	case MPEG:
		var m mp3Stream
		m, err = probeMP3(data)
		info = m.Info
	default:
		return Info{}, unsupported(format, Decodable())
	}
	if err != nil {
		return Info{}, err
	}
	info.Format = f
	return info, nil
}

// Decode decodes data, declared as format, to PCM; Opus decodes at 48 kHz.
// maxSamples (0 or less: no cap) caps Frames*Channels of the result: it is checked
// against the headers before anything is decoded (ErrTooLong), and
// decoding stops where the headers said the audio ends, so a file whose
// headers lie cannot decode to more than it declared.
func Decode(data []byte, format string, maxSamples int) (*PCM, error) {
	f := Normalise(format)
	switch f {
	case Ogg:
		s, err := probeOgg(data)
		if err != nil {
			return nil, err
		}
		if err := checkCap(s.Info, maxSamples); err != nil {
			return nil, err
		}
		return decodeOgg(data, s, opusRate, maxSamples)
	case WAV:
		w, err := probeWAV(data)
		if err != nil {
			return nil, err
		}
		if err := checkCap(w.Info, maxSamples); err != nil {
			return nil, err
		}
		return decodeWAV(w), nil
	case MPEG:
		m, err := probeMP3(data)
		if err != nil {
			return nil, err
		}
		if err := checkCap(m.Info, maxSamples); err != nil {
			return nil, err
		}
		return decodeMP3(data, m, maxSamples)
	}
	return nil, unsupported(format, Decodable())
}

// DecodeAt is Decode with the output at rate, so that audio wanted at a
// lower rate never exists at 48 kHz: maxSamples (0 or less: no cap) caps
// Frames*Channels at rate, checked against the headers before anything
// is decoded (ErrTooLong).
//
// Ogg Opus decodes natively at rate, which must be 8000, 12000, 16000,
// 24000 or 48000 (ErrUnsupported otherwise; Opus has no other output
// rates): no resampling, and decoder memory proportional to rate. Pre-skip
// and granule positions count 48 kHz samples whatever the rate (RFC 7845
// §4), so output frame j stands for 48 kHz position j·48000/rate and the
// trimming at both ends is Decode's at that granularity; at 48000 the
// result is Decode's.
//
// WAV and MP3 decode at their own rate and are then resampled (Resample)
// if that differs, so they briefly hold the PCM at both rates; a rate
// outside 1..768000 is ErrInvalid.
func DecodeAt(data []byte, format string, rate int, maxSamples int) (*PCM, error) {
	f := Normalise(format)
	var (
		info   Info
		decode func() (*PCM, error)
	)
	switch f {
	case Ogg:
		if !slices.Contains(opusInputRates, rate) {
			return nil, fmt.Errorf("%w: Opus output at %d Hz (Opus decodes at 8000, 12000, 16000, 24000 or 48000 Hz)",
				ErrUnsupported, rate)
		}
		s, err := probeOgg(data)
		if err != nil {
			return nil, err
		}
		if err := checkCap(s.at(rate), maxSamples); err != nil {
			return nil, err
		}
		return decodeOgg(data, s, rate, maxSamples)
	case WAV:
		w, err := probeWAV(data)
		if err != nil {
			return nil, err
		}
		info, decode = w.Info, func() (*PCM, error) { return decodeWAV(w), nil }
	case MPEG:
		m, err := probeMP3(data)
		if err != nil {
			return nil, err
		}
		info, decode = m.Info, func() (*PCM, error) { return decodeMP3(data, m, maxSamples) }
	default:
		return nil, unsupported(format, Decodable())
	}
	if rate <= 0 || rate > maxRate {
		return nil, fmt.Errorf("%w: output rate %d", ErrInvalid, rate)
	}
	if rate != info.Rate {
		// As many frames as Resample makes.
		info.Frames = (info.Frames*int64(rate) + int64(info.Rate) - 1) / int64(info.Rate)
		info.Rate = rate
	}
	if err := checkCap(info, maxSamples); err != nil {
		return nil, err
	}
	p, err := decode()
	if err != nil {
		return nil, err
	}
	if p.Rate != rate {
		p = Resample(p, rate)
	}
	return p, nil
}

// checkCap reports ErrTooLong when the audio info describes has more than
// maxSamples samples (Frames*Channels); maxSamples <= 0 is no cap.
func checkCap(info Info, maxSamples int) error {
	// Divide instead of multiplying: a hostile header's frame count times
	// 255 channels overflows int64 and would pass the check.
	if maxSamples > 0 && info.Frames > int64(maxSamples)/int64(max(info.Channels, 1)) {
		return fmt.Errorf("%w: %v of %d-channel audio at %d Hz is over the limit of %d samples",
			ErrTooLong, info.Duration.Round(time.Millisecond), info.Channels, info.Rate, maxSamples)
	}
	return nil
}

// EncodeOptions tune Encode; the zero value keeps the source's rate and
// channels and uses Opus at 32 kbit/s or 16-bit WAV.
type EncodeOptions struct {
	// Bitrate is the Opus bitrate in bit/s, 6000..510000; 0 means 32000
	// (ample for speech: Opus is transparent-ish for voice from ~24k).
	// Ignored for WAV.
	Bitrate int
	// Rate is the output sample rate; 0 keeps the source's. Opus accepts
	// only 8, 12, 16, 24 and 48 kHz input, so other rates are resampled to
	// the next one up (44.1 kHz to 48 kHz), and OpusHead's
	// input_sample_rate records the rate asked for.
	Rate int
	// Channels is the output channel count; 0 keeps the source's (but Ogg
	// Opus is at most stereo: more channels are mixed down to mono). 1
	// averages all channels; from mono, the channel is copied.
	Channels int
	// Bits is the WAV sample size, 8 or 16; 0 means 16. Ignored for Opus.
	Bits int
}

// Encode encodes p as format (one of Encodable()). Samples outside [-1, 1]
// are clipped. p is not modified.
func Encode(p *PCM, format string, opt EncodeOptions) ([]byte, error) {
	f := Normalise(format)
	if f != Ogg && f != WAV {
		return nil, unsupported(format, Encodable())
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	if opt.Rate < 0 || opt.Rate > maxRate {
		return nil, fmt.Errorf("%w: output rate %d", ErrInvalid, opt.Rate)
	}
	if opt.Channels < 0 || opt.Channels > maxChannels {
		return nil, fmt.Errorf("%w: %d output channels", ErrInvalid, opt.Channels)
	}
	if f == Ogg {
		return encodeOgg(p, opt)
	}
	return encodeWAV(p, opt)
}

// dBFS converts a linear amplitude to decibels relative to full scale
// (1.0); zero is -Inf.
func dBFS(v float64) float64 {
	if v <= 0 {
		return math.Inf(-1)
	}
	return 20 * math.Log10(v)
}

// fromDBFS is the inverse of dBFS.
func fromDBFS(db float64) float64 { return math.Pow(10, db/20) }
