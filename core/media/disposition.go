package media

import (
	"mime"
	"strings"
)

// inlineTypes are the types the spec lets a server serve with
// Content-Disposition: inline ("Serving inline content"); everything
// else is served as an attachment.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true,
	"image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true,
	"audio/ogg": true, "audio/wave": true, "audio/wav": true, "audio/x-wav": true,
	"audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// Inline reports whether contentType may be served inline. Parameters
// (charset) are ignored; the media type is compared case-insensitively.
func Inline(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return inlineTypes[mt]
}

// Disposition is the Content-Disposition for content of contentType
// uploaded as filename: inline or attachment per Inline, with the filename
// when there is one (download: "If the upload was made with a filename,
// this header MUST contain the same filename"). A plain ASCII name is
// given as a quoted filename; any other as an RFC 6266 filename*
// parameter (UTF-8, percent-encoded per RFC 5987), so a name can neither
// inject header syntax nor turn into mojibake.
func Disposition(contentType, filename string) string {
	d := "attachment"
	if Inline(contentType) {
		d = "inline"
	}
	if filename == "" {
		return d
	}
	if plainASCII(filename) {
		return d + `; filename="` + filename + `"`
	}
	return d + "; filename*=utf-8''" + rfc5987(filename)
}

// plainASCII is printable ASCII without the characters a quoted-string
// would have to escape.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// rfc5987 percent-encodes all but attr-char (RFC 5987 §3.2.1).
func rfc5987(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
