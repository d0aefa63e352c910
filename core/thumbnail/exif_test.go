package thumbnail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"golang.org/x/image/draw"
)

// byteOrder is what binary.LittleEndian and binary.BigEndian both are.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// tiffIFD0 returns a TIFF structure in byte order bo whose IFD0 holds a Make
// tag (ASCII, inline) and then an Orientation tag (SHORT) of value o, as
// cameras write them.
func tiffIFD0(bo byteOrder, o uint16) []byte {
	var t []byte
	if bo == binary.LittleEndian {
		t = append(t, "II*\x00"...)
	} else {
		t = append(t, "MM\x00*"...)
	}
	t = bo.AppendUint32(t, 8) // IFD0 right after the header
	t = bo.AppendUint16(t, 2) // two entries
	t = bo.AppendUint16(t, 0x010F)
	t = bo.AppendUint16(t, 2) // ASCII
	t = bo.AppendUint32(t, 4)
	t = append(t, "Lch\x00"...)
	t = bo.AppendUint16(t, 0x0112)
	t = bo.AppendUint16(t, 3) // SHORT
	t = bo.AppendUint32(t, 1)
	t = bo.AppendUint16(t, o)
	t = append(t, 0, 0)          // the value field's unused half
	return bo.AppendUint32(t, 0) // no IFD1
}

// app1 wraps a TIFF structure in an APP1 Exif segment, marker included.
func app1(tiff []byte) []byte {
	seg := []byte{0xFF, 0xE1}
	seg = binary.BigEndian.AppendUint16(seg, uint16(2+6+len(tiff)))
	seg = append(seg, "Exif\x00\x00"...)
	return append(seg, tiff...)
}

// splice inserts segments right after the JPEG's SOI, where cameras put
// their APP1.
func splice(jpg []byte, segs ...[]byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

// Marker colours of the stored image: red in the stored top-left corner,
// green in the stored top-right, grey elsewhere.
var (
	markRed   = color.RGBA{255, 0, 0, 255}
	markGreen = color.RGBA{0, 255, 0, 255}
	markGrey  = color.RGBA{128, 128, 128, 255}
)

// marked returns a stored w×h image with a red block in its top-left
// corner and a green one in its top-right, each a quarter of the height.
func marked(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(m, m.Bounds(), image.NewUniform(markGrey), image.Point{}, draw.Src)
	b := h / 2
	draw.Draw(m, image.Rect(0, 0, b, b), image.NewUniform(markRed), image.Point{}, draw.Src)
	draw.Draw(m, image.Rect(w-b, 0, w, b), image.NewUniform(markGreen), image.Point{}, draw.Src)
	return m
}

// corner names the displayed corner a pixel sits in.
type corner string

const (
	tl corner = "top-left"
	tr corner = "top-right"
	bl corner = "bottom-left"
	br corner = "bottom-right"
)

// cornerColour classifies the pixel near corner c of m as red, green or
// something else ("").
func cornerColour(m image.Image, c corner) string {
	b := m.Bounds()
	x, y := b.Min.X+1, b.Min.Y+1
	if c == tr || c == br {
		x = b.Max.X - 2
	}
	if c == bl || c == br {
		y = b.Max.Y - 2
	}
	r, g, bb, _ := m.At(x, y).RGBA()
	r, g, bb = r>>8, g>>8, bb>>8
	switch {
	case r > 200 && g < 60 && bb < 60:
		return "red"
	case g > 200 && r < 60 && bb < 60:
		return "green"
	}
	return fmt.Sprintf("rgb(%d,%d,%d)", r, g, bb)
}

// TestMakeOrientation thumbnails a 64×32 JPEG carrying each EXIF
// orientation and checks the thumbnail's size (the request refers to the
// displayed image, 32×64 for 5–8) and where the stored top-left (red) and
// top-right (green) corners end up.
func TestMakeOrientation(t *testing.T) {
	const sw, sh = 64, 32
	plain := encJPEG(t, marked(sw, sh))
	// Where the stored image's top-left and top-right corners are shown,
	// from the EXIF table of 0th row / 0th column positions.
	where := map[uint16][2]corner{
		1: {tl, tr}, 2: {tr, tl}, 3: {br, bl}, 4: {bl, br},
		5: {tl, bl}, 6: {tr, br}, 7: {br, tr}, 8: {bl, tl},
	}
	for o := uint16(1); o <= 8; o++ {
		for _, bo := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
			src := splice(plain, app1(tiffIFD0(bo, o)))
			vw, vh := sw, sh // displayed size
			if o >= 5 {
				vw, vh = sh, sw
			}
			for _, rq := range []struct {
				name         string
				w, h         int
				method       string
				wantW, wantH int
				corners      bool // the marked corners survive
			}{
				// Scaling by half: fits the displayed shape either way.
				{"scale half", vw / 2, vh / 2, "scale", vw / 2, vh / 2, true},
				// A 32×32 box: 32×16 if displayed landscape, 16×32 if
				// portrait. Planning on the stored size would give 32×16
				// for every orientation.
				{"scale 32x32", 32, 32, "scale", vw / 2, vh / 2, true},
				// Crop to the displayed aspect: scaled, nothing cut.
				{"crop displayed aspect", vw / 4, vh / 4, "crop", vw / 4, vh / 4, true},
				// Crop to a square: the centre 32×32 is cut from the long
				// displayed side, which is the stored height for 5–8.
				{"crop square", 16, 16, "crop", 16, 16, false},
				// Already small enough: still turned upright, never the
				// original bytes (unless there is nothing to turn).
				{"fits", 800, 600, "scale", vw, vh, true},
			} {
				name := fmt.Sprintf("orientation %d %v %s", o, bo, rq.name)
				out, typ, err := Make(src, "image/jpeg", rq.w, rq.h, rq.method)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if o == 1 && rq.name == "fits" {
					if !bytes.Equal(out, src) {
						t.Errorf("%s: orientation 1 that fits should be the original", name)
					}
					continue
				}
				if bytes.Equal(out, src) {
					t.Errorf("%s: got the original bytes, want an upright re-encoding", name)
					continue
				}
				m := decodeOut(t, out, typ)
				if b := m.Bounds(); b.Dx() != rq.wantW || b.Dy() != rq.wantH {
					t.Errorf("%s: got %d×%d, want %d×%d", name, b.Dx(), b.Dy(), rq.wantW, rq.wantH)
					continue
				}
				if !rq.corners {
					continue
				}
				if got := cornerColour(m, where[o][0]); got != "red" {
					t.Errorf("%s: %s is %s, want red (the stored top-left)", name, where[o][0], got)
				}
				if got := cornerColour(m, where[o][1]); got != "green" {
					t.Errorf("%s: %s is %s, want green (the stored top-right)", name, where[o][1], got)
				}
			}
		}
	}
}

// TestDimensionsOrientation: Dimensions reports the displayed size.
func TestDimensionsOrientation(t *testing.T) {
	plain := encJPEG(t, marked(64, 32))
	for o := uint16(1); o <= 8; o++ {
		w, h, err := Dimensions(splice(plain, app1(tiffIFD0(binary.BigEndian, o))), "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		want := [2]int{64, 32}
		if o >= 5 {
			want = [2]int{32, 64}
		}
		if [2]int{w, h} != want {
			t.Errorf("orientation %d: %d×%d, want %d×%d", o, w, h, want[0], want[1])
		}
	}
}

// TestOrientationKeepsBombGuard: the header check still happens before any
// decoding, on the stored size, whatever the orientation says.
func TestOrientationKeepsBombGuard(t *testing.T) {
	// A JPEG SOF0 claiming 40000×40000 with nothing after it.
	sof := []byte{0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8}
	sof = binary.BigEndian.AppendUint16(sof, 40000)
	sof = binary.BigEndian.AppendUint16(sof, 40000)
	sof = append(sof, 1, 1, 0x11, 0)
	sof = append(sof, 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0) // scan header, no data
	bomb := splice(sof, app1(tiffIFD0(binary.LittleEndian, 6)))
	if _, _, err := Make(bomb, "image/jpeg", 96, 96, "crop"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestJPEGOrientationParse covers the parser on well-formed variants and on
// hostile ones; the malformed all fall back to 1.
func TestJPEGOrientationParse(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	soi := []byte{0xFF, 0xD8}
	tail := []byte{0xFF, 0xDA, 0, 2} // start of scan: metadata ends here
	jpg := func(segs ...[]byte) []byte {
		out := append([]byte{}, soi...)
		for _, s := range segs {
			out = append(out, s...)
		}
		return append(out, tail...)
	}
	jfif := []byte{0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	xmp := append([]byte{0xFF, 0xE1, 0, 2 + 29}, "http://ns.adobe.com/xap/1.0/\x00"...)
	// patch returns the LE TIFF of orientation 6 with f applied.
	patch := func(f func(t []byte)) []byte {
		t := tiffIFD0(le, 6)
		f(t)
		return t
	}
	tests := []struct {
		name string
		src  []byte
		want orientation
	}{
		{"little endian", jpg(app1(tiffIFD0(le, 6))), 6},
		{"big endian", jpg(app1(tiffIFD0(be, 8))), 8},
		{"after JFIF APP0", jpg(jfif, app1(tiffIFD0(be, 3))), 3},
		{"after an XMP APP1", jpg(xmp, app1(tiffIFD0(le, 5))), 5},
		{"fill bytes before the marker", jpg([]byte{0xFF, 0xFF}, app1(tiffIFD0(le, 7))), 7},
		{"no exif", jpg(jfif), 1},
		{"exif after start of scan", append(jpg(), app1(tiffIFD0(le, 6))...), 1},
		{"not a jpeg", append([]byte("\x89PNG"), app1(tiffIFD0(le, 6))...), 1},
		{"empty", nil, 1},
		{"value 0", jpg(app1(tiffIFD0(le, 0))), 1},
		{"value 9", jpg(app1(tiffIFD0(le, 9))), 1},
		{"value 0x0600 (wrong byte order)", jpg(app1(tiffIFD0(le, 0x0600))), 1},
		{"type LONG", jpg(app1(patch(func(t []byte) { le.PutUint16(t[24:], 4) }))), 1},
		{"count 0", jpg(app1(patch(func(t []byte) { le.PutUint32(t[26:], 0) }))), 1},
		{"bad byte order mark", jpg(app1(patch(func(t []byte) { copy(t, "IM*\x00") }))), 1},
		{"IFD0 offset past the end", jpg(app1(patch(func(t []byte) { le.PutUint32(t[4:], 0xFFFFFFFF) }))), 1},
		{"IFD0 offset just past the end", jpg(app1(patch(func(t []byte) { le.PutUint32(t[4:], uint32(len(t)-1)) }))), 1},
		{"IFD0 offset into the header", jpg(app1(patch(func(t []byte) { le.PutUint32(t[4:], 0) }))), 1},
		{"entry count huge", jpg(app1(patch(func(t []byte) { le.PutUint16(t[8:], 0xFFFF) }))), 6},
		{"entry count cuts the tag", jpg(app1(patch(func(t []byte) { le.PutUint16(t[8:], 1) }))), 1},
		{"IFD1 loops to IFD0", jpg(app1(patch(func(t []byte) { le.PutUint32(t[len(t)-4:], 8) }))), 6},
		{"IFD1 loops to itself", jpg(app1(patch(func(t []byte) { le.PutUint32(t[len(t)-4:], uint32(len(t)-4)) }))), 6},
		{"segment length 0", jpg([]byte{0xFF, 0xE1, 0, 0}, app1(tiffIFD0(le, 6))), 1},
		{"segment length 1", jpg([]byte{0xFF, 0xE1, 0, 1}, app1(tiffIFD0(le, 6))), 1},
		{"segment length past the end", append(soi, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x'), 1},
		{"garbage between segments", jpg(jfif, []byte{0x00}, app1(tiffIFD0(le, 6))), 1},
		{"tiff shorter than its header", jpg(app1([]byte("II*\x00\x08"))), 1},
		{"exif header only", jpg(app1(nil)), 1},
		{"ends after the marker", []byte{0xFF, 0xD8, 0xFF, 0xE1}, 1},
		{"ends in fill bytes", []byte{0xFF, 0xD8, 0xFF, 0xFF}, 1},
	}
	// Beyond maxSegments empty segments the walk gives up.
	var many [][]byte
	for range maxSegments {
		many = append(many, []byte{0xFF, 0xFE, 0, 2}) // empty comments
	}
	tests = append(tests, struct {
		name string
		src  []byte
		want orientation
	}{"exif after too many segments", jpg(append(many, app1(tiffIFD0(le, 6)))...), 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jpegOrientation(tt.src); got != tt.want {
				t.Fatalf("orientation %d, want %d", got, tt.want)
			}
		})
	}
}

// TestJPEGOrientationTruncated cuts a JPEG with Exif at every length and
// flips every byte of its metadata: the parser must never panic, and Make
// must either thumbnail or return an error, never panic either.
func TestJPEGOrientationTruncated(t *testing.T) {
	plain := encJPEG(t, marked(16, 8))
	seg := app1(tiffIFD0(binary.BigEndian, 6))
	src := splice(plain, seg)
	meta := 2 + len(seg)
	for n := 0; n <= meta+8; n++ {
		if o := jpegOrientation(src[:n]); o != 1 && o != 6 {
			t.Fatalf("cut at %d: orientation %d", n, o)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b := bytes.Clone(src)
		for range 1 + rng.IntN(4) {
			b[2+rng.IntN(meta-2)] = byte(rng.Uint32())
		}
		jpegOrientation(b)
		Make(b, "image/jpeg", 4, 4, "crop")
	}
}

// FuzzJPEGOrientation runs its seeds as a test; `go test -fuzz` explores.
func FuzzJPEGOrientation(f *testing.F) {
	f.Add(splice([]byte{0xFF, 0xD8, 0xFF, 0xD9}, app1(tiffIFD0(binary.LittleEndian, 6))))
	f.Add(splice([]byte{0xFF, 0xD8, 0xFF, 0xD9}, app1(tiffIFD0(binary.BigEndian, 8))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}

// TestOrientationApplyMapping checks apply and toStored against each other
// on a small image where every pixel is distinct: the region toStored
// names, turned by apply, must be the displayed region's pixels.
func TestOrientationApplyMapping(t *testing.T) {
	const w, h = 5, 3
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetRGBA(x, y, color.RGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	for o := orientation(1); o <= 8; o++ {
		full := o.apply(m)
		vw, vh := o.displayed(w, h)
		if full.Rect.Dx() != vw || full.Rect.Dy() != vh {
			t.Fatalf("orientation %d: %v, want %d×%d", o, full.Rect, vw, vh)
		}
		// Every displayed 2×2 region maps to a stored region that, turned,
		// gives the same pixels.
		for y := 0; y+2 <= vh; y++ {
			for x := 0; x+2 <= vw; x++ {
				vr := image.Rect(x, y, x+2, y+2)
				sr := o.toStored(vr, w, h)
				if !sr.In(m.Rect) {
					t.Fatalf("orientation %d: %v maps to %v, outside the image", o, vr, sr)
				}
				part := o.apply(m.SubImage(sr).(*image.RGBA))
				for j := 0; j < 2; j++ {
					for i := 0; i < 2; i++ {
						if a, b := part.RGBAAt(part.Rect.Min.X+i, part.Rect.Min.Y+j), full.RGBAAt(x+i, y+j); a != b {
							t.Fatalf("orientation %d region %v: pixel (%d,%d) %v, want %v", o, vr, i, j, a, b)
						}
					}
				}
			}
		}
	}
}

// TestUpright: only orientation 1 (or none, or a non-JPEG) is upright, so
// core/media serves small rotated photos re-encoded, not as stored.
func TestUpright(t *testing.T) {
	plain := encJPEG(t, marked(64, 32))
	if !Upright(plain, "image/jpeg") {
		t.Error("a JPEG without Exif is not upright")
	}
	if !Upright([]byte("not an image"), "image/jpeg") {
		t.Error("undecodable content should not claim a rotation")
	}
	for o := uint16(1); o <= 8; o++ {
		got := Upright(splice(plain, app1(tiffIFD0(binary.LittleEndian, o))), "image/jpeg")
		if got != (o == 1) {
			t.Errorf("orientation %d: upright=%v", o, got)
		}
	}
}
