package codec

import "testing"

// Benchmarks for the per-request hot paths; run with
// go test -bench . -benchmem ./transport/codec/

var benchEvent = []byte(`{"msgtype":"m.text","body":"temperature reading","sensor":{"id":"kitchen-1",` +
	`"temperature":215,"humidity":48,"battery":97,"readings":[210,212,215,214,213]},"ts":1700000000000}`)

func BenchmarkRequestJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if _, err := RequestJSON("application/json", benchEvent, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRequestCBOR(b *testing.B) {
	body, err := JSONToCBOR(benchEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := RequestJSON("application/cbor", body, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckCanonicalNumbers(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if err := CheckCanonicalNumbers(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONToCBOR(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if _, err := JSONToCBOR(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCompress(b *testing.B, accept string, size int) {
	body := testBody(size)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	var out []byte
	for b.Loop() {
		out, _ = Compress(accept, body)
	}
	b.ReportMetric(float64(len(out))/float64(len(body)), "ratio")
}

func BenchmarkCompressZstd(b *testing.B) {
	b.Run("4KiB", func(b *testing.B) { benchCompress(b, "zstd", 4<<10) })
	b.Run("64KiB", func(b *testing.B) { benchCompress(b, "zstd", 64<<10) })
}

func BenchmarkCompressGzip(b *testing.B) {
	b.Run("4KiB", func(b *testing.B) { benchCompress(b, "gzip", 4<<10) })
	b.Run("64KiB", func(b *testing.B) { benchCompress(b, "gzip", 64<<10) })
}
