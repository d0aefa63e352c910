package codec

import (
	"strconv"
	"strings"
)

// Content negotiation (RFC 9110 §12.5.1 Accept, §12.5.3 Accept-Encoding),
// parsed by hand because it runs on every request and mime.ParseMediaType
// allocates a map per call. Unparsable q-values count as q=0: a
// malformed header falls back to JSON and identity, which every client
// understands.

// WantsCBOR reports whether the Accept header prefers application/cbor
// over JSON. JSON is the default: an absent header, */* or application/*
// alone answer false. CBOR wins when its q-value (from the most specific
// matching range) beats JSON's, or ties with it while being named
// explicitly and JSON is not named before it. "application/cbor, */*"
// thus gets CBOR, and "application/json, application/cbor" gets JSON.
func WantsCBOR(accept string) bool {
	if accept == "" {
		return false
	}
	var cbor, json mediaMatch
	pos := 0
	for elem := range strings.SplitSeq(accept, ",") {
		mt, params, _ := strings.Cut(elem, ";")
		mt = strings.TrimSpace(mt)
		if mt == "" {
			continue
		}
		q := qValue(params)
		pos++
		cbor.offer(mt, "application/cbor", q, pos)
		json.offer(mt, "application/json", q, pos)
	}
	switch {
	case cbor.q <= 0:
		return false
	case cbor.q != json.q:
		return cbor.q > json.q
	default:
		return cbor.specificity == 2 && (json.specificity < 2 || cbor.pos < json.pos)
	}
}

// mediaMatch tracks the most specific Accept range matching one type:
// specificity 0 for */*, 1 for type/*, 2 for the exact type.
type mediaMatch struct {
	q           float64
	specificity int
	pos         int
	found       bool
}

func (m *mediaMatch) offer(rng, typ string, q float64, pos int) {
	spec := -1
	switch {
	case strings.EqualFold(rng, typ):
		spec = 2
	case rng == "*/*":
		spec = 0
	default:
		if major, minor, ok := strings.Cut(rng, "/"); ok && minor == "*" &&
			strings.EqualFold(major, typ[:strings.IndexByte(typ, '/')]) {
			spec = 1
		}
	}
	if spec < 0 || (m.found && spec < m.specificity) {
		return
	}
	if m.found && spec == m.specificity {
		// Repeated ranges: keep the first, as RFC 9110 leaves this open.
		return
	}
	*m = mediaMatch{q: q, specificity: spec, pos: pos, found: true}
}

// qValue extracts q from ";q=0.5;foo=bar" parameters; absent means 1.
func qValue(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		name, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// encodingQ returns the q-values the Accept-Encoding header gives zstd and
// gzip: an explicit entry wins over "*", and a coding that is neither
// listed nor covered by "*" gets 0 (RFC 9110 §12.5.3).
func encodingQ(acceptEncoding string) (zstdQ, gzipQ float64) {
	zstdQ, gzipQ, star := -1.0, -1.0, 0.0
	for elem := range strings.SplitSeq(acceptEncoding, ",") {
		coding, params, _ := strings.Cut(elem, ";")
		coding = strings.TrimSpace(coding)
		switch {
		case strings.EqualFold(coding, "zstd"):
			if zstdQ < 0 {
				zstdQ = qValue(params)
			}
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			if gzipQ < 0 {
				gzipQ = qValue(params)
			}
		case coding == "*":
			star = qValue(params)
		}
	}
	if zstdQ < 0 {
		zstdQ = star
	}
	if gzipQ < 0 {
		gzipQ = star
	}
	return zstdQ, gzipQ
}
