// Package transport is Lichen's HTTP face and its only fasthttp user:
// routing, CORS, authentication, rate limits, JSON/CBOR codecs and
// compression, and the thin handlers that decode a request, call core and
// encode the answer.
package transport

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/transport/codec"
)

// Config is what transport needs from the server configuration.
type Config struct {
	ServerName    string
	PublicBaseURL string // advertised in /.well-known/matrix/client
	MaxBodyBytes  int
	RateLimit     RateLimitConfig
	// DefaultRoomVersion is advertised in /capabilities ("" = rooms'
	// default).
	DefaultRoomVersion string
}

// Authenticator resolves access tokens (implemented by core/accounts).
type Authenticator interface {
	Authenticate(token string) (*Session, error)
}

// Server is the HTTP front end.
type Server struct {
	cfg     Config
	r       router
	auth    Authenticator
	limiter *limiter
	srv     *fasthttp.Server
}

// NewServer makes a server; endpoint groups are added with the Mount* methods.
func NewServer(cfg Config, auth Authenticator) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	s := &Server{cfg: cfg, auth: auth, limiter: newLimiter(cfg.RateLimit)}
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		Name:               "Lichen",
		MaxRequestBodySize: cfg.MaxBodyBytes,
		// Bodies are streamed so an oversized one can be answered with a
		// Matrix 413 after draining it, instead of a reset connection
		// that the client never reads an answer from (RFC 9112 §9.6).
		StreamRequestBody:     true,
		ReadTimeout:           90 * time.Second,
		WriteTimeout:          90 * time.Second,
		IdleTimeout:           120 * time.Second,
		NoDefaultServerHeader: false,
		NoDefaultContentType:  true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if strings.Contains(err.Error(), "body size exceeds") {
				writeError(ctx, mxerr.TooLarge("request body is too large"))
				return
			}
			writeError(ctx, mxerr.NotJSON("malformed HTTP request"))
		},
		ReduceMemoryUsage: true,
	}
	s.mountDiscovery()
	return s
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting and waits for in-flight requests.
func (s *Server) Shutdown() error { return s.srv.Shutdown() }

// Handle exposes the router for tests that drive it in-process.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) { s.handle(ctx) }

func setCORS(ctx *fasthttp.RequestCtx) {
	// Spec: "Web Browser Clients": every endpoint answers with these.
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	// A bug in one handler answers 500 and is logged; it must not take the
	// whole server (and every other user's requests) down.
	defer func() {
		if p := recover(); p != nil {
			slog.Error("handler panic", "method", string(ctx.Method()), "path", string(ctx.Path()), "panic", p, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			setCORS(ctx)
			writeError(ctx, mxerr.Internal())
		}
	}()
	setCORS(ctx)
	// A body left unread on an early answer (unknown route, missing token)
	// would be parsed as the next request on this keep-alive connection.
	bodyRead := false
	defer func() {
		if !bodyRead {
			s.discardBody(ctx)
		}
	}()
	method := string(ctx.Method())
	if method == fasthttp.MethodOptions {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if method == fasthttp.MethodHead {
		method = fasthttp.MethodGet
	}
	rt, params, pathExists := s.r.match(method, string(ctx.URI().PathOriginal()))
	if rt == nil {
		if pathExists {
			writeError(ctx, mxerr.Unrecognized(fasthttp.StatusMethodNotAllowed))
		} else {
			writeError(ctx, mxerr.Unrecognized(fasthttp.StatusNotFound))
		}
		return
	}
	req := &Request{Ctx: ctx, Params: params}
	if rt.auth != authNone {
		tok := accessToken(ctx)
		if tok == "" && rt.auth == authRequired {
			writeError(ctx, mxerr.MissingToken())
			return
		}
		if tok != "" {
			var sess *Session
			var err error
			if af, ok := s.auth.(interface {
				AuthenticateFrom(token, ip string) (*Session, error)
			}); ok {
				sess, err = af.AuthenticateFrom(tok, ctx.RemoteIP().String())
			} else {
				sess, err = s.auth.Authenticate(tok)
			}
			if err != nil {
				writeError(ctx, mxerr.As(err))
				return
			}
			req.Session, req.Token = sess, tok
		}
	}
	if m := ctx.Method(); !rt.rawBody && !bytes.Equal(m, []byte("GET")) && !bytes.Equal(m, []byte("HEAD")) {
		raw, err := s.readBody(ctx)
		bodyRead = true
		if err != nil {
			writeError(ctx, mxerr.As(err))
			return
		}
		req.body, req.bodyErr = codec.RequestJSON(string(ctx.Request.Header.ContentType()), raw, codec.Limits{})
	}
	resp, err := rt.h(req)
	if err != nil {
		e := mxerr.As(err)
		if e.Status >= 500 {
			slog.Error("request failed", "method", method, "path", string(ctx.Path()), "err", err)
		}
		writeError(ctx, e)
		return
	}
	status := fasthttp.StatusOK
	if st, ok := resp.(Status); ok {
		status, resp = st.Code, st.Body
	}
	if resp == nil { // a handler that wrote its own response
		return
	}
	var body []byte
	switch v := resp.(type) {
	case Raw:
		body = v
	default:
		body, err = json.Marshal(v)
		if err != nil {
			slog.Error("encode response", "err", err)
			writeError(ctx, mxerr.Internal())
			return
		}
	}
	writeBody(ctx, status, body)
}

// drainLimit is how much of an oversized body is read and discarded so the
// client gets its 413; beyond it the connection is simply closed.
const (
	drainLimit = 32 << 20
	drainTime  = 500 * time.Millisecond
)

// discardBody reads and drops an unread request body of up to the body
// limit, so the connection stays usable; a larger one closes the
// connection after the answer instead.
func (s *Server) discardBody(ctx *fasthttp.RequestCtx) {
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return
	}
	limit := int64(s.cfg.MaxBodyBytes)
	if n, _ := io.Copy(io.Discard, io.LimitReader(stream, limit+1)); n > limit {
		ctx.SetConnectionClose()
	}
}

// readBody reads the request body up to the configured limit.
func (s *Server) readBody(ctx *fasthttp.RequestCtx) ([]byte, error) {
	limit := int64(s.cfg.MaxBodyBytes)
	tooLarge := func(rest io.Reader) error {
		// Drain what the client is sending, for at most drainTime: a
		// client still writing then reads the 413; one that sent only
		// headers is not waited on for long.
		_ = ctx.Conn().SetReadDeadline(time.Now().Add(drainTime))
		_, _ = io.Copy(io.Discard, io.LimitReader(rest, drainLimit))
		ctx.SetConnectionClose()
		return mxerr.TooLarge("request body is larger than " + itoa(limit) + " bytes")
	}
	stream := ctx.RequestBodyStream()
	if cl := int64(ctx.Request.Header.ContentLength()); cl > limit {
		if stream == nil {
			return nil, mxerr.TooLarge("request body is too large")
		}
		return nil, tooLarge(stream)
	}
	if stream == nil {
		return ctx.PostBody(), nil
	}
	body, err := io.ReadAll(io.LimitReader(stream, limit+1))
	if err != nil {
		return nil, mxerr.NotJSON("could not read request body")
	}
	if int64(len(body)) > limit {
		return nil, tooLarge(stream)
	}
	return body, nil
}

func accessToken(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 7 && strings.EqualFold(string(h[:7]), "bearer ") {
		return strings.TrimSpace(string(h[7:]))
	}
	return string(ctx.QueryArgs().Peek("access_token"))
}

// writeBody encodes a JSON body as CBOR when asked and compresses it when
// the client allows and it is worth it.
func writeBody(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ct := "application/json"
	if codec.WantsCBOR(string(ctx.Request.Header.Peek("Accept"))) {
		if c, err := codec.JSONToCBOR(body); err == nil {
			body, ct = c, "application/cbor"
		}
	}
	if enc := ctx.Request.Header.Peek("Accept-Encoding"); len(enc) > 0 {
		if out, e := codec.Compress(string(enc), body); e != "" {
			body = out
			ctx.Response.Header.Set("Content-Encoding", e)
			ctx.Response.Header.Add("Vary", "Accept-Encoding")
		}
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(ct)
	ctx.SetBody(body)
}

func writeError(ctx *fasthttp.RequestCtx, e *mxerr.Error) {
	obj := make(map[string]any, 2+len(e.Fields))
	for k, v := range e.Fields {
		obj[k] = v
	}
	obj["errcode"] = e.Code
	obj["error"] = e.Message
	body, _ := json.Marshal(obj)
	if e.Status == fasthttp.StatusTooManyRequests {
		if ms, ok := e.Fields["retry_after_ms"].(int64); ok {
			ctx.Response.Header.Set("Retry-After", itoa((ms+999)/1000))
		}
	}
	writeBody(ctx, e.Status, body)
}
