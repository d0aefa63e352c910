package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/thesyncim/gopus/container/ogg"
)

// speechy is a signal with a waveform worth drawing: loud and quiet tones,
// noise and a pause, one after another.
func speechy(rate, ch int, d time.Duration) *PCM {
	part := d / 5
	p := concat(
		tone(rate, ch, 220, 0.6, part),
		noise(rate, ch, 0.1, part),
		silence(rate, ch, part),
		tone(rate, ch, 660, 0.05, part),
		tone(rate, ch, 330, 0.3, d-4*part),
	)
	return p
}

// wavBits encodes p as a WAV of bits-bit integer PCM (8, 16, 24 or 32), or
// 32-bit float when float is set, by hand: Encode writes only 8 and 16.
func wavBits(p *PCM, bits int, float bool) []byte {
	width := bits / 8
	d := make([]byte, len(p.Samples)*width)
	le := binary.LittleEndian
	for i, v := range p.Samples {
		switch {
		case float:
			le.PutUint32(d[4*i:], math.Float32bits(v))
		case bits == 8:
			d[i] = byte(quantize(v, 128) + 128)
		case bits == 16:
			le.PutUint16(d[2*i:], uint16(int16(quantize(v, 1<<15))))
		case bits == 24:
			x := uint32(int32(quantize(v, 1<<23)))
			d[3*i], d[3*i+1], d[3*i+2] = byte(x), byte(x>>8), byte(x>>16)
		default:
			le.PutUint32(d[4*i:], uint32(int32(quantize(v, 1<<31))))
		}
	}
	tag := uint16(wavFormatPCM)
	if float {
		tag = wavFormatFloat
	}
	return wavFile(fmtChunk(tag, p.Channels, p.Rate, bits), chunk("data", d))
}

// longOgg is a mono 48 kHz Ogg Opus file of duration d, built cheaply by
// encoding one second of speechy audio and repeating its packets (Opus
// packets decode in any order, if not seamlessly), so that tests of long
// files do not spend seconds in the encoder.
func longOgg(tb testing.TB, d time.Duration) []byte {
	tb.Helper()
	src, err := Encode(speechy(48000, 1, time.Second), Ogg, EncodeOptions{Bitrate: 24000})
	if err != nil {
		tb.Fatal(err)
	}
	r, err := ogg.NewReader(bytes.NewReader(src))
	if err != nil {
		tb.Fatal(err)
	}
	var packets [][]byte
	for {
		pkt, _, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		packets = append(packets, pkt)
	}
	const frame = 960 // 20 ms
	preSkip := uint64(r.Header.PreSkip)
	frames := uint64(durationFrames(d, opusRate))
	end := preSkip + frames
	n := int((end + frame - 1) / frame)
	var out bytes.Buffer
	pg := oggPager{w: &out, serial: 1}
	pg.headerPage(r.Header.Encode(), ogg.PageFlagBOS)
	pg.headerPage(ogg.DefaultOpusTags().Encode(), 0)
	for i := range n {
		g := uint64(i+1) * frame
		if i == n-1 {
			g = end
		}
		pg.packet(packets[i%len(packets)], g, i == n-1)
	}
	return out.Bytes()
}

func TestWaveformOfMatchesWaveform(t *testing.T) {
	oggMono, err := Encode(speechy(48000, 1, time.Second), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oggStereo, err := Encode(speechy(16000, 2, time.Second), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oggShort, err := Encode(tone(48000, 1, 440, 0.5, 30*time.Millisecond), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mp3Data, err := os.ReadFile("testdata/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	stereo := speechy(22050, 2, 1500*time.Millisecond)
	for _, tc := range []struct {
		name, format string
		data         []byte
	}{
		{"Ogg mono", Ogg, oggMono},
		{"Ogg stereo", "audio/ogg; codecs=opus", oggStereo},
		{"Ogg 30 ms", Ogg, oggShort},
		{"WAV 8-bit", WAV, wavBits(stereo, 8, false)},
		{"WAV 16-bit", "audio/x-wav", wavBits(stereo, 16, false)},
		{"WAV 24-bit", WAV, wavBits(stereo, 24, false)},
		{"WAV 32-bit", WAV, wavBits(stereo, 32, false)},
		{"WAV float", WAV, wavBits(stereo, 32, true)},
		{"WAV 16-bit mono, long", WAV, wavBits(speechy(48000, 1, 3*time.Second), 16, false)},
		{"WAV 3 frames", WAV, wavBits(&PCM{Rate: 8000, Channels: 1, Samples: []float32{0.5, -1, 0.25}}, 16, false)},
		{"WAV empty", WAV, wavBits(&PCM{Rate: 8000, Channels: 2}, 16, false)},
		{"MP3", MPEG, mp3Data},
	} {
		p, err := Decode(tc.data, tc.format, 0)
		if err != nil {
			t.Fatalf("%s: Decode: %v", tc.name, err)
		}
		// 100 values split the long files unevenly; 2000 is more than
		// the frames of the short ones, so that slices overlap.
		ns := []int{100}
		if p.Frames() < 2000 {
			ns = []int{7, 2000}
		}
		for _, n := range ns {
			want := Waveform(p, n)
			got, err := WaveformOf(tc.data, tc.format, n, 0)
			if err != nil {
				t.Fatalf("%s, %d values: %v", tc.name, n, err)
			}
			// The sums are taken in the same order, so the values are
			// not just close but equal.
			if !slices.Equal(got, want) {
				t.Errorf("%s, %d values:\nWaveformOf %v\nWaveform   %v", tc.name, n, got, want)
			}
		}
		if w, err := WaveformOf(tc.data, tc.format, 0, 0); w != nil || err != nil {
			t.Errorf("%s, 0 values: %v, %v", tc.name, w, err)
		}
	}
}

func TestWaveformOfErrors(t *testing.T) {
	// Two audio pages: the first is corrupted below.
	in := tone(48000, 2, 440, 0.5, 1100*time.Millisecond)
	oggData, err := Encode(in, Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wavData, _ := Encode(in, WAV, EncodeOptions{})
	mp3Data, _ := os.ReadFile("testdata/speech.mp3")
	mp3Data = mp3Data[:3000] // 13 frames: go-mp3 is slow under -race
	mp3Info, err := Probe(mp3Data, MPEG)
	if err != nil || mp3Info.Frames < 576 {
		t.Fatalf("MP3 prefix: %+v, %v", mp3Info, err)
	}
	for _, tc := range []struct {
		format string
		data   []byte
		exact  int // Frames × Channels
	}{
		{Ogg, oggData, 52800 * 2},
		{WAV, wavData, 52800 * 2},
		{MPEG, mp3Data, int(mp3Info.Frames)},
	} {
		if _, err := WaveformOf(tc.data, tc.format, 10, tc.exact-1); !errors.Is(err, ErrTooLong) {
			t.Errorf("%s, cap one below: %v, want ErrTooLong", tc.format, err)
		}
		if _, err := WaveformOf(tc.data, tc.format, 10, tc.exact); err != nil {
			t.Errorf("%s, cap exactly: %v", tc.format, err)
		}
	}
	if _, err := WaveformOf(oggData, "audio/flac", 10, 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("FLAC: %v, want ErrUnsupported", err)
	}
	if _, err := WaveformOf(wavData, Ogg, 10, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("WAV declared as Ogg: %v, want ErrInvalid", err)
	}
	// A corrupt page in the middle fails as Decode does.
	bad := bytes.Clone(oggData)
	for i, off := 0, 0; off < len(bad); i++ {
		_, n, err := ogg.ParsePage(bad[off:])
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			bad[off+n/2] ^= 0xFF
		}
		off += n
	}
	if _, err := Decode(bad, Ogg, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("corrupted Ogg decodes: %v", err)
	}
	if _, err := WaveformOf(bad, Ogg, 10, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("corrupted Ogg: %v, want ErrInvalid", err)
	}
}

// allocated is the number of bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestWaveformOfMemory: the waveform of a minute of Opus costs a packet's
// worth of memory (and the decoder's state), not the 11 MiB of the decoded
// minute. BenchmarkWaveformOf5min and BenchmarkWaveformDecode5min compare
// the two at five minutes; the decode is left out here to keep the test
// fast under -race.
func TestWaveformOfMemory(t *testing.T) {
	data := longOgg(t, time.Minute)
	var err error
	streamed := allocated(func() { _, err = WaveformOf(data, Ogg, 64, 0) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("60 s of 48 kHz mono Opus (%d bytes): WaveformOf allocated %d bytes; the decoded PCM alone is %d",
		len(data), streamed, 60*48000*4)
	if streamed > 2<<20 {
		t.Errorf("WaveformOf allocated %d bytes, want under 2 MiB", streamed)
	}
	// allocated does see allocations.
	if n := allocated(func() { sink = make([]float32, 1<<20) }); n < 4<<20 {
		t.Errorf("allocated missed a 4 MiB allocation: %d bytes", n)
	}
}

var sink []float32

// The 5-minute benchmarks compare the memory of the two ways to a
// waveform (go test -bench Waveform5min -benchmem).
func BenchmarkWaveformOf5min(b *testing.B) {
	data := longOgg(b, 5*time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := WaveformOf(data, Ogg, 64, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWaveformDecode5min(b *testing.B) {
	data := longOgg(b, 5*time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p, err := Decode(data, Ogg, 0)
		if err != nil {
			b.Fatal(err)
		}
		Waveform(p, 64)
	}
}

func BenchmarkDecodeAt16k5min(b *testing.B) {
	data := longOgg(b, 5*time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := DecodeAt(data, Ogg, 16000, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeAtOggRates(t *testing.T) {
	for _, ch := range []int{1, 2} {
		in := tone(48000, ch, 440, 0.5, 600*time.Millisecond+7*time.Millisecond)
		data, err := Encode(in, Ogg, EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rates := []int{8000, 12000, 16000, 24000}
		if ch == 2 {
			rates = []int{16000, 24000}
		}
		for _, rate := range rates {
			p, err := DecodeAt(data, "audio/opus", rate, 0)
			if err != nil {
				t.Fatalf("%d ch at %d Hz: %v", ch, rate, err)
			}
			if p.Rate != rate || p.Channels != ch {
				t.Errorf("%d ch at %d Hz: got %d Hz, %d channels", ch, rate, p.Rate, p.Channels)
			}
			// The duration is the encoded one, to within a frame at the
			// output rate (granule positions are in 48 kHz units).
			if d := p.Duration() - in.Duration(); d < -time.Second/time.Duration(rate) || d > time.Second/time.Duration(rate) {
				t.Errorf("%d ch at %d Hz: duration %v, encoded %v", ch, rate, p.Duration(), in.Duration())
			}
			if d := p.Duration() - in.Duration(); d < -20*time.Millisecond || d > 20*time.Millisecond {
				t.Errorf("%d ch at %d Hz: duration %v, encoded %v (more than a 20 ms frame off)", ch, rate, p.Duration(), in.Duration())
			}
			for c := range ch {
				s := middle(channel(p, c), 0.1)
				near(t, "decoded frequency", zeroCrossingFreq(s, rate), 440, 2)
				near(t, "440 Hz level (dB)", dBFS(amplitude(s, rate, 440)), dBFS(0.5), 1.5)
			}
		}
	}
}

// TestDecodeAtOggAlignment: pre-skip, counted at 48 kHz, is scaled to the
// output rate, so a tone starting 500 ms in starts 500 ms in at any rate.
func TestDecodeAtOggAlignment(t *testing.T) {
	in := concat(silence(48000, 1, 500*time.Millisecond), tone(48000, 1, 1000, 0.5, 500*time.Millisecond))
	data, err := Encode(in, Ogg, EncodeOptions{Bitrate: 64000})
	if err != nil {
		t.Fatal(err)
	}
	for _, rate := range []int{8000, 16000, 24000} {
		p, err := DecodeAt(data, Ogg, rate, 0)
		if err != nil {
			t.Fatal(err)
		}
		onset := -1
		for i, v := range p.Samples {
			if math.Abs(float64(v)) > 0.25 {
				onset = i
				break
			}
		}
		if got := time.Duration(onset) * time.Second / time.Duration(rate); got < 497*time.Millisecond || got > 503*time.Millisecond {
			t.Errorf("%d Hz: tone starts at %v in the decoded audio, want 500ms", rate, got)
		}
	}
}

// TestDecodeAtOggStartOffset: a stream cut from a live one (first granule
// far from zero) decodes to the same length at a lower rate.
func TestDecodeAtOggStartOffset(t *testing.T) {
	in := tone(48000, 1, 440, 0.5, time.Second)
	data, err := Encode(in, Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const shift = 48000*3600 + 7 // an hour into the stream, and not a multiple of 3
	shifted := rewritePages(t, data, func(i int, pg *ogg.Page) {
		if i >= 2 {
			pg.GranulePos += shift
		}
	})
	p, err := DecodeAt(shifted, Ogg, 16000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Frames() != 16000 {
		t.Errorf("decoded %d frames at 16 kHz, want 16000", p.Frames())
	}
}

func TestDecodeAtNativeIsDecode(t *testing.T) {
	oggMono, err := Encode(speechy(48000, 1, 500*time.Millisecond), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oggStereo, err := Encode(speechy(48000, 2, 500*time.Millisecond), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mp3Data, err := os.ReadFile("testdata/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, format string
		rate         int
		data         []byte
	}{
		{"Ogg mono", Ogg, 48000, oggMono},
		{"Ogg stereo", Ogg, 48000, oggStereo},
		{"WAV", WAV, 44100, wavBits(speechy(44100, 2, 500*time.Millisecond), 24, false)},
		{"MP3", MPEG, 22050, mp3Data[:3000]}, // go-mp3 is slow under -race
	} {
		want, err := Decode(tc.data, tc.format, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeAt(tc.data, tc.format, tc.rate, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rate != want.Rate || got.Channels != want.Channels || !slices.Equal(got.Samples, want.Samples) {
			t.Errorf("%s: DecodeAt(%d) differs from Decode: %d Hz ×%d, %d samples; Decode %d Hz ×%d, %d samples",
				tc.name, tc.rate, got.Rate, got.Channels, len(got.Samples), want.Rate, want.Channels, len(want.Samples))
		}
	}
}

func TestDecodeAtResamples(t *testing.T) {
	in := tone(44100, 2, 440, 0.5, time.Second)
	wavData := wavBits(in, 16, false)
	p, err := DecodeAt(wavData, WAV, 16000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rate != 16000 || p.Channels != 2 || p.Frames() != 16000 {
		t.Errorf("WAV to 16 kHz: %d Hz ×%d, %d frames", p.Rate, p.Channels, p.Frames())
	}
	near(t, "resampled frequency", zeroCrossingFreq(middle(channel(p, 0), 0.1), 16000), 440, 1)

	mp3Data, err := os.ReadFile("testdata/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	mp3Data = mp3Data[:3000] // 13 frames: go-mp3 is slow under -race
	info, err := Probe(mp3Data, MPEG)
	if err != nil {
		t.Fatal(err)
	}
	p, err = DecodeAt(mp3Data, MPEG, 48000, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The frames at 22050 Hz, upsampled (rounding up).
	if want := int((info.Frames*48000 + 22049) / 22050); p.Rate != 48000 || p.Frames() != want {
		t.Errorf("MP3 to 48 kHz: %d Hz, %d frames, want %d", p.Rate, p.Frames(), want)
	}
}

func TestDecodeAtErrors(t *testing.T) {
	in := tone(48000, 2, 440, 0.5, 500*time.Millisecond)
	oggData, err := Encode(in, Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wavData, _ := Encode(in, WAV, EncodeOptions{})
	for _, rate := range []int{0, -16000, 44100, 22050, 96000} {
		if _, err := DecodeAt(oggData, Ogg, rate, 0); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Opus at %d Hz: %v, want ErrUnsupported", rate, err)
		}
	}
	for _, rate := range []int{0, -1, maxRate + 1} {
		if _, err := DecodeAt(wavData, WAV, rate, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("WAV at %d Hz: %v, want ErrInvalid", rate, err)
		}
	}
	if _, err := DecodeAt(oggData, "audio/flac", 16000, 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("FLAC: %v, want ErrUnsupported", err)
	}
	// The cap counts samples at the output rate.
	for _, tc := range []struct {
		format string
		data   []byte
	}{{Ogg, oggData}, {WAV, wavData}} {
		const exact = 8000 * 2
		if _, err := DecodeAt(tc.data, tc.format, 16000, exact-1); !errors.Is(err, ErrTooLong) {
			t.Errorf("%s at 16 kHz, cap one below: %v, want ErrTooLong", tc.format, err)
		}
		if p, err := DecodeAt(tc.data, tc.format, 16000, exact); err != nil || len(p.Samples) != exact {
			t.Errorf("%s at 16 kHz, cap exactly: %v", tc.format, err)
		}
	}
}
