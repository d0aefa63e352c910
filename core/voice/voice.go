// Package voice is the voice-message API of the founding seed (section 9:
// /voice/config, upload, get, delete, per-user and per-room lists, stats,
// convert and optimize). A voice message is ordinary media (core/media)
// plus a record saying who recorded it, how long it is and which room
// event carries it; posted to a room it is an m.audio event with the
// MSC3245 voice marker and an MSC1767 audio block with a waveform
// (MSC3246), which is what Element, Element X and FluffyChat render as a
// voice message. Conversion and optimisation decode and re-encode the
// audio with core/audio, in pure Go.
package voice

import (
	"encoding/json"
	"errors"
	"io"
	"time"
)

// Message is one stored voice message.
type Message struct {
	ID          string `json:"id"`
	Owner       string `json:"owner"`
	MediaID     string `json:"media_id"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	DurationMs  int64  `json:"duration_ms"`
	SampleRate  int    `json:"sample_rate,omitempty"`
	Channels    int    `json:"channels,omitempty"`
	// Verified is true when the server parsed the audio itself (the
	// duration is measured); false for formats it only stores, whose
	// duration is the client's.
	Verified  bool   `json:"verified"`
	RoomID    string `json:"room_id,omitempty"`
	EventID   string `json:"event_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	// Device is the uploader's device: the room event's transaction is
	// scoped to it, so a re-send after a crash is the same event.
	Device string `json:"device,omitempty"`
	// SettleMs is when an interrupted upload's room event was last tried
	// again (see Service.settle), for backing off.
	SettleMs  int64 `json:"settle_ms,omitempty"`
	CreatedMs int64 `json:"created_ms"`
	// Derived are the results of convert and optimize, by request, so a
	// repeated request returns the same media.
	Derived map[string]Derived `json:"derived,omitempty"`
}

// Derived is one convert or optimize result: media owned by whoever asked.
type Derived struct {
	Owner   string         `json:"owner"`
	MediaID string         `json:"media_id"`
	Result  OptimizeResult `json:"result"`
}

// Store keeps the records (boltstore implements it). Lists are newest
// first.
type Store interface {
	PutVoice(m Message) error
	// UpdateVoice changes a record atomically (ErrNotFound when it is
	// gone); fn's error aborts the change.
	UpdateVoice(id string, fn func(m *Message) error) error
	Voice(id string) (Message, error) // ErrNotFound
	DeleteVoice(id string) error
	VoiceByUser(user string) ([]Message, error)
	VoiceByRoom(roomID string) ([]Message, error)
}

// Media is the content repository, as far as voice messages need it.
type Media interface {
	Upload(user string, body io.Reader, contentType, filename string) (mediaID string, err error)
	MXC(mediaID string) string
	Open(mediaID string) ([]byte, error)
	Delete(mediaID string) error
	// Exists reports whether the media item is still stored (an admin
	// may delete or purge media behind the voice API's back).
	Exists(mediaID string) bool
}

// Rooms sends and redacts the room events of voice messages and says
// whether a user may see one (CanSee is false for a redacted event: a
// moderator's redaction hides the voice message too).
type Rooms interface {
	Send(user, device, roomID, txnID string, content json.RawMessage) (eventID string, err error)
	Redact(user, device, roomID, eventID, txnID, reason string) error
	CanSee(user, roomID, eventID string) bool
}

// Config are the limits.
type Config struct {
	// MaxSize is the largest voice message, in bytes of audio.
	MaxSize int64
	// MaxDuration is the longest voice message.
	MaxDuration time.Duration
	// MaxProcessSamples caps decoded samples (×4 bytes) for conversion,
	// optimisation and waveforms: the memory one request may take.
	MaxProcessSamples int
	// MaxConcurrent is how many decodes (waveforms, conversions,
	// optimisations) run at once; the rest wait their turn, so memory
	// stays within MaxConcurrent × MaxProcessSamples × 4 bytes.
	MaxConcurrent int
}

// DefaultConfig suits a home hub: 10 minutes, 8 MiB (10 minutes of Opus
// at 32 kb/s is 2.4 MB; WAV is the format that reaches the cap), 16M
// samples (64 MiB of float32, 5.8 minutes of 48 kHz mono) per request,
// and two such requests at a time.
func DefaultConfig() Config {
	return Config{MaxSize: 8 << 20, MaxDuration: 10 * time.Minute, MaxProcessSamples: 16 << 20, MaxConcurrent: 2}
}

// Errors the service returns besides *mxerr.Error.
var (
	ErrNotFound = errors.New("voice: not found")
)
