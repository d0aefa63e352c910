package urlpreview

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// Charset decoding without golang.org/x/text (x/net/html/charset needs
// it, and it is not worth its size on a board for this): UTF-8, UTF-16
// and windows-1252 (which the web means by ISO-8859-1, Latin-1 and ASCII)
// cover the pages that still declare a charset at all. Any other charset
// is read as UTF-8 with invalid bytes replaced: a preview with a few
// wrong letters, never an error.

// decodeHTML returns body as UTF-8. The encoding is found as a browser
// does (WHATWG "encoding sniffing", simplified): a byte-order mark, else
// the Content-Type charset, else a <meta> charset near the start, else
// UTF-8 if the bytes are valid UTF-8 and windows-1252 if not.
func decodeHTML(body []byte, headerCharset string) string {
	switch {
	case bytes.HasPrefix(body, []byte("\xef\xbb\xbf")):
		return decodeAs(body[3:], "utf-8")
	case bytes.HasPrefix(body, []byte("\xfe\xff")):
		return decodeAs(body[2:], "utf-16be")
	case bytes.HasPrefix(body, []byte("\xff\xfe")):
		return decodeAs(body[2:], "utf-16le")
	}
	label := normCharset(headerCharset)
	if label == "" {
		label = normCharset(metaCharset(body))
		if strings.HasPrefix(label, "utf-16") {
			// The <meta> was readable as ASCII, so the page is not
			// UTF-16: browsers read it as UTF-8.
			label = "utf-8"
		}
	}
	if label == "" {
		if utf8.Valid(body) {
			label = "utf-8"
		} else {
			label = "windows-1252"
		}
	}
	return decodeAs(body, label)
}

// normCharset maps a charset label to the decoders below ("" if absent).
func normCharset(label string) string {
	switch l := strings.ToLower(strings.Trim(strings.TrimSpace(label), `"'`)); l {
	case "":
		return ""
	case "utf-8", "utf8", "unicode-1-1-utf-8":
		return "utf-8"
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1", "windows-1252", "cp1252",
		"x-cp1252", "us-ascii", "ascii", "iso-ir-100", "ibm819", "cp819":
		return "windows-1252"
	case "utf-16", "utf-16le":
		// Unqualified UTF-16 on the web is little-endian.
		return "utf-16le"
	case "utf-16be":
		return "utf-16be"
	default:
		return "other"
	}
}

func decodeAs(b []byte, label string) string {
	switch label {
	case "windows-1252":
		var sb strings.Builder
		sb.Grow(len(b))
		for _, c := range b {
			switch {
			case c < 0x80:
				sb.WriteByte(c)
			case c < 0xa0:
				sb.WriteRune(cp1252[c-0x80])
			default:
				sb.WriteRune(rune(c))
			}
		}
		return sb.String()
	case "utf-16le", "utf-16be":
		u := make([]uint16, len(b)/2)
		for i := range u {
			if label == "utf-16le" {
				u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
			} else {
				u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
			}
		}
		return string(utf16.Decode(u))
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// cp1252 is windows-1252's 0x80..0x9F (the rest is Latin-1).
var cp1252 = [32]rune{
	0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
	0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
}

// metaPrescan is how far into the page a <meta> charset is looked for
// (browsers look at 1024 bytes; pages with long inline scripts or
// comments before it are common enough to look further).
const metaPrescan = 8 << 10

// metaCharset finds <meta charset=...> or <meta http-equiv=content-type
// content="...; charset=..."> near the start of the page.
func metaCharset(body []byte) string {
	if len(body) > metaPrescan {
		body = body[:metaPrescan]
	}
	z := html.NewTokenizer(bytes.NewReader(body))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			if string(name) == "body" {
				return ""
			}
			if string(name) != "meta" || !hasAttr {
				continue
			}
			var charset, equiv, content string
			for more := true; more; {
				var k, v []byte
				k, v, more = z.TagAttr()
				switch string(k) {
				case "charset":
					charset = string(v)
				case "http-equiv":
					equiv = strings.ToLower(string(v))
				case "content":
					content = string(v)
				}
			}
			if charset != "" {
				return charset
			}
			if equiv == "content-type" {
				if i := strings.Index(strings.ToLower(content), "charset="); i >= 0 {
					cs := content[i+len("charset="):]
					if j := strings.IndexAny(cs, "; "); j >= 0 {
						cs = cs[:j]
					}
					return cs
				}
			}
		}
	}
}
