package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"
)

func TestWAVRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		bits, ch int
		step     float64 // quantisation step
	}{
		{16, 1, 1.0 / 32768},
		{16, 2, 1.0 / 32768},
		{8, 1, 1.0 / 128},
		{8, 2, 1.0 / 128},
	} {
		in := tone(44100, tc.ch, 440, 0.9, 300*time.Millisecond)
		data, err := Encode(in, "audio/x-wav", EncodeOptions{Bits: tc.bits})
		if err != nil {
			t.Fatal(err)
		}
		if want := 44 + len(in.Samples)*tc.bits/8; len(data) != want {
			t.Errorf("%d-bit: %d bytes, want %d", tc.bits, len(data), want)
		}
		info, err := Probe(data, WAV)
		if err != nil {
			t.Fatal(err)
		}
		if info.Rate != 44100 || info.Channels != tc.ch || info.Duration != in.Duration() || info.Frames != int64(in.Frames()) {
			t.Errorf("%d-bit: Probe = %+v", tc.bits, info)
		}
		p, err := Decode(data, WAV, 0)
		if err != nil {
			t.Fatal(err)
		}
		if p.Rate != in.Rate || p.Channels != in.Channels || len(p.Samples) != len(in.Samples) {
			t.Fatalf("%d-bit: decoded %d Hz ×%d, %d samples", tc.bits, p.Rate, p.Channels, len(p.Samples))
		}
		worst := 0.0
		for i := range p.Samples {
			worst = max(worst, math.Abs(float64(p.Samples[i]-in.Samples[i])))
		}
		if worst > tc.step/2+1e-6 {
			t.Errorf("%d-bit: error %g, more than half a step (%g)", tc.bits, worst, tc.step/2)
		}
		// Decoded samples are exact quantisation levels: re-encoding gives
		// the same bytes.
		again, err := Encode(p, WAV, EncodeOptions{Bits: tc.bits})
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("%d-bit: re-encoding the decoded audio changed it (%v)", tc.bits, err)
		}
	}
}

func TestWAVEncodeClipsAndConverts(t *testing.T) {
	in := &PCM{Rate: 8000, Channels: 1, Samples: []float32{2, -2, 1, -1, float32(math.NaN())}}
	data, err := Encode(in, WAV, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Decode(data, WAV, 0)
	want := []float32{32767.0 / 32768, -1, 32767.0 / 32768, -1, 0}
	for i := range want {
		if p.Samples[i] != want[i] {
			t.Errorf("sample %d: %v, want %v", i, p.Samples[i], want[i])
		}
	}

	stereo := tone(48000, 2, 1000, 0.5, 200*time.Millisecond)
	data, err = Encode(stereo, WAV, EncodeOptions{Rate: 16000, Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	info, err := Probe(data, WAV)
	if err != nil || info.Rate != 16000 || info.Channels != 1 || info.Duration != 200*time.Millisecond {
		t.Errorf("48k stereo to 16k mono: %+v, %v", info, err)
	}
	if _, err := Encode(stereo, WAV, EncodeOptions{Bits: 24}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("24-bit output: %v, want ErrUnsupported", err)
	}
	if _, err := Encode(&PCM{Rate: 8000, Channels: 2, Samples: make([]float32, 3)}, WAV, EncodeOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("odd sample count for stereo: %v, want ErrInvalid", err)
	}
}

// wavFile builds a WAV by hand: a RIFF header around the given chunks.
func wavFile(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}

func chunk(id string, body []byte) []byte {
	c := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	c = append(c, body...)
	if len(body)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

func fmtChunk(tag uint16, ch, rate, bits int) []byte {
	le := binary.LittleEndian
	b := le.AppendUint16(nil, tag)
	b = le.AppendUint16(b, uint16(ch))
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(rate*ch*bits/8))
	b = le.AppendUint16(b, uint16(ch*bits/8))
	b = le.AppendUint16(b, uint16(bits))
	return chunk("fmt ", b)
}

// extensibleChunk is a WAVE_FORMAT_EXTENSIBLE fmt chunk wrapping tag.
func extensibleChunk(tag uint16, ch, rate, bits, valid int) []byte {
	c := fmtChunk(wavFormatExtensible, ch, rate, bits)
	le := binary.LittleEndian
	ext := le.AppendUint16(nil, 22)
	ext = le.AppendUint16(ext, uint16(valid))
	ext = le.AppendUint32(ext, 0x3) // front left, front right
	ext = le.AppendUint16(ext, tag)
	ext = append(ext, wavSubformatTail...)
	body := append(c[8:], ext...)
	return chunk("fmt ", body)
}

func TestWAVDecodeFormats(t *testing.T) {
	le := binary.LittleEndian
	// Four samples per format: full negative, zero, half, and the largest.
	var (
		pcm8  = []byte{0, 128, 192, 255}
		pcm16 = le.AppendUint16(le.AppendUint16(le.AppendUint16(le.AppendUint16(nil, 0x8000), 0), 0x4000), 0x7fff)
		pcm24 = []byte{0, 0, 0x80, 0, 0, 0, 0, 0, 0x40, 0xff, 0xff, 0x7f}
		pcm32 = le.AppendUint32(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0x80000000), 0), 0x40000000), 0x7fffffff)
		f32   = le.AppendUint32(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, math.Float32bits(-1)), 0), math.Float32bits(0.5)), math.Float32bits(float32(math.Inf(1))))
		f64   = le.AppendUint64(le.AppendUint64(le.AppendUint64(le.AppendUint64(nil, math.Float64bits(-1)), 0), math.Float64bits(0.5)), math.Float64bits(0.25))
	)
	for _, tc := range []struct {
		name string
		data []byte
		ch   int
		want []float32
	}{
		{"8-bit unsigned", wavFile(fmtChunk(1, 1, 8000, 8), chunk("data", pcm8)), 1, []float32{-1, 0, 0.5, 127.0 / 128}},
		{"16-bit", wavFile(fmtChunk(1, 1, 8000, 16), chunk("data", pcm16)), 1, []float32{-1, 0, 0.5, 32767.0 / 32768}},
		{"24-bit", wavFile(fmtChunk(1, 1, 8000, 24), chunk("data", pcm24)), 1, []float32{-1, 0, 0.5, 8388607.0 / 8388608}},
		{"32-bit integer", wavFile(fmtChunk(1, 2, 8000, 32), chunk("data", pcm32)), 2, []float32{-1, 0, 0.5, 1}},
		{"32-bit float, Inf as silence", wavFile(fmtChunk(3, 1, 8000, 32), chunk("data", f32)), 1, []float32{-1, 0, 0.5, 0}},
		{"64-bit float", wavFile(fmtChunk(3, 1, 8000, 64), chunk("data", f64)), 1, []float32{-1, 0, 0.5, 0.25}},
		{"extensible 24-bit", wavFile(extensibleChunk(1, 2, 8000, 24, 24), chunk("data", pcm24)), 2, []float32{-1, 0, 0.5, 8388607.0 / 8388608}},
		{"extensible 20 valid bits in 24", wavFile(extensibleChunk(1, 1, 8000, 24, 20), chunk("data", pcm24)), 1, []float32{-1, 0, 0.5, 8388607.0 / 8388608}},
		{"extensible float", wavFile(extensibleChunk(3, 1, 8000, 32, 32), chunk("data", f32)), 1, []float32{-1, 0, 0.5, 0}},
		{"LIST chunk of odd size first", wavFile(chunk("LIST", []byte("INFOx")), fmtChunk(1, 1, 8000, 16), chunk("data", pcm16)), 1, []float32{-1, 0, 0.5, 32767.0 / 32768}},
		{"data before fmt", wavFile(chunk("data", pcm16), fmtChunk(1, 1, 8000, 16)), 1, []float32{-1, 0, 0.5, 32767.0 / 32768}},
		{"partial last frame dropped", wavFile(fmtChunk(1, 1, 8000, 16), chunk("data", append(pcm16, 0x12))), 1, []float32{-1, 0, 0.5, 32767.0 / 32768}},
	} {
		info, err := Probe(tc.data, WAV)
		if err != nil {
			t.Errorf("%s: Probe: %v", tc.name, err)
			continue
		}
		if info.Rate != 8000 || info.Channels != tc.ch || info.Frames != int64(len(tc.want)/tc.ch) {
			t.Errorf("%s: Probe = %+v", tc.name, info)
		}
		p, err := Decode(tc.data, "audio/wave", 0)
		if err != nil {
			t.Errorf("%s: Decode: %v", tc.name, err)
			continue
		}
		if len(p.Samples) != len(tc.want) {
			t.Errorf("%s: %d samples, want %d", tc.name, len(p.Samples), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if math.Abs(float64(p.Samples[i]-w)) > 1e-7 {
				t.Errorf("%s: sample %d = %v, want %v", tc.name, i, p.Samples[i], w)
			}
		}
	}
}

// TestWAVStreamingSize: writers that cannot seek back leave the data size
// 0 or 0xFFFFFFFF; the data runs to the end of the file.
func TestWAVStreamingSize(t *testing.T) {
	data, _ := Encode(tone(8000, 1, 440, 0.5, 100*time.Millisecond), WAV, EncodeOptions{})
	for _, size := range []uint32{0, 0xFFFFFFFF} {
		d := bytes.Clone(data)
		binary.LittleEndian.PutUint32(d[40:], size)
		info, err := Probe(d, WAV)
		if err != nil || info.Frames != 800 {
			t.Errorf("data size %#x: %+v, %v", size, info, err)
		}
	}
	// A cut upload decodes to what is there.
	info, err := Probe(data[:44+1000], WAV)
	if err != nil || info.Frames != 500 {
		t.Errorf("truncated: %+v, %v", info, err)
	}
}

func TestWAVInvalid(t *testing.T) {
	data16 := chunk("data", make([]byte, 8))
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"no fmt", wavFile(data16), ErrInvalid},
		{"no data", wavFile(fmtChunk(1, 1, 8000, 16)), ErrInvalid},
		{"fmt too short", wavFile(chunk("fmt ", make([]byte, 10)), data16), ErrInvalid},
		{"zero channels", wavFile(fmtChunk(1, 0, 8000, 16), data16), ErrInvalid},
		{"zero rate", wavFile(fmtChunk(1, 1, 0, 16), data16), ErrInvalid},
		{"wrong block align", wavFile(func() []byte { c := fmtChunk(1, 2, 8000, 16); c[20] = 3; return c }(), data16), ErrInvalid},
		{"not RIFF", append([]byte("FORM\x00\x00\x00\x04AIFF"), data16...), ErrInvalid},
		{"ADPCM", wavFile(fmtChunk(2, 1, 8000, 4), data16), ErrUnsupported},
		{"16-bit float", wavFile(fmtChunk(3, 1, 8000, 16), data16), ErrUnsupported},
		{"RF64", append([]byte("RF64\xff\xff\xff\xffWAVE"), data16...), ErrUnsupported},
		{"extensible, unknown subformat", wavFile(func() []byte { c := extensibleChunk(1, 1, 8000, 16, 16); c[len(c)-1] ^= 1; return c }(), data16), ErrUnsupported},
		{"huge LIST chunk size", append(wavFile(fmtChunk(1, 1, 8000, 16)), "LIST\xff\xff\xff\xff"...), ErrInvalid},
	} {
		if _, err := Probe(tc.data, WAV); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
