package audio

import (
	"encoding/binary"
	"fmt"
	"math"
)

// RIFF WAVE, as Microsoft's "Multimedia Programming Interface and Data
// Specifications 1.0" and the WAVE_FORMAT_EXTENSIBLE addendum define it.

const (
	wavFormatPCM        = 1
	wavFormatFloat      = 3
	wavFormatExtensible = 0xFFFE
)

// wavSubformatTail is the part of the KSDATAFORMAT_SUBTYPE_* GUIDs after
// the two-byte format tag that WAVE_FORMAT_EXTENSIBLE wraps.
const wavSubformatTail = "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

type wavStream struct {
	Info
	float bool
	width int // bytes per sample
	data  []byte
}

func probeWAV(data []byte) (wavStream, error) {
	if len(data) < 12 || string(data[8:12]) != "WAVE" {
		return wavStream{}, fmt.Errorf("%w: not a WAV file", ErrInvalid)
	}
	switch string(data[:4]) {
	case "RIFF":
	case "RF64", "RIFX":
		return wavStream{}, fmt.Errorf("%w: %s WAV (little-endian RIFF is decoded)", ErrUnsupported, data[:4])
	default:
		return wavStream{}, fmt.Errorf("%w: not a WAV file", ErrInvalid)
	}

	var (
		w      wavStream
		fmtOK  bool
		dataOK bool
		tag    uint16
		bits   int
		align  int
	)
	for off := 12; off+8 <= len(data) && !(fmtOK && dataOK); {
		id := string(data[off : off+4])
		size := int64(binary.LittleEndian.Uint32(data[off+4:]))
		body := off + 8
		rest := int64(len(data) - body)
		switch id {
		case "fmt ":
			if size < 16 || size > rest {
				return wavStream{}, fmt.Errorf("%w: WAV fmt chunk of %d bytes", ErrInvalid, size)
			}
			f := data[body : body+int(size)]
			tag = binary.LittleEndian.Uint16(f[0:])
			w.Channels = int(binary.LittleEndian.Uint16(f[2:]))
			w.Rate = int(binary.LittleEndian.Uint32(f[4:]))
			align = int(binary.LittleEndian.Uint16(f[12:]))
			bits = int(binary.LittleEndian.Uint16(f[14:]))
			if tag == wavFormatExtensible {
				// cbSize, wValidBitsPerSample, dwChannelMask, SubFormat.
				// Valid bits below the container size are left-justified,
				// so reading the whole container is right.
				if size < 40 || string(f[26:40]) != wavSubformatTail {
					return wavStream{}, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE with an unknown subformat", ErrUnsupported)
				}
				tag = binary.LittleEndian.Uint16(f[24:])
			}
			fmtOK = true
		case "data":
			// Streaming writers leave the size 0 or 0xFFFFFFFF, and a cut
			// upload is short: take what is there.
			if size > rest || size == 0 {
				size = rest
			}
			w.data = data[body : body+int(size)]
			dataOK = true
		}
		if size >= rest {
			break // a chunk running to (or past) the end is the last
		}
		off = body + int(size) + int(size&1) // chunks are padded to even sizes
	}
	if !fmtOK {
		return wavStream{}, fmt.Errorf("%w: WAV without a fmt chunk", ErrInvalid)
	}
	if !dataOK {
		return wavStream{}, fmt.Errorf("%w: WAV without a data chunk", ErrInvalid)
	}

	switch {
	case tag == wavFormatPCM && bits >= 1 && bits <= 32:
	case tag == wavFormatFloat && (bits == 32 || bits == 64):
		w.float = true
	case tag == wavFormatPCM || tag == wavFormatFloat:
		return wavStream{}, fmt.Errorf("%w: %d-bit WAV (8, 16, 24 and 32-bit PCM and 32 and 64-bit float are decoded)", ErrUnsupported, bits)
	default:
		return wavStream{}, fmt.Errorf("%w: WAV format tag %#x (PCM and IEEE float are decoded)", ErrUnsupported, tag)
	}
	if w.Channels < 1 || w.Channels > maxChannels || w.Rate < 1 || w.Rate > maxRate {
		return wavStream{}, fmt.Errorf("%w: WAV with %d channels at %d Hz", ErrInvalid, w.Channels, w.Rate)
	}
	// Samples sit in whole bytes (12-bit audio in 2, left-justified); the
	// block must be exactly one sample per channel.
	w.width = (bits + 7) / 8
	if align != w.width*w.Channels {
		return wavStream{}, fmt.Errorf("%w: WAV block align %d for %d channels of %d bits", ErrInvalid, align, w.Channels, bits)
	}
	w.Frames = int64(len(w.data) / align)
	w.data = w.data[:int(w.Frames)*align] // drop a partial last frame
	w.InputRate = w.Rate
	w.Duration = framesDuration(w.Frames, w.Rate)
	return w, nil
}

func decodeWAV(w wavStream) *PCM {
	out := make([]float32, len(w.data)/w.width)
	w.convert(out, w.data)
	return &PCM{Rate: w.Rate, Channels: w.Channels, Samples: out}
}

// wavChunk is how many samples streamWAV converts at a time (64 KiB of
// float32).
const wavChunk = 16 << 10

// streamWAV hands emit the samples of w in chunks of whole frames, in
// order, converting each straight from the file's bytes into one reused
// buffer: the samples decodeWAV would return, without holding them all.
func streamWAV(w wavStream, emit func([]float32)) {
	frame := w.width * w.Channels // bytes
	perChunk := max(1, wavChunk/w.Channels) * frame
	buf := make([]float32, min(perChunk, len(w.data))/w.width)
	for off := 0; off < len(w.data); off += perChunk {
		b := w.data[off:min(off+perChunk, len(w.data))]
		out := buf[:len(b)/w.width]
		w.convert(out, b)
		emit(out)
	}
}

// convert decodes the len(out) samples at the start of b.
func (w wavStream) convert(out []float32, b []byte) {
	switch {
	case w.float && w.width == 4:
		for i := range out {
			out[i] = finite(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case w.float:
		for i := range out {
			out[i] = finite(float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))))
		}
	case w.width == 1: // 8-bit WAV is unsigned, centred on 128
		for i := range out {
			out[i] = (float32(b[i]) - 128) / 128
		}
	case w.width == 2:
		for i := range out {
			out[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:]))) / (1 << 15)
		}
	case w.width == 3:
		for i := range out {
			s := b[3*i:]
			v := int32(uint32(s[0])<<8|uint32(s[1])<<16|uint32(s[2])<<24) >> 8
			out[i] = float32(v) / (1 << 23)
		}
	default:
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(b[4*i:]))) / (1 << 31)
		}
	}
}

// finite maps NaN and ±Inf, which float WAVs can carry, to silence, so
// that one bad sample does not poison every sum downstream.
func finite(v float32) float32 {
	if v != v || v > math.MaxFloat32 || v < -math.MaxFloat32 {
		return 0
	}
	return v
}

func encodeWAV(p *PCM, opt EncodeOptions) ([]byte, error) {
	bits := opt.Bits
	if bits == 0 {
		bits = 16
	}
	if bits != 8 && bits != 16 {
		return nil, fmt.Errorf("%w: %d-bit WAV output (8 and 16 bits are written)", ErrUnsupported, bits)
	}
	q := p
	if opt.Channels > 0 && opt.Channels < q.Channels {
		q = remix(q, opt.Channels)
	}
	if opt.Rate > 0 && opt.Rate != q.Rate {
		q = Resample(q, opt.Rate)
	}
	if opt.Channels > q.Channels {
		q = remix(q, opt.Channels)
	}
	width := bits / 8
	size := int64(len(q.Samples)) * int64(width)
	if size > math.MaxUint32-36 {
		return nil, fmt.Errorf("%w: %d bytes of WAV data (RIFF holds 4 GiB)", ErrTooLong, size)
	}
	out := make([]byte, 44+int(size))
	le := binary.LittleEndian
	copy(out, "RIFF")
	le.PutUint32(out[4:], uint32(36+size))
	copy(out[8:], "WAVEfmt ")
	le.PutUint32(out[16:], 16)
	le.PutUint16(out[20:], wavFormatPCM)
	le.PutUint16(out[22:], uint16(q.Channels))
	le.PutUint32(out[24:], uint32(q.Rate))
	le.PutUint32(out[28:], uint32(q.Rate*q.Channels*width))
	le.PutUint16(out[32:], uint16(q.Channels*width))
	le.PutUint16(out[34:], uint16(bits))
	copy(out[36:], "data")
	le.PutUint32(out[40:], uint32(size))
	d := out[44:]
	// Scale by 2^(bits-1), the inverse of decoding, so that a decoded WAV
	// encodes back to the same bytes.
	if bits == 8 {
		for i, v := range q.Samples {
			d[i] = byte(quantize(v, 128) + 128)
		}
	} else {
		for i, v := range q.Samples {
			le.PutUint16(d[2*i:], uint16(int16(quantize(v, 1<<15))))
		}
	}
	return out, nil
}

// quantize rounds v·scale to the nearest integer in [-scale, scale-1].
func quantize(v float32, scale float64) int {
	if v != v {
		return 0
	}
	x := math.Round(float64(v) * scale)
	return int(max(-scale, min(scale-1, x)))
}
