package codec

import (
	"errors"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// CBOR request bodies are translated to JSON once, at the edge, so that
// every handler and every core rule sees one format. The translation is
// strict where JSON has no equivalent (byte strings, non-text map keys,
// tags, NaN/Inf, duplicate keys) and faithful where validation matters:
// CBOR floats stay floats in the JSON ("21.0", not "21"), so the canonical
// JSON check rejects them exactly as it would a JSON float.

// cborDecModes caches one decoder per depth limit; DecOptions.DecMode
// validates and copies options, which is too costly per request.
var cborDecModes sync.Map // int -> cbor.DecMode

func cborDecMode(maxDepth int) (cbor.DecMode, error) {
	if dm, ok := cborDecModes.Load(maxDepth); ok {
		return dm.(cbor.DecMode), nil
	}
	// The library counts the same containers we do; one extra level lets
	// our own walk report the limit with our own message, and the clamp
	// keeps the value within what the library accepts (4..65535).
	levels := min(max(maxDepth+1, 4), 65535)
	dm, err := cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels: levels,
		UTF8:            cbor.UTF8RejectInvalid,
		NaN:             cbor.NaNDecodeForbidden,
		Inf:             cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		return nil, err
	}
	cborDecModes.Store(maxDepth, dm)
	return dm, nil
}

func cborToJSON(body []byte, maxDepth int) ([]byte, error) {
	dm, err := cborDecMode(maxDepth)
	if err != nil {
		return nil, mxerr.Internal()
	}
	var v any
	if err := dm.Unmarshal(body, &v); err != nil {
		return nil, cborDecodeError(err, maxDepth)
	}
	w := cborJSONWriter{maxDepth: maxDepth, buf: make([]byte, 0, len(body)+len(body)/2)}
	if err := w.value(v, 0); err != nil {
		return nil, err
	}
	return w.buf, nil
}

// cborDecodeError maps library errors to Matrix ones: bytes that are not
// CBOR at all are M_NOT_JSON (the CBOR twin of unparsable JSON); CBOR that
// parses but cannot become JSON is M_BAD_JSON.
func cborDecodeError(err error, maxDepth int) *mxerr.Error {
	var (
		syn   *cbor.SyntaxError
		extra *cbor.ExtraneousDataError
		deep  *cbor.MaxNestedLevelError
	)
	switch {
	case errors.As(err, &deep):
		return tooDeep(maxDepth)
	case errors.As(err, &syn), errors.As(err, &extra),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return mxerr.NotJSON("request body is not valid CBOR: " + err.Error())
	default:
		return mxerr.BadJSON("CBOR request body cannot be represented as JSON: " + err.Error())
	}
}

// cborJSONWriter appends the JSON form of a decoded CBOR value. Object
// keys are written sorted so that the output is deterministic.
type cborJSONWriter struct {
	buf      []byte
	maxDepth int
	path     []pathElem
}

func (w *cborJSONWriter) fail(msg string) error {
	if len(w.path) > 0 {
		msg += "; at " + formatPath(w.path)
	}
	return mxerr.BadJSON(msg)
}

func (w *cborJSONWriter) value(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case bool:
		w.buf = strconv.AppendBool(w.buf, x)
	case string:
		w.buf = appendJSONString(w.buf, x)
	case uint64:
		w.buf = strconv.AppendUint(w.buf, x, 10)
	case int64:
		w.buf = strconv.AppendInt(w.buf, x, 10)
	case big.Int:
		w.buf = x.Append(w.buf, 10)
	case *big.Int:
		w.buf = x.Append(w.buf, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return w.fail("NaN and infinite numbers cannot be represented in JSON")
		}
		w.buf = appendJSONFloat(w.buf, x)
	case []byte:
		return w.fail("CBOR byte strings are not allowed (JSON has no binary type; send base64 text)")
	case []any:
		if depth+1 > w.maxDepth {
			return tooDeep(w.maxDepth)
		}
		w.buf = append(w.buf, '[')
		w.path = append(w.path, pathElem{})
		for i, e := range x {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.path[len(w.path)-1] = pathElem{index: i, isIndex: true}
			if err := w.value(e, depth+1); err != nil {
				return err
			}
		}
		w.path = w.path[:len(w.path)-1]
		w.buf = append(w.buf, ']')
	case map[any]any:
		if depth+1 > w.maxDepth {
			return tooDeep(w.maxDepth)
		}
		return w.object(x, depth+1)
	default:
		return w.fail("CBOR value of type " + cborTypeName(v) + " cannot be represented as JSON")
	}
	return nil
}

func (w *cborJSONWriter) object(m map[any]any, depth int) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		s, ok := k.(string)
		if !ok {
			return w.fail("CBOR map keys must be text strings (JSON object keys)")
		}
		keys = append(keys, s)
	}
	slices.Sort(keys)
	w.buf = append(w.buf, '{')
	w.path = append(w.path, pathElem{})
	for i, k := range keys {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendJSONString(w.buf, k)
		w.buf = append(w.buf, ':')
		w.path[len(w.path)-1] = pathElem{key: k}
		if err := w.value(m[k], depth); err != nil {
			return err
		}
	}
	w.path = w.path[:len(w.path)-1]
	w.buf = append(w.buf, '}')
	return nil
}

func cborTypeName(v any) string {
	switch v.(type) {
	case cbor.Tag, cbor.RawTag:
		return "tag"
	case cbor.SimpleValue:
		return "simple value"
	default:
		return "other"
	}
}

// appendJSONFloat writes f so that it still reads as a float: encoding/json
// would print 21.0 as "21", and the event would slip past the canonical
// JSON check that must reject it.
func appendJSONFloat(b []byte, f float64) []byte {
	start := len(b)
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	for _, c := range b[start:] {
		if c == '.' || c == 'e' || c == 'E' {
			return b
		}
	}
	return append(b, ".0"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string. s is valid UTF-8 (the CBOR
// decoder rejects invalid text), so only quotes, backslashes and control
// characters need escaping.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
