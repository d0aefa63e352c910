package e2e

import (
	"encoding/base64"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/lichen-hs/lichen/core/audio"
)

// voiceTone is mono 48 kHz audio: segments of (seconds, amplitude) of a
// 440 Hz tone, amplitude 0 being silence.
func voiceTone(segs ...[2]float64) *audio.PCM {
	p := &audio.PCM{Rate: 48000, Channels: 1}
	for _, sg := range segs {
		n := int(sg[0] * 48000)
		for i := 0; i < n; i++ {
			p.Samples = append(p.Samples, float32(sg[1]*math.Sin(2*math.Pi*440*float64(i)/48000)))
		}
	}
	return p
}

func encodeVoice(t *testing.T, p *audio.PCM, ct string) []byte {
	t.Helper()
	b, err := audio.Encode(p, ct, audio.EncodeOptions{Bitrate: 48000})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetchMXC downloads content through the authenticated endpoint.
func fetchMXC(t *testing.T, s *server, u user, mxc string) (int, []byte) {
	t.Helper()
	st, _, body := mediaReq(t, s, "GET", "/_matrix/client/v1/media/download/"+strings.TrimPrefix(mxc, "mxc://"), u.Token, "", nil)
	return st, body
}

func TestVoiceMessages(t *testing.T) {
	s := start(t)
	alice, bob, carol := s.register("valice"), s.register("vbob"), s.register("vcarol")
	room := s.createRoom(alice, map[string]any{"invite": []string{bob.ID}})
	s.must(200, "POST", "/_matrix/client/v3/join/"+esc(room), bob.Token, map[string]any{})
	const v = "/_matrix/client/r0/voice"

	cfg := s.must(200, "GET", v+"/config", "", nil).Body
	if !strings.Contains(strings.Join(toStrings(cfg["supported_formats"]), ","), "audio/ogg") {
		t.Fatalf("config %v", cfg)
	}
	if got := toStrings(cfg["convert"].(map[string]any)["target_formats"]); strings.Join(got, ",") != "audio/ogg,audio/wav" {
		t.Fatalf("convert targets %v", got)
	}
	s.must(401, "POST", v+"/upload", "", map[string]any{"content": "AA==", "duration_ms": 1})

	// Upload into the room: 2 s of tone, then 3 s of silence, then 1 s.
	ogg := encodeVoice(t, voiceTone([2]float64{2, 0.3}, [2]float64{3, 0}, [2]float64{1, 0.3}), audio.Ogg)
	up := s.must(200, "POST", v+"/upload", alice.Token, map[string]any{
		"content": base64.StdEncoding.EncodeToString(ogg), "content_type": "audio/ogg", "duration_ms": 6000, "room_id": room,
	}).Body
	id, mxc := up["message_id"].(string), up["content_uri"].(string)
	if d := up["duration_ms"].(float64); d < 5980 || d > 6020 || !strings.HasPrefix(mxc, "mxc://localhost/") {
		t.Fatalf("upload %v", up)
	}
	if st, b := fetchMXC(t, s, bob, mxc); st != 200 || string(b) != string(ogg) {
		t.Fatalf("download: %d, %d bytes of %d", st, len(b), len(ogg))
	}
	ev := s.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/event/"+esc(up["event_id"].(string)), bob.Token, nil).Body
	content := ev["content"].(map[string]any)
	if content["msgtype"] != "m.audio" || content["url"] != mxc || content["org.matrix.msc3245.voice"] == nil {
		t.Fatalf("room event %v", content)
	}
	if wf := content["org.matrix.msc1767.audio"].(map[string]any)["waveform"].([]any); len(wf) != 100 {
		t.Fatalf("waveform %v", wf)
	}

	// Who sees what.
	got := s.must(200, "GET", v+"/"+id, bob.Token, nil).Body
	if got["content"] != base64.StdEncoding.EncodeToString(ogg) || got["user_id"] != alice.ID {
		t.Fatalf("get as room member: %v", got["user_id"])
	}
	s.must(404, "GET", v+"/"+id, carol.Token, nil)
	s.must(403, "GET", v+"/room/"+esc(room), carol.Token, nil)
	if l := s.must(200, "GET", v+"/room/"+esc(room), bob.Token, nil).Body["messages"].([]any); len(l) != 1 {
		t.Fatalf("room list %v", l)
	}
	if l := s.must(200, "GET", v+"/user/"+esc(alice.ID), carol.Token, nil).Body["messages"].([]any); len(l) != 0 {
		t.Fatalf("carol sees %v", l)
	}
	st := s.must(200, "GET", v+"/stats", alice.Token, nil).Body
	if st["total_messages"].(float64) != 1 || st["total_size_bytes"].(float64) != float64(len(ogg)) || st["total_duration_ms"].(float64) < 5980 {
		t.Fatalf("stats %v", st)
	}
	s.must(403, "GET", v+"/user/"+esc(alice.ID)+"/stats", bob.Token, nil)

	// Convert to WAV: decoded, it is 6 s of 48 kHz audio.
	conv := s.must(200, "POST", v+"/convert", alice.Token, map[string]any{"message_id": id, "target_format": "audio/wav"}).Body
	_, wav := fetchMXC(t, s, alice, conv["content_uri"].(string))
	pcm, err := audio.Decode(wav, audio.WAV, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Rate != 48000 || pcm.Duration().Milliseconds() < 5980 || pcm.Duration().Milliseconds() > 6020 {
		t.Fatalf("converted: %d Hz, %v", pcm.Rate, pcm.Duration())
	}
	bad := s.must(400, "POST", v+"/convert", alice.Token, map[string]any{"message_id": id, "target_format": "audio/mpeg"}).Body
	if bad["errcode"] != "M_INVALID_PARAM" || !strings.Contains(bad["error"].(string), "audio/ogg") {
		t.Fatalf("mp3 target: %v", bad)
	}
	s.must(404, "POST", v+"/convert", carol.Token, map[string]any{"message_id": id, "target_format": "audio/wav"})

	// Optimize: silence cut to 200 ms, 10 KiB at most, still Opus.
	opt := s.must(200, "POST", v+"/optimize", alice.Token, map[string]any{
		"message_id": id, "target_size_kb": 10, "remove_silence": true, "normalize_volume": true,
	}).Body
	_, small := fetchMXC(t, s, alice, opt["content_uri"].(string))
	if len(small) > 10*1024 || opt["content_type"] != "audio/ogg" {
		t.Fatalf("optimized to %d bytes: %v", len(small), opt)
	}
	info, err := audio.Probe(small, audio.Ogg)
	if err != nil {
		t.Fatal(err)
	}
	if d := info.Duration.Milliseconds(); d < 3200 || d > 3700 {
		t.Fatalf("optimized duration %d ms, want about 3.2-3.4 s", d)
	}
	if _, err := audio.Decode(small, audio.Ogg, 0); err != nil {
		t.Fatalf("optimized output does not decode: %v", err)
	}

	// Bad input changes nothing.
	s.must(400, "POST", v+"/upload", alice.Token, map[string]any{"content": "!!!", "duration_ms": 10})
	s.must(400, "POST", v+"/upload", alice.Token, map[string]any{"content": base64.StdEncoding.EncodeToString(ogg)})
	s.must(400, "POST", v+"/upload", alice.Token, map[string]any{"content": base64.StdEncoding.EncodeToString([]byte("not audio")), "duration_ms": 10})
	s.must(403, "POST", v+"/upload", carol.Token, map[string]any{"content": base64.StdEncoding.EncodeToString(ogg), "duration_ms": 6000, "room_id": room})
	if n := s.must(200, "GET", v+"/stats", carol.Token, nil).Body["total_messages"].(float64); n != 0 {
		t.Fatalf("refused uploads stored %v messages", n)
	}

	// A moderator's redaction of a voice message hides it from the room's
	// members (its sender still has it).
	bobUp := s.must(200, "POST", v+"/upload", bob.Token, map[string]any{
		"content": base64.StdEncoding.EncodeToString(ogg), "duration_ms": 6000, "room_id": room,
	}).Body
	s.must(200, "GET", v+"/"+bobUp["message_id"].(string), alice.Token, nil)
	s.must(200, "PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/redact/"+esc(bobUp["event_id"].(string))+"/mod1", alice.Token, map[string]any{"reason": "spam"})
	s.must(404, "GET", v+"/"+bobUp["message_id"].(string), alice.Token, nil)
	if l := s.must(200, "GET", v+"/room/"+esc(room), alice.Token, nil).Body["messages"].([]any); len(l) != 1 {
		t.Fatalf("room list after a moderator's redaction: %v", l)
	}
	s.must(200, "GET", v+"/"+bobUp["message_id"].(string), bob.Token, nil)

	// Delete: not by another member; by the sender, which redacts the event.
	s.must(403, "DELETE", v+"/"+id, bob.Token, nil)
	del := s.must(200, "DELETE", v+"/"+id, alice.Token, nil).Body
	if del["deleted"] != true || del["redacted"] != true {
		t.Fatalf("delete %v", del)
	}
	s.must(404, "GET", v+"/"+id, alice.Token, nil)
	if st, _ := fetchMXC(t, s, alice, mxc); st != http.StatusNotFound {
		t.Fatalf("media after delete: %d", st)
	}
	ev = s.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/event/"+esc(up["event_id"].(string)), bob.Token, nil).Body
	if c := ev["content"].(map[string]any); len(c) != 0 {
		t.Fatalf("event not redacted: %v", c)
	}
}

func TestVoiceLimits(t *testing.T) {
	s := start(t, "LICHEN_VOICE_MAX_SIZE_BYTES=20000")
	u := s.register("")
	ogg := encodeVoice(t, voiceTone([2]float64{5, 0.3}), audio.Ogg)
	if len(ogg) <= 20000 {
		t.Fatalf("test audio is only %d bytes", len(ogg))
	}
	r := s.must(413, "POST", "/_matrix/client/v3/voice/upload", u.Token, map[string]any{
		"content": base64.StdEncoding.EncodeToString(ogg), "duration_ms": 5000,
	})
	if r.Body["errcode"] != "M_TOO_LARGE" {
		t.Fatalf("%s", r.Raw)
	}
	// A WAV message: uploaded, listed, and converted to Opus.
	wav := encodeVoice(t, voiceTone([2]float64{0.15, 0.3}), audio.WAV)
	up := s.must(200, "POST", "/_matrix/client/v3/voice/upload", u.Token, map[string]any{
		"content": base64.RawURLEncoding.EncodeToString(wav), "content_type": "audio/x-wav", "duration_ms": 150,
	}).Body
	conv := s.must(200, "POST", "/_matrix/client/v3/voice/convert", u.Token, map[string]any{
		"message_id": up["message_id"], "target_format": "audio/ogg", "quality": 64,
	}).Body
	_, b := fetchMXC(t, s, u, conv["content_uri"].(string))
	pcm, err := audio.Decode(b, audio.Ogg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pcm.Rate != 48000 || pcm.Duration().Milliseconds() < 130 || pcm.Duration().Milliseconds() > 170 {
		t.Fatalf("wav->ogg: %d Hz %v", pcm.Rate, pcm.Duration())
	}
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestVoiceRateLimits: with rate limits on, the decoding endpoints have
// their own small bucket (burst 10), and uploads (and /media/v1/create)
// theirs (burst 30); each answers 429 M_LIMIT_EXCEEDED once it is empty.
func TestVoiceRateLimits(t *testing.T) {
	s := start(t, "LICHEN_RATE_LIMIT=on")
	u := s.register("")
	limited := func(method, path string, body any, max int) response {
		t.Helper()
		for i := 0; i < max; i++ {
			r := s.do(method, path, u.Token, body)
			if r.Status == 429 {
				return r
			}
		}
		t.Fatalf("%s %s: never limited in %d requests", method, path, max)
		return response{}
	}
	r := limited("POST", "/_matrix/client/v3/voice/convert", map[string]any{"message_id": "nope", "target_format": "audio/wav"}, 15)
	wantRateLimited(t, r)
	r = limited("POST", "/_matrix/media/v3/upload?filename=a.txt", "some bytes", 45)
	wantRateLimited(t, r)
}
