package transport

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lichen-hs/lichen/core/media"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/urlpreview"
)

// MediaOptions are the transport-side media settings.
type MediaOptions struct {
	// Legacy serves the deprecated unauthenticated /_matrix/media/v3
	// download, thumbnail, config and preview_url endpoints (spec 1.11
	// deprecated them; 1.12 says servers SHOULD freeze them). On by
	// default for older clients on a home hub.
	Legacy bool
	// Preview makes URL previews (core/urlpreview); nil when the operator
	// turned them off.
	Preview Previewer
}

// Previewer is core/urlpreview.Previewer.
type Previewer interface {
	Fetch(ctx context.Context, user, rawURL string, ts int64) (map[string]any, error)
}

// contentSecurityPolicy is the policy the spec recommends for served
// content ("Content repository").
const contentSecurityPolicy = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"

// MountMedia registers the content repository (content-repo.yaml and
// authed-content-repo.yaml).
func (s *Server) MountMedia(ms *media.Service, opt MediaOptions) {
	cfg := ms.Config()
	// Uploads stream their bodies (rawBody) instead of going through
	// readBody's MaxBodyBytes, so they can be as large as MaxUpload
	// without being held in memory.
	upload := func(r *Request) (any, error) {
		if err := s.limiter.allow("media", r.Session.UserID); err != nil {
			return nil, err
		}
		body, err := s.uploadBody(r, cfg.MaxUpload)
		if err != nil {
			return nil, err
		}
		id, err := ms.Upload(r.Session.UserID, body, contentType(r), r.Query("filename"))
		if err != nil {
			return nil, s.uploadErr(r, err, cfg.MaxUpload)
		}
		return map[string]string{"content_uri": ms.MXC(id)}, nil
	}
	for _, v := range []string{"v3", "r0"} {
		s.r.routes = append(s.r.routes, route{method: "POST", segments: split("/_matrix/media/" + v + "/upload"), h: upload, auth: authRequired, rawBody: true})
	}
	s.r.routes = append(s.r.routes, route{method: "PUT", segments: split("/_matrix/media/v3/upload/{serverName}/{mediaId}"), auth: authRequired, rawBody: true,
		h: func(r *Request) (any, error) {
			if r.Param("serverName") != cfg.ServerName || !media.ValidID(r.Param("mediaId")) {
				return nil, mxerr.NotFound("Unknown media ID")
			}
			body, err := s.uploadBody(r, cfg.MaxUpload)
			if err != nil {
				return nil, err
			}
			if err := ms.UploadTo(r.Session.UserID, r.Param("mediaId"), body, contentType(r), r.Query("filename")); err != nil {
				return nil, s.uploadErr(r, err, cfg.MaxUpload)
			}
			return map[string]any{}, nil
		}})
	s.r.add("POST", "/_matrix/media/v1/create", authRequired, func(r *Request) (any, error) {
		// authed-content-repo.yaml lists 429 for /create.
		if err := s.limiter.allow("media", r.Session.UserID); err != nil {
			return nil, err
		}
		id, exp, err := ms.Create(r.Session.UserID)
		if err != nil {
			return nil, mediaErr(err)
		}
		return map[string]any{"content_uri": ms.MXC(id), "unused_expires_at": exp}, nil
	})

	download := func(cache string) Handler {
		return func(r *Request) (any, error) {
			if err := localMedia(r, cfg.ServerName); err != nil {
				return nil, err
			}
			wait, err := timeoutMs(r)
			if err != nil {
				return nil, err
			}
			c, err := ms.Download(context.Background(), r.Param("mediaId"), wait)
			if err != nil {
				return nil, mediaErr(err)
			}
			name := c.Filename
			// The {fileName} form names the download as the client asks
			// (download/{serverName}/{mediaId}/{fileName}).
			if fn := r.Param("fileName"); fn != "" {
				name = fn
			}
			serveContent(r.Ctx, c, name, cache)
			return nil, nil
		}
	}
	thumbnail := func(cache string) Handler {
		return func(r *Request) (any, error) {
			if err := localMedia(r, cfg.ServerName); err != nil {
				return nil, err
			}
			w, err := r.QueryInt("width", 0)
			if err != nil {
				return nil, err
			}
			h, err := r.QueryInt("height", 0)
			if err != nil {
				return nil, err
			}
			wait, err := timeoutMs(r)
			if err != nil {
				return nil, err
			}
			c, err := ms.Thumbnail(context.Background(), r.Param("mediaId"), w, h, r.Query("method"), wait)
			if err != nil {
				return nil, mediaErr(err)
			}
			serveContent(r.Ctx, c, "", cache)
			return nil, nil
		}
	}
	config := func(r *Request) (any, error) {
		return map[string]any{"m.upload.size": cfg.MaxUpload}, nil
	}
	// preview_url fetches the page (core/urlpreview: destinations are
	// checked at dial time, and the LAN is refused unless the operator
	// allows it) and answers its OpenGraph data.
	preview := func(r *Request) (any, error) {
		if opt.Preview == nil {
			// Disabled: the answer Synapse gives (it does not register
			// the endpoint, so 404 M_UNRECOGNIZED), which clients have
			// long treated as "this server makes no previews" and
			// simply show the link. A 403 M_FORBIDDEN would read as
			// "you may not", which is not what the operator said.
			return nil, mxerr.New(404, "M_UNRECOGNIZED", "URL previews are disabled on this server")
		}
		raw := r.Query("url")
		if raw == "" {
			return nil, mxerr.MissingParam("url is required")
		}
		if _, err := urlpreview.ParseURL(raw); err != nil {
			return nil, mxerr.InvalidParam("url must be an http or https URL")
		}
		// ts (ms) is optional. Parsed as int64, not with QueryInt: a
		// timestamp overflows int on the 32-bit boards.
		var ts int64
		if v := r.Query("ts"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, mxerr.InvalidParam("ts must be an integer")
			}
			ts = n
		}
		// Not r.Ctx: the previewer bounds the fetch itself (and shares
		// it with other requests for the same URL).
		og, err := opt.Preview.Fetch(context.Background(), r.Session.UserID, raw, ts)
		if err != nil {
			return nil, previewErr(err)
		}
		return og, nil
	}

	const authedCache = "private, max-age=31536000, immutable"
	const legacyCache = "public, max-age=31536000, immutable"
	v1 := "/_matrix/client/v1/media"
	s.r.add("GET", v1+"/download/{serverName}/{mediaId}", authRequired, download(authedCache))
	s.r.add("GET", v1+"/download/{serverName}/{mediaId}/{fileName}", authRequired, download(authedCache))
	s.r.add("GET", v1+"/thumbnail/{serverName}/{mediaId}", authRequired, thumbnail(authedCache))
	s.r.add("GET", v1+"/config", authRequired, config)
	s.r.add("GET", v1+"/preview_url", authRequired, preview)
	if opt.Legacy {
		for _, v := range []string{"v3", "r0"} {
			p := "/_matrix/media/" + v
			s.r.add("GET", p+"/download/{serverName}/{mediaId}", authNone, download(legacyCache))
			s.r.add("GET", p+"/download/{serverName}/{mediaId}/{fileName}", authNone, download(legacyCache))
			s.r.add("GET", p+"/thumbnail/{serverName}/{mediaId}", authNone, thumbnail(legacyCache))
			// The legacy config and preview_url always needed a token.
			s.r.add("GET", p+"/config", authRequired, config)
			s.r.add("GET", p+"/preview_url", authRequired, preview)
		}
		// The seed's reference lists GET /_matrix/media/v1/config without
		// a token; it only says how large an upload may be.
		s.r.add("GET", "/_matrix/media/v1/config", authNone, config)
	}

	// Server administration, in Synapse's shapes (admin_api/media_admin_api).
	s.r.add("DELETE", "/_synapse/admin/v1/media/{serverName}/{mediaId}", authRequired, func(r *Request) (any, error) {
		if !r.Session.Admin {
			return nil, mxerr.Forbidden("You are not a server admin")
		}
		if r.Param("serverName") != cfg.ServerName {
			return nil, mxerr.New(400, "M_INVALID_PARAM", "Can only delete local media")
		}
		if err := ms.Delete(r.Param("mediaId")); err != nil {
			return nil, mediaErr(err)
		}
		return map[string]any{"deleted_media": []string{r.Param("mediaId")}, "total": 1}, nil
	})
	s.r.add("POST", "/_synapse/admin/v1/media/delete", authRequired, func(r *Request) (any, error) {
		if !r.Session.Admin {
			return nil, mxerr.Forbidden("You are not a server admin")
		}
		ts, err := strconv.ParseInt(r.Query("before_ts"), 10, 64)
		if err != nil || ts < 0 {
			return nil, mxerr.MissingParam("before_ts must be a timestamp in ms")
		}
		ids, err := ms.PurgeBefore(time.UnixMilli(ts))
		if err != nil {
			return nil, err
		}
		return map[string]any{"deleted_media": ids, "total": len(ids)}, nil
	})
}

// localMedia refuses media of other servers: there is no federation yet,
// so remote media cannot be fetched and is 404 M_NOT_FOUND (allowed by
// the spec's "MAY return 404 M_NOT_FOUND"). It also applies the media ID
// whitelist before anything touches the store.
func localMedia(r *Request, serverName string) error {
	if r.Param("serverName") != serverName || !media.ValidID(r.Param("mediaId")) {
		return mxerr.NotFound("Media not found")
	}
	return nil
}

// timeoutMs is the download's wait for a pending upload (default 20 s).
func timeoutMs(r *Request) (time.Duration, error) {
	ms, err := r.QueryInt("timeout_ms", 20000)
	if err != nil {
		return 0, err
	}
	if ms < 0 {
		ms = 0
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// contentType is the upload's type; the spec defaults it to
// application/octet-stream.
func contentType(r *Request) string {
	ct := strings.TrimSpace(string(r.Ctx.Request.Header.ContentType()))
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// uploadBody is the streamed request body. A declared length over max is
// refused before anything is read or written.
func (s *Server) uploadBody(r *Request, max int64) (io.Reader, error) {
	ctx := r.Ctx
	if cl := int64(ctx.Request.Header.ContentLength()); max > 0 && cl > max {
		return nil, s.refuseUpload(ctx, max)
	}
	if st := ctx.RequestBodyStream(); st != nil {
		return st, nil
	}
	return strings.NewReader(string(ctx.PostBody())), nil
}

// refuseUpload answers an oversized upload: what the client is still
// sending is drained for a moment so it reads the 413, then the
// connection is closed.
func (s *Server) refuseUpload(ctx *fasthttp.RequestCtx, max int64) error {
	if st := ctx.RequestBodyStream(); st != nil {
		_ = ctx.Conn().SetReadDeadline(time.Now().Add(drainTime))
		_, _ = io.Copy(io.Discard, io.LimitReader(st, drainLimit))
	}
	ctx.SetConnectionClose()
	return mxerr.TooLarge("Cannot upload files larger than " + strconv.FormatInt(max, 10) + " bytes")
}

func (s *Server) uploadErr(r *Request, err error, max int64) error {
	if errors.Is(err, media.ErrTooLarge) {
		return s.refuseUpload(r.Ctx, max)
	}
	return mediaErr(err)
}

// previewErr maps core/urlpreview errors. An unfetchable URL is 502, as
// Synapse answers: the homeserver is a gateway to the site here, and on
// an offline mesh "could not fetch" is the honest answer, not an empty
// preview. A refused destination is Synapse's 403 "IP address blocked".
func previewErr(err error) error {
	var fe *urlpreview.FetchError
	switch {
	case errors.Is(err, urlpreview.ErrInvalidURL):
		return mxerr.InvalidParam("url must be an http or https URL")
	case errors.Is(err, urlpreview.ErrBlocked):
		return mxerr.Forbidden("IP address blocked")
	case errors.As(err, &fe):
		return mxerr.New(502, "M_UNKNOWN", "Could not fetch the URL: "+fe.Reason)
	}
	return mediaErr(err)
}

// mediaErr maps core/media errors to the spec's error responses.
func mediaErr(err error) error {
	switch {
	case errors.Is(err, media.ErrNotFound):
		return mxerr.NotFound("Media not found")
	case errors.Is(err, media.ErrExists):
		return mxerr.New(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
	case errors.Is(err, media.ErrNotCreator):
		return mxerr.Forbidden("Only the creator of this media ID may upload to it")
	case errors.Is(err, media.ErrQuota):
		// Security considerations: "Homeservers should limit the number
		// and total size of media ... returning a HTTP 403 error with the
		// M_FORBIDDEN code" (upload's 403: "reached a quota").
		return mxerr.Forbidden("Media storage quota exceeded")
	case errors.Is(err, media.ErrTooLarge):
		return mxerr.TooLarge("Content is too large")
	case errors.Is(err, media.ErrTooManyPending):
		return mxerr.LimitExceeded(60_000)
	case errors.Is(err, media.ErrNotYetUploaded):
		return mxerr.New(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
	case errors.Is(err, media.ErrCannotThumb):
		return mxerr.Unknown("Cannot generate a thumbnail for this content")
	case errors.Is(err, media.ErrThumbTooLarge):
		return mxerr.TooLarge("Content is too large to thumbnail")
	case errors.Is(err, media.ErrBadRequest):
		return mxerr.Unknown(err.Error())
	}
	return err
}

// serveContent writes media with the headers the spec asks for: the
// uploaded type, an inline/attachment disposition, the recommended CSP,
// nosniff and CORP. The file is streamed, not read into memory.
func serveContent(ctx *fasthttp.RequestCtx, c *media.Content, filename, cache string) {
	h := &ctx.Response.Header
	h.Set("Content-Type", c.ContentType)
	h.Set("Content-Disposition", media.Disposition(c.ContentType, filename))
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Cache-Control", cache)
	ctx.SetStatusCode(fasthttp.StatusOK)
	if ctx.IsHead() {
		c.Body.Close()
		h.SetContentLength(int(c.Size))
		return
	}
	ctx.SetBodyStream(c.Body, int(c.Size))
}
