package main

import (
	"fmt"
	"strconv"
	"time"
)

// MediaConfig is the content repository's configuration ([media] in the
// TOML file, LICHEN_MEDIA_* in the environment).
type MediaConfig struct {
	// MaxUploadBytes is the largest upload (m.upload.size); larger is
	// 413 M_TOO_LARGE.
	MaxUploadBytes int64 `toml:"max_upload_bytes"`
	// QuotaBytes is what one user may store in total (0 = no quota);
	// more is 403 M_FORBIDDEN.
	QuotaBytes int64 `toml:"quota_bytes"`
	// MaxPendingUploads is how many unexpired /create IDs a user may
	// hold; more is 429 M_LIMIT_EXCEEDED.
	MaxPendingUploads int `toml:"max_pending_uploads"`
	// UnusedExpiry is how long a /create ID waits for its content (Go
	// duration, e.g. "24h", the spec's recommendation).
	UnusedExpiry string `toml:"unused_expiry"`
	// LegacyEndpoints serves the deprecated unauthenticated
	// /_matrix/media/v3 download and thumbnail endpoints.
	LegacyEndpoints bool `toml:"legacy_endpoints"`
	// MaxThumbnailSourceBytes is the largest content that is thumbnailed.
	MaxThumbnailSourceBytes int64 `toml:"max_thumbnail_source_bytes"`
	// URLPreview serves /media/preview_url by fetching the page (and its
	// og:image, stored as media of the asking user). Off: 404
	// M_UNRECOGNIZED, as Synapse with previews disabled.
	URLPreview bool `toml:"url_preview"`
	// URLPreviewAllowPrivate lets previews fetch LAN addresses (RFC 1918,
	// CGNAT 100.64/10, IPv6 ULA). Off by default: with it on, any account
	// can make the hub read the router's, camera's or NAS's web pages and
	// see their titles and images. Loopback, link-local (cloud metadata)
	// and multicast stay refused either way.
	URLPreviewAllowPrivate bool `toml:"url_preview_allow_private"`
	// URLPreviewTimeout bounds one preview, page and image (Go duration).
	URLPreviewTimeout string `toml:"url_preview_timeout"`
	// URLPreviewAllowLoopbackForTestsOnly lets previews fetch 127.0.0.0/8
	// and ::1 so that tests can serve pages from the test process. Never
	// in production: every account could then read the hub's own local
	// services.
	URLPreviewAllowLoopbackForTestsOnly bool `toml:"url_preview_allow_loopback_for_tests_only"`
}

func defaultMediaConfig() MediaConfig {
	return MediaConfig{
		MaxUploadBytes:          50 << 20,
		QuotaBytes:              1 << 30,
		MaxPendingUploads:       10,
		UnusedExpiry:            "24h",
		LegacyEndpoints:         true,
		MaxThumbnailSourceBytes: 20 << 20,
		URLPreview:              true,
		URLPreviewTimeout:       "10s",
	}
}

// previewTimeout parses URLPreviewTimeout.
func (c MediaConfig) previewTimeout() (time.Duration, error) {
	if c.URLPreviewTimeout == "" {
		return 10 * time.Second, nil
	}
	d, err := time.ParseDuration(c.URLPreviewTimeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("media.url_preview_timeout: want a positive duration such as 10s")
	}
	return d, nil
}

// expiry parses UnusedExpiry.
func (c MediaConfig) expiry() (time.Duration, error) {
	if c.UnusedExpiry == "" {
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(c.UnusedExpiry)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("media.unused_expiry: want a positive duration such as 24h")
	}
	return d, nil
}

// applyEnv overrides c from LICHEN_MEDIA_* variables.
func (c *MediaConfig) applyEnv(getenv func(string) string) error {
	i64 := func(name string, dst *int64, allowZero bool) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || (n == 0 && !allowZero) {
			return fmt.Errorf("%s: want a positive integer", name)
		}
		*dst = n
		return nil
	}
	if err := i64("LICHEN_MEDIA_MAX_UPLOAD_BYTES", &c.MaxUploadBytes, false); err != nil {
		return err
	}
	if err := i64("LICHEN_MEDIA_QUOTA_BYTES", &c.QuotaBytes, true); err != nil {
		return err
	}
	if err := i64("LICHEN_MEDIA_MAX_THUMBNAIL_SOURCE_BYTES", &c.MaxThumbnailSourceBytes, false); err != nil {
		return err
	}
	var pending int64 = int64(c.MaxPendingUploads)
	if err := i64("LICHEN_MEDIA_MAX_PENDING_UPLOADS", &pending, false); err != nil {
		return err
	}
	c.MaxPendingUploads = int(pending)
	if v := getenv("LICHEN_MEDIA_UNUSED_EXPIRY"); v != "" {
		c.UnusedExpiry = v
		if _, err := c.expiry(); err != nil {
			return fmt.Errorf("LICHEN_MEDIA_UNUSED_EXPIRY: want a positive duration such as 24h")
		}
	}
	if v := getenv("LICHEN_MEDIA_URL_PREVIEW_TIMEOUT"); v != "" {
		c.URLPreviewTimeout = v
		if _, err := c.previewTimeout(); err != nil {
			return fmt.Errorf("LICHEN_MEDIA_URL_PREVIEW_TIMEOUT: want a positive duration such as 10s")
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{
		{"LICHEN_MEDIA_LEGACY_ENDPOINTS", &c.LegacyEndpoints},
		{"LICHEN_MEDIA_URL_PREVIEW", &c.URLPreview},
		{"LICHEN_MEDIA_URL_PREVIEW_ALLOW_PRIVATE", &c.URLPreviewAllowPrivate},
		{"LICHEN_MEDIA_URL_PREVIEW_ALLOW_LOOPBACK_FOR_TESTS_ONLY", &c.URLPreviewAllowLoopbackForTestsOnly},
	} {
		switch v := getenv(b.name); v {
		case "":
		case "on", "true", "1":
			*b.dst = true
		case "off", "false", "0":
			*b.dst = false
		default:
			return fmt.Errorf("%s: want on or off", b.name)
		}
	}
	return nil
}
