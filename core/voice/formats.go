package voice

import (
	"bytes"
	"slices"
	"strings"

	"github.com/lichen-hs/lichen/core/audio"
)

// Formats the server stores but cannot decode in pure Go: AAC in MP4 is
// what iOS records, WebM/Opus what browsers' MediaRecorder makes, FLAC a
// lossless export. They are accepted as voice messages (their magic bytes
// are checked, the client's duration is kept) and can be downloaded, but
// not converted or optimised.
var storedOnly = []string{"audio/mp4", "audio/aac", "audio/webm", "audio/flac"}

// canonical maps a client's Content-Type to the name used everywhere
// else: core/audio's for what it decodes, and the aliases of the
// stored-only formats.
func canonical(ct string) string {
	n := audio.Normalise(ct)
	switch n {
	case "audio/x-m4a", "audio/m4a", "audio/x-mp4":
		return "audio/mp4"
	case "audio/x-aac", "audio/aacp":
		return "audio/aac"
	case "audio/x-flac":
		return "audio/flac"
	case "video/webm":
		return "audio/webm"
	}
	return n
}

// UploadFormats is every format /voice/upload accepts.
func UploadFormats() []string {
	return append(slices.Clone(audio.Decodable()), storedOnly...)
}

func decodable(ct string) bool { return slices.Contains(audio.Decodable(), ct) }
func encodable(ct string) bool { return slices.Contains(audio.Encodable(), ct) }

// looksLike checks the magic bytes of a stored-only format, so a voice
// message labelled audio/mp4 is at least an MP4 file.
func looksLike(ct string, b []byte) bool {
	switch ct {
	case "audio/mp4":
		return len(b) >= 12 && bytes.Equal(b[4:8], []byte("ftyp"))
	case "audio/aac":
		// An ADTS frame header: 12-bit sync word 0xFFF, layer 00.
		return len(b) >= 7 && b[0] == 0xFF && b[1]&0xF6 == 0xF0
	case "audio/webm":
		return len(b) >= 4 && bytes.Equal(b[:4], []byte{0x1A, 0x45, 0xDF, 0xA3})
	case "audio/flac":
		return len(b) >= 4 && bytes.Equal(b[:4], []byte("fLaC"))
	}
	return false
}

// extension names the file of a voice message's media item.
func extension(ct string) string {
	switch ct {
	case audio.Ogg:
		return ".ogg"
	case audio.WAV:
		return ".wav"
	case audio.MPEG:
		return ".mp3"
	case "audio/mp4":
		return ".m4a"
	case "audio/aac":
		return ".aac"
	case "audio/webm":
		return ".webm"
	case "audio/flac":
		return ".flac"
	}
	return ""
}

func supportedList() string { return strings.Join(UploadFormats(), ", ") }
