// Package mxerr defines the Matrix error object that every failure becomes:
// an errcode, a human-readable message, the HTTP status the spec assigns,
// and the extra fields some codes carry (retry_after_ms, soft_logout, ...).
//
// Spec: client-server-api "Standard error response".
package mxerr

import (
	"errors"
	"net/http"
)

// Error is a Matrix error. Core returns it; transport encodes it as
// {"errcode": Code, "error": Message, ...Fields} with status Status.
type Error struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// With returns a copy of e carrying an extra top-level field.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Fields = make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	c.Fields[key] = value
	return &c
}

// New builds an error with an explicit status and code.
func New(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// As extracts a *Error from err, or wraps an unknown error as M_UNKNOWN 500.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Code: "M_UNKNOWN", Message: "internal server error"}
}

func Forbidden(msg string) *Error    { return New(403, "M_FORBIDDEN", msg) }
func NotFound(msg string) *Error     { return New(404, "M_NOT_FOUND", msg) }
func BadJSON(msg string) *Error      { return New(400, "M_BAD_JSON", msg) }
func NotJSON(msg string) *Error      { return New(400, "M_NOT_JSON", msg) }
func Unknown(msg string) *Error      { return New(400, "M_UNKNOWN", msg) }
func MissingParam(msg string) *Error { return New(400, "M_MISSING_PARAM", msg) }
func InvalidParam(msg string) *Error { return New(400, "M_INVALID_PARAM", msg) }
func TooLarge(msg string) *Error     { return New(413, "M_TOO_LARGE", msg) }
func MissingToken() *Error           { return New(401, "M_MISSING_TOKEN", "missing access token") }
func UserInUse() *Error              { return New(400, "M_USER_IN_USE", "user ID already taken") }
func InvalidUsername(msg string) *Error {
	return New(400, "M_INVALID_USERNAME", msg)
}
func Exclusive(msg string) *Error { return New(400, "M_EXCLUSIVE", msg) }
func RoomInUse() *Error           { return New(400, "M_ROOM_IN_USE", "room alias already taken") }
func UnsupportedRoomVersion(msg string) *Error {
	return New(400, "M_UNSUPPORTED_ROOM_VERSION", msg)
}
func InvalidRoomState(msg string) *Error { return New(400, "M_INVALID_ROOM_STATE", msg) }
func Internal() *Error                   { return New(500, "M_UNKNOWN", "internal server error") }

// Unrecognized is the answer for endpoints Lichen does not implement
// (404) or methods an endpoint does not support (405).
func Unrecognized(status int) *Error {
	return New(status, "M_UNRECOGNIZED", "unrecognized request")
}

// UnknownToken is the answer for an access token that is not (or no longer)
// valid; soft marks a token that expired rather than was revoked
// (spec: "Soft logout").
func UnknownToken(soft bool) *Error {
	e := New(401, "M_UNKNOWN_TOKEN", "unknown or expired access token")
	if soft {
		return e.With("soft_logout", true)
	}
	return e
}

// LimitExceeded is a rate-limit answer carrying retry_after_ms.
func LimitExceeded(retryAfterMs int64) *Error {
	return New(429, "M_LIMIT_EXCEEDED", "too many requests").With("retry_after_ms", retryAfterMs)
}
