package audio

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// TestMP3Speech decodes the one real MP3 in testdata (see README.md).
func TestMP3Speech(t *testing.T) {
	data, err := os.ReadFile("testdata/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	info, err := Probe(data, "audio/mp3")
	if err != nil {
		t.Fatal(err)
	}
	// 60 MPEG-2 frames of 576 samples at 22050 Hz, behind an ID3v2 tag.
	want := Info{Format: MPEG, Rate: 22050, InputRate: 22050, Channels: 1, Frames: 60 * 576, Duration: framesDuration(60*576, 22050)}
	if info != want {
		t.Errorf("Probe = %+v, want %+v", info, want)
	}
	p, err := Decode(data, MPEG, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rate != 22050 || p.Channels != 1 || int64(p.Frames()) != info.Frames {
		t.Errorf("decoded %d Hz ×%d, %d frames", p.Rate, p.Channels, p.Frames())
	}
	// It is speech: loud enough, not clipped, and with a waveform that
	// moves.
	if l := RMSDBFS(p); l < -35 || l > -12 {
		t.Errorf("speech at %.1f dBFS RMS", l)
	}
	if pk := PeakDBFS(p); pk > 0 || pk < -20 {
		t.Errorf("speech peak %.1f dBFS", pk)
	}
	w := Waveform(p, 40)
	lo, hi := 1024, 0
	for _, v := range w {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi != 1024 || lo > 700 {
		t.Errorf("waveform of speech has no dynamics: %v", w)
	}
}

// mp3Frame is one frame of silence: a header and all-zero side
// information and main data, which any Layer III decoder turns into
// zeros. MPEG-1, 128 kbit/s (417 bytes at 44.1 kHz).
func mp3Frame(mono bool) []byte {
	f := make([]byte, 417)
	copy(f, []byte{0xFF, 0xFB, 0x90, 0x00})
	if mono {
		f[3] = 0xC0
	}
	return f
}

func mp3Frames(n int, mono bool) []byte {
	var b []byte
	for range n {
		b = append(b, mp3Frame(mono)...)
	}
	return b
}

func TestMP3Synthetic(t *testing.T) {
	id3 := append([]byte("ID3\x04\x00\x00\x00\x00\x01\x00"), make([]byte, 128)...) // 128-byte tag
	id3v1 := append([]byte("TAG"), bytes.Repeat([]byte{0xFF}, 125)...)             // sync-like bytes in the tag
	for _, tc := range []struct {
		name   string
		data   []byte
		ch     int
		frames int
	}{
		{"stereo", mp3Frames(10, false), 2, 10},
		{"mono", mp3Frames(10, true), 1, 10},
		{"single frame", mp3Frames(1, true), 1, 1},
		{"ID3v2 and padding before, ID3v1 after", append(append(append(id3, 0, 0, 0), mp3Frames(5, false)...), id3v1...), 2, 5},
		{"junk in the middle", append(append(mp3Frames(3, false), "junk"...), mp3Frames(4, false)...), 2, 7},
		{"truncated last frame", mp3Frames(4, false)[:4*417-100], 2, 3},
	} {
		info, err := Probe(tc.data, MPEG)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if info.Rate != 44100 || info.Channels != tc.ch || info.Frames != int64(tc.frames*1152) {
			t.Errorf("%s: Probe = %+v, want %d channels, %d frames", tc.name, info, tc.ch, tc.frames*1152)
		}
		p, err := Decode(tc.data, MPEG, 0)
		if err != nil {
			t.Errorf("%s: Decode: %v", tc.name, err)
			continue
		}
		if p.Channels != tc.ch || int64(p.Frames()) != info.Frames || PeakDBFS(p) > -90 {
			t.Errorf("%s: decoded ×%d, %d frames, peak %.1f dBFS", tc.name, p.Channels, p.Frames(), PeakDBFS(p))
		}
	}
}

func TestMP3Invalid(t *testing.T) {
	// Three zero-filled frames behind header h, sized by the code under
	// test (which TestMP3Synthetic checks for Layer III).
	frames := func(h ...byte) []byte {
		hdr, _ := parseMP3Header(h)
		return bytes.Repeat(append(h, make([]byte, hdr.size-4)...), 3)
	}
	layer2 := frames(0xFF, 0xFD, 0x90, 0x00) // MPEG-1 Layer II, 44.1 kHz, 160 kbit/s
	mpeg25 := frames(0xFF, 0xE3, 0x90, 0x00) // MPEG-2.5 Layer III, 11025 Hz, 80 kbit/s
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrInvalid},
		{"text", []byte("this is not an mp3 file at all, just text"), ErrInvalid},
		{"a lone sync", append([]byte{0xFF, 0xFB, 0x90, 0x00}, make([]byte, 100)...), ErrInvalid},
		{"WAV", wavFile(fmtChunk(1, 1, 8000, 16), chunk("data", make([]byte, 1000))), ErrInvalid},
		{"ID3 tag only", append([]byte("ID3\x04\x00\x00\x00\x00\x01\x00"), make([]byte, 128)...), ErrInvalid},
		{"malformed ID3 size", append([]byte("ID3\x04\x00\x00\xff\xff\xff\xff"), mp3Frames(2, false)...), ErrInvalid},
		{"MP3 beyond the sync window", append(make([]byte, 70000), mp3Frames(3, false)...), ErrInvalid},
		{"Layer II", layer2, ErrUnsupported},
		{"MPEG-2.5", mpeg25, ErrUnsupported},
	} {
		if _, err := Probe(tc.data, MPEG); !errors.Is(err, tc.want) {
			t.Errorf("%s: Probe: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := Decode(tc.data, MPEG, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode: %v, want %v", tc.name, err, tc.want)
		}
	}
	// MP3 is decode only.
	if _, err := Encode(tone(44100, 1, 440, 0.5, 10*time.Millisecond), MPEG, EncodeOptions{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Encode MP3: %v, want ErrUnsupported", err)
	}
}
