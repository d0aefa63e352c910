package voice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lichen-hs/lichen/core/audio"
	"github.com/lichen-hs/lichen/core/ids"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// Service is the voice-message API.
type Service struct {
	cfg   Config
	st    Store
	media Media
	rooms Rooms
	now   func() time.Time
	slots chan struct{} // a token per running decode (MaxConcurrent)
}

// New makes the service; zero limits take DefaultConfig's.
func New(cfg Config, st Store, media Media, rooms Rooms) *Service {
	def := DefaultConfig()
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = def.MaxSize
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = def.MaxDuration
	}
	if cfg.MaxProcessSamples <= 0 {
		cfg.MaxProcessSamples = def.MaxProcessSamples
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = def.MaxConcurrent
	}
	return &Service{cfg: cfg, st: st, media: media, rooms: rooms, now: time.Now, slots: make(chan struct{}, cfg.MaxConcurrent)}
}

// acquire waits for a processing slot; release gives it back.
func (s *Service) acquire() { s.slots <- struct{}{} }
func (s *Service) release() { <-s.slots }

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Config returns the limits.
func (s *Service) Config() Config { return s.cfg }

// Caller is who asks: the user, their device (for the room event's
// transaction scope) and whether they are a server admin.
type Caller struct {
	User   string
	Device string
	Admin  bool
}

// WaveformPoints is how many values an upload's waveform has: Element
// sends about 100 (MSC3246 allows 30 to 120).
const WaveformPoints = 100

// UploadRequest is POST /voice/upload's body, decoded.
type UploadRequest struct {
	Content     []byte
	ContentType string // "" is audio/ogg, as the seed says
	DurationMs  int64
	RoomID      string
	SessionID   string
}

// Upload stores a voice message and, with a room, posts it there. Nothing
// is kept when any step fails: a refused room send removes the record and
// the media again.
func (s *Service) Upload(c Caller, req UploadRequest) (Message, error) {
	ct := "audio/ogg"
	if req.ContentType != "" {
		ct = canonical(req.ContentType)
	}
	if !decodable(ct) && !isStoredOnly(ct) {
		return Message{}, mxerr.InvalidParam(fmt.Sprintf("content_type %q is not supported; supported: %s", req.ContentType, supportedList()))
	}
	if len(req.Content) == 0 {
		return Message{}, mxerr.InvalidParam("content is empty")
	}
	if int64(len(req.Content)) > s.cfg.MaxSize {
		return Message{}, mxerr.TooLarge(fmt.Sprintf("voice message is larger than %d bytes", s.cfg.MaxSize))
	}
	if req.DurationMs <= 0 {
		return Message{}, mxerr.InvalidParam("duration_ms must be a positive integer")
	}
	if req.RoomID != "" {
		if _, _, err := ids.ParseRoomID(req.RoomID); err != nil {
			return Message{}, mxerr.InvalidParam("room_id is not a room ID")
		}
	}
	m := Message{
		ID: newID(), Owner: c.User, ContentType: ct, Size: int64(len(req.Content)),
		DurationMs: req.DurationMs, RoomID: req.RoomID, SessionID: req.SessionID, CreatedMs: s.now().UnixMilli(),
		Device: c.Device,
	}
	var waveform []int
	if decodable(ct) {
		info, err := audio.Probe(req.Content, ct)
		if err != nil {
			return Message{}, mxerr.InvalidParam(fmt.Sprintf("content is not valid %s: %v", ct, err))
		}
		// The measured duration wins over the client's: it is what
		// players show, and what stats add up.
		m.Verified, m.DurationMs, m.SampleRate, m.Channels = true, info.Duration.Milliseconds(), info.Rate, info.Channels
		if m.DurationMs <= 0 {
			return Message{}, mxerr.InvalidParam("content has no audio")
		}
	} else if !looksLike(ct, req.Content) {
		return Message{}, mxerr.InvalidParam(fmt.Sprintf("content is not %s", ct))
	}
	// The duration is checked before anything is decoded: a header may
	// claim hours.
	if m.DurationMs > s.cfg.MaxDuration.Milliseconds() {
		return Message{}, mxerr.InvalidParam(fmt.Sprintf("voice message is longer than %d ms", s.cfg.MaxDuration.Milliseconds()))
	}
	if len(req.SessionID) > 255 {
		return Message{}, mxerr.InvalidParam("session_id is longer than 255 bytes")
	}
	if m.Verified {
		waveform = s.waveform(req.Content, ct)
	}

	mediaID, err := s.media.Upload(c.User, bytes.NewReader(req.Content), ct, "voice-message"+extension(ct))
	if err != nil {
		return Message{}, err
	}
	m.MediaID = mediaID
	if err := s.st.PutVoice(m); err != nil {
		_ = s.media.Delete(mediaID)
		return Message{}, err
	}
	if m.RoomID == "" {
		return m, nil
	}
	content, _ := json.Marshal(EventContent(s.media.MXC(mediaID), m, waveform))
	eventID, err := s.rooms.Send(c.User, c.Device, m.RoomID, txnID(m), content)
	if err != nil {
		_ = s.st.DeleteVoice(m.ID)
		_ = s.media.Delete(mediaID)
		return Message{}, err
	}
	m.EventID = eventID
	if err := s.st.UpdateVoice(m.ID, func(r *Message) error { r.EventID = eventID; return nil }); err != nil {
		return Message{}, err
	}
	return m, nil
}

// waveform computes the MSC3246 waveform while decoding, without
// holding the decoded audio (a 5-minute message would be 55 MiB of
// samples); audio too long for the sample budget gets none (clients then
// draw a flat line), never a made-up one.
func (s *Service) waveform(content []byte, ct string) []int {
	s.acquire()
	defer s.release()
	wf, err := audio.WaveformOf(content, ct, WaveformPoints, s.cfg.MaxProcessSamples)
	if err != nil {
		return nil
	}
	return wf
}

// EventContent is the m.audio event of a voice message: the spec's
// m.audio fields (info.duration, mimetype, size) plus the extensible
// event blocks that mark it as a voice message (MSC3245
// "org.matrix.msc3245.voice", MSC1767 "org.matrix.msc1767.audio" with
// duration and waveform) in the unstable names every client reads.
func EventContent(mxc string, m Message, waveform []int) map[string]any {
	name := "Voice message" + extension(m.ContentType)
	audioBlock := map[string]any{"duration": m.DurationMs}
	if len(waveform) > 0 {
		audioBlock["waveform"] = waveform
	}
	return map[string]any{
		"msgtype":                 "m.audio",
		"body":                    "Voice message",
		"url":                     mxc,
		"info":                    map[string]any{"mimetype": m.ContentType, "size": m.Size, "duration": m.DurationMs},
		"org.matrix.msc1767.text": "Voice message",
		"org.matrix.msc1767.file": map[string]any{
			"url": mxc, "name": name, "mimetype": m.ContentType, "size": m.Size,
		},
		"org.matrix.msc1767.audio": audioBlock,
		"org.matrix.msc3245.voice": map[string]any{},
	}
}

// visible reports whether the caller may see m: its owner and admins
// always, anyone else only through the room event carrying it.
func (s *Service) visible(c Caller, m Message) bool {
	// Media an admin deleted or purged takes its message with it.
	if !s.media.Exists(m.MediaID) {
		return false
	}
	if c.User == m.Owner || c.Admin {
		return true
	}
	return m.EventID != "" && s.rooms.CanSee(c.User, m.RoomID, m.EventID)
}

// txnID is the transaction ID of a message's room event.
func txnID(m Message) string { return "voice-" + m.ID }

// settleAfter is how old a record for a room with no event must be before
// it is taken for an upload interrupted between the record's commit and
// the event's (a crash): younger ones may be an upload still sending.
// settleRetry is how long a failed re-send (the owner left the room)
// waits before the next try.
const (
	settleAfter = time.Minute
	settleRetry = 10 * time.Minute
)

// settle finishes an interrupted upload: a record for a room with no
// event ID. The send is repeated with the same device and transaction
// ID, so if the event was sent before the crash the room gives back its
// ID instead of sending a second one (spec: transaction identifiers);
// if it never was, it is sent now. Only the owner's or an admin's reads
// do it (a stranger's list must not make the server decode audio), with
// a back-off after a failure, and never for media that is gone.
func (s *Service) settle(c Caller, m *Message) {
	now := s.now().UnixMilli()
	if m.RoomID == "" || m.EventID != "" || now-m.CreatedMs < settleAfter.Milliseconds() ||
		now-m.SettleMs < settleRetry.Milliseconds() || (c.User != m.Owner && !c.Admin) || !s.media.Exists(m.MediaID) {
		return
	}
	var waveform []int
	if b, err := s.media.Open(m.MediaID); err == nil && m.Verified {
		waveform = s.waveform(b, m.ContentType)
	}
	content, _ := json.Marshal(EventContent(s.media.MXC(m.MediaID), *m, waveform))
	eventID, err := s.rooms.Send(m.Owner, m.Device, m.RoomID, txnID(*m), content)
	_ = s.st.UpdateVoice(m.ID, func(r *Message) error {
		if err != nil {
			r.SettleMs = now
		} else {
			r.EventID = eventID
		}
		return nil
	})
	if err == nil {
		m.EventID = eventID
	}
}

// get loads a message the caller may see; others' invisible messages are
// 404 like missing ones, so IDs can't be probed.
func (s *Service) get(c Caller, id string) (Message, error) {
	m, err := s.st.Voice(id)
	if err == nil {
		s.settle(c, &m)
	}
	if errors.Is(err, ErrNotFound) || (err == nil && !s.visible(c, m)) {
		return Message{}, mxerr.NotFound("voice message not found")
	}
	return m, err
}

// Get returns a message and its audio.
func (s *Service) Get(c Caller, id string) (Message, []byte, error) {
	m, err := s.get(c, id)
	if err != nil {
		return Message{}, nil, err
	}
	b, err := s.media.Open(m.MediaID)
	if err != nil {
		return Message{}, nil, err
	}
	return m, b, nil
}

// Delete removes a message (its owner or an admin). A posted message's
// room event is redacted first (by the admin when the room lets them,
// else as the owner, who may always redact their own events; the fixed
// transaction ID makes a retry after a crash the same redaction), so the room never keeps pointing at audio the
// record no longer describes; then the record, then the media. A
// redaction the room refuses (the owner has left it) does not stop the
// delete: the answer says it did not happen.
func (s *Service) Delete(c Caller, id string) (bool, error) {
	m, err := s.get(c, id)
	if err != nil {
		return false, err
	}
	if c.User != m.Owner && !c.Admin {
		return false, mxerr.Forbidden("only the sender or a server admin may delete a voice message")
	}
	redacted := false
	if m.EventID != "" {
		// An admin redacts in their own name when the room lets them;
		// otherwise, as for the owner, in the owner's name.
		if c.User != m.Owner {
			redacted = s.rooms.Redact(c.User, c.Device, m.RoomID, m.EventID, "voice-delete-"+m.ID, "voice message deleted by a server admin") == nil
		}
		if !redacted {
			redacted = s.rooms.Redact(m.Owner, "", m.RoomID, m.EventID, "voice-delete-"+m.ID, "voice message deleted") == nil
		}
	}
	if err := s.st.DeleteVoice(m.ID); err != nil {
		return false, err
	}
	_ = s.media.Delete(m.MediaID)
	// Conversions of a deleted message go with it.
	for _, d := range m.Derived {
		_ = s.media.Delete(d.MediaID)
	}
	return redacted, nil
}

// ByUser lists a user's messages the caller may see.
func (s *Service) ByUser(c Caller, user string) ([]Message, error) {
	all, err := s.st.VoiceByUser(user)
	if err != nil {
		return nil, err
	}
	for i := range all {
		s.settle(c, &all[i])
	}
	return s.filter(c, all), nil
}

// ByRoom lists a room's messages the caller may see; a caller who cannot
// read the room at all is refused.
func (s *Service) ByRoom(c Caller, roomID string, canRead func() error) ([]Message, error) {
	if !c.Admin {
		if err := canRead(); err != nil {
			return nil, err
		}
	}
	all, err := s.st.VoiceByRoom(roomID)
	if err != nil {
		return nil, err
	}
	for i := range all {
		s.settle(c, &all[i])
	}
	out := all[:0]
	for _, m := range all {
		// Only posted messages belong to the room's history.
		if m.EventID != "" && s.media.Exists(m.MediaID) && (c.Admin || s.rooms.CanSee(c.User, m.RoomID, m.EventID)) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *Service) filter(c Caller, all []Message) []Message {
	out := all[:0]
	for _, m := range all {
		if s.visible(c, m) {
			out = append(out, m)
		}
	}
	return out
}

// Stats are a user's totals.
type Stats struct {
	UserID          string `json:"user_id"`
	TotalMessages   int    `json:"total_messages"`
	TotalDurationMs int64  `json:"total_duration_ms"`
	TotalSizeBytes  int64  `json:"total_size_bytes"`
}

// StatsFor totals a user's messages: for themselves or an admin only, as
// they count private messages too.
func (s *Service) StatsFor(c Caller, user string) (Stats, error) {
	if c.User != user && !c.Admin {
		return Stats{}, mxerr.Forbidden("only the user or a server admin may see a user's voice statistics")
	}
	all, err := s.st.VoiceByUser(user)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{UserID: user}
	for _, m := range all {
		if !s.media.Exists(m.MediaID) {
			continue
		}
		st.TotalMessages++
		st.TotalDurationMs += m.DurationMs
		st.TotalSizeBytes += m.Size
	}
	return st, nil
}

// newID is 24 random characters of [A-Za-z0-9] (143 bits).
func newID() string { return ids.NewAlphanumericID(24) }

// ValidID reports whether id could be a message ID (checked before any
// lookup).
func ValidID(id string) bool { return ids.ValidToken(id, 64) }

func isStoredOnly(ct string) bool {
	for _, f := range storedOnly {
		if f == ct {
			return true
		}
	}
	return false
}

// MXC is the content URI of a message's media.
func (s *Service) MXC(mediaID string) string { return s.media.MXC(mediaID) }
