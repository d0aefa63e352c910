package boltstore

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/lichen-hs/lichen/core/rooms"
)

// An event record (a value of pos_event) is one format byte, then a body
// the format byte describes. Format bytes are never reused, so a record
// written by any release stays readable by every later one.
//
//	1          CBOR map of rooms.EventRecord, PDU JSON as is (first release)
//	2          CBOR map, PDU JSON zstd-compressed without a dictionary
//	3          packed record, skeleton stored as is
//	0x10 + n   packed record, skeleton zstd-compressed with dictionary n
//	           (0 = none), the frame stored without its 4-byte magic
//
// DESIGN.md "On disk" asks for the canonical PDU JSON compressed with a
// dictionary trained on typical events and byte-exact on the way back. A
// small PDU is half base64 (hashes, signatures, IDs) that no compressor
// shrinks below 6 bits a character, and mixed into the literals it spoils
// the coding of the text around it. A packed record therefore holds
//
//	uvarint kinds    2 bits per field (the field* constants)
//	uvarint pos
//	fields           those whose kind stores something, in field order:
//	                 strings as uvarint length + bytes, event IDs of a hash
//	                 kind as their 32 bytes
//	[uvarint]        length of the JSON in the payload, when PrevContent
//	                 follows it
//	uvarint          binary section length << 1 | 1 when markers are in
//	                 use; 0 when not (the payload holds a marker byte of
//	                 its own, which JSON cannot)
//	binary section   the bytes of the payload's base64 runs
//	skeleton         the payload (PDU JSON then PrevContent) with each
//	                 base64 run replaced by a marker (splitBase64) and the
//	                 content hash member by mHashes (pduScan.contentHashIs)
//
// RoomID, Sender, Type, StateKey and (room versions 1 and 2) EventID are in
// the PDU already; a record stores them only when they differ from what
// scanPDU reads there (as for the v12 create event, whose PDU has no
// room_id). Every derivation is checked by the encoder against the record
// it was given, so a field or byte is never rebuilt wrong: what cannot be
// derived exactly is stored.
const (
	recPlain      byte = 1
	recZstd       byte = 2
	recPacked     byte = 3
	recPackedZstd byte = 0x10 // + dictionary number
)

// Field kinds, 2 bits each. The fields a message carries come first so
// that its kinds fit in one or two varint bytes.
const (
	kindNone     = 0 // absent; for fields the PDU carries: read from the PDU
	kindSame     = 1 // equal to a field the record has anyway (see each field)
	kindString   = 3 // stored as a string
	kindIDString = 1 // event ID fields: stored as a string
	kindHashURL  = 2 // event ID "$" + unpadded URL-safe base64 of 32 bytes (v4+): the 32 bytes
	kindHashStd  = 3 // event ID "$" + unpadded standard base64 of 32 bytes (v3): the 32 bytes

	fieldEventID       = 0  // none: PDU "event_id" (v1, v2); hash kinds; string
	fieldTxnUser       = 2  // same: Sender; string
	fieldTxnDevice     = 4  // string
	fieldTxnID         = 6  // string
	fieldTxnScope      = 8  // same: "send\x00" + RoomID + "\x00" + Type (core/rooms Send); string
	fieldPrevContent   = 10 // same: follows the JSON in the payload
	fieldPrevSender    = 12 // same: Sender; string
	fieldReplacesState = 14 // hash kinds; string
	fieldRedactedBy    = 16 // hash kinds; string
	fieldStateKey      = 18 // none: PDU "state_key" (nil if absent); same: nil; string
	fieldRoomID        = 20 // none: PDU "room_id"; string
	fieldType          = 22 // none: PDU "type"; string
	fieldSender        = 24 // none: PDU "sender"; string
)

// omitContentHash: recompute the content hash on reading (a SHA-256 over
// the PDU: ~2 µs of a ~8 µs decode here) instead of storing its 32 bytes
// (~33 of a ~390-byte message record). Either way records of both kinds
// decode.
const omitContentHash = true

// compressMin: below this a frame does not pay for itself.
const compressMin = 32

// zstd.dict is built by TestZstdDict (density_test.go) from events the
// room engine makes. A dictionary, once shipped, never changes: a better
// one is added under the next number and recordDict pointed at it.
//
//go:embed zstd.dict
var zstdDict1 []byte

// recordDict is the dictionary new records are compressed with; its zstd
// ID is its number.
const recordDict = 1

// zstdDicts are the dictionaries records may name, by number.
var zstdDicts = map[byte][]byte{1: zstdDict1}

// The coders are made on first use (so a cold start does not pay for
// them) and are single-threaded with low-memory options: boards have
// little memory and records are small.
var (
	zenc = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true),
			zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<15),
			zstd.WithEncoderDict(zstdDicts[recordDict]))
		if err != nil {
			panic(err) // the embedded dictionary is checked by TestZstdDict
		}
		return e
	})
	zdec = sync.OnceValue(func() *zstd.Decoder {
		opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(1 << 20)}
		for _, d := range zstdDicts {
			opts = append(opts, zstd.WithDecoderDicts(d))
		}
		d, err := zstd.NewReader(nil, opts...)
		if err != nil {
			panic(err)
		}
		return d
	})
	scratchPool = sync.Pool{New: func() any { return new(scratch) }}
)

// scratch is working memory for one encode or decode.
type scratch struct{ a, b, c, d []byte }

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func (sc *scratch) put() {
	if cap(sc.a)+cap(sc.b)+cap(sc.c)+cap(sc.d) <= 1<<18 {
		scratchPool.Put(sc)
	}
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

var errBadRecord = errors.New("boltstore: damaged event record")

func encodeRecord(rec *rooms.EventRecord) []byte { return prepareRecord(rec).at(rec.Pos) }

// preparedRecord is a record encoded but for its stream position, so that
// the costly part of encoding (scanning, hashing, compressing: ~15-25 µs
// for a message here) can run before the write transaction that allocates
// the position, outside the committer's critical section.
type preparedRecord struct {
	format byte
	kinds  uint64
	body   []byte // what follows the position
}

// at is the record at stream position pos.
func (p preparedRecord) at(pos uint64) []byte {
	out := make([]byte, 1, 1+2*binary.MaxVarintLen64+len(p.body))
	out[0] = p.format
	out = binary.AppendUvarint(out, p.kinds)
	out = binary.AppendUvarint(out, pos)
	return append(out, p.body...)
}

func prepareRecord(rec *rooms.EventRecord) preparedRecord {
	sc := getScratch()
	defer sc.put()
	var kinds uint64
	set := func(field, kind int) { kinds |= uint64(kind) << field }
	fields := sc.a[:0]
	str := func(s string) {
		fields = binary.AppendUvarint(fields, uint64(len(s)))
		fields = append(fields, s...)
	}
	id := func(field int, s string) {
		if s == "" {
			return
		}
		var b [32]byte
		switch {
		case hashID(b[:], s, b64URL):
			set(field, kindHashURL)
			fields = append(fields, b[:]...)
		case hashID(b[:], s, b64Std):
			set(field, kindHashStd)
			fields = append(fields, b[:]...)
		default:
			set(field, kindIDString)
			str(s)
		}
	}
	sameOr := func(field int, s, same string) {
		switch s {
		case "":
		case same:
			set(field, kindSame)
		default:
			set(field, kindString)
			str(s)
		}
	}

	pdu, skel, bin, jsonLen, marked := payloadOf(rec, sc)

	// The fields, in field order.
	if !pdu.has(pduEventID) || pdu.eventID != rec.EventID {
		id(fieldEventID, rec.EventID)
		if rec.EventID == "" { // kind 0 would mean "read from the PDU"
			set(fieldEventID, kindIDString)
			str("")
		}
	}
	sameOr(fieldTxnUser, rec.TxnUser, rec.Sender)
	sameOr(fieldTxnDevice, rec.TxnDevice, "")
	sameOr(fieldTxnID, rec.TxnID, "")
	switch {
	case rec.TxnScope == "":
	case isSendScope(rec.TxnScope, rec.RoomID, rec.Type):
		set(fieldTxnScope, kindSame)
	default:
		set(fieldTxnScope, kindString)
		str(rec.TxnScope)
	}
	if len(rec.PrevContent) > 0 {
		set(fieldPrevContent, kindSame)
	}
	sameOr(fieldPrevSender, rec.PrevSender, rec.Sender)
	id(fieldReplacesState, rec.ReplacesState)
	id(fieldRedactedBy, rec.RedactedBy)
	switch {
	case rec.StateKey == nil && pdu.has(pduStateKey):
		set(fieldStateKey, kindSame)
	case rec.StateKey != nil && (!pdu.has(pduStateKey) || pdu.stateKey != *rec.StateKey):
		set(fieldStateKey, kindString)
		str(*rec.StateKey)
	}
	if !pdu.has(pduRoomID) || pdu.roomID != rec.RoomID {
		set(fieldRoomID, kindString)
		str(rec.RoomID)
	}
	if !pdu.has(pduType) || pdu.typ != rec.Type {
		set(fieldType, kindString)
		str(rec.Type)
	}
	if !pdu.has(pduSender) || pdu.sender != rec.Sender {
		set(fieldSender, kindString)
		str(rec.Sender)
	}

	if len(rec.PrevContent) > 0 {
		fields = binary.AppendUvarint(fields, uint64(jsonLen))
	}
	if marked {
		fields = binary.AppendUvarint(fields, uint64(len(bin))<<1|1)
	} else {
		fields = append(fields, 0)
	}
	sc.a = fields

	body := make([]byte, 0, len(fields)+len(bin)+len(skel))
	body = append(append(body, fields...), bin...)
	if len(skel) >= compressMin {
		n := len(body)
		body = zenc().EncodeAll(skel, body)
		if frame := body[n:]; bytes.HasPrefix(frame, zstdMagic) && len(frame)-len(zstdMagic) < len(skel) {
			copy(frame, frame[len(zstdMagic):])
			return preparedRecord{recPackedZstd + recordDict, kinds, body[:len(body)-len(zstdMagic)]}
		}
		body = body[:n]
	}
	return preparedRecord{recPacked, kinds, append(body, skel...)}
}

// payloadOf lays out in sc what a packed record stores of rec besides its
// fields: the skeleton and the binary section of the payload (the JSON, its
// content hash member left out when reading can recompute it exactly, then
// PrevContent), the length of the JSON in it, and whether markers are in
// use (the payload holds none of its own, which JSON cannot). pdu is the
// scan of rec.JSON.
func payloadOf(rec *rooms.EventRecord, sc *scratch) (pdu pduScan, skel, bin []byte, jsonLen int, marked bool) {
	marked = !hasMarker(rec.JSON) && !hasMarker(rec.PrevContent)
	pdu = scanPDU(rec.JSON, marked && omitContentHash, sc.b[:0])
	sc.b = pdu.hashInput
	payload := sc.c[:0]
	if h := pdu.hashes; marked && omitContentHash && h.end > 0 && pdu.contentHashIs(rec.JSON) {
		payload = append(append(append(payload, rec.JSON[:h.start]...), mHashes), rec.JSON[h.end:]...)
	} else {
		payload = append(payload, rec.JSON...)
	}
	jsonLen = len(payload)
	payload = append(payload, rec.PrevContent...)
	sc.c = payload
	if !marked {
		return pdu, payload, nil, jsonLen, false
	}
	skel, bin = splitBase64(payload, sc.b[:0], sc.d[:0]) // hashInput is done with
	sc.b, sc.d = skel, bin
	return pdu, skel, bin, jsonLen, true
}

func isSendScope(scope, roomID, typ string) bool {
	const p = "send\x00"
	return len(scope) == len(p)+len(roomID)+1+len(typ) && scope[:len(p)] == p &&
		scope[len(p):len(p)+len(roomID)] == roomID && scope[len(p)+len(roomID)] == 0 &&
		scope[len(p)+len(roomID)+1:] == typ
}

// hashID reports whether s is "$" + the unpadded base64 (in enc) of 32
// bytes, as event IDs of room versions 3+ are, and puts them in b.
func hashID(b []byte, s string, enc *base64.Encoding) bool {
	if len(s) != 44 || s[0] != '$' {
		return false
	}
	n, err := enc.Decode(b, []byte(s[1:]))
	return err == nil && n == 32 // strict: only the canonical string decodes
}

func decodeRecord(raw []byte) (rooms.EventRecord, error) {
	var r rooms.EventRecord
	if len(raw) < 1 {
		return r, errBadRecord
	}
	switch f := raw[0]; {
	case f == recPlain || f == recZstd:
		return decodeRecordV1(raw)
	case f == recPacked || f == recPackedZstd:
	case f > recPackedZstd && f < recPackedZstd+0x10:
		if zstdDicts[f-recPackedZstd] == nil {
			return r, errors.New("boltstore: event record needs a zstd dictionary this binary lacks")
		}
	default:
		return r, errors.New("boltstore: unknown event record format")
	}
	p := raw[1:]
	bad := false
	uv := func() uint64 {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			bad = true
			return 0
		}
		p = p[n:]
		return v
	}
	str := func() string {
		n := uv()
		if uint64(len(p)) < n {
			bad = true
			return ""
		}
		s := string(p[:n])
		p = p[n:]
		return s
	}
	kinds := uv()
	kind := func(field int) int { return int(kinds>>field) & 3 }
	id := func(field int) string {
		enc := b64URL
		switch kind(field) {
		case kindNone:
			return ""
		case kindIDString:
			return str()
		case kindHashStd:
			enc = b64Std
		}
		if len(p) < 32 {
			bad = true
			return ""
		}
		var b [44]byte
		b[0] = '$'
		enc.Encode(b[1:], p[:32])
		p = p[32:]
		return string(b[:])
	}
	strIf := func(field int) string {
		if kind(field) == kindString {
			return str()
		}
		return ""
	}
	r.Pos = uv()
	r.EventID = id(fieldEventID)
	r.TxnUser = strIf(fieldTxnUser)
	r.TxnDevice = strIf(fieldTxnDevice)
	r.TxnID = strIf(fieldTxnID)
	r.TxnScope = strIf(fieldTxnScope)
	r.PrevSender = strIf(fieldPrevSender)
	r.ReplacesState = id(fieldReplacesState)
	r.RedactedBy = id(fieldRedactedBy)
	if kind(fieldStateKey) == kindString {
		s := str()
		r.StateKey = &s
	}
	r.RoomID = strIf(fieldRoomID)
	r.Type = strIf(fieldType)
	r.Sender = strIf(fieldSender)
	jsonLen := -1
	if kind(fieldPrevContent) == kindSame {
		jsonLen = int(uv())
	}
	split := uv()
	if bad || split>>1 > uint64(len(p)) {
		return r, errBadRecord
	}
	bin, skel := p[:split>>1], p[split>>1:]

	sc := getScratch()
	defer sc.put()
	if raw[0] != recPacked {
		sc.a = append(append(sc.a[:0], zstdMagic...), skel...)
		var err error
		if sc.b, err = zdec().DecodeAll(sc.a, sc.b[:0]); err != nil {
			return r, err
		}
		skel = sc.b
	}
	payload := skel
	if split&1 == 1 {
		var err error
		if sc.c, err = joinBase64(sc.c[:0], skel, bin); err != nil {
			return r, err
		}
		payload = sc.c
	}
	if jsonLen < 0 {
		jsonLen = len(payload)
	} else if jsonLen > len(payload) {
		return r, errBadRecord
	}
	js := payload[:jsonLen]

	// One scan of the JSON yields the fields the record left to the PDU
	// and, when the content hash was left out, the hash's input.
	hashAt := -1
	if split&1 == 1 {
		hashAt = bytes.IndexByte(js, mHashes)
	}
	var pdu pduScan
	if hashAt >= 0 || kind(fieldEventID) == kindNone || kind(fieldStateKey) == kindNone ||
		kind(fieldRoomID) == kindNone || kind(fieldType) == kindNone || kind(fieldSender) == kindNone {
		pdu = scanPDU(js, hashAt >= 0, sc.a[:0])
		sc.a = pdu.hashInput
	}

	// The one allocation the JSON and PrevContent share.
	n := len(payload)
	if hashAt >= 0 {
		n += len(hashesPrefix) + 43 + 1
	}
	out := make([]byte, 0, n)
	if hashAt >= 0 {
		if !pdu.ok || pdu.hashes.start != hashAt {
			return r, errBadRecord
		}
		h := sha256.Sum256(pdu.hashInput)
		out = append(append(out, js[:hashAt]...), hashesPrefix...)
		out = b64Std.AppendEncode(out, h[:])
		out = append(append(out, `"}`...), js[hashAt+1:]...)
	} else {
		out = append(out, js...)
	}
	r.JSON = out[:len(out):len(out)]
	if jsonLen < len(payload) {
		r.PrevContent = append(out[len(out):], payload[jsonLen:]...)
	}

	if kind(fieldEventID) == kindNone {
		r.EventID = pdu.eventID
	}
	if kind(fieldStateKey) == kindNone && pdu.has(pduStateKey) {
		s := pdu.stateKey
		r.StateKey = &s
	}
	if kind(fieldRoomID) == kindNone {
		r.RoomID = pdu.roomID
	}
	if kind(fieldType) == kindNone {
		r.Type = pdu.typ
	}
	if kind(fieldSender) == kindNone {
		r.Sender = pdu.sender
	}
	if kind(fieldTxnUser) == kindSame {
		r.TxnUser = r.Sender
	}
	if kind(fieldPrevSender) == kindSame {
		r.PrevSender = r.Sender
	}
	if kind(fieldTxnScope) == kindSame {
		r.TxnScope = "send\x00" + r.RoomID + "\x00" + r.Type
	}
	return r, nil
}

// decodeRecordV1 reads formats 1 and 2 (a CBOR map of the whole record).
func decodeRecordV1(raw []byte) (rooms.EventRecord, error) {
	var r rooms.EventRecord
	if err := cbor.Unmarshal(raw[1:], &r); err != nil {
		return r, err
	}
	if raw[0] == recZstd {
		j, err := zdec().DecodeAll(r.JSON, nil)
		if err != nil {
			return r, err
		}
		r.JSON = j
	}
	return r, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// appendFill is the bbolt FillPercent of buckets whose keys are appended
// in increasing order (pos_event, roomnid_pos; see AppendEvents).
const appendFill = 0.95
