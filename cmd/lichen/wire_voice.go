package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/lichen-hs/lichen/core/media"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/voice"
)

// mountVoice wires the voice-message API (core/voice) on the store, the
// content repository and the rooms, and mounts /voice/*.
func mountVoice(a *app, ms *media.Service, cfg VoiceConfig) {
	vs := voice.New(cfg.service(), a.store, voiceMedia{ms}, voiceRooms{a.rooms})
	a.http.MountVoice(vs, a.rooms.CanRead)
}

// voiceMedia adapts core/media to voice.Media.
type voiceMedia struct{ *media.Service }

func (m voiceMedia) Open(id string) ([]byte, error) {
	c, err := m.Download(context.Background(), id, 0)
	if err != nil {
		return nil, err
	}
	defer c.Body.Close()
	return io.ReadAll(c.Body)
}

// voiceRooms adapts core/rooms to voice.Rooms.
type voiceRooms struct{ r *rooms.Service }

func (v voiceRooms) Send(user, device, roomID, txnID string, content json.RawMessage) (string, error) {
	return v.r.Send(rooms.Sender{User: user, Device: device}, roomID, "m.room.message", txnID, content)
}

func (v voiceRooms) Redact(user, device, roomID, eventID, txnID, reason string) error {
	_, err := v.r.Redact(rooms.Sender{User: user, Device: device}, roomID, eventID, txnID, reason)
	return err
}

func (v voiceRooms) CanSee(user, roomID, eventID string) bool {
	rec, err := v.r.Event(user, roomID, eventID)
	return err == nil && rec.RedactedBy == ""
}
