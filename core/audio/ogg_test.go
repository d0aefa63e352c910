package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/thesyncim/gopus/container/ogg"
)

func TestOggRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        *PCM
		opt       EncodeOptions
		channels  int
		inputRate int // OpusHead input_sample_rate
	}{
		{"mono 48k", tone(48000, 1, 440, 0.5, time.Second), EncodeOptions{}, 1, 48000},
		{"stereo 48k", tone(48000, 2, 440, 0.5, time.Second), EncodeOptions{}, 2, 48000},
		{"mono 16k", tone(16000, 1, 440, 0.5, time.Second), EncodeOptions{}, 1, 16000},
		{"44.1k, encoded at 48k", tone(44100, 1, 440, 0.5, time.Second), EncodeOptions{}, 1, 44100},
		{"22.05k, encoded at 24k", tone(22050, 1, 440, 0.5, time.Second), EncodeOptions{}, 1, 22050},
		{"48k to 16k at 24 kbit/s", tone(48000, 1, 440, 0.5, time.Second), EncodeOptions{Rate: 16000, Bitrate: 24000}, 1, 16000},
		{"stereo downmixed", tone(48000, 2, 440, 0.5, time.Second), EncodeOptions{Channels: 1}, 1, 48000},
		{"mono to stereo", tone(48000, 1, 440, 0.5, time.Second), EncodeOptions{Channels: 2}, 2, 48000},
		{"4 channels to mono", tone(48000, 4, 440, 0.5, time.Second), EncodeOptions{}, 1, 48000},
		{"not a whole frame", tone(48000, 1, 440, 0.5, 1234*time.Millisecond+300*time.Microsecond), EncodeOptions{}, 1, 48000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Encode(tc.in, "audio/ogg; codecs=opus", tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			info, err := Probe(data, Ogg)
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != Ogg || info.Rate != 48000 || info.Channels != tc.channels || info.InputRate != tc.inputRate {
				t.Errorf("Probe = %+v, want audio/ogg at 48000 Hz, %d channels, input rate %d", info, tc.channels, tc.inputRate)
			}
			// Pre-skip and the end granule make the duration exact to a
			// 48 kHz sample (the brief allows one 20 ms frame).
			if d := info.Duration - tc.in.Duration(); d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("Probe duration %v, encoded %v", info.Duration, tc.in.Duration())
			}
			p, err := Decode(data, Ogg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if p.Rate != 48000 || p.Channels != tc.channels || int64(p.Frames()) != info.Frames {
				t.Errorf("Decode: %d Hz, %d channels, %d frames; Probe said %d frames", p.Rate, p.Channels, p.Frames(), info.Frames)
			}
			for c := range p.Channels {
				s := middle(channel(p, c), 0.1)
				near(t, "decoded frequency", zeroCrossingFreq(s, 48000), 440, 2)
				// The tone's level survives within 1.5 dB.
				near(t, "440 Hz level (dB)", dBFS(amplitude(s, 48000, 440)), dBFS(0.5), 1.5)
			}
		})
	}
}

// TestOggAlignment checks pre-skip: a tone starting 500 ms in must start
// 500 ms into the decoded audio, not a lookahead later.
func TestOggAlignment(t *testing.T) {
	for _, rate := range []int{48000, 16000} {
		in := concat(silence(rate, 1, 500*time.Millisecond), tone(rate, 1, 1000, 0.5, 500*time.Millisecond))
		data, err := Encode(in, Ogg, EncodeOptions{Bitrate: 64000})
		if err != nil {
			t.Fatal(err)
		}
		p, err := Decode(data, Ogg, 0)
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
		// The tone reaches 0.25 within a quarter period (0.25 ms) of its
		// start; allow 2 ms for the codec's smearing.
		if got := time.Duration(onset) * time.Second / 48000; got < 498*time.Millisecond || got > 502*time.Millisecond {
			t.Errorf("%d Hz: tone starts at %v in the decoded audio, want 500ms", rate, got)
		}
	}
}

// TestOggLayout checks the container: OpusHead, OpusTags, up to a
// second of packets per page, the end-of-stream flag and end trimming.
func TestOggLayout(t *testing.T) {
	in := tone(48000, 1, 440, 0.5, 2500*time.Millisecond)
	data, err := Encode(in, Ogg, EncodeOptions{Bitrate: 24000})
	if err != nil {
		t.Fatal(err)
	}
	var pages []*ogg.Page
	for off := 0; off < len(data); {
		pg, n, err := ogg.ParsePage(data[off:])
		if err != nil {
			t.Fatalf("page at %d: %v", off, err)
		}
		pages = append(pages, pg)
		off += n
	}
	// Two header pages, then 2.5 s + lookahead in 20 ms packets (126), 50
	// to a page.
	if len(pages) != 5 {
		t.Errorf("%d pages, want 5 (OpusHead, OpusTags, 3 audio)", len(pages))
	}
	head, err := ogg.ParseOpusHead(pages[0].Payload)
	if err != nil || !pages[0].IsBOS() || head.PreSkip != 312 || head.Channels != 1 || head.SampleRate != 48000 {
		t.Errorf("first page: BOS %v, OpusHead %+v, %v", pages[0].IsBOS(), head, err)
	}
	if _, err := ogg.ParseOpusTags(pages[1].Payload); err != nil || pages[1].GranulePos != 0 {
		t.Errorf("second page: granule %d, OpusTags: %v", pages[1].GranulePos, err)
	}
	last := pages[len(pages)-1]
	if !last.IsEOS() || last.GranulePos != 312+120000 {
		t.Errorf("last page: EOS %v, granule %d, want EOS at %d", last.IsEOS(), last.GranulePos, 312+120000)
	}
	for _, pg := range pages[2 : len(pages)-1] {
		if n := len(pg.Packets()); n != 50 {
			t.Errorf("audio page with %d packets, want 50", n)
		}
	}
	// gopus's own reader agrees.
	r, err := ogg.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	packets := 0
	for {
		_, _, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		packets++
	}
	if packets != 126 {
		t.Errorf("%d packets, want 126", packets)
	}
	// Packing pages keeps the container overhead small: at 24 kbit/s the
	// file is within 10% of the bitrate (one page per packet would add
	// 11 kbit/s).
	if kbps := float64(len(data)) * 8 / 2.5 / 1000; kbps > 26.4 {
		t.Errorf("%.1f kbit/s for a 24 kbit/s encode", kbps)
	}
}

// rewritePages applies edit to every page of an Ogg file and re-encodes
// it (fixing the CRC).
func rewritePages(t *testing.T, data []byte, edit func(i int, pg *ogg.Page)) []byte {
	t.Helper()
	var out []byte
	for i, off := 0, 0; off < len(data); i++ {
		pg, n, err := ogg.ParsePage(data[off:])
		if err != nil {
			t.Fatal(err)
		}
		edit(i, pg)
		out = append(out, pg.Encode()...)
		off += n
	}
	return out
}

func TestOggOutputGain(t *testing.T) {
	data, err := Encode(tone(48000, 1, 440, 0.25, time.Second), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Decode(data, Ogg, 0)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7845 §5.1: output gain is Q7.8 dB; +6 dB is 1536.
	loud := rewritePages(t, data, func(i int, pg *ogg.Page) {
		if i == 0 {
			binary.LittleEndian.PutUint16(pg.Payload[16:], 6*256)
		}
	})
	p, err := Decode(loud, Ogg, 0)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "level change from +6 dB output gain", RMSDBFS(p)-RMSDBFS(plain), 6, 0.1)
}

// TestOggStartOffset: a recording cut from a live stream starts at a
// granule position above zero (RFC 7845 §4); its duration is unchanged.
func TestOggStartOffset(t *testing.T) {
	in := tone(48000, 1, 440, 0.5, time.Second)
	data, err := Encode(in, Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const shift = 48000 * 3600 // an hour into the stream
	shifted := rewritePages(t, data, func(i int, pg *ogg.Page) {
		if i >= 2 {
			pg.GranulePos += shift
		}
	})
	info, err := Probe(shifted, Ogg)
	if err != nil {
		t.Fatal(err)
	}
	if info.Duration != in.Duration() {
		t.Errorf("duration %v, want %v", info.Duration, in.Duration())
	}
	p, err := Decode(shifted, Ogg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Frames() != in.Frames() {
		t.Errorf("decoded %d frames, want %d", p.Frames(), in.Frames())
	}
}

// TestOggTruncated: an upload cut short decodes to what is there, and
// Probe reports that length rather than the intended one.
func TestOggTruncated(t *testing.T) {
	data, err := Encode(tone(48000, 1, 440, 0.5, 3*time.Second), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cut := data[:len(data)*6/10]
	info, err := Probe(cut, Ogg)
	if err != nil {
		t.Fatal(err)
	}
	if info.Duration < 500*time.Millisecond || info.Duration > 2*time.Second {
		t.Errorf("truncated file: duration %v", info.Duration)
	}
	p, err := Decode(cut, Ogg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(p.Frames()) != info.Frames {
		t.Errorf("decoded %d frames, Probe said %d", p.Frames(), info.Frames)
	}
}

func TestOggNotOpus(t *testing.T) {
	vorbis := (&ogg.Page{HeaderType: ogg.PageFlagBOS, SerialNumber: 1, Segments: []byte{30},
		Payload: append([]byte("\x01vorbis"), make([]byte, 23)...)}).Encode()
	_, err := Probe(vorbis, Ogg)
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("Ogg Vorbis: %v, want ErrUnsupported", err)
	}
	// Ambisonics (mapping family 2) is not decoded.
	head := ogg.DefaultOpusHeadMultistreamWithFamily(48000, 4, 2, 4, 0, []byte{0, 1, 2, 3}).Encode()
	amb := (&ogg.Page{HeaderType: ogg.PageFlagBOS, SerialNumber: 1, Segments: []byte{byte(len(head))}, Payload: head}).Encode()
	if _, err := Probe(amb, Ogg); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ambisonic Opus: %v, want ErrUnsupported", err)
	}
}

func TestOggEncodeOptions(t *testing.T) {
	in := tone(48000, 1, 440, 0.5, 100*time.Millisecond)
	for _, tc := range []struct {
		name string
		opt  EncodeOptions
		want error
	}{
		{"bitrate too low", EncodeOptions{Bitrate: 5000}, ErrInvalid},
		{"bitrate too high", EncodeOptions{Bitrate: 600000}, ErrInvalid},
		{"negative rate", EncodeOptions{Rate: -1}, ErrInvalid},
		{"3 channels", EncodeOptions{Channels: 3}, ErrUnsupported},
		{"lowest bitrate", EncodeOptions{Bitrate: 6000}, nil},
		{"8 kHz", EncodeOptions{Rate: 8000}, nil},
	} {
		_, err := Encode(in, Ogg, tc.opt)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// BenchmarkEncodeOpus60s encodes a minute of 48 kHz mono at 24 kbit/s,
// the cost of transcoding a long voice message.
func BenchmarkEncodeOpus60s(b *testing.B) {
	in := concat(toneDBFS(48000, 1, 220, -20, 30*time.Second), noise(48000, 1, 0.1, 30*time.Second))
	b.ResetTimer()
	for range b.N {
		if _, err := Encode(in, Ogg, EncodeOptions{Bitrate: 24000}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeOpus60s(b *testing.B) {
	in := concat(toneDBFS(48000, 1, 220, -20, 30*time.Second), noise(48000, 1, 0.1, 30*time.Second))
	data, err := Encode(in, Ogg, EncodeOptions{Bitrate: 24000})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := Decode(data, Ogg, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOggHostileGranule: a last page claiming far more audio than the
// file can hold is refused by Probe, and the sample cap holds for 255
// channels (the product overflowed int64 before and passed the check,
// and the decoder then reserved gigabytes).
func TestOggHostileGranule(t *testing.T) {
	data, err := Encode(tone(48000, 1, 440, 0.5, 200*time.Millisecond), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var last int
	_ = rewritePages(t, data, func(i int, pg *ogg.Page) { last = i })
	for _, g := range []uint64{1 << 40, 1 << 62, 36310086419038649} {
		lying := rewritePages(t, data, func(i int, pg *ogg.Page) {
			if i == last {
				pg.GranulePos = g
			}
		})
		if _, err := Probe(lying, Ogg); !errors.Is(err, ErrInvalid) {
			t.Errorf("granule %d: Probe %v, want ErrInvalid", g, err)
		}
		if _, err := Decode(lying, Ogg, 1<<20); !errors.Is(err, ErrInvalid) {
			t.Errorf("granule %d: Decode %v, want ErrInvalid", g, err)
		}
	}
	info := Info{Frames: 36310086419038649, Channels: 255, Rate: 48000}
	if err := checkCap(info, 16<<20); !errors.Is(err, ErrTooLong) {
		t.Errorf("255 channels: %v, want ErrTooLong", err)
	}
}

// TestOggFakePagesBounded: megabytes of fake page headers after the audio
// cost a bounded search, not a CRC check of every one.
func TestOggFakePagesBounded(t *testing.T) {
	data, err := Encode(tone(48000, 1, 440, 0.5, 200*time.Millisecond), Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fake := make([]byte, 0, 8<<20)
	for len(fake) < 8<<20 {
		fake = append(fake, "OggS"...)
		fake = append(fake, make([]byte, 60)...)
	}
	junk := append(append([]byte{}, data...), fake...)
	start := time.Now()
	_, err = Probe(junk, Ogg)
	t.Logf("probe of 8 MiB of fake pages: %v (%v)", time.Since(start), err)
	// The real last page is more than two pages' length before the end,
	// so the duration is not found: refused or zero, never a hang.
	if info, err := Probe(junk, Ogg); err == nil && info.Duration > time.Second {
		t.Errorf("duration %v from a file with 0.2 s of audio", info.Duration)
	}
}
