package audio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/thesyncim/gopus"
	"github.com/thesyncim/gopus/container/ogg"
)

// Ogg Opus (RFC 7845). Opus always runs at 48 kHz on the wire: granule
// positions count 48 kHz samples whatever the input rate was.
const opusRate = 48000

// opusInputRates are the rates the Opus encoder accepts (libopus API).
var opusInputRates = []int{8000, 12000, 16000, 24000, 48000}

// maxOpusFrame is the longest packet, 120 ms at 48 kHz (RFC 6716 §3.2.5).
const maxOpusFrame = 5760

// oggStream is what probeOgg learns and decodeOgg needs.
type oggStream struct {
	Info
	head *ogg.OpusHead
	// start is the granule position of the first decoded sample (0 except
	// for a stream cut from a live one, RFC 7845 §4) and end the last
	// page's granule position; both count 48 kHz samples.
	start, end uint64
}

func probeOgg(data []byte) (oggStream, error) {
	if len(data) < 27 || string(data[:4]) != "OggS" {
		return oggStream{}, fmt.Errorf("%w: not an Ogg file", ErrInvalid)
	}
	first, _, err := ogg.ParsePage(data)
	if err != nil {
		return oggStream{}, fmt.Errorf("%w: Ogg: first page: %v", ErrInvalid, err)
	}
	pkts := first.Packets()
	if !first.IsBOS() || len(pkts) == 0 {
		return oggStream{}, fmt.Errorf("%w: Ogg: first page does not start a stream", ErrInvalid)
	}
	if !bytes.HasPrefix(pkts[0], []byte("OpusHead")) {
		return oggStream{}, fmt.Errorf("%w: Ogg with %s (only Opus in Ogg is decoded; supported: %s, %s, %s)",
			ErrUnsupported, oggCodec(pkts[0]), Ogg, WAV, MPEG)
	}
	head, err := ogg.ParseOpusHead(pkts[0])
	if err != nil {
		return oggStream{}, fmt.Errorf("%w: OpusHead: %v", ErrInvalid, err)
	}
	switch head.MappingFamily {
	case ogg.MappingFamilyRTP, ogg.MappingFamilyVorbis, ogg.MappingFamilyDiscrete:
	default:
		return oggStream{}, fmt.Errorf("%w: Opus channel mapping family %d (ambisonics); families 0, 1 and 255 are decoded",
			ErrUnsupported, head.MappingFamily)
	}

	s := oggStream{head: head}
	s.end = lastGranule(data, first.SerialNumber)
	s.start, err = startGranule(data)
	if err != nil {
		return oggStream{}, err
	}
	frames := int64(s.framesAt(1))
	if frames < 0 { // granule ≥ 2^63: nonsense
		return oggStream{}, fmt.Errorf("%w: Ogg granule position %d", ErrInvalid, s.end)
	}
	// No Opus packet decodes to more than 120 ms (RFC 6716 §3.2.5) and
	// none is under one byte, so a file cannot hold more than 5760 frames
	// per byte: a granule position beyond that is a lie that would
	// otherwise pass as hours of audio.
	if frames > int64(len(data))*maxOpusFrame {
		return oggStream{}, fmt.Errorf("%w: Ogg granule position %d claims more audio than %d bytes can hold", ErrInvalid, s.end, len(data))
	}
	s.Info = Info{
		Rate:      opusRate,
		Channels:  int(head.Channels),
		InputRate: int(head.SampleRate),
		Frames:    frames,
		Duration:  framesDuration(frames, opusRate),
	}
	return s, nil
}

// framesAt is the number of frames a decoder running at 48000/k Hz
// outputs for the stream. Granule positions and pre-skip count 48 kHz
// samples whatever the decoder's rate (RFC 7845 §4), so output frame j
// stands for granule position start + j·k, and it is kept when that lies
// in [start + pre-skip, end): at k = 1 exactly end - start - pre-skip.
func (s oggStream) framesAt(k uint64) uint64 {
	skip := s.start + uint64(s.head.PreSkip)
	if s.end <= skip || skip < s.start {
		return 0
	}
	return ceilDiv(s.end-s.start, k) - ceilDiv(skip-s.start, k)
}

// at is s.Info for a decoder running at rate, one of opusInputRates.
func (s oggStream) at(rate int) Info {
	info := s.Info
	if rate == opusRate {
		return info
	}
	info.Rate = rate
	info.Frames = int64(s.framesAt(uint64(opusRate / rate)))
	info.Duration = framesDuration(info.Frames, rate)
	return info
}

// ceilDiv is ⌈a/k⌉ without overflow.
func ceilDiv(a, k uint64) uint64 {
	q := a / k
	if a%k != 0 {
		q++
	}
	return q
}

// oggCodec names the codec of an Ogg stream's first packet, for the error
// message when it is not Opus.
func oggCodec(p []byte) string {
	switch {
	case bytes.HasPrefix(p, []byte("\x01vorbis")):
		return "Vorbis"
	case bytes.HasPrefix(p, []byte("\x7fFLAC")):
		return "FLAC"
	case bytes.HasPrefix(p, []byte("Speex   ")):
		return "Speex"
	}
	return "an unknown codec"
}

// lastGranule returns the granule position of the last intact page of
// the stream, found by searching back from the end so that a long file
// costs one page parse, not a walk over every page. A truncated or corrupt
// tail is skipped (ParsePage checks the CRC), so the duration is that of
// the audio that can actually be decoded.
func lastGranule(data []byte, serial uint32) uint64 {
	// The last page starts within the final maxPage bytes unless the tail
	// is damaged; searching further back, and parsing (a CRC over up to
	// 64 KiB) every "OggS" on the way, would let a crafted file of fake
	// page headers cost seconds per probe. A tail damaged over more than
	// two pages' length is not looked behind.
	const maxPage = 27 + 255 + 255*255
	floor := max(len(data)-2*maxPage, 0)
	tries := 0
	for end := len(data); end > floor && tries < 64; tries++ {
		i := bytes.LastIndex(data[:end], []byte("OggS"))
		if i < floor {
			break
		}
		end = i
		pg, _, err := ogg.ParsePage(data[i:])
		// -1 marks a page on which no packet ends (RFC 3533 §6).
		if err != nil || pg.SerialNumber != serial || pg.GranulePos == ^uint64(0) {
			continue
		}
		return pg.GranulePos
	}
	return 0
}

// startGranule returns the granule position of the first audio sample:
// the first audio packet's granule position minus its duration. It is 0
// for files written from the start, and positive for a recording cut from
// a live stream (RFC 7845 §4). It also checks that OpusTags is there,
// since RFC 7845 makes it mandatory and a file without it is not Ogg Opus.
func startGranule(data []byte) (uint64, error) {
	r, err := ogg.NewReader(bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("%w: Ogg Opus headers: %v", ErrInvalid, err)
	}
	pkt, g, err := r.ReadPacket()
	if err != nil || r.EOF() {
		// No audio, or only an end-of-stream page, whose granule position
		// may be end-trimmed and so says nothing about the start (§4.4).
		return 0, nil
	}
	info, err := gopus.ParsePacket(pkt)
	if err != nil {
		return 0, fmt.Errorf("%w: first Opus packet: %v", ErrInvalid, err)
	}
	dur := uint64(info.FrameCount * info.TOC.FrameSize)
	if g <= dur {
		return 0, nil
	}
	return g - dur, nil
}

// opusDecoder is what streamOgg needs of gopus's single- and multistream
// decoders.
type opusDecoder interface {
	Decode(data []byte, pcm []float32) (int, error)
	SetGain(gainQ8 int) error
}

// newOpusDecoder makes a decoder for h whose output runs at rate (one of
// opusInputRates): Opus decodes natively at any of them, so a lower rate
// costs proportionally less memory and no resampling.
func newOpusDecoder(h *ogg.OpusHead, rate int) (opusDecoder, error) {
	if h.MappingFamily == ogg.MappingFamilyRTP {
		return gopus.NewDecoder(gopus.DefaultDecoderConfig(rate, int(h.Channels)))
	}
	return gopus.NewMultistreamDecoder(rate, int(h.Channels), int(h.StreamCount), int(h.CoupledCount), h.ChannelMapping)
}

// maxOpusPacket is the largest single-stream packet gopus's decoder takes
// (its DefaultDecoderConfig's MaxPacketBytes; RFC 6716 frames are at most
// 1275 bytes), so that packets are read into one reused buffer.
const maxOpusPacket = 1500

// decodeOgg decodes s at rate (one of opusInputRates) into one PCM of
// s.at(rate).Frames frames.
func decodeOgg(data []byte, s oggStream, rate, maxSamples int) (*PCM, error) {
	ch := int(s.head.Channels)
	out := &PCM{Rate: rate, Channels: ch, Samples: make([]float32, 0, prealloc(s.at(rate).Frames, ch, maxSamples))}
	err := streamOgg(data, s, rate, func(pcm []float32) {
		out.Samples = append(out.Samples, pcm...)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// streamOgg decodes s at rate (one of opusInputRates) packet by packet,
// handing emit the interleaved samples to keep from each, in order:
// s.at(rate).Frames frames in all, or an error. The slice emit gets is
// reused for the next packet. Memory is one packet's worth whatever the
// length of the stream.
func streamOgg(data []byte, s oggStream, rate int, emit func([]float32)) error {
	r, err := ogg.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: Ogg Opus headers: %v", ErrInvalid, err)
	}
	dec, err := newOpusDecoder(s.head, rate)
	if err != nil {
		return fmt.Errorf("%w: OpusHead: %v", ErrInvalid, err)
	}
	// RFC 7845 §5.1: players MUST apply the header's output gain.
	if s.head.OutputGain != 0 {
		if err := dec.SetGain(int(s.head.OutputGain)); err != nil {
			return fmt.Errorf("%w: OpusHead output gain: %v", ErrInvalid, err)
		}
	}
	ch := int(s.head.Channels)
	// Room for the longest packet at 48 kHz, more than enough at lower
	// rates (23 KiB a channel: not worth sizing to the rate).
	buf := make([]float32, maxOpusFrame*ch)
	var pktBuf []byte
	if s.head.MappingFamily == ogg.MappingFamilyRTP {
		pktBuf = make([]byte, maxOpusPacket)
	}
	k := uint64(opusRate / rate)                 // granule positions per output frame
	keepFrom := s.start + uint64(s.head.PreSkip) // RFC 7845 §4.2: drop pre-skip
	pos := s.start                               // granule position of buf[0]
	for pos < s.end {
		pkt, err := readOpusPacket(r, pktBuf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: Ogg page at %v: %v", ErrInvalid,
				framesDuration(int64(pos-s.start), opusRate), err)
		}
		n, err := dec.Decode(pkt, buf)
		if err != nil {
			return fmt.Errorf("%w: Opus packet at %v: %v", ErrInvalid,
				framesDuration(int64(pos-s.start), opusRate), err)
		}
		// Keep the frames of [pos, pos+n·k) inside [keepFrom, end): the
		// end is trimmed to the last granule position (§4.4), which also
		// bounds the output by what Probe reported. Frame i stands for
		// granule position pos + i·k (see framesAt).
		lo, hi := max(pos, keepFrom), min(pos+uint64(n)*k, s.end)
		if lo < hi {
			i, j := ceilDiv(lo-pos, k), ceilDiv(hi-pos, k)
			if i < j {
				emit(buf[int(i)*ch : int(j)*ch])
			}
		}
		pos += uint64(n) * k
	}
	// The last intact page is in the file, so its packets decode to at
	// least its granule position; stopping short means gopus's reader met
	// a corrupt page on the way and took it for the end of the stream.
	if pos < s.end {
		return fmt.Errorf("%w: Ogg Opus stream breaks off at %v of %v (corrupt page)", ErrInvalid,
			framesDuration(int64(max(pos, keepFrom)-keepFrom), opusRate), s.Duration.Round(time.Millisecond))
	}
	return nil
}

// readOpusPacket reads the next packet: into buf when there is one (no
// allocation per packet), else into a fresh slice.
func readOpusPacket(r *ogg.Reader, buf []byte) ([]byte, error) {
	if buf == nil {
		pkt, _, err := r.ReadPacket()
		return pkt, err
	}
	n, _, err := r.ReadPacketInto(buf)
	if errors.Is(err, ogg.ErrPacketTooLarge) {
		return nil, fmt.Errorf("Opus packet over %d bytes", len(buf))
	}
	return buf[:n], err
}

// prealloc is the capacity to reserve for frames of ch channels: all of
// it for any real recording, but a header claiming hours is not taken at
// its word before the samples exist (append grows past it if they do).
func prealloc(frames int64, ch, maxSamples int) int {
	// With a cap, the caller has checked frames×ch against it: reserve it
	// all, as growing by doubling would briefly hold 1.5 times the audio.
	if maxSamples > 0 {
		return int(min(frames*int64(ch), int64(maxSamples)))
	}
	const most = 1 << 22 // samples: 16 MiB, 87 s of 48 kHz mono
	return int(min(frames*int64(ch), most))
}

// opusEncodeRate is the Opus input rate for audio wanted at rate: the
// lowest one Opus accepts that loses nothing, capped at 48 kHz.
func opusEncodeRate(rate int) int {
	for _, r := range opusInputRates {
		if r >= rate {
			return r
		}
	}
	return opusRate
}

// Opus settings for voice messages.
const (
	defaultOpusBitrate = 32000
	opusFrameMillis    = 20   // what VoIP encoders use: low delay, fine seeking
	oggPagePackets     = 50   // one page a second, as opusenc's default --max-delay
	opusEncodeBuffer   = 4000 // enough for any Opus packet (gopus doc)
)

func encodeOgg(p *PCM, opt EncodeOptions) ([]byte, error) {
	bitrate := opt.Bitrate
	if bitrate == 0 {
		bitrate = defaultOpusBitrate
	}
	if bitrate < 6000 || bitrate > 510000 {
		return nil, fmt.Errorf("%w: Opus bitrate %d outside 6000..510000", ErrInvalid, bitrate)
	}
	ch := opt.Channels
	if ch == 0 {
		ch = min(p.Channels, 2)
		if p.Channels > 2 {
			// Surround to mono rather than keeping two of the channels:
			// a voice is usually in the centre channel.
			ch = 1
		}
	}
	if ch > 2 {
		return nil, fmt.Errorf("%w: Ogg Opus output with %d channels (1 or 2 are encoded)", ErrUnsupported, ch)
	}
	want := p.Rate
	if opt.Rate > 0 {
		want = opt.Rate
	}
	rate := opusEncodeRate(want)

	// Remix before resampling when that shrinks the data, after when it
	// grows it, so the resampler sees as few channels as possible.
	q := p
	if ch < q.Channels {
		q = remix(q, ch)
	}
	if q.Rate != rate {
		q = Resample(q, rate)
	}
	if ch > q.Channels {
		q = remix(q, ch)
	}

	enc, err := gopus.NewEncoder(gopus.EncoderConfig{SampleRate: rate, Channels: ch, Application: gopus.ApplicationVoIP})
	if err != nil {
		return nil, fmt.Errorf("audio: Opus encoder: %w", err)
	}
	if err := enc.SetBitrate(bitrate); err != nil {
		return nil, fmt.Errorf("audio: Opus encoder: %w", err)
	}
	// 20 ms is gopus's default frame; check rather than assume.
	frame := rate * opusFrameMillis / 1000
	if enc.FrameSize() != frame {
		return nil, fmt.Errorf("audio: Opus encoder frame size %d, want %d", enc.FrameSize(), frame)
	}
	// The encoder's lookahead delays everything it outputs; pre-skip tells
	// the decoder to drop it (RFC 7845 §4.2). It is counted at 48 kHz.
	lookahead := enc.Lookahead()
	preSkip := lookahead * opusRate / rate
	if preSkip > 0xFFFF {
		return nil, fmt.Errorf("audio: Opus lookahead %d too long for pre-skip", lookahead)
	}
	frames := q.Frames()
	// Encode enough frames to flush the lookahead, and set the last
	// granule position to exactly pre-skip plus the input length so that a
	// decoder trims the padding of the last frame (§4.4).
	packets := max(1, (frames+lookahead+frame-1)/frame)
	end := uint64(preSkip) + (uint64(frames)*opusRate+uint64(rate)-1)/uint64(rate)
	end = min(end, uint64(packets)*uint64(frame*opusRate/rate))

	var out bytes.Buffer
	out.Grow(frames/rate*bitrate/8 + 4096)
	head := ogg.DefaultOpusHead(uint32(want), uint8(ch))
	head.PreSkip = uint16(preSkip)
	pg := oggPager{w: &out, serial: rand.Uint32()}
	pg.headerPage(head.Encode(), ogg.PageFlagBOS)
	tags := ogg.DefaultOpusTags()
	tags.Vendor = "lichen " + gopus.VersionString()
	pg.headerPage(tags.Encode(), 0)

	pcm := make([]float32, frame*ch)
	pkt := make([]byte, opusEncodeBuffer)
	granule := uint64(0)
	for i := range packets {
		// Copy (and clip) one frame; past the input's end it is zeros.
		clear(pcm)
		if lo := i * frame * ch; lo < len(q.Samples) {
			for j, v := range q.Samples[lo:min(lo+frame*ch, len(q.Samples))] {
				pcm[j] = clip(v)
			}
		}
		n, err := enc.Encode(pcm, pkt)
		if err != nil {
			return nil, fmt.Errorf("audio: Opus encode: %w", err)
		}
		if n == 0 {
			return nil, errors.New("audio: Opus encoder returned no packet")
		}
		granule += uint64(frame * opusRate / rate)
		last := i == packets-1
		if last {
			granule = end
		}
		pg.packet(pkt[:n], granule, last)
	}
	return out.Bytes(), nil
}

// clip limits v to [-1, 1], and maps NaN to 0.
func clip(v float32) float32 {
	if v != v {
		return 0
	}
	return max(-1, min(1, v))
}

// oggPager lays Opus packets out on Ogg pages (RFC 3533). gopus's
// ogg.Writer puts each packet on a page of its own, which costs 28 bytes
// per 20 ms packet, 11 kbit/s: a third of a 32 kbit/s voice message. So
// this packs up to a second of packets per page, as opusenc does, and uses
// ogg.Page only to serialise and checksum.
type oggPager struct {
	w       *bytes.Buffer
	serial  uint32
	seq     uint32
	segs    []byte
	payload []byte
	packets int
	granule uint64 // of the last packet completed on the pending page
}

// headerPage writes a header packet on a page of its own, as RFC 7845 §3
// requires for OpusHead and OpusTags. Ours are a few dozen bytes, so one
// page always holds them.
func (o *oggPager) headerPage(p []byte, flags byte) {
	o.write(flags, 0, lacing(p), p)
}

// packet adds an audio packet ending at granule position granule, and
// flushes the page when it is full, a second long, or last (which then
// carries the end-of-stream flag).
func (o *oggPager) packet(p []byte, granule uint64, last bool) {
	segs := lacing(p)
	if len(o.segs)+len(segs) > 255 {
		o.flush(0)
	}
	o.segs = append(o.segs, segs...)
	o.payload = append(o.payload, p...)
	o.packets++
	o.granule = granule
	switch {
	case last:
		o.flush(ogg.PageFlagEOS)
	case o.packets >= oggPagePackets:
		o.flush(0)
	}
}

func (o *oggPager) flush(flags byte) {
	if o.packets == 0 && flags == 0 {
		return
	}
	o.write(flags, o.granule, o.segs, o.payload)
	o.segs, o.payload, o.packets = o.segs[:0], o.payload[:0], 0
}

func (o *oggPager) write(flags byte, granule uint64, segs, payload []byte) {
	pg := ogg.Page{HeaderType: flags, GranulePos: granule, SerialNumber: o.serial, PageSequence: o.seq, Segments: segs, Payload: payload}
	o.w.Write(pg.Encode())
	o.seq++
}

// lacing is the Ogg segment table of one whole packet: 255s, then the
// remainder (0 if the length is a multiple of 255).
func lacing(p []byte) []byte {
	segs := make([]byte, len(p)/255+1)
	for i := range segs[:len(segs)-1] {
		segs[i] = 255
	}
	segs[len(segs)-1] = byte(len(p) % 255)
	return segs
}
