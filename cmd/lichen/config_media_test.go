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
