package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lichen-hs/lichen/core/mxerr"
)

// wantErr checks that err is a *mxerr.Error with code (and, if set, a
// message containing substr); code "" means no error expected.
func wantErr(t *testing.T, err error, code, substr string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var me *mxerr.Error
	if !errors.As(err, &me) {
		t.Fatalf("want *mxerr.Error %s, got %v", code, err)
	}
	if me.Code != code || me.Status != 400 {
		t.Fatalf("want %s/400, got %s/%d: %s", code, me.Code, me.Status, me.Message)
	}
	if !strings.Contains(me.Message, substr) {
		t.Fatalf("message %q does not contain %q", me.Message, substr)
	}
}

func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

func TestRequestJSON(t *testing.T) {
	tests := []struct {
		name, ctype, body string
		lim               Limits
		code, msg         string
	}{
		{name: "object", ctype: "application/json", body: `{"msgtype":"m.text","body":"hi"}`},
		{name: "no content type", body: `{"a":[1,2,{"b":null}]}`},
		{name: "charset param", ctype: "application/json; charset=utf-8", body: `{}`},
		{name: "wrong type treated as JSON", ctype: "text/plain", body: `{"a":1}`},
		{name: "brackets inside strings do not count", body: `{"a":"[[[[[[[[[["}`, lim: Limits{MaxDepth: 2}},
		{name: "malformed", body: `{"a":`, code: "M_NOT_JSON"},
		{name: "trailing garbage", body: `{} x`, code: "M_NOT_JSON"},
		{name: "not JSON at all", ctype: "application/json", body: `hello`, code: "M_NOT_JSON"},
		{name: "invalid UTF-8", body: "{\"a\":\"\xff\"}", code: "M_NOT_JSON"},
		{name: "depth at limit", body: nested(3), lim: Limits{MaxDepth: 3}},
		{name: "depth over limit", body: nested(4), lim: Limits{MaxDepth: 3}, code: "M_BAD_JSON", msg: "too deeply nested"},
		{name: "default depth 64 ok", body: nested(64)},
		{name: "default depth 65 rejected", body: nested(65), code: "M_BAD_JSON", msg: "too deeply nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.body)
			out, err := RequestJSON(tt.ctype, in, tt.lim)
			wantErr(t, err, tt.code, tt.msg)
			if tt.code == "" && (len(out) != len(in) || &out[0] != &in[0]) {
				t.Fatalf("JSON body not passed through as the same slice")
			}
		})
	}
	t.Run("empty body", func(t *testing.T) {
		for _, ct := range []string{"", "application/json", "application/cbor"} {
			if out, err := RequestJSON(ct, nil, Limits{}); out != nil || err != nil {
				t.Fatalf("%q: got %q, %v; want nil, nil", ct, out, err)
			}
		}
	})
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestCBOR(t *testing.T) {
	deep := any(map[string]any{})
	for range 5 {
		deep = []any{deep}
	}
	tests := []struct {
		name      string
		ctype     string
		in        any    // marshalled with cbor.Marshal
		raw       []byte // used instead of in when set
		want      string // exact JSON output
		lim       Limits
		code, msg string
	}{
		{
			name:  "round trip",
			ctype: "application/cbor",
			in: map[string]any{
				"msgtype": "m.text", "body": "hé \"quoted\"\n\x01",
				"n": 42, "neg": -7, "ok": true, "none": nil,
				"list": []any{1, "two", map[string]any{"three": 3}},
			},
			want: `{"body":"hé \"quoted\"\n\u0001","list":[1,"two",{"three":3}],"msgtype":"m.text","n":42,"neg":-7,"none":null,"ok":true}`,
		},
		{name: "params and case", ctype: "Application/CBOR; foo=bar", in: map[string]any{"a": 1}, want: `{"a":1}`},
		{name: "floats stay floats", ctype: "application/cbor", in: map[string]any{"t": 21.5, "w": 21.0, "z": float32(0.5)}, want: `{"t":21.5,"w":21.0,"z":0.5}`},
		{name: "big uint", ctype: "application/cbor", in: map[string]any{"u": uint64(math.MaxUint64)}, want: `{"u":18446744073709551615}`},
		{name: "int keys rejected", ctype: "application/cbor", in: map[string]any{"content": map[int]string{1: "x"}}, code: "M_BAD_JSON", msg: "keys must be text strings (JSON object keys); at content"},
		{name: "byte string rejected", ctype: "application/cbor", in: map[string]any{"content": map[string]any{"blob": []byte{1, 2}}}, code: "M_BAD_JSON", msg: "send base64 text); at content.blob"},
		{name: "tag rejected", ctype: "application/cbor", in: map[string]any{"x": cbor.Tag{Number: 4000, Content: 1}}, code: "M_BAD_JSON", msg: "tag"},
		{name: "NaN rejected", ctype: "application/cbor", in: map[string]any{"x": math.NaN()}, code: "M_BAD_JSON"},
		{name: "duplicate keys rejected", ctype: "application/cbor", raw: []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}, code: "M_BAD_JSON"},
		{name: "truncated", ctype: "application/cbor", raw: []byte{0xa2, 0x61, 'a'}, code: "M_NOT_JSON"},
		{name: "trailing bytes", ctype: "application/cbor", raw: []byte{0xa0, 0xa0}, code: "M_NOT_JSON"},
		{name: "depth over limit", ctype: "application/cbor", in: deep, lim: Limits{MaxDepth: 5}, code: "M_BAD_JSON", msg: "too deeply nested"},
		{name: "depth at limit", ctype: "application/cbor", in: deep, lim: Limits{MaxDepth: 6}, want: `[[[[[{}]]]]]`},
		{name: "depth far over limit", ctype: "application/cbor", in: deep, lim: Limits{MaxDepth: 1}, code: "M_BAD_JSON", msg: "too deeply nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.raw
			if body == nil {
				body = mustCBOR(t, tt.in)
			}
			out, err := RequestJSON(tt.ctype, body, tt.lim)
			wantErr(t, err, tt.code, tt.msg)
			if tt.code != "" {
				return
			}
			if string(out) != tt.want {
				t.Fatalf("got  %s\nwant %s", out, tt.want)
			}
			if !json.Valid(out) {
				t.Fatalf("output is not valid JSON: %s", out)
			}
		})
	}
}

func TestCBORFloatsFailCanonicalCheck(t *testing.T) {
	// The whole point of keeping 21.0 a float: the event check sees it.
	body := mustCBOR(t, map[string]any{"content": map[string]any{"temperature": 21.0}})
	js, err := RequestJSON("application/cbor", body, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, CheckCanonicalNumbers(js), "M_BAD_JSON", "at content.temperature: 21.0")
}

func TestWantsCBOR(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"*/*", false},
		{"application/*", false},
		{"application/json", false},
		{"application/cbor", true},
		{"APPLICATION/CBOR", true},
		{"application/cbor, */*", true},
		{"application/cbor, application/json", true},
		{"application/json, application/cbor", false},
		{"application/json;q=0.9, application/cbor", true},
		{"application/json, application/cbor;q=0.5", false},
		{"application/cbor;q=0", false},
		{"application/cbor;q=0, */*", false},
		{"application/json;q=0, */*", true},
		{"application/json;q=0.5, application/*;q=0.8", true}, // JSON explicitly demoted
		{"text/html, application/cbor;q=0.9, */*;q=0.8", true},
		{"application/cbor;q=bogus", false},
		{"application/cbor ; q=1.0 ; x=y", true},
	}
	for _, tt := range tests {
		if got := WantsCBOR(tt.accept); got != tt.want {
			t.Errorf("WantsCBOR(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestJSONToCBOR(t *testing.T) {
	js := `{"count":42,"neg":-3,"big":18446744073709551615,"ts":1700000000000,` +
		`"exp":1e3,"two":2.0,"f":21.5,"tiny":1e-7,"huge":1e300,"s":"x","b":false,"n":null,` +
		`"list":[1,1.5,{"k":7}]}`
	out, err := JSONToCBOR([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	var got map[any]any
	if err := cbor.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[any]any{
		"count": uint64(42), "neg": int64(-3), "big": uint64(math.MaxUint64), "ts": uint64(1700000000000),
		"exp": uint64(1000), "two": uint64(2), "f": 21.5, "tiny": 1e-7, "huge": 1e300,
		"s": "x", "b": false, "n": nil,
		"list": []any{uint64(1), 1.5, map[any]any{"k": uint64(7)}},
	}
	for k, w := range want {
		if g := got[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("%v: got %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d keys, want %d", len(got), len(want))
	}
	// Deterministic: same input, same bytes, whatever the key order.
	again, _ := JSONToCBOR([]byte(`{"list":[1,1.5,{"k":7}],"n":null,"b":false,"s":"x","huge":1e300,"tiny":1e-7,` +
		`"f":21.5,"two":2.0,"exp":1e3,"ts":1700000000000,"big":18446744073709551615,"neg":-3,"count":42}`))
	if !bytes.Equal(out, again) {
		t.Error("encoding is not deterministic")
	}
	for _, bad := range []string{``, `{`, `{} {}`, `nope`} {
		if _, err := JSONToCBOR([]byte(bad)); err == nil {
			t.Errorf("JSONToCBOR(%q): want error", bad)
		}
	}
}

// testBody is compressible JSON-ish text of n bytes.
func testBody(n int) []byte {
	var b bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	for b.Len() < n {
		b.WriteString(`{"type":"m.room.message","sender":"@sensor`)
		b.WriteByte(byte('0' + r.IntN(10)))
		b.WriteString(`:hub.local","content":{"temperature":215,"humidity":`)
		b.WriteByte(byte('0' + r.IntN(10)))
		b.WriteString(`}},`)
	}
	return b.Bytes()[:n]
}

func TestCompress(t *testing.T) {
	big := testBody(64 << 10)
	small := testBody(MinCompressSize - 1)
	tests := []struct {
		name, accept string
		body         []byte
		want         string
	}{
		{"no header", "", big, ""},
		{"identity", "identity", big, ""},
		{"gzip", "gzip", big, "gzip"},
		{"x-gzip", "x-gzip", big, "gzip"},
		{"zstd", "zstd", big, "zstd"},
		{"both equal prefers zstd", "gzip, deflate, br, zstd", big, "zstd"},
		{"gzip higher q", "gzip;q=1, zstd;q=0.5", big, "gzip"},
		{"zstd q=0 honoured", "zstd;q=0, gzip", big, "gzip"},
		{"all q=0", "zstd;q=0, gzip;q=0", big, ""},
		{"star", "*", big, "zstd"},
		{"star but zstd refused", "*, zstd;q=0", big, "gzip"},
		{"star q=0", "*;q=0", big, ""},
		{"unsupported only", "br, deflate", big, ""},
		{"case and spaces", " GZIP ; Q=0.8 ", big, "gzip"},
		{"small body untouched", "zstd, gzip", small, ""},
		{"incompressible body untouched", "gzip", randomBytes(8 << 10), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.body)
			out, enc := Compress(tt.accept, tt.body)
			if enc != tt.want {
				t.Fatalf("encoding %q, want %q", enc, tt.want)
			}
			if !bytes.Equal(tt.body, orig) {
				t.Fatal("input body modified")
			}
			var got []byte
			switch enc {
			case "":
				if &out[0] != &tt.body[0] {
					t.Fatal("identity should return the body itself")
				}
				return
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(out))
				if err != nil {
					t.Fatal(err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			case "zstd":
				dec, err := zstd.NewReader(nil)
				if err != nil {
					t.Fatal(err)
				}
				defer dec.Close()
				if got, err = dec.DecodeAll(out, nil); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tt.body) {
				t.Fatal("decompressed body differs")
			}
			if len(out) >= len(tt.body) {
				t.Fatalf("compressed %d >= original %d", len(out), len(tt.body))
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestCompressConcurrent exercises the pools under -race.
func TestCompressConcurrent(t *testing.T) {
	body := testBody(16 << 10)
	done := make(chan error)
	for i := range 8 {
		go func() {
			enc := []string{"zstd", "gzip"}[i%2]
			for range 20 {
				out, got := Compress(enc, body)
				if got != enc || len(out) == 0 {
					done <- errors.New("bad compression " + got)
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckCanonicalNumbers(t *testing.T) {
	tests := []struct {
		name, js  string
		code, msg string
	}{
		{name: "integers fine", js: `{"content":{"t":215,"n":-5,"z":0,"max":9007199254740991,"min":-9007199254740991}}`},
		{name: "no numbers", js: `{"a":"1.5","b":[true,false,null],"c":{}, "d":[]}`},
		{name: "bare integer", js: ` 7 `},
		{name: "float", js: `{"content":{"temperature":21.5}}`, code: "M_BAD_JSON",
			msg: "float values are not allowed in events (room versions require integers); send an integer or a string instead; at content.temperature: 21.5"},
		{name: "float 1.0", js: `{"a":1.0}`, code: "M_BAD_JSON", msg: "float values are not allowed in events"},
		{name: "exponent", js: `{"a":1e3}`, code: "M_BAD_JSON", msg: "numbers in exponent form are not allowed in events (canonical JSON requires plain integers); send an integer or a string instead; at a: 1e3"},
		{name: "exponent upper", js: `{"a":1E3}`, code: "M_BAD_JSON", msg: "at a: 1E3"},
		{name: "2^53 rejected", js: `{"a":9007199254740992}`, code: "M_BAD_JSON", msg: "out of range"},
		{name: "-2^53 rejected", js: `{"a":-9007199254740992}`, code: "M_BAD_JSON", msg: "at a: -9007199254740992"},
		{name: "huge rejected", js: `{"a":123456789012345678901234567890}`, code: "M_BAD_JSON", msg: "out of range"},
		{name: "negative zero", js: `{"a":-0}`, code: "M_BAD_JSON", msg: "negative zero"},
		{name: "array path", js: `{"content":{"values":[1,2,3.25,4]}}`, code: "M_BAD_JSON", msg: "at content.values[2]: 3.25"},
		{name: "nested arrays", js: `{"a":[[1],[2,[3,0.5]]]}`, code: "M_BAD_JSON", msg: "at a[1][1][1]: 0.5"},
		{name: "path after skipped siblings", js: `{"a":{"x":[1,{"y":2}],"s":"}]"},"b":{"c":[{"d":1},{"e":-1.5}]}}`, code: "M_BAD_JSON", msg: "at b.c[1].e: -1.5"},
		{name: "dotted key quoted", js: `{"content":{"m.relates_to":{"n":0.1}}}`, code: "M_BAD_JSON", msg: `at content["m.relates_to"].n: 0.1`},
		{name: "escaped key", js: `{"a\"b":1.5}`, code: "M_BAD_JSON", msg: `at ["a\"b"]: 1.5`},
		{name: "top-level float", js: `1.5`, code: "M_BAD_JSON", msg: "instead: 1.5"},
		{name: "long literal truncated", js: `{"a":0.` + strings.Repeat("1", 100) + `}`, code: "M_BAD_JSON", msg: "..."},
		{name: "malformed", js: `{"a":}`, code: "M_NOT_JSON"},
		{name: "malformed literal", js: `{"a":tru}`, code: "M_NOT_JSON"},
		{name: "leading zero", js: `{"a":01}`, code: "M_NOT_JSON"},
		{name: "unterminated", js: `{"a":[1,2`, code: "M_NOT_JSON"},
		{name: "trailing", js: `{} 1`, code: "M_NOT_JSON"},
		{name: "mismatched", js: `{"a":[1}`, code: "M_NOT_JSON"},
		{name: "empty", js: ``, code: "M_NOT_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, CheckCanonicalNumbers([]byte(tt.js)), tt.code, tt.msg)
		})
	}
}

func TestCheckCanonicalNumbersDeep(t *testing.T) {
	// Deeper than the scanner's inline stack, to cover its growth.
	js := strings.Repeat(`{"k":[`, 40) + `1.5` + strings.Repeat(`]}`, 40)
	wantErr(t, CheckCanonicalNumbers([]byte(js)), "M_BAD_JSON", strings.Repeat("k[0].", 39)+"k[0]: 1.5")
}

func TestCheckCanonicalNumbersNoAllocs(t *testing.T) {
	js := []byte(`{"type":"m.room.message","content":{"t":215,"v":[1,2,3],"s":"x"}}`)
	if n := testing.AllocsPerRun(100, func() { _ = CheckCanonicalNumbers(js) }); n != 0 {
		t.Errorf("allocs per valid check = %v, want 0", n)
	}
}

func TestJSONCBORRoundTrip(t *testing.T) {
	// A CBOR client reading our responses and sending them back must get
	// the same JSON document the server produced.
	in := `{"a":[1,-2,{"b":"c\u0000d"}],"e":0.25,"f":null,"g":{"h":true},"i":9007199254740991}`
	c, err := JSONToCBOR([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RequestJSON("application/cbor", c, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal([]byte(in), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("round trip changed the document:\n in  %s\n out %s", in, out)
	}
}
