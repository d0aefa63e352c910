package transport

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"slices"
	"strings"

	"github.com/lichen-hs/lichen/core/audio"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/voice"
	"github.com/lichen-hs/lichen/transport/codec"
)

// MountVoice registers the seed's voice-message API (section 9) under the
// client prefixes. canRead says whether a user may read a room (for
// /voice/room/{roomId}). Every endpoint but /voice/config needs a token:
// the seed lists some as public, but they would list and serve private
// rooms' audio to anyone.
func (s *Server) MountVoice(vs *voice.Service, canRead func(user, roomID string) error) {
	cfg := vs.Config()
	caller := func(r *Request) voice.Caller {
		return voice.Caller{User: r.Session.UserID, Device: r.Session.DeviceID, Admin: r.Session.Admin}
	}
	s.r.client("GET", "/voice/config", authNone, func(r *Request) (any, error) {
		return map[string]any{
			// What /voice/upload accepts; the decodable ones are checked
			// and measured, the others kept as sent.
			"supported_formats":   voice.UploadFormats(),
			"max_size_bytes":      cfg.MaxSize,
			"max_duration_ms":     cfg.MaxDuration.Milliseconds(),
			"default_sample_rate": 48000,
			"default_channels":    1,
			// Exactly what /voice/convert and /voice/optimize can do.
			"convert": map[string]any{
				"source_formats": audio.Decodable(),
				"target_formats": audio.Encodable(),
				"quality_kbps":   map[string]int{"min": 32, "max": 320},
				"bitrate":        map[string]int{"min": 64000, "max": 320000},
			},
			"optimize": map[string]any{
				"source_formats":   audio.Decodable(),
				"remove_silence":   true,
				"normalize_volume": true,
				"target_size_kb":   map[string]int{"min": 10, "max": 10000},
				// Opus and MP3 sources are re-encoded as Opus; WAV
				// stays WAV (rate, channels and sample size shrink).
				"output_formats": map[string]string{"audio/ogg": "audio/ogg", "audio/mpeg": "audio/ogg", "audio/wav": "audio/wav"},
			},
			"max_process_duration_ms": int64(cfg.MaxProcessSamples) * 1000 / 48000,
		}, nil
	})

	// upload reads its own body: a base64 voice message is larger than
	// the general request limit (MaxBodyBytes), so its limit is the
	// voice size cap in base64, plus room for the other fields.
	bodyLimit := cfg.MaxSize*4/3 + 64<<10
	upload := func(r *Request) (any, error) {
		if err := s.limiter.allow("media", r.Session.UserID); err != nil {
			return nil, err
		}
		raw, err := s.readLimited(r, bodyLimit)
		if err != nil {
			return nil, err
		}
		r.body, r.bodyErr = codec.RequestJSON(string(r.Ctx.Request.Header.ContentType()), raw, codec.Limits{})
		var body struct {
			Content     *string          `json:"content"`
			ContentType string           `json:"content_type"`
			DurationMs  *json.RawMessage `json:"duration_ms"`
			RoomID      string           `json:"room_id"`
			SessionID   string           `json:"session_id"`
		}
		if err := r.Decode(&body); err != nil {
			return nil, err
		}
		if body.Content == nil {
			return nil, mxerr.MissingParam("content is required")
		}
		if body.DurationMs == nil {
			return nil, mxerr.MissingParam("duration_ms is required")
		}
		var dur int64
		if err := json.Unmarshal(*body.DurationMs, &dur); err != nil {
			return nil, mxerr.BadJSON("duration_ms must be an integer")
		}
		content, err := decodeBase64(*body.Content)
		if err != nil {
			return nil, mxerr.BadJSON("content must be base64")
		}
		m, err := vs.Upload(caller(r), voice.UploadRequest{
			Content: content, ContentType: body.ContentType, DurationMs: dur, RoomID: body.RoomID, SessionID: body.SessionID,
		})
		if err != nil {
			return nil, mediaErr(err)
		}
		out := voiceJSON(vs, m)
		out["duration_ms"] = m.DurationMs
		return out, nil
	}
	for _, p := range clientPrefixes {
		s.r.routes = append(s.r.routes, route{method: "POST", segments: split(p + "/voice/upload"), h: upload, auth: authRequired, rawBody: true})
	}

	stats := func(r *Request, user string) (any, error) {
		st, err := vs.StatsFor(caller(r), user)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	s.r.client("GET", "/voice/stats", authRequired, func(r *Request) (any, error) {
		return stats(r, r.Session.UserID)
	})
	s.r.client("GET", "/voice/user/{userId}/stats", authRequired, func(r *Request) (any, error) {
		return stats(r, r.Param("userId"))
	})
	list := func(ms []voice.Message, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		out := make([]map[string]any, 0, len(ms))
		for _, m := range ms {
			out = append(out, voiceJSON(vs, m))
		}
		return map[string]any{"messages": out}, nil
	}
	s.r.client("GET", "/voice/user/{userId}", authRequired, func(r *Request) (any, error) {
		return list(vs.ByUser(caller(r), r.Param("userId")))
	})
	s.r.client("GET", "/voice/room/{roomId}", authRequired, func(r *Request) (any, error) {
		roomID := r.Param("roomId")
		return list(vs.ByRoom(caller(r), roomID, func() error { return canRead(r.Session.UserID, roomID) }))
	})

	s.r.client("POST", "/voice/convert", authRequired, func(r *Request) (any, error) {
		if err := s.limiter.allow("audio", r.Session.UserID); err != nil {
			return nil, err
		}
		var body struct {
			MessageID    string `json:"message_id"`
			TargetFormat string `json:"target_format"`
			Quality      int    `json:"quality"`
			Bitrate      int    `json:"bitrate"`
		}
		if err := r.Decode(&body); err != nil {
			return nil, err
		}
		res, err := vs.Convert(caller(r), voice.ConvertRequest{
			MessageID: body.MessageID, TargetFormat: body.TargetFormat, Quality: body.Quality, Bitrate: body.Bitrate,
		})
		if err != nil {
			return nil, mediaErr(err)
		}
		out := map[string]any{"status": "success", "message_id": body.MessageID, "target_format": res.ContentType}
		if body.Quality != 0 {
			out["quality"] = body.Quality
		}
		mergeResult(out, res)
		return out, nil
	})
	s.r.client("POST", "/voice/optimize", authRequired, func(r *Request) (any, error) {
		if err := s.limiter.allow("audio", r.Session.UserID); err != nil {
			return nil, err
		}
		var body struct {
			MessageID       string `json:"message_id"`
			TargetSizeKB    int    `json:"target_size_kb"`
			PreserveQuality bool   `json:"preserve_quality"`
			RemoveSilence   bool   `json:"remove_silence"`
			NormalizeVolume bool   `json:"normalize_volume"`
		}
		if err := r.Decode(&body); err != nil {
			return nil, err
		}
		res, err := vs.Optimize(caller(r), voice.OptimizeRequest{
			MessageID: body.MessageID, TargetSizeKB: body.TargetSizeKB, PreserveQuality: body.PreserveQuality,
			RemoveSilence: body.RemoveSilence, NormalizeVolume: body.NormalizeVolume,
		})
		if err != nil {
			return nil, mediaErr(err)
		}
		out := map[string]any{
			"status": "success", "message_id": body.MessageID,
			"original_size": res.OriginalSize, "original_duration_ms": res.OriginalDurationMs,
			"removed_silence_ms": res.RemovedSilenceMs, "gain_db": res.GainDB,
			"size_kb": (res.Size + 1023) / 1024,
		}
		if body.TargetSizeKB != 0 {
			out["target_size_kb"] = body.TargetSizeKB
		}
		mergeResult(out, res.Result)
		return out, nil
	})

	s.r.client("GET", "/voice/{messageId}", authRequired, func(r *Request) (any, error) {
		id := r.Param("messageId")
		if !voice.ValidID(id) {
			return nil, mxerr.NotFound("voice message not found")
		}
		m, b, err := vs.Get(caller(r), id)
		if err != nil {
			return nil, mediaErr(err)
		}
		out := voiceJSON(vs, m)
		out["content"] = base64.StdEncoding.EncodeToString(b)
		return out, nil
	})
	s.r.client("DELETE", "/voice/{messageId}", authRequired, func(r *Request) (any, error) {
		id := r.Param("messageId")
		if !voice.ValidID(id) {
			return nil, mxerr.NotFound("voice message not found")
		}
		redacted, err := vs.Delete(caller(r), id)
		if err != nil {
			return nil, err
		}
		return map[string]any{"deleted": true, "message_id": id, "redacted": redacted}, nil
	})
}

// voiceJSON is a message in the seed's shapes (message_id, user_id,
// duration_ms, created_at, content_type, size) plus its content URI and
// room event.
func voiceJSON(vs *voice.Service, m voice.Message) map[string]any {
	out := map[string]any{
		"message_id": m.ID, "user_id": m.Owner, "content_uri": vs.MXC(m.MediaID),
		"content_type": m.ContentType, "size": m.Size, "duration_ms": m.DurationMs,
		"created_at": m.CreatedMs, "verified": m.Verified,
	}
	if m.SampleRate > 0 {
		out["sample_rate"], out["channels"] = m.SampleRate, m.Channels
	}
	if m.RoomID != "" {
		out["room_id"] = m.RoomID
	}
	if m.EventID != "" {
		out["event_id"] = m.EventID
	}
	return out
}

func mergeResult(out map[string]any, res voice.Result) {
	out["content_uri"], out["content_type"], out["size"] = res.ContentURI, res.ContentType, res.Size
	out["duration_ms"], out["sample_rate"], out["channels"], out["bitrate"] = res.DurationMs, res.SampleRate, res.Channels, res.Bitrate
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, as
// clients differ.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// readLimited reads a rawBody route's request body up to limit bytes;
// more is 413 M_TOO_LARGE.
func (s *Server) readLimited(r *Request, limit int64) ([]byte, error) {
	ctx := r.Ctx
	if cl := int64(ctx.Request.Header.ContentLength()); cl > limit {
		ctx.SetConnectionClose()
		return nil, mxerr.TooLarge("request body is too large")
	}
	stream := ctx.RequestBodyStream()
	if stream == nil {
		b := ctx.PostBody()
		if int64(len(b)) > limit {
			return nil, mxerr.TooLarge("request body is too large")
		}
		return slices.Clone(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(stream, limit+1))
	if err != nil {
		return nil, mxerr.BadJSON("could not read the request body")
	}
	if int64(len(b)) > limit {
		ctx.SetConnectionClose()
		return nil, mxerr.TooLarge("request body is too large")
	}
	return b, nil
}
