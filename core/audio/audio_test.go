package audio

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thesyncim/gopus/container/ogg"
)

func TestNormalise(t *testing.T) {
	for in, want := range map[string]string{
		"audio/ogg":                       Ogg,
		"Audio/OGG; codecs=opus":          Ogg,
		"audio/ogg;codecs=opus;":          Ogg, // sloppy parameters
		"audio/opus":                      Ogg,
		"application/ogg":                 Ogg,
		"audio/wav":                       WAV,
		"audio/x-wav":                     WAV,
		"audio/wave":                      WAV,
		"audio/vnd.wave; codec=1":         WAV,
		"audio/mpeg":                      MPEG,
		"audio/mp3":                       MPEG,
		"audio/MPEG3":                     MPEG,
		"audio/webm; codecs=opus":         "audio/webm",
		" AUDIO/AAC ":                     "audio/aac",
		"":                                "",
		"video/mp4; codecs=\"mp4a.40.2\"": "video/mp4",
	} {
		if got := Normalise(in); got != want {
			t.Errorf("Normalise(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatLists(t *testing.T) {
	if got := Decodable(); !slices.Equal(got, []string{Ogg, WAV, MPEG}) {
		t.Errorf("Decodable() = %v", got)
	}
	if got := Encodable(); !slices.Equal(got, []string{Ogg, WAV}) {
		t.Errorf("Encodable() = %v", got)
	}
	// Callers may modify what they get.
	Decodable()[0] = "x"
	if Decodable()[0] != Ogg {
		t.Error("Decodable shares its slice")
	}
}

func TestUnsupportedFormats(t *testing.T) {
	p := tone(8000, 1, 440, 0.5, 100*time.Millisecond)
	wav, _ := Encode(p, WAV, EncodeOptions{})
	for _, format := range []string{"audio/webm", "audio/aac", "audio/mp4", "application/octet-stream", ""} {
		for op, call := range map[string]func() error{
			"Probe":  func() error { _, err := Probe(wav, format); return err },
			"Decode": func() error { _, err := Decode(wav, format, 0); return err },
			"Encode": func() error { _, err := Encode(p, format, EncodeOptions{}); return err },
		} {
			err := call()
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s(%q): %v, want ErrUnsupported", op, format, err)
				continue
			}
			// The message says what would work.
			supported := Decodable()
			if op == "Encode" {
				supported = Encodable()
			}
			for _, s := range supported {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s(%q): %q does not name %s", op, format, err, s)
				}
			}
		}
	}
}

// TestProbeWrongBytes: garbage, or one format declared as another, is
// ErrInvalid for every format.
func TestProbeWrongBytes(t *testing.T) {
	p := tone(16000, 1, 440, 0.5, 200*time.Millisecond)
	oggData, _ := Encode(p, Ogg, EncodeOptions{})
	wavData, _ := Encode(p, WAV, EncodeOptions{})
	mp3Data, _ := os.ReadFile("testdata/speech.mp3")
	garbage := []byte(strings.Repeat("\x00\x13\x37garbage\xff", 100))
	inputs := map[string][]byte{Ogg: oggData, WAV: wavData, MPEG: mp3Data, "garbage": garbage, "empty": nil, "short": []byte("Og")}
	for _, format := range Decodable() {
		for name, data := range inputs {
			if name == format {
				continue
			}
			if _, err := Probe(data, format); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s as %s: Probe: %v, want ErrInvalid", name, format, err)
			}
			if _, err := Decode(data, format, 0); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s as %s: Decode: %v, want ErrInvalid", name, format, err)
			}
		}
	}
	// Truncated headers.
	for _, format := range Decodable() {
		data := inputs[format]
		for _, n := range []int{4, 20, 30} {
			if _, err := Probe(data[:n], format); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s cut to %d bytes: %v, want ErrInvalid", format, n, err)
			}
		}
	}
}

// TestDecodeTooLong: the sample cap is checked from the headers alone.
// The Ogg file's middle pages are corrupted, so decoding it would fail
// with ErrInvalid: ErrTooLong proves nothing was decoded.
func TestDecodeTooLong(t *testing.T) {
	p := tone(48000, 2, 440, 0.5, 3*time.Second)
	oggData, err := Encode(p, Ogg, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, off := 0, 0; off < len(oggData); i++ {
		_, n, err := ogg.ParsePage(oggData[off:])
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			oggData[off+n/2] ^= 0xFF // breaks the CRC of the second audio page
		}
		off += n
	}
	if _, err := Decode(oggData, Ogg, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("corrupted Ogg decodes: %v", err)
	}
	wavData, _ := Encode(p, WAV, EncodeOptions{})
	mp3Data, _ := os.ReadFile("testdata/speech.mp3")
	for _, tc := range []struct {
		format string
		data   []byte
		exact  int // Frames × Channels
	}{
		{Ogg, oggData, 3 * 48000 * 2},
		{WAV, wavData, 3 * 48000 * 2},
		{MPEG, mp3Data, 60 * 576},
	} {
		if _, err := Decode(tc.data, tc.format, tc.exact-1); !errors.Is(err, ErrTooLong) {
			t.Errorf("%s, cap one below: %v, want ErrTooLong", tc.format, err)
		}
		if tc.format == Ogg {
			continue // corrupt on purpose
		}
		if out, err := Decode(tc.data, tc.format, tc.exact); err != nil || len(out.Samples) != tc.exact {
			t.Errorf("%s, cap exactly: %v", tc.format, err)
		}
	}
}

func TestPCMFramesDuration(t *testing.T) {
	for _, tc := range []struct {
		p      *PCM
		frames int
		d      time.Duration
	}{
		{nil, 0, 0},
		{&PCM{}, 0, 0},
		{&PCM{Rate: 48000, Channels: 2, Samples: make([]float32, 96000)}, 48000, time.Second},
		{&PCM{Rate: 44100, Channels: 1, Samples: make([]float32, 441)}, 441, 10 * time.Millisecond},
		{&PCM{Rate: 3, Channels: 1, Samples: make([]float32, 1)}, 1, 333333333},
	} {
		if tc.p.Frames() != tc.frames || tc.p.Duration() != tc.d {
			t.Errorf("%+v: %d frames, %v; want %d, %v", tc.p, tc.p.Frames(), tc.p.Duration(), tc.frames, tc.d)
		}
	}
	// No overflow for long audio: 2^40 frames at 8 kHz.
	if d := framesDuration(1<<40, 8000); d != 137438953*time.Second+472*time.Millisecond {
		t.Errorf("framesDuration(2^40, 8000) = %v", d)
	}
}

// TestCorruptInputs flips bytes in valid files: every result must be a
// PCM or an error, never a panic or an output beyond the cap.
func TestCorruptInputs(t *testing.T) {
	p := tone(16000, 1, 440, 0.5, 300*time.Millisecond)
	oggData, _ := Encode(p, Ogg, EncodeOptions{})
	wavData, _ := Encode(p, WAV, EncodeOptions{})
	mp3Data, _ := os.ReadFile("testdata/speech.mp3")
	mp3Data = mp3Data[:1500] // 9 frames: go-mp3 is slow under -race
	x := uint32(1)
	rnd := func(n int) int {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return int(x % uint32(n))
	}
	const limit = 1 << 20
	for format, data := range map[string][]byte{Ogg: oggData, WAV: wavData, MPEG: mp3Data} {
		for range 100 {
			d := bytes.Clone(data)
			for range 1 + rnd(8) {
				d[rnd(len(d))] = byte(rnd(256))
			}
			if rnd(4) == 0 {
				d = d[:rnd(len(d))]
			}
			if _, err := Probe(d, format); err != nil {
				continue
			}
			out, err := Decode(d, format, limit)
			if err == nil && len(out.Samples) > limit {
				t.Errorf("%s: %d samples decoded past the cap", format, len(out.Samples))
			}
		}
	}
}
