package voice

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/audio"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// memStore, memMedia and memRooms are in-memory stand-ins for the
// boltstore, core/media and core/rooms (the e2e tests run the real ones).
type memStore struct {
	mu sync.Mutex
	m  map[string]Message
}

func (s *memStore) PutVoice(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[m.ID] = m
	return nil
}
func (s *memStore) UpdateVoice(id string, fn func(*Message) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.m[id]
	if !ok {
		return ErrNotFound
	}
	if m.Derived != nil { // a copy, as a decoded record would be
		d := make(map[string]Derived, len(m.Derived))
		for k, v := range m.Derived {
			d[k] = v
		}
		m.Derived = d
	}
	if err := fn(&m); err != nil {
		return err
	}
	s.m[id] = m
	return nil
}
func (s *memStore) Voice(id string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.m[id]
	if !ok {
		return Message{}, ErrNotFound
	}
	return m, nil
}
func (s *memStore) DeleteVoice(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return ErrNotFound
	}
	delete(s.m, id)
	return nil
}
func (s *memStore) list(keep func(Message) bool) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.m {
		if keep(m) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedMs > out[j].CreatedMs })
	return out
}
func (s *memStore) VoiceByUser(u string) ([]Message, error) {
	return s.list(func(m Message) bool { return m.Owner == u }), nil
}
func (s *memStore) VoiceByRoom(r string) ([]Message, error) {
	return s.list(func(m Message) bool { return m.RoomID == r }), nil
}

type memMedia struct {
	mu    sync.Mutex
	n     int
	files map[string][]byte
	owner map[string]string
}

func (m *memMedia) Upload(user string, body io.Reader, ct, name string) (string, error) {
	b, _ := io.ReadAll(body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	id := "m" + string(rune('a'+m.n))
	m.files[id], m.owner[id] = b, user
	return id, nil
}
func (m *memMedia) MXC(id string) string { return "mxc://test/" + id }
func (m *memMedia) Open(id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[id]
	if !ok {
		return nil, errors.New("no such media")
	}
	return b, nil
}
func (m *memMedia) Delete(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, id)
	return nil
}
func (m *memMedia) Exists(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.files[id]
	return ok
}

// memRooms: members[room] lists who may send and see; sent keeps the
// contents; redacted the redacted event IDs.
type memRooms struct {
	members    map[string][]string
	sent       map[string]json.RawMessage
	redacted   []string
	redactedBy []string
}

func (r *memRooms) member(u, room string) bool {
	for _, m := range r.members[room] {
		if m == u {
			return true
		}
	}
	return false
}
func (r *memRooms) Send(user, device, room, txn string, content json.RawMessage) (string, error) {
	if !r.member(user, room) {
		return "", mxerr.Forbidden("not in room")
	}
	id := "$" + txn
	r.sent[id] = content
	return id, nil
}
func (r *memRooms) Redact(user, device, room, ev, txn, reason string) error {
	if !r.member(user, room) {
		return mxerr.Forbidden("not in room")
	}
	r.redacted = append(r.redacted, ev)
	r.redactedBy = append(r.redactedBy, user)
	return nil
}
func (r *memRooms) CanSee(user, room, ev string) bool { return r.member(user, room) }

func newTestService(t *testing.T) (*Service, *memMedia, *memRooms) {
	t.Helper()
	mm := &memMedia{files: map[string][]byte{}, owner: map[string]string{}}
	mr := &memRooms{members: map[string][]string{"!r:test": {"@a:test", "@b:test"}}, sent: map[string]json.RawMessage{}}
	s := New(Config{}, &memStore{m: map[string]Message{}}, mm, mr)
	var clock atomic.Int64 // ms; every reading advances it a second
	clock.Store(1_700_000_000_000)
	s.SetClock(func() time.Time { return time.UnixMilli(clock.Add(1000)) })
	return s, mm, mr
}

// tone makes mono 48 kHz audio: a 440 Hz tone at amp for secs seconds.
func tone(secs, amp float64) *audio.PCM {
	n := int(secs * 48000)
	p := &audio.PCM{Rate: 48000, Channels: 1, Samples: make([]float32, n)}
	for i := range p.Samples {
		p.Samples[i] = float32(amp * math.Sin(2*math.Pi*440*float64(i)/48000))
	}
	return p
}

func concat(ps ...*audio.PCM) *audio.PCM {
	out := &audio.PCM{Rate: 48000, Channels: 1}
	for _, p := range ps {
		out.Samples = append(out.Samples, p.Samples...)
	}
	return out
}

func encode(t *testing.T, p *audio.PCM, ct string) []byte {
	t.Helper()
	b, err := audio.Encode(p, ct, audio.EncodeOptions{Bitrate: 32000})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func code(err error) string {
	var e *mxerr.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "other: " + err.Error()
}

var (
	alice = Caller{User: "@a:test", Device: "A"}
	bob   = Caller{User: "@b:test", Device: "B"}
	carol = Caller{User: "@c:test", Device: "C"}
	admin = Caller{User: "@root:test", Admin: true}
)

func TestUploadValidation(t *testing.T) {
	s, mm, _ := newTestService(t)
	ogg := encode(t, tone(1, 0.3), audio.Ogg)
	cases := []struct {
		name string
		req  UploadRequest
		code string
	}{
		{"unsupported type", UploadRequest{Content: ogg, ContentType: "video/mp4", DurationMs: 1000}, "M_INVALID_PARAM"},
		{"empty", UploadRequest{ContentType: "audio/ogg", DurationMs: 1000}, "M_INVALID_PARAM"},
		{"no duration", UploadRequest{Content: ogg, DurationMs: 0}, "M_INVALID_PARAM"},
		{"not ogg", UploadRequest{Content: []byte("hello there, not audio"), DurationMs: 1000}, "M_INVALID_PARAM"},
		{"wav labelled ogg", UploadRequest{Content: encode(t, tone(1, 0.3), audio.WAV), ContentType: "audio/ogg", DurationMs: 1000}, "M_INVALID_PARAM"},
		{"mp4 without ftyp", UploadRequest{Content: []byte("0000abcd0000"), ContentType: "audio/mp4", DurationMs: 1000}, "M_INVALID_PARAM"},
		{"bad room", UploadRequest{Content: ogg, DurationMs: 1000, RoomID: "nope"}, "M_INVALID_PARAM"},
		{"not a member", UploadRequest{Content: ogg, DurationMs: 1000, RoomID: "!other:test"}, "M_FORBIDDEN"},
		{"too large", UploadRequest{Content: make([]byte, 9<<20), DurationMs: 1000}, "M_TOO_LARGE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Upload(alice, c.req)
			if code(err) != c.code {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
	if len(mm.files) != 0 {
		t.Fatalf("refused uploads left %d media items", len(mm.files))
	}
	long := UploadRequest{Content: []byte("fLaC...."), ContentType: "audio/flac", DurationMs: 11 * 60 * 1000}
	if _, err := s.Upload(alice, long); code(err) != "M_INVALID_PARAM" {
		t.Fatalf("11 minutes: %v", err)
	}
}

func TestUploadMeasuresAndPosts(t *testing.T) {
	s, mm, mr := newTestService(t)
	ogg := encode(t, concat(tone(1, 0.5), tone(1, 0)), audio.Ogg)
	m, err := s.Upload(alice, UploadRequest{Content: ogg, ContentType: "audio/ogg; codecs=opus", DurationMs: 12345, RoomID: "!r:test"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Verified || m.DurationMs < 1980 || m.DurationMs > 2020 {
		t.Fatalf("duration not measured: %+v", m)
	}
	if m.ContentType != "audio/ogg" || m.SampleRate != 48000 || m.Channels != 1 {
		t.Fatalf("record %+v", m)
	}
	if !bytes.Equal(mm.files[m.MediaID], ogg) {
		t.Fatal("media is not the uploaded bytes")
	}
	var c map[string]any
	if err := json.Unmarshal(mr.sent[m.EventID], &c); err != nil {
		t.Fatal(err)
	}
	if c["msgtype"] != "m.audio" || c["url"] != "mxc://test/"+m.MediaID {
		t.Fatalf("event %v", c)
	}
	if _, ok := c["org.matrix.msc3245.voice"]; !ok {
		t.Fatal("no voice marker")
	}
	blk := c["org.matrix.msc1767.audio"].(map[string]any)
	wf := blk["waveform"].([]any)
	if len(wf) != WaveformPoints || blk["duration"].(float64) != float64(m.DurationMs) {
		t.Fatalf("audio block %v", blk)
	}
	// First half loud, second half silent.
	if wf[10].(float64) < 500 || wf[90].(float64) > 50 {
		t.Fatalf("waveform does not follow the audio: %v", wf)
	}
	// Stored-only formats keep the client's duration.
	m4a := append([]byte{0, 0, 0, 0x20}, []byte("ftypM4A 0000000000000000")...)
	m2, err := s.Upload(bob, UploadRequest{Content: m4a, ContentType: "audio/x-m4a", DurationMs: 4200})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Verified || m2.DurationMs != 4200 || m2.ContentType != "audio/mp4" {
		t.Fatalf("m4a %+v", m2)
	}
}

func TestVisibilityAndDelete(t *testing.T) {
	s, mm, mr := newTestService(t)
	ogg := encode(t, tone(0.5, 0.3), audio.Ogg)
	private, err := s.Upload(alice, UploadRequest{Content: ogg, DurationMs: 500})
	if err != nil {
		t.Fatal(err)
	}
	posted, err := s.Upload(alice, UploadRequest{Content: ogg, DurationMs: 500, RoomID: "!r:test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  Caller
		id   string
		code string
	}{
		{alice, private.ID, ""}, {admin, private.ID, ""}, {bob, private.ID, "M_NOT_FOUND"},
		{bob, posted.ID, ""}, {carol, posted.ID, "M_NOT_FOUND"}, {alice, "missing", "M_NOT_FOUND"},
	} {
		if _, _, err := s.Get(c.who, c.id); code(err) != c.code {
			t.Errorf("%s get %s: %v, want %q", c.who.User, c.id, err, c.code)
		}
	}
	if l, _ := s.ByUser(bob, alice.User); len(l) != 1 || l[0].ID != posted.ID {
		t.Fatalf("bob sees %v", l)
	}
	if l, _ := s.ByUser(alice, alice.User); len(l) != 2 || l[0].ID != posted.ID {
		t.Fatalf("alice sees %v (newest first)", l)
	}
	if _, err := s.ByRoom(carol, "!r:test", func() error { return mxerr.Forbidden("not in room") }); code(err) != "M_FORBIDDEN" {
		t.Fatalf("carol room list: %v", err)
	}
	if l, _ := s.ByRoom(bob, "!r:test", func() error { return nil }); len(l) != 1 {
		t.Fatalf("room list %v", l)
	}
	if _, err := s.StatsFor(bob, alice.User); code(err) != "M_FORBIDDEN" {
		t.Fatalf("bob stats of alice: %v", err)
	}
	st, _ := s.StatsFor(alice, alice.User)
	if st.TotalMessages != 2 || st.TotalSizeBytes != 2*int64(len(ogg)) || st.TotalDurationMs < 980 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := s.Delete(bob, posted.ID); code(err) != "M_FORBIDDEN" {
		t.Fatalf("bob deletes: %v", err)
	}
	red, err := s.Delete(admin, posted.ID)
	if err != nil || !red || len(mr.redacted) != 1 || mr.redacted[0] != posted.EventID {
		t.Fatalf("admin delete: %v %v %v", red, err, mr.redacted)
	}
	// The admin is not in the room, so the owner's name is used.
	if mr.redactedBy[0] != alice.User {
		t.Fatalf("redacted by %v", mr.redactedBy)
	}
	if _, ok := mm.files[posted.MediaID]; ok {
		t.Fatal("media kept after delete")
	}
	if _, _, err := s.Get(alice, posted.ID); code(err) != "M_NOT_FOUND" {
		t.Fatalf("after delete: %v", err)
	}
}

func TestConvert(t *testing.T) {
	s, mm, _ := newTestService(t)
	src, err := s.Upload(alice, UploadRequest{Content: encode(t, tone(1.5, 0.3), audio.Ogg), DurationMs: 1500})
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		req  ConvertRequest
		code string
	}{
		{"mp3 target", ConvertRequest{MessageID: src.ID, TargetFormat: "audio/mpeg"}, "M_INVALID_PARAM"},
		{"no target", ConvertRequest{MessageID: src.ID}, "M_MISSING_PARAM"},
		{"quality range", ConvertRequest{MessageID: src.ID, TargetFormat: "audio/ogg", Quality: 8}, "M_INVALID_PARAM"},
		{"bitrate range", ConvertRequest{MessageID: src.ID, TargetFormat: "audio/ogg", Bitrate: 1000}, "M_INVALID_PARAM"},
		{"bitrate for wav", ConvertRequest{MessageID: src.ID, TargetFormat: "audio/wav", Bitrate: 128000}, "M_INVALID_PARAM"},
		{"no message", ConvertRequest{TargetFormat: "audio/wav"}, "M_MISSING_PARAM"},
	}
	for _, c := range bad {
		if _, err := s.Convert(alice, c.req); code(err) != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	if _, err := s.Convert(bob, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/wav"}); code(err) != "M_NOT_FOUND" {
		t.Fatalf("bob converts a private message: %v", err)
	}
	res, err := s.Convert(alice, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/x-wav"})
	if err != nil {
		t.Fatal(err)
	}
	out := mm.files[strings.TrimPrefix(res.ContentURI, "mxc://test/")]
	info, err := audio.Probe(out, audio.WAV)
	if err != nil || info.Rate != 48000 || info.Channels != 1 {
		t.Fatalf("converted wav %+v %v", info, err)
	}
	if d := info.Duration.Milliseconds(); d < 1480 || d > 1520 {
		t.Fatalf("wav duration %d ms", d)
	}
	if res.Bitrate != 48000*16 || res.Size != int64(len(out)) {
		t.Fatalf("result %+v", res)
	}
	// Stored-only sources say what converts.
	m4a := append([]byte{0, 0, 0, 0x20}, []byte("ftypM4A 0000000000000000")...)
	m2, _ := s.Upload(alice, UploadRequest{Content: m4a, ContentType: "audio/mp4", DurationMs: 1000})
	if _, err := s.Convert(alice, ConvertRequest{MessageID: m2.ID, TargetFormat: "audio/ogg"}); code(err) != "M_INVALID_PARAM" ||
		!strings.Contains(err.Error(), "audio/ogg") {
		t.Fatalf("m4a convert: %v", err)
	}
}

func TestOptimize(t *testing.T) {
	s, mm, _ := newTestService(t)
	// 1 s speech-level tone, 3 s of silence, 1 s tone: quiet (-30 dBFS).
	pcm := concat(tone(1, 0.045), tone(3, 0), tone(1, 0.045))
	wav, err := audio.Encode(pcm, audio.WAV, audio.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := s.Upload(alice, UploadRequest{Content: wav, ContentType: "audio/wav", DurationMs: 5000})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Optimize(alice, OptimizeRequest{MessageID: src.ID, RemoveSilence: true, NormalizeVolume: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.RemovedSilenceMs < 2500 || res.DurationMs > 2500 || res.GainDB < 5 {
		t.Fatalf("optimize %+v", res)
	}
	out, err := audio.Decode(mm.files[strings.TrimPrefix(res.ContentURI, "mxc://test/")], audio.WAV, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rms := audio.RMSDBFS(out); rms < -26 {
		t.Fatalf("not normalised: %.1f dBFS", rms)
	}
	// A WAV target size is met by shape: 40 KB of 2.2 s needs <= ~18 kB/s.
	res, err = s.Optimize(alice, OptimizeRequest{MessageID: src.ID, TargetSizeKB: 40, RemoveSilence: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size > 40*1024 || res.ContentType != "audio/wav" || res.SampleRate >= 48000 {
		t.Fatalf("wav fit %+v", res)
	}
	if _, err := s.Optimize(alice, OptimizeRequest{MessageID: src.ID, TargetSizeKB: 10, PreserveQuality: true}); code(err) != "M_INVALID_PARAM" {
		t.Fatalf("impossible wav target: %v", err)
	}
	if _, err := s.Optimize(alice, OptimizeRequest{MessageID: src.ID, TargetSizeKB: 5}); code(err) != "M_INVALID_PARAM" {
		t.Fatalf("target below the seed's range: %v", err)
	}
	// Opus: 12 s of tone at 32 kb/s, asked for 18 KB (12 kb/s).
	big, err := s.Upload(alice, UploadRequest{Content: encode(t, tone(12, 0.3), audio.Ogg), DurationMs: 12000})
	if err != nil {
		t.Fatal(err)
	}
	res, err = s.Optimize(alice, OptimizeRequest{MessageID: big.ID, TargetSizeKB: 18})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size > 18*1024 || res.Size < 12*1024 || res.ContentType != "audio/ogg" || res.Bitrate >= 32000 {
		t.Fatalf("opus fit %+v", res)
	}
	if _, err := s.Optimize(alice, OptimizeRequest{MessageID: big.ID, TargetSizeKB: 10, PreserveQuality: true}); code(err) != "M_INVALID_PARAM" {
		t.Fatalf("preserve_quality below 24 kb/s: %v", err)
	}
}

func TestWavShapes(t *testing.T) {
	cases := []struct {
		rate, ch int
		preserve bool
		first    wavShape
		last     wavShape
	}{
		{48000, 2, false, wavShape{48000, 2, 16}, wavShape{8000, 1, 8}},
		{48000, 1, true, wavShape{48000, 1, 16}, wavShape{16000, 1, 16}},
		{8000, 1, true, wavShape{8000, 1, 16}, wavShape{8000, 1, 16}},
		{16000, 1, false, wavShape{16000, 1, 16}, wavShape{8000, 1, 8}},
	}
	for _, c := range cases {
		sh := wavShapes(c.rate, c.ch, c.preserve)
		if sh[0] != c.first || sh[len(sh)-1] != c.last {
			t.Errorf("%d/%d/%v: %v", c.rate, c.ch, c.preserve, sh)
		}
		for i := 1; i < len(sh); i++ {
			a, b := sh[i-1], sh[i]
			if a.rate*a.channels*a.bits < b.rate*b.channels*b.bits {
				t.Errorf("%v grows after %v", b, a)
			}
		}
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"audio/ogg; codecs=opus": "audio/ogg", "AUDIO/X-WAV": "audio/wav", "audio/x-m4a": "audio/mp4",
		"audio/mp3": "audio/mpeg", "audio/x-flac": "audio/flac", "audio/webm;codecs=opus": "audio/webm",
	} {
		if got := canonical(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// TestProcessingSlots: with every slot taken, a conversion waits for one
// instead of decoding beside it (memory stays MaxConcurrent × budget).
func TestProcessingSlots(t *testing.T) {
	s, _, _ := newTestService(t)
	src, err := s.Upload(alice, UploadRequest{Content: encode(t, tone(0.2, 0.3), audio.Ogg), DurationMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < s.cfg.MaxConcurrent; i++ {
		s.acquire()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Convert(alice, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/wav"})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("conversion ran with no free slot (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	s.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestExcerpt: short audio calibrates on itself; long audio on eight
// evenly spaced 5 s pieces, first and last included, with the size limit
// scaled to their share.
func TestExcerpt(t *testing.T) {
	short := tone(60, 0.3)
	if ex, l := excerpt(short, 100000); ex != short || l != 100000 {
		t.Fatal("60 s should calibrate on itself")
	}
	long := &audio.PCM{Rate: 48000, Channels: 1, Samples: make([]float32, 300*48000)}
	for i := range long.Samples {
		long.Samples[i] = float32(i) // position marks
	}
	ex, l := excerpt(long, 1_000_128)
	if ex.Frames() != 8*5*48000 {
		t.Fatalf("excerpt is %d frames", ex.Frames())
	}
	if ex.Samples[0] != 0 || int(ex.Samples[len(ex.Samples)-1]) < 300*48000-10 {
		t.Fatal("excerpt does not span the audio")
	}
	if want := int64(128 + 1_000_000*40/300); l != want {
		t.Fatalf("limit share %d, want %d", l, want)
	}
}

// TestAdminMediaDeleteHidesMessage: media deleted or purged through the
// media admin API takes its voice message out of lists, stats and gets.
func TestAdminMediaDeleteHidesMessage(t *testing.T) {
	s, mm, _ := newTestService(t)
	ogg := encode(t, tone(0.3, 0.3), audio.Ogg)
	keep, _ := s.Upload(alice, UploadRequest{Content: ogg, DurationMs: 300})
	gone, _ := s.Upload(alice, UploadRequest{Content: ogg, DurationMs: 300, RoomID: "!r:test"})
	_ = mm.Delete(gone.MediaID)
	if l, _ := s.ByUser(alice, alice.User); len(l) != 1 || l[0].ID != keep.ID {
		t.Fatalf("list %v", l)
	}
	if l, _ := s.ByRoom(bob, "!r:test", func() error { return nil }); len(l) != 0 {
		t.Fatalf("room list %v", l)
	}
	if st, _ := s.StatsFor(alice, alice.User); st.TotalMessages != 1 || st.TotalSizeBytes != int64(len(ogg)) {
		t.Fatalf("stats %+v", st)
	}
	if _, _, err := s.Get(alice, gone.ID); code(err) != "M_NOT_FOUND" {
		t.Fatalf("get: %v", err)
	}
	long := UploadRequest{Content: ogg, DurationMs: 300, SessionID: strings.Repeat("s", 256)}
	if _, err := s.Upload(alice, long); code(err) != "M_INVALID_PARAM" {
		t.Fatalf("long session_id: %v", err)
	}
}

// TestSettleInterruptedUpload: a record committed for a room whose event
// was never recorded (a crash between the two commits) is finished on
// the next read, with the same transaction ID, once it is old enough not
// to be an upload still in flight.
func TestSettleInterruptedUpload(t *testing.T) {
	s, mm, mr := newTestService(t)
	flac := []byte("fLaC0000")
	mediaID, _ := mm.Upload(alice.User, bytes.NewReader(flac), "audio/flac", "v.flac")
	now := s.now().UnixMilli()
	st := s.st.(*memStore)
	_ = st.PutVoice(Message{ID: "young", Owner: alice.User, Device: "A", MediaID: mediaID, ContentType: "audio/flac",
		Size: 8, DurationMs: 1000, RoomID: "!r:test", CreatedMs: now})
	_ = st.PutVoice(Message{ID: "crashed", Owner: alice.User, Device: "A", MediaID: mediaID, ContentType: "audio/flac",
		Size: 8, DurationMs: 1000, RoomID: "!r:test", CreatedMs: now - 2*60*1000})
	// A stranger's read does not make the server re-send (or decode).
	if l, _ := s.ByRoom(bob, "!r:test", func() error { return nil }); len(l) != 0 || len(mr.sent) != 0 {
		t.Fatalf("bob's read settled: %+v %v", l, mr.sent)
	}
	if l, _ := s.ByUser(alice, alice.User); len(l) != 2 {
		t.Fatalf("alice's list %+v", l)
	}
	l, _ := s.ByRoom(bob, "!r:test", func() error { return nil })
	if len(l) != 1 || l[0].ID != "crashed" || l[0].EventID != "$voice-crashed" {
		t.Fatalf("room list %+v", l)
	}
	if _, ok := mr.sent["$voice-crashed"]; !ok || len(mr.sent) != 1 {
		t.Fatalf("sent %v", mr.sent)
	}
	if m, _ := st.Voice("crashed"); m.EventID != "$voice-crashed" {
		t.Fatalf("event ID not stored: %+v", m)
	}
	if m, _ := st.Voice("young"); m.EventID != "" {
		t.Fatal("an upload possibly in flight was re-sent")
	}
}

// TestDerivedReused: the same conversion asked twice is one media item;
// another request, or another caller, gets its own; deleting the message
// deletes its conversions.
func TestDerivedReused(t *testing.T) {
	s, mm, _ := newTestService(t)
	src, err := s.Upload(alice, UploadRequest{Content: encode(t, tone(0.5, 0.3), audio.Ogg), DurationMs: 500})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Convert(alice, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/wav"})
	if err != nil {
		t.Fatal(err)
	}
	n := len(mm.files)
	b, err := s.Convert(alice, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/wav"})
	if err != nil || b != a || len(mm.files) != n {
		t.Fatalf("repeat: %+v vs %+v, %d files then %d", b, a, n, len(mm.files))
	}
	c, _ := s.Convert(alice, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/ogg", Quality: 64})
	d, _ := s.Convert(admin, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/wav"})
	if c.ContentURI == a.ContentURI || d.ContentURI == a.ContentURI || len(mm.files) != n+2 {
		t.Fatalf("distinct requests shared media: %s %s %s", a.ContentURI, c.ContentURI, d.ContentURI)
	}
	o1, _ := s.Optimize(alice, OptimizeRequest{MessageID: src.ID, NormalizeVolume: true})
	o2, _ := s.Optimize(alice, OptimizeRequest{MessageID: src.ID, NormalizeVolume: true})
	if o1.ContentURI != o2.ContentURI || o1.GainDB != o2.GainDB {
		t.Fatalf("optimize repeat: %+v vs %+v", o1, o2)
	}
	if _, err := s.Delete(alice, src.ID); err != nil {
		t.Fatal(err)
	}
	if len(mm.files) != 0 {
		t.Fatalf("%d media items left after deleting the message", len(mm.files))
	}
}

// TestSettleBacksOffAndSkipsGoneMedia: a re-send the room refuses is not
// retried on every read, and one whose media is gone is never sent.
func TestSettleBacksOffAndSkipsGoneMedia(t *testing.T) {
	s, mm, mr := newTestService(t)
	mediaID, _ := mm.Upload(alice.User, bytes.NewReader([]byte("fLaC0000")), "audio/flac", "v.flac")
	old := s.now().UnixMilli() - 2*60*1000
	st := s.st.(*memStore)
	_ = st.PutVoice(Message{ID: "left", Owner: alice.User, MediaID: mediaID, ContentType: "audio/flac", RoomID: "!gone:test", CreatedMs: old})
	_ = st.PutVoice(Message{ID: "nomedia", Owner: alice.User, MediaID: "missing", ContentType: "audio/flac", RoomID: "!r:test", CreatedMs: old})
	_, _ = s.ByUser(alice, alice.User)
	if m, _ := st.Voice("left"); m.SettleMs == 0 || m.EventID != "" {
		t.Fatalf("refused re-send not recorded: %+v", m)
	}
	first, _ := st.Voice("left")
	_, _ = s.ByUser(alice, alice.User)
	if m, _ := st.Voice("left"); m.SettleMs != first.SettleMs {
		t.Fatal("re-sent again within the back-off")
	}
	if len(mr.sent) != 0 {
		t.Fatalf("sent %v", mr.sent)
	}
}

// TestRememberConcurrent: results of concurrent conversions are all kept
// (none lost to a stale write), and deleting the message deletes them.
func TestRememberConcurrent(t *testing.T) {
	s, mm, _ := newTestService(t)
	src, err := s.Upload(alice, UploadRequest{Content: encode(t, tone(0.3, 0.3), audio.Ogg), DurationMs: 300})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, q := range []int{32, 48, 64, 96} {
		wg.Add(1)
		go func(q int) {
			defer wg.Done()
			_, _ = s.Convert(alice, ConvertRequest{MessageID: src.ID, TargetFormat: "audio/ogg", Quality: q})
		}(q)
	}
	wg.Wait()
	if m, _ := s.st.Voice(src.ID); len(m.Derived) != 4 {
		t.Fatalf("%d results remembered, want 4", len(m.Derived))
	}
	if _, err := s.Delete(alice, src.ID); err != nil {
		t.Fatal(err)
	}
	if len(mm.files) != 0 {
		t.Fatalf("%d media items left", len(mm.files))
	}
}
