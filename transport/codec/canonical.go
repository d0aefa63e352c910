package codec

import (
	"encoding/json"

	"github.com/lichen-hs/lichen/core/mxerr"
)

// Canonical JSON (spec: appendices, "Canonical JSON") allows only integers
// in [-(2**53)+1, (2**53)-1], written without exponent or decimal point,
// and never -0. Events are hashed and signed over canonical JSON, so room
// versions refuse any event whose content breaks this rule (room versions
// 6+: "Event format", "integers outside the range ... are rejected";
// floats were never representable). Sensors are the clients that trip it
// most (a temperature of 21.5), so the error names the field and the fix.

const (
	maxSafeInt       = 1<<53 - 1 // 9007199254740991
	maxSafeIntDigits = 16
	// literals longer than this are cut short in error messages.
	maxQuotedNumber = 40
)

const canonicalFix = "send an integer or a string instead"

// CheckCanonicalNumbers walks JSON and returns an M_BAD_JSON *mxerr.Error
// naming the first number that canonical JSON does not allow: a float
// (21.5), an exponent (1e3), negative zero, or an integer outside
// [-(2^53)+1, 2^53-1]. The path in the message is relative to the
// document passed in (pass the whole event to get "content.temperature").
// Malformed JSON yields M_NOT_JSON. The walk is iterative and allocates
// nothing unless it fails.
func CheckCanonicalNumbers(js []byte) error {
	s := canonScanner{js: js}
	return s.run()
}

// scanFrame is one open container while scanning: for objects the raw
// (still escaped) current key, for arrays the current index.
type scanFrame struct {
	key     []byte
	index   int
	isArray bool
}

type canonScanner struct {
	js []byte
	i  int
}

func notJSON() error { return mxerr.NotJSON("body is not valid JSON") }

func (s *canonScanner) ws() {
	for s.i < len(s.js) {
		switch s.js[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *canonScanner) run() error {
	// The stack lives in this frame, not in s, so that escape analysis
	// keeps it off the heap for documents up to 16 levels deep.
	var stackBuf [16]scanFrame
	stack := stackBuf[:0]
	// Each turn of the loop reads one value, then closes whatever
	// containers end after it and moves past the separator.
	for {
		s.ws()
		if s.i >= len(s.js) {
			return notJSON()
		}
		switch c := s.js[s.i]; {
		case c == '{':
			s.i++
			s.ws()
			if s.i < len(s.js) && s.js[s.i] == '}' {
				s.i++
				break
			}
			stack = append(stack, scanFrame{})
			if err := s.key(&stack[len(stack)-1]); err != nil {
				return err
			}
			continue
		case c == '[':
			s.i++
			s.ws()
			if s.i < len(s.js) && s.js[s.i] == ']' {
				s.i++
				break
			}
			stack = append(stack, scanFrame{isArray: true})
			continue
		case c == '"':
			end := skipString(s.js, s.i)
			if end >= len(s.js) {
				return notJSON()
			}
			s.i = end + 1
		case c == '-' || c >= '0' && c <= '9':
			if err := s.number(stack); err != nil {
				return err
			}
		case c == 't' || c == 'f' || c == 'n':
			if !s.literal() {
				return notJSON()
			}
		default:
			return notJSON()
		}
		// After a value: close containers / step to the next element.
		for {
			s.ws()
			if len(stack) == 0 {
				if s.i != len(s.js) {
					return notJSON()
				}
				return nil
			}
			if s.i >= len(s.js) {
				return notJSON()
			}
			top := &stack[len(stack)-1]
			c := s.js[s.i]
			s.i++
			switch {
			case c == ',' && top.isArray:
				top.index++
			case c == ',':
				if err := s.key(top); err != nil {
					return err
				}
			case c == ']' && top.isArray, c == '}' && !top.isArray:
				stack = stack[:len(stack)-1]
				continue
			default:
				return notJSON()
			}
			break
		}
	}
}

// literal consumes true, false or null.
func (s *canonScanner) literal() bool {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.js)-s.i >= len(lit) && string(s.js[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return true
		}
	}
	return false
}

// key reads `"name" :` into the frame of the enclosing object.
func (s *canonScanner) key(f *scanFrame) error {
	s.ws()
	if s.i >= len(s.js) || s.js[s.i] != '"' {
		return notJSON()
	}
	end := skipString(s.js, s.i)
	if end >= len(s.js) {
		return notJSON()
	}
	f.key = s.js[s.i : end+1]
	s.i = end + 1
	s.ws()
	if s.i >= len(s.js) || s.js[s.i] != ':' {
		return notJSON()
	}
	s.i++
	return nil
}

// number checks the literal at s.i against the canonical JSON grammar:
// -?(0|[1-9][0-9]*) with at most 2^53-1 in magnitude, and not -0.
func (s *canonScanner) number(stack []scanFrame) error {
	start := s.i
	hasDot, hasExp := false, false
scan:
	for ; s.i < len(s.js); s.i++ {
		switch c := s.js[s.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+':
		case c == '.':
			hasDot = true
		case c == 'e' || c == 'E':
			hasExp = true
		default:
			break scan
		}
	}
	lit := s.js[start:s.i]
	digits := lit
	if digits[0] == '-' {
		digits = digits[1:]
	}
	switch {
	case hasDot:
		return reject(stack, "float values are not allowed in events (room versions require integers)", lit)
	case hasExp:
		return reject(stack, "numbers in exponent form are not allowed in events (canonical JSON requires plain integers)", lit)
	case len(digits) == 0 || (digits[0] == '0' && len(digits) > 1):
		return notJSON()
	}
	var v uint64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return notJSON()
		}
		if len(digits) <= maxSafeIntDigits {
			v = v*10 + uint64(d-'0')
		}
	}
	switch {
	case len(digits) > maxSafeIntDigits || v > maxSafeInt:
		return reject(stack, "integer out of range for events (canonical JSON allows -(2^53)+1 to 2^53-1)", lit)
	case v == 0 && lit[0] == '-':
		return reject(stack, "negative zero is not allowed in events (canonical JSON)", lit)
	}
	return nil
}

// reject builds the error; only here is the path turned into a string.
func reject(stack []scanFrame, why string, lit []byte) error {
	quoted := string(lit)
	if len(quoted) > maxQuotedNumber {
		quoted = quoted[:maxQuotedNumber] + "..."
	}
	msg := why + "; " + canonicalFix
	if len(stack) > 0 {
		msg += "; at " + formatPath(framesPath(stack))
	}
	return mxerr.BadJSON(msg + ": " + quoted)
}

func framesPath(stack []scanFrame) []pathElem {
	path := make([]pathElem, len(stack))
	for i, f := range stack {
		if f.isArray {
			path[i] = pathElem{index: f.index, isIndex: true}
			continue
		}
		var k string
		if json.Unmarshal(f.key, &k) != nil {
			k = string(f.key)
		}
		path[i] = pathElem{key: k}
	}
	return path
}
