package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lichen-hs/lichen/boltstore"
	"github.com/lichen-hs/lichen/core/media"
	"github.com/lichen-hs/lichen/core/thumbnail"
	"github.com/lichen-hs/lichen/core/urlpreview"
	"github.com/lichen-hs/lichen/transport"
)

// mountMedia wires the content repository (core/media) on the store and
// on files under <data_dir>/media, cleans what an interrupted upload left
// behind, and mounts the media endpoints.
func mountMedia(a *app, cfg MediaConfig) error {
	expiry, err := cfg.expiry()
	if err != nil {
		return err
	}
	previewTimeout, err := cfg.previewTimeout()
	if err != nil {
		return err
	}
	files, err := boltstore.OpenMediaFiles(filepath.Join(a.store.Dir(), "media"))
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	ms := media.New(media.Config{
		ServerName:     a.accounts.ServerName(),
		MaxUpload:      cfg.MaxUploadBytes,
		Quota:          cfg.QuotaBytes,
		MaxPending:     cfg.MaxPendingUploads,
		UnusedExpiry:   expiry,
		MaxThumbSource: cfg.MaxThumbnailSourceBytes,
	}, a.store, files, media.Thumbnailer{Make: thumbMake, Dimensions: thumbDimensions, Upright: thumbnail.Upright})
	if n, err := ms.Sweep(); err != nil {
		return fmt.Errorf("media: sweep: %w", err)
	} else if n > 0 {
		slog.Info("media: removed unreferenced files", "count", n)
	}
	opt := transport.MediaOptions{Legacy: cfg.LegacyEndpoints}
	if cfg.URLPreview {
		opt.Preview = urlpreview.New(urlpreview.Config{
			Timeout:       previewTimeout,
			AllowPrivate:  cfg.URLPreviewAllowPrivate,
			AllowLoopback: cfg.URLPreviewAllowLoopbackForTestsOnly,
			// An og:image is media like any upload, under the same cap.
			MaxImageBytes: cfg.MaxUploadBytes,
			UserAgent:     "Lichen/" + version + " (Matrix homeserver; URL preview; +https://github.com/lichen-hs/lichen)",
		}, ms)
		if cfg.URLPreviewAllowLoopbackForTestsOnly {
			slog.Warn("media: URL previews may fetch loopback addresses (url_preview_allow_loopback_for_tests_only): for tests only")
		}
	}
	a.http.MountMedia(ms, opt)
	a.media = ms
	return nil
}

// thumbErr maps core/thumbnail's errors to core/media's.
func thumbErr(err error) error {
	switch {
	case errors.Is(err, thumbnail.ErrTooLarge):
		return fmt.Errorf("%w: %v", media.ErrThumbTooLarge, err)
	case errors.Is(err, thumbnail.ErrUnsupported), errors.Is(err, thumbnail.ErrInvalid):
		return fmt.Errorf("%w: %v", media.ErrCannotThumb, err)
	}
	return err
}

func thumbMake(src []byte, ct string, w, h int, method string) ([]byte, string, error) {
	out, outType, err := thumbnail.Make(src, ct, w, h, method)
	if err != nil {
		return nil, "", thumbErr(err)
	}
	return out, outType, nil
}

func thumbDimensions(src []byte, ct string) (int, int, error) {
	w, h, err := thumbnail.Dimensions(src, ct)
	if err != nil {
		return 0, 0, thumbErr(err)
	}
	return w, h, nil
}
