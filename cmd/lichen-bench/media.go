package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // a thumbnail may come back as PNG
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lichen-hs/lichen/core/audio"
)

// This file is the media phase: the memory the server needs to thumbnail
// a camera photo and to optimise a long voice message. DESIGN.md budgets
// neither; the figures are informational, to read beside the 48 MB ingest
// peak. Each part runs in a fresh server process on a fresh data
// directory, so that no earlier phase's heap is in its figures, and
// resets VmHWM (clear_refs) right before the measured requests, so that
// the peak is theirs alone (the max of 10 ms VmRSS samples if the reset
// is refused and VmHWM did not rise past its old mark).

const (
	photoW, photoH = 4000, 3000
	photoQuality   = 85
	voiceSeconds   = 300
	voiceRate      = 48000
	voiceBitrate   = 32000
)

// peakWindow measures one process's peak RSS over some requests.
type peakWindow struct {
	pid      int
	base     int64 // VmRSS at the start
	hwm0     int64 // VmHWM at the start, before the reset
	resetErr error
	sampler  *rssSampler
}

func startPeak(pid int) *peakWindow {
	w := &peakWindow{pid: pid}
	w.hwm0, _ = procStatus(pid, "VmHWM")
	w.resetErr = resetPeakRSS(pid)
	w.base, _ = procStatus(pid, "VmRSS")
	w.sampler = sampleRSS(pid)
	return w
}

// peakRSS is one window's result.
type peakRSS struct {
	Base, Peak  int64 // bytes
	FromSamples bool
}

func (w *peakWindow) end() peakRSS {
	sampled := w.sampler.stop()
	hwm, err := procStatus(w.pid, "VmHWM")
	switch {
	case err != nil:
		return peakRSS{Base: w.base, Peak: sampled, FromSamples: true}
	case w.resetErr == nil, hwm > w.hwm0:
		// After a reset VmHWM is this window's peak; without one it is
		// too if it rose during the window.
		return peakRSS{Base: w.base, Peak: hwm}
	default:
		return peakRSS{Base: w.base, Peak: max(sampled, w.base), FromSamples: true}
	}
}

func (p peakRSS) note() string {
	if p.FromSamples {
		return "max of 10 ms VmRSS samples (clear_refs refused)"
	}
	return "VmHWM, reset just before"
}

type thumbResult struct {
	JPEGBytes  int
	Upload     time.Duration
	Scale      time.Duration // 800×600 scale
	Crop       time.Duration // 320×240 crop
	ScaleSize  string        // what came back, e.g. "800×600 image/jpeg, 92 KiB"
	CropSize   string
	RSS        peakRSS
	RSSAfter   int64
	IdleAtBoot int64 // VmRSS right after the fresh server first served
}

type voiceResult struct {
	OggBytes    int
	Encode      time.Duration // in this tool, not the server
	Upload      time.Duration
	UploadRSS   peakRSS
	Optimize    time.Duration
	OptimizeRSS peakRSS
	RSSAfter    int64
	Out         struct {
		Size             int64   `json:"size"`
		DurationMs       int64   `json:"duration_ms"`
		OriginalDuration int64   `json:"original_duration_ms"`
		RemovedSilenceMs int64   `json:"removed_silence_ms"`
		GainDB           float64 `json:"gain_db"`
		Bitrate          int     `json:"bitrate"`
		ContentType      string  `json:"content_type"`
	}
}

// mediaPhase runs the thumbnail part and the voice part, each on its own
// fresh server.
func (b *bench) mediaPhase() {
	b.progress("media: thumbnails of a %d×%d JPEG on a fresh server", photoW, photoH)
	if tr, err := withFreshServer(b, "media-thumb", b.thumbPart); err != nil {
		b.problem("media thumbnails: %v", err)
	} else {
		b.r.thumb = tr
	}
	if b.o.quick {
		b.progress("media: the voice message is skipped with -quick (it takes about a minute)")
		return
	}
	b.progress("media: a %d-minute voice message on a fresh server", voiceSeconds/60)
	if vr, err := withFreshServer(b, "media-voice", b.voicePart); err != nil {
		b.problem("media voice: %v", err)
	} else {
		b.r.voice = vr
	}
}

// withFreshServer starts a server on a new data directory named name,
// registers one user, runs part and stops the server (which must exit 0).
func withFreshServer[T any](b *bench, name string, part func(context.Context, *server, *client, user) (*T, error)) (*T, error) {
	dir := filepath.Join(b.tmp, name)
	defer os.RemoveAll(dir)
	srv, err := startServer(b.o.bin, dir, filepath.Join(b.tmp, name+".log"))
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	c := newClient(srv.base, &b.errs)
	c.hc.Timeout = 3 * time.Minute // optimising minutes of audio on a loaded board
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	u, err := c.register(ctx, "media", fmt.Sprintf("bench-password-%d-media", nonce))
	if err != nil {
		return nil, err
	}
	res, err := part(ctx, srv, c, u)
	if code, _, serr := srv.stop(); serr != nil {
		err = errors.Join(err, serr)
	} else if code != 0 {
		err = errors.Join(err, fmt.Errorf("exit code %d after SIGTERM", code))
	}
	return res, err
}

func (b *bench) thumbPart(ctx context.Context, srv *server, c *client, u user) (*thumbResult, error) {
	r := &thumbResult{}
	r.IdleAtBoot, _ = procStatus(srv.pid(), "VmRSS")
	photo, err := benchPhoto(photoW, photoH, photoQuality)
	if err != nil {
		return nil, err
	}
	r.JPEGBytes = len(photo)
	t0 := time.Now()
	mxc, err := c.uploadMedia(ctx, u, "image/jpeg", "bench-photo.jpg", photo)
	r.Upload = time.Since(t0)
	if err != nil {
		return nil, err
	}
	serverName, mediaID, ok := strings.Cut(strings.TrimPrefix(mxc, "mxc://"), "/")
	if !ok || !strings.HasPrefix(mxc, "mxc://") {
		return nil, fmt.Errorf("upload answered content_uri %q", mxc)
	}
	time.Sleep(200 * time.Millisecond) // let the upload's buffers settle

	w := startPeak(srv.pid())
	var errs []error
	for _, q := range []struct {
		w, h   int
		method string
		took   *time.Duration
		got    *string
	}{{800, 600, "scale", &r.Scale, &r.ScaleSize}, {320, 240, "crop", &r.Crop, &r.CropSize}} {
		t := time.Now()
		got, err := c.thumbnail(ctx, u, serverName, mediaID, q.w, q.h, q.method)
		*q.took, *q.got = time.Since(t), got
		errs = append(errs, err)
	}
	r.RSS = w.end()
	r.RSSAfter, _ = procStatus(srv.pid(), "VmRSS")
	return r, errors.Join(errs...)
}

func (b *bench) voicePart(ctx context.Context, srv *server, c *client, u user) (*voiceResult, error) {
	r := &voiceResult{}
	t0 := time.Now()
	ogg, err := audio.Encode(benchSpeech(voiceSeconds, voiceRate), audio.Ogg, audio.EncodeOptions{Bitrate: voiceBitrate})
	r.Encode = time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("encode the voice message: %w", err)
	}
	r.OggBytes = len(ogg)
	body := map[string]any{
		"content": base64.StdEncoding.EncodeToString(ogg), "content_type": "audio/ogg",
		"duration_ms": voiceSeconds * 1000,
	}
	ogg = nil

	w := startPeak(srv.pid())
	var up struct {
		MessageID string `json:"message_id"`
	}
	t := time.Now()
	err = c.do(ctx, "POST /voice/upload", "POST", "/_matrix/client/v3/voice/upload", u.Token, body, &up)
	r.Upload = time.Since(t)
	r.UploadRSS = w.end()
	if err != nil {
		return nil, err
	}
	if up.MessageID == "" {
		return nil, errors.New("POST /voice/upload: answer has no message_id")
	}
	time.Sleep(200 * time.Millisecond)

	w = startPeak(srv.pid())
	t = time.Now()
	err = c.do(ctx, "POST /voice/optimize", "POST", "/_matrix/client/v3/voice/optimize", u.Token, map[string]any{
		"message_id": up.MessageID, "target_size_kb": 500, "remove_silence": true, "normalize_volume": true,
	}, &r.Out)
	r.Optimize = time.Since(t)
	r.OptimizeRSS = w.end()
	r.RSSAfter, _ = procStatus(srv.pid(), "VmRSS")
	if err != nil {
		return nil, err
	}
	return r, nil
}

// uploadMedia sends body as POST /_matrix/media/v3/upload and returns the
// content URI.
func (c *client) uploadMedia(ctx context.Context, u user, contentType, filename string, body []byte) (string, error) {
	const route = "POST /_matrix/media/v3/upload"
	status, b, err := c.rawBody(ctx, "POST", "/_matrix/media/v3/upload?filename="+url.QueryEscape(filename), u.Token, contentType, body)
	if err == nil && status != 200 {
		err = decodeAPIError(route, status, b)
	}
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err == nil {
		if jerr := json.Unmarshal(b, &out); jerr != nil || out.ContentURI == "" {
			err = fmt.Errorf("%s: answer without content_uri: %s", route, truncate(string(b), 160))
		}
	}
	if err != nil {
		c.errs.add(route, err)
	}
	return out.ContentURI, err
}

// thumbnail asks for a thumbnail and describes what came back.
func (c *client) thumbnail(ctx context.Context, u user, serverName, mediaID string, w, h int, method string) (string, error) {
	const route = "GET /_matrix/client/v1/media/thumbnail"
	path := fmt.Sprintf("/_matrix/client/v1/media/thumbnail/%s/%s?width=%d&height=%d&method=%s",
		url.PathEscape(serverName), url.PathEscape(mediaID), w, h, method)
	status, b, err := c.raw(ctx, "GET", path, u.Token, nil)
	if err == nil && status != 200 {
		err = decodeAPIError(route, status, b)
	}
	if err != nil {
		c.errs.add(route, err)
		return "", err
	}
	cfg, kind, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return fmt.Sprintf("undecodable, %.0f KiB", float64(len(b))/1024), nil
	}
	return fmt.Sprintf("%d×%d %s, %.0f KiB", cfg.Width, cfg.Height, kind, float64(len(b))/1024), nil
}

// benchPhoto is a w×h JPEG with the content of a photograph as far as the
// encoder is concerned: smooth colour gradients and large soft shapes
// (sky, walls) under sensor-like noise and fine texture, which is what
// keeps a real 12 MP photo at a few MB. It is the same on every run.
func benchPhoto(w, h, quality int) ([]byte, error) {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	rng := rand.New(rand.NewPCG(1, 2))
	type blob struct{ x, y, r, dy float64 }
	blobs := make([]blob, 24)
	for i := range blobs {
		blobs[i] = blob{rng.Float64() * float64(w), rng.Float64() * float64(h), 150 + rng.Float64()*600, rng.Float64()*80 - 40}
	}
	for y := range h {
		fy := float64(y) / float64(h)
		for x := range w {
			fx := float64(x) / float64(w)
			v := 60 + 120*fy + 30*math.Sin(fx*7+fy*3)
			for _, bl := range blobs[:6] { // the big shapes only: per pixel cost
				dx, dy := float64(x)-bl.x, float64(y)-bl.y
				if d := dx*dx + dy*dy; d < bl.r*bl.r {
					v += bl.dy * (1 - d/(bl.r*bl.r))
				}
			}
			v += 10*math.Sin(float64(x)*0.31)*math.Sin(float64(y)*0.23) + rng.NormFloat64()*6
			img.Y[y*img.YStride+x] = clampByte(v)
		}
	}
	for y := range (h + 1) / 2 {
		fy := float64(y) / float64(h/2)
		for x := range (w + 1) / 2 {
			fx := float64(x) / float64(w/2)
			img.Cb[y*img.CStride+x] = clampByte(128 + 40*math.Cos(fx*3) - 30*fy + rng.NormFloat64()*3)
			img.Cr[y*img.CStride+x] = clampByte(128 + 35*math.Sin(fy*4+fx) + rng.NormFloat64()*3)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func clampByte(v float64) uint8 {
	return uint8(max(0, min(255, math.Round(v))))
}

// benchSpeech is seconds of mono audio at rate shaped like speech:
// utterances of 1–4 s of a voiced tone (a wandering pitch of 100–220 Hz
// with harmonics and two formant-like peaks, amplitude-modulated at the
// syllable rate, with a little breath noise) separated by pauses of
// 0.2–1.5 s of quiet room noise (about -60 dBFS), so that silence removal
// and loudness normalisation both have work to do. It is the same on every
// run.
func benchSpeech(seconds, rate int) *audio.PCM {
	n := seconds * rate
	s := make([]float32, n)
	rng := rand.New(rand.NewPCG(3, 4))
	dt := 1 / float64(rate)
	var phase float64
	for i := 0; i < n; {
		talk := int((1 + 3*rng.Float64()) * float64(rate))
		f0 := 100 + 120*rng.Float64()
		syl := 3 + 3*rng.Float64() // syllables per second
		level := 0.12 + 0.2*rng.Float64()
		// Harmonic weights: 1/h with formant-like emphasis near 500 Hz
		// and 1.5 kHz (at the utterance's base pitch).
		var gain [harmonics + 1]float64
		for h := 1; h <= harmonics; h++ {
			hf := float64(h) * f0
			gain[h] = 1/float64(h) + 0.6*math.Exp(-sq((hf-500)/200)) + 0.3*math.Exp(-sq((hf-1500)/300))
		}
		for k := 0; k < talk && i < n; k, i = k+1, i+1 {
			t := float64(k) * dt
			f := f0 * (1 + 0.08*math.Sin(2*math.Pi*0.7*t))
			phase = math.Mod(phase+2*math.Pi*f*dt, 2*math.Pi)
			// sin(h·phase) by the Chebyshev recurrence: one sin and
			// one cos a sample instead of one sin a harmonic.
			s1, c1 := math.Sincos(phase)
			prev, cur, v := 0.0, s1, 0.0
			for h := 1; h <= harmonics; h++ {
				v += gain[h] * cur
				prev, cur = cur, 2*c1*cur-prev
			}
			env := 0.5 - 0.5*math.Cos(2*math.Pi*syl*t)
			// Fade the utterance in and out over 30 ms.
			fade := min(1, t/0.03, float64(talk-k)*dt/0.03)
			s[i] = float32(level * fade * (env*v/3 + 0.02*rng.NormFloat64()))
		}
		pause := int((0.2 + 1.3*rng.Float64()) * float64(rate))
		for k := 0; k < pause && i < n; k, i = k+1, i+1 {
			s[i] = float32(0.001 * rng.NormFloat64())
		}
	}
	return &audio.PCM{Rate: rate, Channels: 1, Samples: s}
}

const harmonics = 12

func sq(x float64) float64 { return x * x }
