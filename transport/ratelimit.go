package transport

import (
	"strconv"
	"sync"
	"time"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// RateLimitConfig sets token buckets per caller for the endpoints abuse
// targets (spec: M_LIMIT_EXCEEDED with retry_after_ms).
type RateLimitConfig struct {
	Enabled bool
	// PerSecond and Burst for each class.
	LoginPerSecond, LoginBurst       float64
	RegisterPerSecond, RegisterBurst float64
	SendPerSecond, SendBurst         float64
	// Media covers uploads (media and voice); Audio the voice endpoints
	// that decode and re-encode (seconds of CPU and tens of MiB each).
	MediaPerSecond, MediaBurst float64
	AudioPerSecond, AudioBurst float64
}

// DefaultRateLimits suit a home hub: humans and a few bots.
func DefaultRateLimits() RateLimitConfig {
	return RateLimitConfig{Enabled: true,
		LoginPerSecond: 0.5, LoginBurst: 5,
		RegisterPerSecond: 0.5, RegisterBurst: 10,
		SendPerSecond: 20, SendBurst: 100,
		MediaPerSecond: 2, MediaBurst: 30,
		AudioPerSecond: 0.2, AudioBurst: 10,
	}
}

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	cfg RateLimitConfig
	mu  sync.Mutex
	b   map[string]*bucket
	n   int
}

func newLimiter(cfg RateLimitConfig) *limiter { return &limiter{cfg: cfg, b: map[string]*bucket{}} }

// allow takes one token from the bucket of class+who, or returns the
// M_LIMIT_EXCEEDED error saying when one will be available.
func (l *limiter) allow(class, who string) error {
	if !l.cfg.Enabled {
		return nil
	}
	var rate, burst float64
	switch class {
	case "login":
		rate, burst = l.cfg.LoginPerSecond, l.cfg.LoginBurst
	case "register":
		rate, burst = l.cfg.RegisterPerSecond, l.cfg.RegisterBurst
	case "media":
		rate, burst = l.cfg.MediaPerSecond, l.cfg.MediaBurst
	case "audio":
		rate, burst = l.cfg.AudioPerSecond, l.cfg.AudioBurst
	default:
		rate, burst = l.cfg.SendPerSecond, l.cfg.SendBurst
	}
	if rate <= 0 {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := class + "\x00" + who
	b, ok := l.b[k]
	if !ok {
		b = &bucket{tokens: burst, last: now}
		l.b[k] = b
		l.n++
		if l.n%1024 == 0 {
			l.sweep(now)
		}
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := (1 - b.tokens) / rate
	return mxerr.LimitExceeded(int64(wait*1000) + 1)
}

// sweep drops full, idle buckets so the map stays small.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.b {
		if now.Sub(b.last) > 10*time.Minute {
			delete(l.b, k)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
