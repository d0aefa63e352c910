package boltstore

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/lichen-hs/lichen/core/rooms"
)

// Event records are stored as one format byte then CBOR; the PDU JSON inside
// is zstd-compressed when that saves space (DESIGN.md: store canonical JSON
// compressed, byte-exact on the way back).
const (
	recPlain byte = 1
	recZstd  byte = 2
)

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	zmu     sync.Mutex
)

// compressMin: below this the zstd frame overhead eats the gain.
const compressMin = 256

func encodeRecord(rec *rooms.EventRecord) []byte {
	r := *rec
	format := recPlain
	if len(r.JSON) >= compressMin {
		zmu.Lock()
		c := zenc.EncodeAll(r.JSON, nil)
		zmu.Unlock()
		if len(c) < len(r.JSON) {
			r.JSON, format = c, recZstd
		}
	}
	return append([]byte{format}, enc(&r)...)
}

func decodeRecord(raw []byte) (rooms.EventRecord, error) {
	var r rooms.EventRecord
	if len(raw) < 1 {
		return r, errors.New("empty record")
	}
	if err := cbor.Unmarshal(raw[1:], &r); err != nil {
		return r, err
	}
	if raw[0] == recZstd {
		j, err := zdec.DecodeAll(r.JSON, nil)
		if err != nil {
			return r, err
		}
		r.JSON = j
	}
	return r, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
