// Package thumbnail makes the content repository's thumbnails (spec:
// client-server-api, content repository, "Thumbnails") from JPEG, PNG, GIF
// and WebP images, in pure Go so that the binary stays static.
//
// Security (spec: content repository, "Security considerations"): the format
// is sniffed from the bytes, never taken from the declared content type, and
// the pixel count is checked from the image header before any pixel is
// decoded, so a decompression bomb costs a few hundred bytes of reading.
//
// Memory: one Make call holds the compressed source, the decoded source
// (the only full-size copy), a small intermediate of at most twice the
// thumbnail size per side, and the thumbnail itself. Callers on small boards
// should run Make calls one (or a few) at a time: the budget below is per
// call.
package thumbnail

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"mime"
	"strings"

	"golang.org/x/image/webp"
)

// Errors returned by Dimensions and Make; test them with errors.Is (they are
// wrapped with detail).
var (
	// ErrUnsupported: the declared content type is not one of image/jpeg,
	// image/png, image/gif, image/webp, the bytes are not one of those
	// formats, or they use a feature the decoder lacks (e.g. arithmetic
	// coded JPEG). Maps to "this media cannot be thumbnailed".
	ErrUnsupported = errors.New("thumbnail: unsupported image")
	// ErrTooLarge: the source has more than MaxPixels pixels or a side
	// longer than MaxSide. Spec: M_TOO_LARGE (413).
	ErrTooLarge = errors.New("thumbnail: image too large")
	// ErrInvalid: the bytes start like a supported format but are corrupt
	// or truncated, the header claims a zero or negative size, or the
	// requested size or method is invalid.
	ErrInvalid = errors.New("thumbnail: invalid image")
)

// MaxPixels is the largest source, in pixels (width × height, read from the
// header before decoding), that Make will decode.
//
// Memory reasoning: a decoded image costs, per pixel, 1.5 bytes for a
// colour baseline JPEG (YCbCr 4:2:0), 1 byte for GIF (paletted), 4 bytes for
// 8-bit RGBA PNG and WebP lossless (NRGBA), 8 bytes for 16-bit PNG, and a
// progressive JPEG adds its coefficients (4 bytes per pixel per component
// plane: 6 bytes/pixel at 4:2:0) while decoding. At the default of
// 4096×4096 = 16.8 Mpx, 8-bit RGBA costs 64 MiB; a 4000×3000 photo (12 Mpx)
// passes, at about 21 MiB of heap as a baseline JPEG (measured by
// TestPeakHeap4000x3000JPEG) and about 90 MiB as a progressive one
// (estimated from image/jpeg's coefficient buffers, not measured); a
// 30000×30000 bomb (900 Mpx, 3.4 GiB as RGBA) is refused before decoding.
// The limit counts pixels, not bytes, so the rarer formats (16-bit PNG,
// progressive JPEG) can cost up to twice the RGBA figure: lower it on
// boards with little RAM.
var MaxPixels int64 = 4096 * 4096

// MaxSide bounds either side of the source independently of MaxPixels, so
// that a 1×16M-pixel strip does not pass either.
var MaxSide = 1 << 15

// JPEGQuality is the quality of JPEG thumbnails (Synapse also uses 80).
var JPEGQuality = 80

const (
	typeJPEG = "image/jpeg"
	typePNG  = "image/png"
	typeGIF  = "image/gif"
	typeWebP = "image/webp"
)

// sniff names the format of src from its magic bytes, or "" when it is not
// one of the four supported formats.
func sniff(src []byte) string {
	switch {
	case len(src) >= 3 && src[0] == 0xFF && src[1] == 0xD8 && src[2] == 0xFF:
		return typeJPEG
	case len(src) >= 8 && string(src[:8]) == "\x89PNG\r\n\x1a\n":
		return typePNG
	case len(src) >= 6 && (string(src[:6]) == "GIF87a" || string(src[:6]) == "GIF89a"):
		return typeGIF
	case len(src) >= 12 && string(src[:4]) == "RIFF" && string(src[8:12]) == "WEBP":
		return typeWebP
	}
	return ""
}

// format checks the declared content type and sniffs the real one.
//
// The declared type (parameters ignored, case-insensitive; "image/jpg" and
// "image/pjpeg" are taken as JPEG) must name one of the supported formats:
// media uploaded as something else (application/octet-stream, SVG, video)
// is not thumbnailed. The decoder is then chosen by the bytes alone. A
// mismatch between two supported image types (a JPEG uploaded as
// image/png, which clients do when a file is misnamed) is tolerated: the
// thumbnail is freshly encoded from decoded pixels, so nothing of the
// original's bytes is served under the wrong type.
func format(src []byte, contentType string) (string, error) {
	declared, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		declared = strings.ToLower(strings.TrimSpace(contentType))
	}
	switch declared {
	case "image/jpg", "image/pjpeg":
		declared = typeJPEG
	}
	switch declared {
	case typeJPEG, typePNG, typeGIF, typeWebP:
	default:
		return "", fmt.Errorf("%w: content type %q", ErrUnsupported, contentType)
	}
	real := sniff(src)
	if real == "" {
		return "", fmt.Errorf("%w: data is not JPEG, PNG, GIF or WebP", ErrUnsupported)
	}
	return real, nil
}

// decodeErr sorts a decoder's error into ErrUnsupported or ErrInvalid.
func decodeErr(err error) error {
	var ju jpeg.UnsupportedError
	var pu png.UnsupportedError
	if errors.As(err, &pu) && strings.Contains(string(pu), "dimension overflow") {
		// image/png refuses sizes whose byte count overflows an int.
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	if errors.As(err, &ju) || errors.As(err, &pu) {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

func decodeConfig(src []byte, typ string) (image.Config, error) {
	r := bytes.NewReader(src)
	var cfg image.Config
	var err error
	switch typ {
	case typeJPEG:
		cfg, err = jpeg.DecodeConfig(r)
	case typePNG:
		cfg, err = png.DecodeConfig(r)
	case typeGIF:
		cfg, err = gif.DecodeConfig(r)
	case typeWebP:
		cfg, err = webp.DecodeConfig(r)
	}
	if err != nil {
		return cfg, decodeErr(err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return cfg, fmt.Errorf("%w: header claims %d×%d", ErrInvalid, cfg.Width, cfg.Height)
	}
	return cfg, nil
}

func decode(src []byte, typ string) (image.Image, error) {
	r := bytes.NewReader(src)
	var img image.Image
	var err error
	switch typ {
	case typeJPEG:
		img, err = jpeg.Decode(r)
	case typePNG:
		img, err = png.Decode(r)
	case typeGIF:
		img, err = gif.Decode(r) // the first frame only
	case typeWebP:
		img, err = webp.Decode(r)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, decodeErr(err)
	}
	return img, nil
}

// Dimensions returns the width and height of the image in src as displayed,
// read from its headers only: no pixel is decoded, and no size limit is
// applied (the caller may want to record the size of an image too large to
// thumbnail). A JPEG whose EXIF orientation turns it by 90° (5–8) reports
// its sides swapped, because that is the size Make's width×height and a
// viewer refer to.
func Dimensions(src []byte, contentType string) (w, h int, err error) {
	typ, err := format(src, contentType)
	if err != nil {
		return 0, 0, err
	}
	cfg, err := decodeConfig(src, typ)
	if err != nil {
		return 0, 0, err
	}
	w, h = srcOrientation(src, typ).displayed(cfg.Width, cfg.Height)
	return w, h, nil
}

// srcOrientation returns the EXIF orientation of src. Only JPEG's is read:
// that is where cameras write it; PNG's eXIf chunk and WebP's EXIF chunk are
// rare enough in uploads to ignore.
func srcOrientation(src []byte, typ string) orientation {
	if typ == typeJPEG {
		return jpegOrientation(src)
	}
	return 1
}

// Upright reports whether src displays as stored (no EXIF rotation or
// mirroring). A photo that is not must be re-encoded even when it is
// already small enough, since clients that ignore EXIF would show the
// original sideways.
func Upright(src []byte, contentType string) bool {
	typ, err := format(src, contentType)
	return err != nil || srcOrientation(src, typ) == 1
}

// Make returns a thumbnail of src, and its content type, following the
// spec's thumbnail rules: it never upscales, and never returns an image
// smaller than requested unless the source is smaller.
//
//   - "scale": the largest image that fits within width×height keeping the
//     source's aspect ratio, but no larger than the source.
//   - "crop": an image with the aspect ratio of width×height: the source is
//     scaled to cover width×height and centre-cropped to exactly that size;
//     when the source is too small to cover it, the largest centred region
//     of that aspect ratio is cut out unscaled.
//
// width×height refers to the image as displayed: a JPEG's EXIF orientation
// (rotations and mirrors) is applied to the thumbnail, whose pixels are then
// upright and which carries no orientation tag of its own.
//
// When no scaling or cropping is needed (the source already fits) and the
// source needs no turning, Make returns src itself with its sniffed type, as
// the spec says servers should return the original content rather than
// thumbnail it; only its header has then been checked. A source with an
// orientation other than 1 is always re-encoded upright, because clients
// that ignore EXIF would show the original sideways.
//
// Make is safe for concurrent use, but each call holds one decoded source
// (see MaxPixels): on a board, run few at a time.
//
// Output format: JPEG for JPEG sources and for WebP sources that are fully
// opaque (photographs, where JPEG is several times smaller than PNG at no
// visible cost); PNG for PNG and GIF sources and for WebP with any
// transparent pixel, because JPEG has no alpha channel and because PNG and
// GIF are usually line art, screenshots or stickers, whose sharp edges and
// flat colour JPEG smears, and which PNG keeps losslessly (GIF's palette
// and transparent index become PNG RGBA; only the first frame is used).
func Make(src []byte, contentType string, width, height int, method string) (out []byte, outType string, err error) {
	if width <= 0 || height <= 0 || width > MaxSide || height > MaxSide {
		return nil, "", fmt.Errorf("%w: requested size %d×%d", ErrInvalid, width, height)
	}
	if method != "scale" && method != "crop" {
		return nil, "", fmt.Errorf("%w: method %q", ErrInvalid, method)
	}
	typ, err := format(src, contentType)
	if err != nil {
		return nil, "", err
	}
	cfg, err := decodeConfig(src, typ)
	if err != nil {
		return nil, "", err
	}
	sw, sh := cfg.Width, cfg.Height
	if sw > MaxSide || sh > MaxSide || int64(sw)*int64(sh) > MaxPixels {
		return nil, "", fmt.Errorf("%w: %d×%d exceeds the limit of %d pixels", ErrTooLarge, sw, sh, MaxPixels)
	}

	// Plan the region and the thumbnail size from the headers alone, in
	// displayed coordinates: the request describes what the viewer sees.
	o := srcOrientation(src, typ)
	vw, vh := o.displayed(sw, sh)
	vr, dw, dh := plan(vw, vh, width, height, method)
	if o == 1 && vr == image.Rect(0, 0, sw, sh) && dw == sw && dh == sh {
		return src, typ, nil
	}

	img, err := decode(src, typ)
	if err != nil {
		return nil, "", err
	}
	b := img.Bounds()
	if b.Dx() != sw || b.Dy() != sh {
		// Only GIF may decode to a frame smaller than its logical screen;
		// thumbnail the frame as decoded and re-plan from its size.
		sw, sh = b.Dx(), b.Dy()
		vw, vh = o.displayed(sw, sh)
		vr, dw, dh = plan(vw, vh, width, height, method)
	}
	// Scale the stored pixels, then turn the (small) result: turning the
	// full-size source would cost a second full-size copy.
	sr := o.toStored(vr, sw, sh).Add(b.Min)
	rw, rh := o.displayed(dw, dh) // the thumbnail's size as stored

	outType = typeJPEG
	switch typ {
	case typePNG, typeGIF:
		outType = typePNG
	case typeWebP:
		if o, ok := img.(interface{ Opaque() bool }); !ok || !o.Opaque() {
			outType = typePNG
		}
	}

	thumb := o.apply(resize(img, sr, rw, rh))
	img = nil // let the full-size image go before encoding

	var buf bytes.Buffer
	if outType == typeJPEG {
		err = jpeg.Encode(&buf, thumb, &jpeg.Options{Quality: JPEGQuality})
	} else {
		err = (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(&buf, thumb)
	}
	if err != nil {
		return nil, "", fmt.Errorf("thumbnail: encoding %s: %w", outType, err)
	}
	return buf.Bytes(), outType, nil
}

// plan returns the region of a sw×sh source to use and the size of the
// thumbnail for the requested width×height and method. It never upscales.
func plan(sw, sh, width, height int, method string) (sr image.Rectangle, dw, dh int) {
	sr = image.Rect(0, 0, sw, sh)
	if method == "scale" {
		// Fit within width×height: the smaller ratio wins.
		if int64(width)*int64(sh) <= int64(height)*int64(sw) {
			dw, dh = width, divRound(sh*width, sw)
		} else {
			dw, dh = divRound(sw*height, sh), height
		}
		if dw >= sw || dh >= sh {
			return sr, sw, sh // would upscale: the source fits already
		}
		return sr, max(dw, 1), max(dh, 1)
	}
	// Crop: cut the largest centred region with the aspect ratio of
	// width×height, then scale it down to width×height if it is larger.
	cw, ch := sw, sh
	if int64(sw)*int64(height) > int64(sh)*int64(width) {
		cw = max(divRound(sh*width, height), 1) // source is wider
	} else {
		ch = max(divRound(sw*height, width), 1) // source is taller
	}
	x0, y0 := (sw-cw)/2, (sh-ch)/2
	sr = image.Rect(x0, y0, x0+cw, y0+ch)
	if cw <= width || ch <= height {
		return sr, cw, ch // too small to cover the request: no scaling
	}
	return sr, width, height
}

func divRound(a, b int) int { return (a + b/2) / b }
