package urlpreview

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHTML(t *testing.T) {
	for _, tc := range []struct {
		name string
		page string
		want map[string]string
	}{
		{"og tags", `<html><head>
			<meta property="og:title" content="Matrix Blog Post">
			<meta property="og:description" content="This is a really cool blog post">
			<meta property="og:image" content="/img.png">
			<meta property="og:image:width" content="48">
			<meta property="og:site_name" content="Matrix.org">
			<meta property="og:type" content="article">
			<meta property="og:url" content="https://matrix.org/blog/x">
			<title>Ignored</title></head></html>`,
			map[string]string{"og:title": "Matrix Blog Post", "og:description": "This is a really cool blog post",
				"og:image": "/img.png", "og:image:width": "48", "og:site_name": "Matrix.org", "og:type": "article",
				"og:url": "https://matrix.org/blog/x"}},
		{"fallbacks", `<!doctype html><html><head><title>  A   page
			title </title><meta name="Description" content="What it is about"></head><body><p>x</p></body></html>`,
			map[string]string{"og:title": "A page title", "og:description": "What it is about"}},
		{"og wins over fallbacks", `<title>T</title><meta name="description" content="D">
			<meta property="og:title" content="OG T"><meta property="og:description" content="OG D">`,
			map[string]string{"og:title": "OG T", "og:description": "OG D"}},
		{"first og:image wins", `<meta property="og:image" content="a.png"><meta property="og:image" content="b.png">`,
			map[string]string{"og:image": "a.png"}},
		{"og in name attribute, case", `<META NAME="og:Title" CONTENT="Named">`, map[string]string{"og:title": "Named"}},
		{"entities", `<title>Tom &amp; Jerry &eacute;</title><meta property="og:description" content="a &lt;b&gt; &quot;c&quot;">`,
			map[string]string{"og:title": "Tom & Jerry é", "og:description": `a <b> "c"`}},
		{"svg title is not the page's", `<body><svg><title>icon</title></svg><title>Real</title></body>`,
			map[string]string{"og:title": "Real"}},
		{"script is not markup", `<script>var s = '<meta property="og:title" content="fake">';</script><title>Real</title>`,
			map[string]string{"og:title": "Real"}},
		{"empty content skipped", `<meta property="og:title" content=""><meta property="og:title" content="Second">`,
			map[string]string{"og:title": "Second"}},
		{"nothing", `<p>hello</p>`, map[string]string{}},
		{"truncated mid-tag", `<title>Cut</title><meta property="og:description" content="never clo`,
			map[string]string{"og:title": "Cut"}},
	} {
		got := parseHTML(tc.page)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseHTMLLimits(t *testing.T) {
	long := strings.Repeat("é", 5000)
	got := parseHTML(`<meta property="og:description" content="` + long + `">`)
	d := got["og:description"]
	if n := len([]rune(d)); n != maxValueLen || !strings.HasSuffix(d, "…") {
		t.Errorf("long value: %d runes, suffix %q", n, d[len(d)-3:])
	}
	var b strings.Builder
	for i := 0; i < 200; i++ {
		b.WriteString(`<meta property="og:x` + strings.Repeat("y", i%10) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `" content="v">`)
	}
	if got := parseHTML(b.String()); len(got) > maxProps {
		t.Errorf("%d properties kept, max %d", len(got), maxProps)
	}
}

func TestDecodeHTML(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		header string
		want   string // the <title>
	}{
		{"utf-8 default", "<title>café</title>", "", "café"},
		{"latin1 header", "<title>caf\xe9</title>", "ISO-8859-1", "café"},
		{"windows-1252 header, smart quotes", "<title>\x93hi\x94 \x80</title>", "windows-1252", "“hi” €"},
		{"meta charset", `<meta charset="iso-8859-1"><title>caf` + "\xe9</title>", "", "café"},
		{"meta http-equiv", `<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><title>na` + "\xefve</title>", "", "naïve"},
		{"header wins over meta", `<meta charset="windows-1252"><title>café</title>`, "utf-8", "café"},
		{"undeclared invalid utf-8 is windows-1252", "<title>caf\xe9</title>", "", "café"},
		{"utf-8 BOM wins", "\xef\xbb\xbf<title>café</title>", "windows-1252", "café"},
		{"utf-16le BOM", utf16le("\ufeff<title>café ☕</title>"), "", "café ☕"},
		{"utf-16 header", utf16le("<title>ok ☕</title>"), "utf-16", "ok ☕"},
		{"meta utf-16 means utf-8", `<meta charset="utf-16"><title>café</title>`, "", "café"},
		{"unknown charset is read as utf-8", "<title>caf\xe9 ok</title>", "koi8-r", "caf\ufffd ok"},
	} {
		got := parseHTML(decodeHTML([]byte(tc.body), tc.header))["og:title"]
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func utf16le(s string) string {
	var b []byte
	for _, r := range s {
		if r > 0xffff {
			panic("BMP only")
		}
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}
