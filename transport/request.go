package transport

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/transport/codec"
)

// Session is the authenticated caller.
type Session struct {
	UserID   string
	DeviceID string
	Admin    bool
}

// Request is what a handler sees: the fasthttp context, path parameters,
// the caller (when authenticated) and the body as JSON.
type Request struct {
	Ctx     *fasthttp.RequestCtx
	Params  map[string]string
	Session *Session
	Token   string
	body    []byte
	bodyErr error
}

// Handler serves one endpoint. It returns the response object (encoded as
// JSON, or CBOR on request) or an error (a *mxerr.Error, or anything else
// as a 500 M_UNKNOWN).
type Handler func(r *Request) (any, error)

// Status wraps a response with a non-200 status.
type Status struct {
	Code int
	Body any
}

// Raw is a pre-encoded JSON response body.
type Raw []byte

// Param is a decoded path parameter.
func (r *Request) Param(name string) string { return r.Params[name] }

// Query is a query-string parameter.
func (r *Request) Query(name string) string { return string(r.Ctx.QueryArgs().Peek(name)) }

// QueryInt parses an integer query parameter, with def when absent.
func (r *Request) QueryInt(name string, def int) (int, error) {
	v := r.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, mxerr.InvalidParam(name + " must be an integer")
	}
	return n, nil
}

// Body returns the request body as JSON bytes (CBOR converted), nil if empty.
func (r *Request) Body() ([]byte, error) { return r.body, r.bodyErr }

// Decode unmarshals the body into v. An empty body decodes as {} when
// allowEmpty; otherwise it is M_NOT_JSON. Wrong types are M_BAD_JSON.
func (r *Request) Decode(v any) error {
	if r.bodyErr != nil {
		return r.bodyErr
	}
	b := r.body
	if len(b) == 0 {
		b = []byte("{}")
	}
	if b[0] != '{' {
		return mxerr.NotJSON("request body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return mxerr.BadJSON("field " + te.Field + " has the wrong type: expected " + te.Type.String())
		}
		return mxerr.BadJSON(err.Error())
	}
	return nil
}

// Object returns the body as a JSON object (event content), refusing
// anything else and refusing non-integer numbers (sensors: send integers).
func (r *Request) Object() (json.RawMessage, error) {
	if r.bodyErr != nil {
		return nil, r.bodyErr
	}
	b := r.body
	if len(b) == 0 {
		return nil, mxerr.NotJSON("request body must be a JSON object")
	}
	if b[0] != '{' {
		return nil, mxerr.BadJSON("event content must be a JSON object")
	}
	if err := codec.CheckCanonicalNumbers(b); err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}
