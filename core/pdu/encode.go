package pdu

import (
	"errors"
	"strconv"
)

// appendString appends s as a canonical JSON string, as gmsl's pipeline
// ends up writing it (encoding/json's escaping, then gmsl's CompactJSON
// undoing every \u escape it can): '"' and '\\' escaped, \b \t \n \f \r as
// short escapes, other control characters as \u00xx with lower-case hex,
// everything else (including <, >, &, U+2028, U+2029, DEL) as is. s must
// be valid UTF-8 (checkStrings).
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendStringArray(dst []byte, l []string) []byte {
	dst = append(dst, '[')
	for i, s := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

var errNotObject = errors.New("pdu: content is not a JSON object")

// scanContent walks content, which json.Valid has accepted, and makes the
// checks gmsl's pipeline makes implicitly:
//
//   - the content must be an object (gmsl's redaction decodes it into a
//     map[string]interface{}; null decodes to a nil map, which the fast path
//     declines rather than reproduce);
//   - every number must fit a float64 (same reason: encoding/json refuses
//     1e400 there);
//
// It also reports whether some object key contains a backslash escape (see
// keysNeedEscape) and whether some string contains a \u escape of a UTF-16
// surrogate (see Build).
func scanContent(b []byte) (escapedKey, surrogate bool, err error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		if i+4 <= len(b) && string(b[i:i+4]) == "null" {
			return false, false, ErrUnsupported
		}
		return false, false, errNotObject
	}
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			j, escaped := skipString(b, i)
			if escaped && hasSurrogateEscape(b[i:j]) {
				surrogate = true
			}
			if escaped {
				if k := skipSpace(b, j); k < len(b) && b[k] == ':' {
					escapedKey = true
				}
			}
			i = j
		case c == '-' || (c >= '0' && c <= '9'):
			j := i + 1
			simple := true
			for j < len(b) {
				d := b[j]
				if d >= '0' && d <= '9' {
					j++
					continue
				}
				if d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-' {
					simple = false
					j++
					continue
				}
				break
			}
			if !simple || j-i > 15 {
				if _, err := strconv.ParseFloat(string(b[i:j]), 64); err != nil {
					return false, false, errors.New("pdu: content: number " + string(b[i:j]) + " does not fit a float64")
				}
			}
			i = j
		default:
			i++
		}
	}
	return escapedKey, surrogate, nil
}

// hasSurrogateEscape reports whether the JSON string s has a \uD800 …
// \uDFFF escape.
func hasSurrogateEscape(s []byte) bool {
	for i := 0; i+5 < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] == 'u' && (s[i+2] == 'd' || s[i+2] == 'D') {
			switch s[i+3] {
			case '8', '9', 'a', 'b', 'A', 'B', 'c', 'd', 'e', 'f', 'C', 'D', 'E', 'F':
				return true
			}
		}
		i++ // skip the escaped character
	}
	return false
}

// keysNeedEscape reports whether an object key of compacted (gmsl's
// CompactJSON output, which has already decoded every \u escape it can)
// still contains an escape. gmsl's SortJSON writes the decoded key text
// back out unescaped, so such a key changes, or breaks the JSON, from one
// of gmsl's canonicalisation passes to the next; Build declines it.
func keysNeedEscape(compacted []byte) bool {
	for i := 0; i < len(compacted); {
		if compacted[i] != '"' {
			i++
			continue
		}
		j, escaped := skipString(compacted, i)
		if escaped && j < len(compacted) && compacted[j] == ':' {
			return true
		}
		i = j
	}
	return false
}

// skipString returns the index just past the string starting at b[i] == '"'
// and whether it contained a backslash.
func skipString(b []byte, i int) (int, bool) {
	escaped := false
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return i, escaped
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
