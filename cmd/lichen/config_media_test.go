package main

import "testing"

func TestMediaConfigEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		ok   bool
		want func(MediaConfig) bool
	}{
		{map[string]string{}, true, func(c MediaConfig) bool { return c == defaultMediaConfig() }},
		{map[string]string{"LICHEN_MEDIA_MAX_UPLOAD_BYTES": "1000"}, true, func(c MediaConfig) bool { return c.MaxUploadBytes == 1000 }},
		{map[string]string{"LICHEN_MEDIA_QUOTA_BYTES": "0"}, true, func(c MediaConfig) bool { return c.QuotaBytes == 0 }},
		{map[string]string{"LICHEN_MEDIA_MAX_PENDING_UPLOADS": "3"}, true, func(c MediaConfig) bool { return c.MaxPendingUploads == 3 }},
		{map[string]string{"LICHEN_MEDIA_UNUSED_EXPIRY": "2h"}, true, func(c MediaConfig) bool { return c.UnusedExpiry == "2h" }},
		{map[string]string{"LICHEN_MEDIA_LEGACY_ENDPOINTS": "off"}, true, func(c MediaConfig) bool { return !c.LegacyEndpoints }},
		{map[string]string{}, true, func(c MediaConfig) bool {
			return c.URLPreview && !c.URLPreviewAllowPrivate && !c.URLPreviewAllowLoopbackForTestsOnly && c.URLPreviewTimeout == "10s"
		}},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW": "off"}, true, func(c MediaConfig) bool { return !c.URLPreview }},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW_ALLOW_PRIVATE": "true"}, true, func(c MediaConfig) bool {
			return c.URLPreviewAllowPrivate && !c.URLPreviewAllowLoopbackForTestsOnly
		}},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW_ALLOW_LOOPBACK_FOR_TESTS_ONLY": "1"}, true, func(c MediaConfig) bool {
			return c.URLPreviewAllowLoopbackForTestsOnly && !c.URLPreviewAllowPrivate
		}},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW_TIMEOUT": "3s"}, true, func(c MediaConfig) bool { return c.URLPreviewTimeout == "3s" }},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW_TIMEOUT": "0s"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW_TIMEOUT": "fast"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW": "sometimes"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_URL_PREVIEW_ALLOW_PRIVATE": "yes please"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_MAX_UPLOAD_BYTES": "0"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_QUOTA_BYTES": "-1"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_UNUSED_EXPIRY": "soon"}, false, nil},
		{map[string]string{"LICHEN_MEDIA_LEGACY_ENDPOINTS": "maybe"}, false, nil},
	} {
		c := defaultMediaConfig()
		err := c.applyEnv(func(k string) string { return tc.env[k] })
		if (err == nil) != tc.ok || (tc.ok && !tc.want(c)) {
			t.Errorf("%v: %+v, %v", tc.env, c, err)
		}
	}
}

func TestMediaPreviewTimeout(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want string
		ok   bool
	}{
		{"", "10s", true},
		{"10s", "10s", true},
		{"1m", "1m0s", true},
		{"-1s", "", false},
		{"10", "", false},
	} {
		c := defaultMediaConfig()
		c.URLPreviewTimeout = tc.v
		d, err := c.previewTimeout()
		if (err == nil) != tc.ok || (tc.ok && d.String() != tc.want) {
			t.Errorf("%q: %v %v", tc.v, d, err)
		}
	}
}
