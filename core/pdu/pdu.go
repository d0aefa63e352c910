// Package pdu is a fast path for building and signing local PDUs.
//
// Build produces exactly the bytes and event ID that gomatrixserverlib's
// EventBuilder.Build produces for the same event, for room versions 3–12
// (event format V2), but it canonicalises the client's content once and
// assembles the rest of the canonical JSON directly, instead of the
// marshal / unmarshal / redact / re-canonicalise round trips gmsl makes
// (DESIGN.md: "replace the offending part and keep its behaviour under the
// same tests"; the tests build every case with both and compare bytes).
//
// The algorithm is the spec's:
//
//   - content hash: SHA-256 of the canonical event without "hashes",
//     "signatures" and "unsigned" (server-server API, "Calculating the
//     content hash for an event");
//   - signature: ed25519 over the canonical *redacted* event (with
//     "hashes", without "signatures" and "unsigned") (appendices, "Signing
//     events");
//   - event ID: "$" + unpadded base64 of the SHA-256 of that same redacted
//     form — standard alphabet in room version 3, URL-safe from version 4
//     (appendices, "Calculating the reference hash").
//
// Whenever an input could make gmsl's multi-pass pipeline behave in a way
// this single pass does not reproduce (see ErrUnsupported), Build declines
// and the caller builds the event with gmsl instead.
package pdu

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	gmsl "github.com/matrix-org/gomatrixserverlib"
)

// ErrUnsupported means the fast path does not handle this input; build the
// event with gomatrixserverlib's EventBuilder instead. It is returned for
//
//   - room versions other than "3" … "12" (1 and 2 use the V1 event format
//     with random event IDs; experimental versions are not covered);
//   - content that is null, or that has an object key containing '"', '\\'
//     or a control character (gmsl's canonicaliser writes decoded key text
//     back out unescaped, so such keys do not survive its repeated passes;
//     keys with \u escapes of other characters are fine);
//   - top-level strings (IDs, type, state key, origin, key ID) that are not
//     valid UTF-8, and an origin or key ID that would need escaping as a
//     JSON object key ('"', '\\' or a control character).
//
// None of these arise from well-formed local events.
var ErrUnsupported = errors.New("pdu: input not supported by the fast path; use gomatrixserverlib")

// ErrUnverifiable is returned for content on which gmsl's Build succeeds
// but produces an event whose signature fails verification (its own
// VerifyEventSignatures included). gmsl signs the redaction of the content
// as sent, while verifiers redact the canonical content of the finished
// event; for the types whose redaction keeps content keys these differ
// when a kept value contains
//
//   - a lone UTF-16 surrogate escape such as "\ud800" (encoding/json
//     decodes it to U+FFFD; gmsl's canonicaliser drops it), or
//   - an object with duplicate keys among more than 12 entries (gmsl's
//     unstable sort reorders them, so the last duplicate, the one a decoder
//     keeps, is no longer the one that was signed).
//
// Treat it as bad client JSON; do not fall back to gmsl.
var ErrUnverifiable = errors.New("pdu: content would produce an event whose signature does not verify")

// Input describes one local event. All fields are used as given; nothing is
// defaulted except that nil PrevEvents / AuthEvents encode as [] (as gmsl
// does when the builder's field is left unset).
type Input struct {
	RoomVersion string  // "3" … "12"
	RoomID      string  // "" only for a version 12 m.room.create event
	Sender      string  // user ID
	Type        string  // event type
	StateKey    *string // nil for a message event
	// Content is the event content as the client sent it: any valid JSON
	// object, whitespace and key order as they come. It is canonicalised
	// here; an empty Content is an error, as it is for gmsl.
	Content        json.RawMessage
	Redacts        string // top-level "redacts", omitted when ""
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	Origin         string // this server's name; also the signing entity
	OriginServerTS int64  // milliseconds since the Unix epoch
	KeyID          string // e.g. "ed25519:a_Xyz1"
	PrivateKey     ed25519.PrivateKey
}

// Output is the built event.
type Output struct {
	// JSON is the canonical PDU, byte for byte what gmsl's
	// EventBuilder.Build returns from PDU.JSON().
	JSON []byte
	// EventID is what gmsl's PDU.EventID() returns for it.
	EventID string
}

// Limits enforced by gmsl (CheckFields / checkID), mirrored here so that the
// fast path fails exactly when gmsl's Build fails.
const (
	maxIDLength    = 255
	maxEventLength = 65536
)

const maxSafeInt = 9007199254740991 // 2^53-1, canonical JSON's integer range

// Build builds, hashes and signs one event. Exactly one of these holds:
//
//   - it succeeds, and gmsl's EventBuilder.Build on the same event (with
//     now = time.UnixMilli(OriginServerTS)) succeeds with the same JSON and
//     event ID;
//   - it returns ErrUnsupported: build the event with gmsl;
//   - it returns ErrUnverifiable: gmsl would build an event whose signature
//     does not verify; reject the request as bad JSON;
//   - it returns another error, and so would gmsl. The text may differ,
//     except that the over-long cases return gmsl's own
//     gmsl.EventValidationError messages ("... too long ...").
//
// To get a gmsl.PDU (for the auth rules) without hashing again, use
// ver.NewEventFromTrustedJSONWithEventID(out.EventID, out.JSON, false).
func Build(in Input) (Output, error) {
	v := versions[in.RoomVersion]
	if v == nil {
		return Output{}, ErrUnsupported
	}
	if len(in.PrivateKey) != ed25519.PrivateKeySize {
		// gmsl would panic inside ed25519.Sign.
		return Output{}, errors.New("pdu: bad ed25519 private key length")
	}
	if err := checkStrings(&in); err != nil {
		return Output{}, err
	}
	isState := in.StateKey != nil

	// EventBuilder.Build's own check for domainless (v12) create events.
	if v.domainless && in.Type == "m.room.create" && isState && in.RoomID != "" {
		return Output{}, fmt.Errorf("EventBuilder.Build: create event must have no room ID but %s was provided", in.RoomID)
	}

	// Content: the checks gmsl's steps make, then one canonicalisation.
	if len(in.Content) == 0 || !json.Valid(in.Content) {
		return Output{}, errors.New("pdu: content is not valid JSON")
	}
	escapedKey, surrogate, err := scanContent(in.Content)
	if err != nil {
		return Output{}, err
	}
	if err := v.impl.CheckCanonicalJSON(in.Content); err != nil {
		return Output{}, fmt.Errorf("pdu: content: %w", err)
	}
	if v.enforced {
		if in.Depth < -maxSafeInt || in.Depth > maxSafeInt || uint64(in.OriginServerTS) > maxSafeInt {
			return Output{}, fmt.Errorf("pdu: %w", gmsl.ErrCanonicalJSON)
		}
	}
	// gmsl canonicalises the content as encoding/json re-encoded it, with
	// <, >, & and U+2028/9 escaped as \u003c etc. That only matters after
	// a lone surrogate escape, which gmsl's CompactJSON decodes together
	// with the escape that follows it.
	src := []byte(in.Content)
	if surrogate {
		var buf bytes.Buffer
		json.HTMLEscape(&buf, src)
		src = buf.Bytes()
	}
	content, err := gmsl.CanonicalJSON(src)
	if err != nil {
		return Output{}, err
	}
	if escapedKey && keysNeedEscape(gmsl.CompactJSON(src, nil)) {
		return Output{}, ErrUnsupported
	}

	// The checks NewEventFromTrustedJSON and CheckFields make.
	if err := checkFields(v, &in); err != nil {
		return Output{}, err
	}
	if len(content) > maxEventLength {
		// The event cannot fit; don't spend a signature on it.
		return Output{}, tooLong(len(content))
	}

	// Redacted content. gmsl signs the redaction of the content as sent,
	// while every verifier (and gmsl's own EventID) redacts the canonical
	// content of the finished event. The two differ only for the few types
	// whose redaction keeps content keys, and only for odd content in the
	// kept keys (a lone surrogate escape; duplicate keys in an object of
	// more than 12 entries, which gmsl's unstable sort reorders so that
	// "last one wins" picks another value): then gmsl emits an event whose
	// signature does not verify. Refuse those.
	redacted := emptyObject
	if keep, ok := v.keep[in.Type]; ok {
		redSign, err := redactContent(in.Content, keep)
		if err != nil {
			return Output{}, err
		}
		if redacted, err = redactContent(content, keep); err != nil {
			return Output{}, err
		}
		if string(redSign) != string(redacted) {
			return Output{}, ErrUnverifiable
		}
	}

	b := builderPool.Get().(*builder)
	defer b.release()
	b.reset(v, &in)

	// Content hash.
	scratch := b.appendEvent(b.scratch[:0], formHash, content, nil, nil)
	contentHash := sha256.Sum256(scratch)
	var hashB64 [43]byte
	base64.RawStdEncoding.Encode(hashB64[:], contentHash[:])

	// Signature over the redacted form (with hashes, without signatures);
	// the reference hash is over the very same bytes.
	scratch = b.appendEvent(scratch[:0], formRedacted, redacted, hashB64[:], nil)
	sig := ed25519.Sign(in.PrivateKey, scratch)
	ref := sha256.Sum256(scratch)
	b.scratch = scratch

	var sigB64 [86]byte
	base64.RawStdEncoding.Encode(sigB64[:], sig)

	out := make([]byte, 0, b.finalSize(content))
	out = b.appendEvent(out, formFinal, content, hashB64[:], sigB64[:])
	if len(out) > maxEventLength {
		return Output{}, tooLong(len(out))
	}

	var id [44]byte
	id[0] = '$'
	if v.urlSafeID {
		base64.RawURLEncoding.Encode(id[1:], ref[:])
	} else {
		base64.RawStdEncoding.Encode(id[1:], ref[:])
	}
	return Output{JSON: out[:len(out):len(out)], EventID: string(id[:])}, nil
}

// Supported reports whether Build handles the room version at all.
func Supported(roomVersion string) bool { return versions[roomVersion] != nil }

var emptyObject = []byte("{}")

func tooLong(n int) error {
	return gmsl.EventValidationError{
		Code:    gmsl.EventValidationTooLarge,
		Message: fmt.Sprintf("gomatrixserverlib: event is too long, length %d bytes > maximum %d bytes", n, maxEventLength),
	}
}

// checkStrings declines strings this single pass would encode differently
// from gmsl (invalid UTF-8, which encoding/json replaces byte by byte and
// the later checks then see replaced), and signature-map keys that gmsl's
// canonicaliser would write out unescaped.
func checkStrings(in *Input) error {
	for _, s := range [...]string{in.RoomID, in.Sender, in.Type, in.Redacts, in.Origin, in.KeyID} {
		if !utf8.ValidString(s) {
			return ErrUnsupported
		}
	}
	if in.StateKey != nil && !utf8.ValidString(*in.StateKey) {
		return ErrUnsupported
	}
	for _, l := range [2][]string{in.PrevEvents, in.AuthEvents} {
		for _, s := range l {
			if !utf8.ValidString(s) {
				return ErrUnsupported
			}
		}
	}
	if needsEscape(in.Origin) || needsEscape(in.KeyID) {
		return ErrUnsupported
	}
	return nil
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// checkFields mirrors NewEventFromTrustedJSON's room ID check and
// CheckFields (except the whole-event length, checked once it is built).
func checkFields(v *version, in *Input) error {
	if v.domainless {
		// checkRoomID (event format of version 12).
		isCreate := in.Type == "m.room.create" && in.StateKey != nil && *in.StateKey == ""
		if !isCreate && (len(in.RoomID) == 0 || in.RoomID[0] != '!') {
			return errors.New("gomatrixserverlib: room_id must start with !")
		}
	} else if err := checkID(in.RoomID, "room", '!'); err != nil {
		return err
	}
	if l := utf8.RuneCountInString(in.Type); l > maxIDLength {
		return idTooLong("event type", l, false)
	}
	if in.StateKey != nil {
		if l := utf8.RuneCountInString(*in.StateKey); l > maxIDLength {
			return idTooLong("state key", l, false)
		}
	}
	if l := len(in.Type); l > maxIDLength {
		return idTooLong("event type", l, true)
	}
	if in.StateKey != nil {
		if l := len(*in.StateKey); l > maxIDLength {
			return idTooLong("state key", l, true)
		}
	}
	return checkID(in.Sender, "user", '@')
}

func idTooLong(what string, l int, persistable bool) error {
	return gmsl.EventValidationError{
		Code:        gmsl.EventValidationTooLarge,
		Message:     fmt.Sprintf("gomatrixserverlib: %s is too long, length %d bytes > maximum %d bytes", what, l, maxIDLength),
		Persistable: persistable,
	}
}

// checkID is gmsl's checkID: SIGIL LOCALPART ":" DOMAIN, at most 255 runes
// and 255 bytes.
func checkID(id, kind string, sigil byte) error {
	if !containsColon(id) {
		return fmt.Errorf("gomatrixserverlib: invalid ID: %q", id)
	}
	if id[0] != sigil {
		return fmt.Errorf("gomatrixserverlib: invalid %s ID, wanted first byte to be '%c' got '%c'", kind, sigil, id[0])
	}
	if l := utf8.RuneCountInString(id); l > maxIDLength {
		return gmsl.EventValidationError{
			Code:    gmsl.EventValidationTooLarge,
			Message: fmt.Sprintf("gomatrixserverlib: %s ID is too long, length %d > maximum %d", kind, l, maxIDLength),
		}
	}
	if l := len(id); l > maxIDLength {
		return gmsl.EventValidationError{
			Code:        gmsl.EventValidationTooLarge,
			Message:     fmt.Sprintf("gomatrixserverlib: %s ID is too long, length %d bytes > maximum %d bytes", kind, l, maxIDLength),
			Persistable: true,
		}
	}
	return nil
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// redactContent is gmsl's redactEventJSON applied to the content alone:
// decode into map[string]interface{} (numbers become float64, invalid
// UTF-8 becomes U+FFFD, the last duplicate wins), keep the listed keys (all
// of them when keep is empty), re-encode and canonicalise.
func redactContent(src []byte, keep []string) ([]byte, error) {
	var m map[string]interface{}
	if err := json.Unmarshal(src, &m); err != nil {
		return nil, err
	}
	kept := map[string]interface{}{}
	if len(keep) == 0 {
		kept = m
	} else {
		for _, k := range keep {
			if val, ok := m[k]; ok {
				kept[k] = val
			}
		}
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return nil, err
	}
	return gmsl.CanonicalJSON(b)
}

// Event forms.
const (
	formHash     = iota // content hash input: no hashes, no signatures
	formRedacted        // signing / reference hash input
	formFinal           // the PDU
)

// builder holds the encoded top-level values of one event.
type builder struct {
	v       *version
	state   bool
	enc     []byte // all encoded values, sliced by the fields below
	auth    []byte // ["$a","$b"]
	prev    []byte
	origin  []byte // "example.org" (quoted)
	redacts []byte // nil when absent
	roomID  []byte // nil when absent
	sender  []byte
	sKey    []byte
	typ     []byte
	depth   []byte
	ts      []byte
	sigKeys []byte // {"origin":{"keyID":"  (the signature follows)
	scratch []byte
}

var builderPool = sync.Pool{New: func() any { return &builder{enc: make([]byte, 0, 512), scratch: make([]byte, 0, 1024)} }}

func (b *builder) reset(v *version, in *Input) {
	b.v = v
	b.state = in.StateKey != nil
	e := b.enc[:0]
	var marks [13]int
	n := 0
	mark := func() { marks[n] = len(e); n++ }
	mark()
	e = appendStringArray(e, in.AuthEvents)
	mark()
	e = appendStringArray(e, in.PrevEvents)
	mark()
	e = appendString(e, in.Origin)
	mark()
	if in.Redacts != "" {
		e = appendString(e, in.Redacts)
	}
	mark()
	if in.RoomID != "" {
		e = appendString(e, in.RoomID)
	}
	mark()
	e = appendString(e, in.Sender)
	mark()
	if in.StateKey != nil {
		e = appendString(e, *in.StateKey)
	}
	mark()
	e = appendString(e, in.Type)
	mark()
	e = strconv.AppendInt(e, in.Depth, 10)
	mark()
	e = strconv.AppendUint(e, uint64(in.OriginServerTS), 10)
	mark()
	e = append(e, `{"`...)
	e = append(e, in.Origin...)
	e = append(e, `":{"`...)
	e = append(e, in.KeyID...)
	e = append(e, `":"`...)
	mark()
	b.enc = e
	field := func(i int) []byte {
		if marks[i] == marks[i+1] {
			return nil
		}
		return e[marks[i]:marks[i+1]:marks[i+1]]
	}
	b.auth, b.prev, b.origin = field(0), field(1), field(2)
	b.redacts, b.roomID, b.sender = field(3), field(4), field(5)
	b.sKey, b.typ, b.depth, b.ts, b.sigKeys = field(6), field(7), field(8), field(9), field(10)
}

// release returns b to the pool, without buffers a large event grew.
func (b *builder) release() {
	const keep = 8 << 10
	if cap(b.scratch) > keep {
		b.scratch = make([]byte, 0, 1024)
	}
	if cap(b.enc) > keep {
		b.enc = make([]byte, 0, 512)
	}
	b.v = nil
	builderPool.Put(b)
}

// appendEvent writes the event's canonical JSON in the given form. The
// top-level keys are written in canonical (byte-wise sorted) order.
func (b *builder) appendEvent(dst []byte, form int, content, hash, sig []byte) []byte {
	redacted := form == formRedacted
	// Version 11+ redaction (fields V2) drops origin and prev_state too.
	dropLegacy := redacted && b.v.redactV2
	dst = append(dst, `{"auth_events":`...)
	dst = append(dst, b.auth...)
	dst = append(dst, `,"content":`...)
	dst = append(dst, content...)
	dst = append(dst, `,"depth":`...)
	dst = append(dst, b.depth...)
	if form != formHash {
		dst = append(dst, `,"hashes":{"sha256":"`...)
		dst = append(dst, hash...)
		dst = append(dst, `"}`...)
	}
	if !dropLegacy {
		dst = append(dst, `,"origin":`...)
		dst = append(dst, b.origin...)
	}
	dst = append(dst, `,"origin_server_ts":`...)
	dst = append(dst, b.ts...)
	dst = append(dst, `,"prev_events":`...)
	dst = append(dst, b.prev...)
	if b.state && !dropLegacy {
		// EventBuilder.Build still emits the legacy empty prev_state.
		dst = append(dst, `,"prev_state":[]`...)
	}
	if b.redacts != nil && !redacted {
		dst = append(dst, `,"redacts":`...)
		dst = append(dst, b.redacts...)
	}
	if b.roomID != nil {
		dst = append(dst, `,"room_id":`...)
		dst = append(dst, b.roomID...)
	}
	dst = append(dst, `,"sender":`...)
	dst = append(dst, b.sender...)
	if form == formFinal {
		dst = append(dst, `,"signatures":`...)
		dst = append(dst, b.sigKeys...)
		dst = append(dst, sig...)
		dst = append(dst, `"}}`...)
	}
	if b.state {
		dst = append(dst, `,"state_key":`...)
		dst = append(dst, b.sKey...)
	}
	dst = append(dst, `,"type":`...)
	dst = append(dst, b.typ...)
	return append(dst, '}')
}

// finalSize is an upper bound of the final event's length.
func (b *builder) finalSize(content []byte) int {
	return len(b.enc) + len(content) + 86 + 43 + 256
}
