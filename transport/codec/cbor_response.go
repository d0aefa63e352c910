package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

// cborEncMode is the one encoder for responses: RFC 8949 §4.2.1 core
// deterministic encoding (sorted keys, shortest integer and float forms,
// definite lengths), so that the same response always has the same bytes
// and caches and tests can compare them.
var cborEncMode = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	return em
}()

// JSONToCBOR converts a JSON response body to CBOR. Numbers keep their
// kind: a JSON number whose value is integral and fits int64 or uint64
// becomes a CBOR integer (so 1e3 is the integer 1000), anything else a
// float. Without this, a generic decode would turn every count, timestamp
// and stream position into a float, which constrained CBOR clients parse
// slowly or not at all. Objects become maps with text keys.
//
// Errors are plain Go errors: the input is the server's own output, so a
// failure is an internal error, not the client's.
func JSONToCBOR(js []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("codec: trailing data after JSON value")
	}
	v, err := cborValue(v)
	if err != nil {
		return nil, err
	}
	return cborEncMode.Marshal(v)
}

// cborValue replaces json.Number in place (maps and slices are mutated,
// not copied) with int64, uint64 or float64.
func cborValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return jsonNumber(string(x))
	case map[string]any:
		for k, e := range x {
			c, err := cborValue(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
	case []any:
		for i, e := range x {
			c, err := cborValue(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
	}
	return v, nil
}

func jsonNumber(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return u, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, err
	}
	// Integral values written as 1e3 or 2.0 are still integers.
	if f == math.Trunc(f) && !math.IsInf(f, 0) {
		switch {
		case f >= -(1<<63) && f < 1<<63:
			return int64(f), nil
		case f >= 0 && f < 1<<64:
			return uint64(f), nil
		}
	}
	return f, nil
}
