package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
)

// A small JSON scanner over a PDU's top-level members: enough to find the
// fields a packed record need not repeat (codec.go) without decoding the
// whole event.

// pduScan is what one scan of a PDU's top-level members finds: the string
// members a packed record need not repeat, and the content hash member
// with the input its hash is computed over.
type pduScan struct {
	found                                  int // pdu* bits
	eventID, roomID, sender, stateKey, typ string

	ok        bool // the JSON is an object read to its end
	hashes    span // the "hashes" member, or the mHashes marker
	hashInput []byte
}

type span struct{ start, end int }

const (
	pduEventID = 1 << iota
	pduRoomID
	pduSender
	pduStateKey
	pduType
)

func (p *pduScan) has(bit int) bool { return p.found&bit != 0 }

// The content hash (spec: "Calculating the content hash for an event") is
// SHA-256 over the canonical JSON of the event without "unsigned",
// "signatures" and "hashes": 32 bytes of a PDU that the rest gives. When a
// PDU's `"hashes":{"sha256":"…"}` member is exactly that, a packed record
// stores the mHashes byte in its place and reading computes it again.
const hashesPrefix = `"hashes":{"sha256":"`

// contentHashIs reports whether js's hashes member (found by scanPDU with
// withHash) is exactly `"hashes":{"sha256":"<the hash of hashInput>"}`.
// On canonical JSON hashInput is what the spec hashes; on anything else
// the two differ and the member is stored.
func (p *pduScan) contentHashIs(js []byte) bool {
	m := js[p.hashes.start:p.hashes.end]
	if !p.ok || len(m) != len(hashesPrefix)+43+2 || !bytes.HasPrefix(m, []byte(hashesPrefix)) || !bytes.HasSuffix(m, []byte(`"}`)) {
		return false
	}
	h := sha256.Sum256(p.hashInput)
	var b [43]byte
	b64Std.Encode(b[:], h[:])
	return string(m[len(hashesPrefix):len(hashesPrefix)+43]) == string(b[:])
}

// scanPDU reads the top-level members of a PDU's JSON with a small scan
// (decoding every event read through encoding/json would cost /sync far
// more): the string members "event_id", "room_id", "sender", "state_key"
// and "type" (missing, not strings, or not JSON: absent; the encoder then
// stores the field), and with withHash the "hashes" member or the mHashes
// marker, and in hashInput (appended to buf) the other members but
// "signatures" and "unsigned", joined by commas in braces.
func scanPDU(js []byte, withHash bool, buf []byte) pduScan {
	out := pduScan{hashInput: buf}
	if withHash {
		out.hashInput = append(out.hashInput, '{')
	}
	var hashesN int
	out.ok = eachMember(js, func(k []byte, ms, vs, ve int) {
		if k == nil || string(k) == "hashes" { // nil: the mHashes marker
			out.hashes = span{ms, ve}
			hashesN++
			return
		}
		var bit int
		var dst *string
		switch string(k) {
		case "event_id":
			bit, dst = pduEventID, &out.eventID
		case "room_id":
			bit, dst = pduRoomID, &out.roomID
		case "sender":
			bit, dst = pduSender, &out.sender
		case "state_key":
			bit, dst = pduStateKey, &out.stateKey
		case "type":
			bit, dst = pduType, &out.typ
		case "signatures", "unsigned":
			return
		}
		if withHash {
			if len(out.hashInput) > len(buf)+1 {
				out.hashInput = append(out.hashInput, ',')
			}
			out.hashInput = append(out.hashInput, js[ms:ve]...)
		}
		if dst != nil && js[vs] == '"' && out.found&bit == 0 {
			if s, ok := jsonString(js[vs:ve]); ok {
				*dst = s
				out.found |= bit
			}
		}
	})
	if withHash {
		out.hashInput = append(out.hashInput, '}')
	}
	if hashesN != 1 {
		out.hashes = span{}
	}
	return out
}

// eachMember calls fn with the key (as written, without quotes) and the
// spans of each top-level member of the JSON object js: the member from
// its key's opening quote, and its value. An mHashes byte stands for a
// member with an empty key. It reports whether js is an object it could
// read to its end.
func eachMember(js []byte, fn func(key []byte, ms, vs, ve int)) bool {
	i := skipSpace(js, 0)
	if i >= len(js) || js[i] != '{' {
		return false
	}
	i = skipSpace(js, i+1)
	if i < len(js) && js[i] == '}' {
		return skipSpace(js, i+1) == len(js)
	}
	for {
		i = skipSpace(js, i)
		if i >= len(js) {
			return false
		}
		ms := i
		if js[i] == mHashes {
			i++
			fn(nil, ms, ms, i)
		} else {
			if js[i] != '"' {
				return false
			}
			ke := endOfString(js, i)
			if ke < 0 {
				return false
			}
			i = skipSpace(js, ke+1)
			if i >= len(js) || js[i] != ':' {
				return false
			}
			vs := skipSpace(js, i+1)
			if vs >= len(js) {
				return false
			}
			if i = skipValue(js, vs); i < 0 {
				return false
			}
			fn(js[ms+1:ke], ms, vs, i)
		}
		i = skipSpace(js, i)
		if i >= len(js) {
			return false
		}
		switch js[i] {
		case ',':
			i++
		case '}':
			return skipSpace(js, i+1) == len(js)
		default:
			return false
		}
	}
}

func skipSpace(js []byte, i int) int {
	for i < len(js) && (js[i] == ' ' || js[i] == '\n' || js[i] == '\r' || js[i] == '\t') {
		i++
	}
	return i
}

// endOfString returns the index of the quote closing the string that opens
// at js[i], or -1.
func endOfString(js []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(js[i:], '"')
		if j < 0 {
			return -1
		}
		i += j
		bs := 0
		for k := i - 1; k >= 0 && js[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return i
		}
		i++
	}
}

// skipValue returns the index just past the JSON value starting at js[i],
// or -1. It follows only nesting and strings; scanPDU needs no more.
func skipValue(js []byte, i int) int {
	depth := 0
	for i < len(js) {
		switch js[i] {
		case '"':
			e := endOfString(js, i)
			if e < 0 {
				return -1
			}
			i = e + 1
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\n', '\r', '\t':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	if depth == 0 {
		return i
	}
	return -1
}

// jsonString decodes a quoted JSON string, without allocating twice when
// it has no escapes.
func jsonString(q []byte) (string, bool) {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1]), true
	}
	var s string
	if json.Unmarshal(q, &s) != nil {
		return "", false
	}
	return s, true
}
