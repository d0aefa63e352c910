package codec

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// MinCompressSize is the smallest body worth compressing: below about a
// kilobyte the headers and framing eat most of the gain, and the CPU is
// better spent elsewhere on a small board.
const MinCompressSize = 1024

// maxPooledBuffer caps the scratch buffers kept for reuse, so that one huge
// response (an initial sync) does not pin its size in memory for good.
const maxPooledBuffer = 1 << 20

// zstdWindow bounds the encoder's and, more importantly, the client's
// decoder's memory: the default 8 MiB window is a lot for a hub or a sensor,
// and responses rarely exceed a few hundred kilobytes.
const zstdWindow = 1 << 20

// The encoders are pooled rather than shared: a zstd.Encoder with
// concurrency 1 serialises EncodeAll calls, and a gzip.Writer is stateful.
// sync.Pool lets the GC drop them when the server is idle.
var (
	zstdPool = sync.Pool{New: func() any {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true),
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithWindowSize(zstdWindow),
		)
		if err != nil {
			panic(err) // static options; cannot fail
		}
		return enc
	}}
	gzipPool = sync.Pool{New: func() any {
		// BestSpeed: on ARM boards CPU is scarcer than bandwidth, and
		// JSON compresses well even at level 1.
		w, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		if err != nil {
			panic(err)
		}
		return w
	}}
	bufPool     = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	scratchPool = sync.Pool{New: func() any { return new([]byte) }}
)

// Compress picks a content coding from the Accept-Encoding header and
// returns the compressed body with its Content-Encoding value. zstd is
// preferred over gzip when both are allowed with equal q (it is faster
// and smaller); an explicit q=0 is honoured. It returns (body, "") when the
// body is shorter than MinCompressSize, when no supported coding is
// acceptable, or when compression would not make the body smaller.
// The returned slice is freshly allocated; body is never modified.
func Compress(acceptEncoding string, body []byte) (out []byte, encoding string) {
	if len(body) < MinCompressSize || acceptEncoding == "" {
		return body, ""
	}
	zq, gq := encodingQ(acceptEncoding)
	switch {
	case zq > 0 && zq >= gq:
		out, encoding = compressZstd(body), "zstd"
	case gq > 0:
		out, encoding = compressGzip(body), "gzip"
	default:
		return body, ""
	}
	if out == nil || len(out) >= len(body) {
		return body, ""
	}
	return out, encoding
}

func compressZstd(body []byte) []byte {
	enc := zstdPool.Get().(*zstd.Encoder)
	scratch := scratchPool.Get().(*[]byte)
	*scratch = enc.EncodeAll(body, (*scratch)[:0])
	zstdPool.Put(enc)
	out := bytes.Clone(*scratch)
	if cap(*scratch) <= maxPooledBuffer {
		scratchPool.Put(scratch)
	}
	return out
}

func compressGzip(body []byte) []byte {
	w := gzipPool.Get().(*gzip.Writer)
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	w.Reset(buf)
	_, err := w.Write(body)
	if err == nil {
		err = w.Close()
	}
	w.Reset(nil) // drop the reference to buf before pooling
	gzipPool.Put(w)
	var out []byte
	if err == nil {
		out = bytes.Clone(buf.Bytes())
	}
	if buf.Cap() <= maxPooledBuffer {
		bufPool.Put(buf)
	}
	return out
}
