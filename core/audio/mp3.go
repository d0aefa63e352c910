package audio

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	mp3 "github.com/hajimehoshi/go-mp3"
)

// MP3 (ISO/IEC 11172-3 and 13818-3 Layer III), decoded by go-mp3. Probe
// scans the frame headers itself: go-mp3 reports neither the channel count
// (it always outputs stereo) nor whether the bytes are MP3 at all (it skips
// anything until something looks like a frame sync).

type mp3Stream struct {
	Info
}

// mp3Header is the part of a frame header that matters here.
type mp3Header struct {
	version int // 1, 2, or 25 for MPEG-2.5
	layer   int // 1..3
	rate    int
	size    int // bytes, header included
	samples int // per channel
	mono    bool
}

var (
	mp3Rates = [3]int{44100, 48000, 32000} // MPEG-1; halved for 2, quartered for 2.5
	// kbit/s by bitrate index; [MPEG-1 or not][layer-1].
	mp3Bitrates = [2][3][15]int{
		{
			{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
			{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
		},
		{
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		},
	}
)

// parseMP3Header decodes the 4 bytes at b, or reports false when they are
// not a frame header this code can size (free-format bitrate included).
func parseMP3Header(b []byte) (mp3Header, bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return mp3Header{}, false
	}
	var h mp3Header
	switch (b[1] >> 3) & 3 {
	case 0:
		h.version = 25
	case 2:
		h.version = 2
	case 3:
		h.version = 1
	default:
		return mp3Header{}, false
	}
	h.layer = 4 - int((b[1]>>1)&3)
	bri, sri := int(b[2]>>4), int((b[2]>>2)&3)
	if h.layer == 4 || bri == 0 || bri == 15 || sri == 3 || b[3]&3 == 2 {
		return mp3Header{}, false
	}
	lsf := 0 // low sampling frequency: MPEG-2 and 2.5
	h.rate = mp3Rates[sri]
	switch h.version {
	case 2:
		lsf, h.rate = 1, h.rate/2
	case 25:
		lsf, h.rate = 1, h.rate/4
	}
	bitrate := mp3Bitrates[lsf][h.layer-1][bri] * 1000
	pad := int(b[2]>>1) & 1
	switch h.layer {
	case 1:
		h.samples = 384
		h.size = (12*bitrate/h.rate + pad) * 4
	case 2:
		h.samples = 1152
		h.size = 144*bitrate/h.rate + pad
	default:
		h.samples = 1152 >> lsf
		h.size = (144>>lsf)*bitrate/h.rate + pad
	}
	h.mono = b[3]>>6 == 3
	return h, true
}

// sameStream reports whether h continues a stream that began with first:
// a real next frame keeps the version, layer and rate, which a stray 0xFF
// byte in the audio data rarely does.
func (h mp3Header) sameStream(first mp3Header) bool {
	return h.version == first.version && h.layer == first.layer && h.rate == first.rate
}

// mp3FrameAt reports whether a frame like first (or any, if first is zero)
// starts at off and is followed by another such frame, a tag, or the end
// of data: the usual check that a sync is real.
func mp3FrameAt(data []byte, off int, first mp3Header) (mp3Header, bool) {
	h, ok := parseMP3Header(data[off:])
	if !ok || (first.rate != 0 && !h.sameStream(first)) {
		return h, false
	}
	next := off + h.size
	switch {
	case next == len(data):
		return h, true
	case next > len(data):
		return h, false
	}
	if n, ok := parseMP3Header(data[next:]); ok && n.sameStream(h) {
		return h, true
	}
	rest := data[next:]
	return h, bytes.HasPrefix(rest, []byte("TAG")) || bytes.HasPrefix(rest, []byte("ID3")) || bytes.HasPrefix(rest, []byte("APETAGEX"))
}

// mp3SyncWindow is how far past the ID3v2 tag the first frame may start:
// encoders pad tags, but a file of anything else with an MP3 somewhere
// inside is not an MP3 file.
const mp3SyncWindow = 64 << 10

func probeMP3(data []byte) (mp3Stream, error) {
	off := 0
	// ID3v2 (id3.org, "ID3 tag version 2.4.0 - Main Structure" §3.1):
	// "ID3", version, flags, then a 28-bit syncsafe size; a footer adds 10.
	for len(data)-off >= 10 && string(data[off:off+3]) == "ID3" {
		sz := data[off+6 : off+10]
		if sz[0]|sz[1]|sz[2]|sz[3] >= 0x80 {
			return mp3Stream{}, fmt.Errorf("%w: MP3 with a malformed ID3v2 tag", ErrInvalid)
		}
		footer := 0
		if data[off+5]&0x10 != 0 {
			footer = 10
		}
		off += 10 + (int(sz[0])<<21 | int(sz[1])<<14 | int(sz[2])<<7 | int(sz[3])) + footer
	}
	var first mp3Header
	found := false
	for end := min(len(data)-4, off+mp3SyncWindow); off <= end; off++ {
		if h, ok := mp3FrameAt(data, off, mp3Header{}); ok {
			first, found = h, true
			break
		}
	}
	if !found {
		return mp3Stream{}, fmt.Errorf("%w: not an MP3 file", ErrInvalid)
	}
	// What go-mp3 (a port of PDMP3) decodes.
	switch {
	case first.layer != 3:
		return mp3Stream{}, fmt.Errorf("%w: MPEG audio layer %d (only Layer III, MP3, is decoded)", ErrUnsupported, first.layer)
	case first.version == 25:
		return mp3Stream{}, fmt.Errorf("%w: MPEG-2.5 MP3 at %d Hz (MPEG-1 and MPEG-2 are decoded)", ErrUnsupported, first.rate)
	}

	// Count frames, resynchronising past junk the way go-mp3 does, but
	// only onto frames of the same stream, so that trailing tags are not
	// counted as audio.
	frames := int64(0)
	for off+4 <= len(data) {
		if h, ok := parseMP3Header(data[off:]); ok && h.sameStream(first) && off+h.size <= len(data) {
			frames++
			off += h.size
			continue
		}
		off++
		for off+4 <= len(data) {
			if _, ok := mp3FrameAt(data, off, first); ok {
				break
			}
			off++
		}
	}
	ch := 2
	if first.mono {
		ch = 1
	}
	s := mp3Stream{Info{Rate: first.rate, InputRate: first.rate, Channels: ch, Frames: frames * int64(first.samples)}}
	s.Duration = framesDuration(s.Frames, s.Rate)
	return s, nil
}

func decodeMP3(data []byte, s mp3Stream, maxSamples int) (*PCM, error) {
	out := make([]float32, 0, prealloc(s.Frames, s.Channels, maxSamples))
	err := streamMP3(data, s, func(pcm []float32) { out = append(out, pcm...) })
	if err != nil {
		return nil, err
	}
	return &PCM{Rate: s.Rate, Channels: s.Channels, Samples: out}, nil
}

// streamMP3 decodes s in the chunks go-mp3's reader returns, handing emit
// each as interleaved float32 samples of s.Channels channels (the slice is
// reused for the next chunk), and stops at the s.Frames that Probe
// counted. Memory is a few frames' worth whatever the length.
func streamMP3(data []byte, s mp3Stream, emit func([]float32)) (err error) {
	// go-mp3 is a port of C code that predates fuzzing; a panic on a
	// crafted upload must not take the server down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: MP3 decoder failed: %v", ErrInvalid, r)
		}
	}()
	// Hide Seek: with it, go-mp3 walks every frame up front to learn the
	// length, which probeMP3 has just done.
	dec, err := mp3.NewDecoder(struct{ io.Reader }{bytes.NewReader(data)})
	if err != nil {
		return fmt.Errorf("%w: MP3: %v", ErrInvalid, err)
	}
	ch := s.Channels
	want := s.Frames * int64(ch)
	got := int64(0)
	// go-mp3 always emits 16-bit little-endian stereo; a mono stream has
	// the same sample twice.
	buf := make([]byte, 4*1152*4)
	pcm := make([]float32, 0, len(buf)/4*ch)
	for got < want {
		n, err := dec.Read(buf)
		pcm = pcm[:0]
		for i := 0; i+4 <= n && got < want; i += 4 {
			l := float32(int16(uint16(buf[i])|uint16(buf[i+1])<<8)) / (1 << 15)
			pcm = append(pcm, l)
			if ch == 2 {
				r := float32(int16(uint16(buf[i+2])|uint16(buf[i+3])<<8)) / (1 << 15)
				pcm = append(pcm, r)
			}
			got += int64(ch)
		}
		if len(pcm) > 0 {
			emit(pcm)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: MP3: %v", ErrInvalid, err)
		}
	}
	return nil
}
