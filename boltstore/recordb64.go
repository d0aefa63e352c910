package boltstore

import (
	"encoding/base64"
	"encoding/binary"
)

// Hashes, signatures and event IDs are base64 text in a PDU; a packed
// record stores them as raw bytes beside the rest of the JSON (see
// codec.go), which zstd cannot shrink but base64 decoding does by a quarter.

// Markers are control bytes, which JSON never holds raw; a payload that
// holds one anyway (it is not JSON) is stored without markers.
const (
	mStd43  byte = 1 // 43 base64 characters, standard alphabet (content hashes, keys)
	mURL43  byte = 2 // 43 characters, URL-safe alphabet (v4+ event IDs, v12 room IDs)
	mStd86  byte = 3 // 86 characters, standard alphabet (ed25519 signatures)
	mStd    byte = 4 // then uvarint count of characters; standard alphabet
	mURL    byte = 5 // then uvarint count of characters; URL-safe alphabet
	mHashes byte = 6 // the content hash member (see scanPDU)
	mLast        = mHashes

	// b64Min: shorter runs are mostly words; leave them to the compressor.
	b64Min = 40
)

var (
	b64Std = base64.RawStdEncoding.Strict()
	b64URL = base64.RawURLEncoding.Strict()
)

func hasMarker(b []byte) bool {
	for _, c := range b {
		if c >= 1 && c <= mLast {
			return true
		}
	}
	return false
}

var b64Chars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") {
		t[c] = true
	}
	return t
}()

// splitBase64 appends to skel the payload with every run of at least
// b64Min base64 characters replaced by a marker, and to bin the bytes those
// runs decode to. A run is taken only when it is canonical base64 (strict
// decoding, so encoding gives back the same characters).
func splitBase64(payload, skel, bin []byte) ([]byte, []byte) {
	done := 0 // payload[:done] is in skel or bin
	for i := 0; i < len(payload); {
		if !b64Chars[payload[i]] {
			i++
			continue
		}
		start, url, std := i, false, false
		for ; i < len(payload) && b64Chars[payload[i]]; i++ {
			switch payload[i] {
			case '-', '_':
				url = true
			case '+', '/':
				std = true
			}
		}
		run := payload[start:i]
		if len(run)%4 == 1 { // no base64 string is this long: its last character stays text
			run = run[:len(run)-1]
		}
		if len(run) < b64Min || url && std {
			continue
		}
		enc, marker := b64Std, mStd
		if url {
			enc, marker = b64URL, mURL
		}
		n := len(bin)
		bin = append(bin, make([]byte, enc.DecodedLen(len(run)))...)
		k, err := enc.Decode(bin[n:], run)
		bin = bin[:n+k]
		if err != nil {
			bin = bin[:n]
			continue
		}
		skel = append(skel, payload[done:start]...)
		switch {
		case len(run) == 43 && marker == mStd:
			skel = append(skel, mStd43)
		case len(run) == 43:
			skel = append(skel, mURL43)
		case len(run) == 86 && marker == mStd:
			skel = append(skel, mStd86)
		default:
			skel = binary.AppendUvarint(append(skel, marker), uint64(len(run)))
		}
		done = start + len(run)
	}
	return append(skel, payload[done:]...), bin
}

// joinBase64 appends to dst the payload splitBase64 took apart (leaving
// mHashes in place).
func joinBase64(dst, skel, bin []byte) ([]byte, error) {
	for {
		i := 0
		for i < len(skel) && (skel[i] == 0 || skel[i] >= mHashes) {
			i++
		}
		dst = append(dst, skel[:i]...)
		if i == len(skel) {
			if len(bin) != 0 {
				return nil, errBadRecord
			}
			return dst, nil
		}
		m := skel[i]
		skel = skel[i+1:]
		enc, chars := b64Std, 43
		switch m {
		case mURL43:
			enc = b64URL
		case mStd86:
			chars = 86
		case mStd, mURL:
			v, n := binary.Uvarint(skel)
			if n <= 0 || v > 1<<20 {
				return nil, errBadRecord
			}
			skel, chars = skel[n:], int(v)
			if m == mURL {
				enc = b64URL
			}
		}
		k := enc.DecodedLen(chars)
		if k > len(bin) {
			return nil, errBadRecord
		}
		dst = enc.AppendEncode(dst, bin[:k])
		bin = bin[k:]
	}
}
