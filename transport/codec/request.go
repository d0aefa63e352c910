package codec

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// DefaultMaxDepth is the nesting limit used when Limits.MaxDepth is not set.
// Matrix bodies are shallow (events nest content a few levels down); a hard
// cap keeps recursive decoders, here and in handlers, off the stack cliff.
const DefaultMaxDepth = 64

// Limits applied to request bodies. Size limits live in transport, which
// sees the body before it is read in full.
type Limits struct {
	// MaxDepth is the largest number of nested objects/arrays accepted;
	// `{}` has depth 1. Zero or negative means DefaultMaxDepth.
	MaxDepth int
}

func (l Limits) maxDepth() int {
	if l.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return l.MaxDepth
}

// RequestJSON turns a request body into JSON bytes handlers can unmarshal.
//
// contentType is the raw Content-Type header. application/cbor bodies are
// decoded and re-encoded as JSON; anything else (including an empty header
// or a wrong one such as text/plain, which real clients send) is treated as
// JSON, as other homeservers do. JSON bodies are returned unchanged (the same
// slice) after checking that they are well-formed UTF-8 JSON (else
// M_NOT_JSON) and not nested deeper than lim.MaxDepth (else M_BAD_JSON).
//
// An empty body returns (nil, nil): whether that means "{}" or an error is
// the endpoint's decision.
func RequestJSON(contentType string, body []byte, lim Limits) ([]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	if isCBOR(contentType) {
		return cborToJSON(body, lim.maxDepth())
	}
	// The spec requires UTF-8 JSON; encoding/json would silently replace
	// invalid bytes with U+FFFD, changing what a client signed or hashed.
	if !utf8.Valid(body) {
		return nil, mxerr.NotJSON("request body is not valid UTF-8")
	}
	if !json.Valid(body) {
		return nil, mxerr.NotJSON("request body is not valid JSON")
	}
	if jsonDepthExceeds(body, lim.maxDepth()) {
		return nil, tooDeep(lim.maxDepth())
	}
	return body, nil
}

func tooDeep(max int) *mxerr.Error {
	return mxerr.BadJSON("request body is too deeply nested (more than " + strconv.Itoa(max) + " levels)")
}

// isCBOR reports whether a Content-Type names application/cbor, ignoring
// parameters and case, without allocating.
func isCBOR(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/cbor")
}

// jsonDepthExceeds reports whether well-formed JSON nests objects/arrays
// deeper than max. It only counts brackets outside strings, so it is one
// allocation-free pass; json.Valid has already vouched for the syntax.
func jsonDepthExceeds(js []byte, max int) bool {
	depth := 0
	for i := 0; i < len(js); i++ {
		switch js[i] {
		case '"':
			i = skipString(js, i)
		case '{', '[':
			depth++
			if depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// skipString returns the index of the closing quote of the string that
// opens at js[start], or len(js) if it is unterminated.
func skipString(js []byte, start int) int {
	for i := start + 1; i < len(js); i++ {
		switch js[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(js)
}
