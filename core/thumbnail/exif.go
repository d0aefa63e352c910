package thumbnail

import (
	"encoding/binary"
	"image"
)

// Orientation handling.
//
// Phone cameras store the sensor's pixels as they come and record how to
// show them in the EXIF Orientation tag (TIFF tag 0x0112 in IFD0 of the
// JPEG's APP1 "Exif" segment). Thumbnails are re-encoded without that
// metadata, and some decoders ignore it anyway (Android's BitmapFactory
// does), so Make applies the transform to the pixels: the thumbnail is
// upright whatever reads it.
//
// The values (EXIF 2.32, section 4.6.4 A, "Orientation"), naming where the
// stored image's 0th row and 0th column go when displayed:
//
//	1 top, left     (as stored)       5 left, top     (transpose)
//	2 top, right    (mirror x)        6 right, top    (rotate 90° clockwise)
//	3 bottom, right (rotate 180°)     7 right, bottom (transverse)
//	4 bottom, left  (mirror y)        8 left, bottom  (rotate 90° anticlockwise)
//
// 5–8 swap width and height: the displayed image is sh×sw.

// orientation is an EXIF orientation, 1–8; 1 (as stored) when absent.
type orientation uint8

// swapsSides reports whether the displayed image is the stored one with
// width and height exchanged.
func (o orientation) swapsSides() bool { return o >= 5 && o <= 8 }

// displayed returns the displayed size of a stored w×h image.
func (o orientation) displayed(w, h int) (int, int) {
	if o.swapsSides() {
		return h, w
	}
	return w, h
}

// maxSegments bounds the JPEG marker walk. The Exif APP1 comes right after
// SOI (or after a JFIF APP0) in every writer; a few dozen segments covers
// files with ICC, XMP and vendor APPn segments before it, and a hostile file
// of a million empty segments costs nothing.
const maxSegments = 64

// jpegOrientation returns the EXIF orientation of the JPEG in src, or 1 when
// there is none or the metadata is malformed in any way: a bad tag must
// never cost the user their thumbnail, only its rotation. It reads only
// headers, allocates nothing and follows no offset chain (IFD0 is the only
// directory read, so a directory that points back at itself cannot loop).
func jpegOrientation(src []byte) orientation {
	if len(src) < 4 || src[0] != 0xFF || src[1] != 0xD8 {
		return 1
	}
	p := 2
	for range maxSegments {
		// Markers may be preceded by any number of 0xFF fill bytes.
		q := p
		for p < len(src) && src[p] == 0xFF {
			p++
		}
		if p == q || p >= len(src) {
			return 1 // not at a marker (garbage between segments), or cut short
		}
		marker := src[p]
		p++
		switch {
		case marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7):
			continue // no length field
		case marker == 0xDA || marker == 0xD9:
			return 1 // start of scan or end of image: metadata is over
		}
		if p+2 > len(src) {
			return 1
		}
		n := int(binary.BigEndian.Uint16(src[p:])) // includes its own 2 bytes
		if n < 2 || p+n > len(src) {
			return 1
		}
		seg := src[p+2 : p+n]
		p += n
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
	}
	return 1
}

// tiffOrientation reads tag 0x0112 from IFD0 of the TIFF structure in t
// (the body of an Exif APP1 segment), in either byte order. Every offset is
// checked against len(t) before it is used.
func tiffOrientation(t []byte) orientation {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := uint64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > uint64(len(t)) {
		return 1
	}
	count := uint64(bo.Uint16(t[off:]))
	entries := t[off+2:]
	if count*12 > uint64(len(entries)) {
		// A truncated directory: read the entries that are there.
		count = uint64(len(entries)) / 12
	}
	for i := uint64(0); i < count; i++ {
		e := entries[i*12 : i*12+12]
		if bo.Uint16(e) != 0x0112 {
			continue
		}
		// SHORT (type 3), count 1: the value sits in the first two bytes
		// of the 4-byte value field, in the file's byte order.
		if bo.Uint16(e[2:]) != 3 || bo.Uint32(e[4:]) < 1 {
			return 1
		}
		if v := bo.Uint16(e[8:]); v >= 1 && v <= 8 {
			return orientation(v)
		}
		return 1
	}
	return 1
}

// toStored maps a rectangle of the displayed sw'×sh' image (sw×sh being the
// stored size) to the rectangle of the stored image holding those pixels.
func (o orientation) toStored(r image.Rectangle, sw, sh int) image.Rectangle {
	x0, y0, x1, y1 := r.Min.X, r.Min.Y, r.Max.X, r.Max.Y
	switch o {
	case 2:
		return image.Rect(sw-x1, y0, sw-x0, y1)
	case 3:
		return image.Rect(sw-x1, sh-y1, sw-x0, sh-y0)
	case 4:
		return image.Rect(x0, sh-y1, x1, sh-y0)
	case 5:
		return image.Rect(y0, x0, y1, x1)
	case 6:
		return image.Rect(y0, sh-x1, y1, sh-x0)
	case 7:
		return image.Rect(sw-y1, sh-x1, sw-y0, sh-x0)
	case 8:
		return image.Rect(sw-y1, x0, sw-y0, x1)
	}
	return r
}

// apply returns m, as stored, turned into its displayed form. It runs on the
// thumbnail, never on the full-size source, so the copy is small.
func (o orientation) apply(m *image.RGBA) *image.RGBA {
	if o < 2 || o > 8 {
		return m
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	dw, dh := o.displayed(w, h)
	d := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		row := d.Pix[y*d.Stride : y*d.Stride+4*dw]
		for x := 0; x < dw; x++ {
			// The stored pixel shown at displayed (x, y).
			var sx, sy int
			switch o {
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			i := m.PixOffset(m.Rect.Min.X+sx, m.Rect.Min.Y+sy)
			copy(row[4*x:4*x+4], m.Pix[i:i+4])
		}
	}
	return d
}
