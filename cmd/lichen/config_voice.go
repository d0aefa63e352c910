package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/lichen-hs/lichen/core/voice"
)

// VoiceConfig is the [voice] section: the seed's voice-message API
// (/voice/*). Its audio is stored through the content repository, so the
// media quota applies to it too.
type VoiceConfig struct {
	// MaxSizeBytes is the largest voice message (default 8 MiB; 10
	// minutes of Opus at 32 kb/s is 2.4 MB).
	MaxSizeBytes int64 `toml:"max_size_bytes"`
	// MaxDurationSeconds is the longest voice message (default 600).
	MaxDurationSeconds int `toml:"max_duration_seconds"`
	// MaxProcessSeconds bounds what /voice/convert and /voice/optimize
	// decode, as seconds of 48 kHz mono (default 349: 16M samples, 64 MiB
	// of memory per request). Longer messages answer 413.
	MaxProcessSeconds int `toml:"max_process_seconds"`
	// MaxConcurrent is how many of those decodes run at once (default 2);
	// the others wait.
	MaxConcurrent int `toml:"max_concurrent"`
}

func defaultVoiceConfig() VoiceConfig {
	d := voice.DefaultConfig()
	return VoiceConfig{
		MaxSizeBytes:       d.MaxSize,
		MaxDurationSeconds: int(d.MaxDuration / time.Second),
		MaxProcessSeconds:  d.MaxProcessSamples / 48000,
		MaxConcurrent:      d.MaxConcurrent,
	}
}

func (c VoiceConfig) service() voice.Config {
	return voice.Config{
		MaxSize:           c.MaxSizeBytes,
		MaxDuration:       time.Duration(c.MaxDurationSeconds) * time.Second,
		MaxProcessSamples: c.MaxProcessSeconds * 48000,
		MaxConcurrent:     c.MaxConcurrent,
	}
}

func (c *VoiceConfig) applyEnv(getenv func(string) string) error {
	for _, e := range []struct {
		name string
		dst  *int64
	}{{"LICHEN_VOICE_MAX_SIZE_BYTES", &c.MaxSizeBytes}} {
		if v := getenv(e.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s: want a positive integer", e.name)
			}
			*e.dst = n
		}
	}
	for _, e := range []struct {
		name string
		dst  *int
	}{{"LICHEN_VOICE_MAX_DURATION_SECONDS", &c.MaxDurationSeconds}, {"LICHEN_VOICE_MAX_PROCESS_SECONDS", &c.MaxProcessSeconds}, {"LICHEN_VOICE_MAX_CONCURRENT", &c.MaxConcurrent}} {
		if v := getenv(e.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s: want a positive integer", e.name)
			}
			*e.dst = n
		}
	}
	return nil
}

func (c VoiceConfig) validate() error {
	if c.MaxSizeBytes <= 0 || c.MaxDurationSeconds <= 0 || c.MaxProcessSeconds <= 0 || c.MaxConcurrent <= 0 {
		return fmt.Errorf("[voice] max_size_bytes, max_duration_seconds, max_process_seconds and max_concurrent must be positive")
	}
	// Samples are counted in an int: on 32-bit boards 48000 × seconds
	// must stay below 2^31 (and two hours of audio in memory is already
	// 1.3 GB).
	if c.MaxProcessSeconds > 7200 || c.MaxDurationSeconds > 7200 {
		return fmt.Errorf("[voice] max_process_seconds and max_duration_seconds can be at most 7200")
	}
	return nil
}
