package thumbnail

import (
	"image"
	"image/color"

	"golang.org/x/image/draw"
)

// resize scales the region sr of img to a dw×dh RGBA image.
//
// Why not one draw.CatmullRom (or draw.BiLinear) pass: x/image/draw's
// kernel scalers are separable and keep an intermediate of
// dw × sr.Dy() × 32 bytes (four float64 per pixel); for 4000×3000 → 800×600
// that is 77 MB, more than the decoded photo itself. draw.ApproxBiLinear
// needs no intermediate but reads only 4 source pixels per output pixel, so
// beyond a 2× reduction it skips pixels and aliases (moiré on fine detail).
//
// So resize works in two steps: an integer box filter (the mean of k×k
// source pixels, k = the whole part of the reduction), streamed one source
// row at a time into an image at most twice the thumbnail per side, then
// draw.ApproxBiLinear for the remaining reduction of less than 2×, where
// bilinear sampling is sound. Every source pixel contributes, the extra
// memory is one source row plus that small intermediate, and the cost is
// one read of each source pixel.
func resize(img image.Image, sr image.Rectangle, dw, dh int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	if sr.Dx() == dw && sr.Dy() == dh {
		// Cropped or turned but not scaled: a plain copy.
		draw.Draw(dst, dst.Bounds(), img, sr.Min, draw.Src)
		return dst
	}
	k := min(sr.Dx()/dw, sr.Dy()/dh)
	if k < 2 {
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, sr, draw.Src, nil)
		return dst
	}
	mid := boxShrink(img, sr, k)
	if mid.Rect.Dx() == dw && mid.Rect.Dy() == dh {
		return mid
	}
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), mid, mid.Bounds(), draw.Src, nil)
	return dst
}

// boxShrink returns the region sr of img reduced by an integer factor k,
// each output pixel the mean of a k×k block (premultiplied alpha, so that
// transparent pixels do not darken their neighbours). Source rows and
// columns beyond the last whole block are dropped (fewer than k of them).
func boxShrink(img image.Image, sr image.Rectangle, k int) *image.RGBA {
	mw, mh := sr.Dx()/k, sr.Dy()/k
	mid := image.NewRGBA(image.Rect(0, 0, mw, mh))
	read := rowReader(img)
	row := make([]uint8, 4*mw*k) // one source row, premultiplied RGBA
	sum := make([]uint32, 4*mw)  // sums of one output row's blocks
	n := uint32(k * k)
	for my := 0; my < mh; my++ {
		clear(sum)
		for j := 0; j < k; j++ {
			read(row, sr.Min.X, sr.Min.Y+my*k+j)
			for mx := 0; mx < mw; mx++ {
				s := sum[4*mx : 4*mx+4 : 4*mx+4]
				p := row[4*mx*k : 4*(mx+1)*k]
				for i := 0; i < len(p); i += 4 {
					s[0] += uint32(p[i])
					s[1] += uint32(p[i+1])
					s[2] += uint32(p[i+2])
					s[3] += uint32(p[i+3])
				}
			}
		}
		out := mid.Pix[my*mid.Stride : my*mid.Stride+4*mw]
		for i, s := range sum {
			out[i] = uint8((s + n/2) / n)
		}
	}
	return mid
}

// rowReader returns a function that fills row with premultiplied 8-bit RGBA
// pixels of img starting at (x, y), with fast paths for what the decoders
// return: YCbCr (JPEG, lossy WebP), NYCbCrA (lossy WebP with alpha), RGBA/NRGBA (PNG, lossless WebP), Gray
// (greyscale JPEG and PNG) and Paletted (GIF, palette PNG).
func rowReader(img image.Image) func(row []uint8, x, y int) {
	switch m := img.(type) {
	case *image.YCbCr:
		// Each pixel is converted before averaging: averaging Y, Cb, Cr
		// and converting the mean is cheaper but wrong by up to 10 % where
		// saturated colours clamp.
		div := 1 // source pixels per chroma sample, horizontally
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422:
			div = 2
		case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
			div = 4
		}
		return func(row []uint8, x, y int) {
			yrow := m.Y[m.YOffset(x, y):]
			c0 := m.COffset(m.Rect.Min.X, y) - m.Rect.Min.X/div
			cb, cr := m.Cb[c0:], m.Cr[c0:]
			ci := x / div
			phase := x - ci*div
			yrow = yrow[:len(row)/4]
			// color.YCbCrToRGB's arithmetic, with the chroma terms worked
			// out once per chroma sample rather than once per pixel.
			rc, gc, bc := chroma(cb[ci], cr[ci])
			for j, yy := range yrow {
				y1 := int32(yy) * 0x10101
				p := row[4*j : 4*j+4 : 4*j+4]
				p[0], p[1], p[2], p[3] = clamp16(y1+rc), clamp16(y1+gc), clamp16(y1+bc), 0xff
				if phase++; phase == div && j+1 < len(yrow) {
					phase = 0
					ci++
					rc, gc, bc = chroma(cb[ci], cr[ci])
				}
			}
		}
	case *image.NYCbCrA:
		return func(row []uint8, x, y int) {
			for i := 0; i < len(row); i, x = i+4, x+1 {
				yy := m.Y[m.YOffset(x, y)]
				ci := m.COffset(x, y)
				a := uint32(m.A[m.AOffset(x, y)])
				r, g, b := color.YCbCrToRGB(yy, m.Cb[ci], m.Cr[ci])
				row[i] = uint8((uint32(r)*a + 127) / 255)
				row[i+1] = uint8((uint32(g)*a + 127) / 255)
				row[i+2] = uint8((uint32(b)*a + 127) / 255)
				row[i+3] = uint8(a)
			}
		}
	case *image.RGBA:
		return func(row []uint8, x, y int) {
			copy(row, m.Pix[m.PixOffset(x, y):])
		}
	case *image.NRGBA:
		return func(row []uint8, x, y int) {
			p := m.Pix[m.PixOffset(x, y):]
			for i := 0; i < len(row); i += 4 {
				a := uint32(p[i+3])
				row[i] = uint8((uint32(p[i])*a + 127) / 255)
				row[i+1] = uint8((uint32(p[i+1])*a + 127) / 255)
				row[i+2] = uint8((uint32(p[i+2])*a + 127) / 255)
				row[i+3] = uint8(a)
			}
		}
	case *image.Gray:
		return func(row []uint8, x, y int) {
			p := m.Pix[m.PixOffset(x, y):]
			for i := 0; i < len(row); i += 4 {
				v := p[i/4]
				row[i], row[i+1], row[i+2], row[i+3] = v, v, v, 0xff
			}
		}
	case *image.Paletted:
		var pal [256][4]uint8
		for i, c := range m.Palette {
			r, g, b, a := c.RGBA()
			pal[i] = [4]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
		}
		return func(row []uint8, x, y int) {
			p := m.Pix[m.PixOffset(x, y):]
			for i := 0; i < len(row); i += 4 {
				c := pal[p[i/4]]
				row[i], row[i+1], row[i+2], row[i+3] = c[0], c[1], c[2], c[3]
			}
		}
	}
	// Anything else (16-bit PNG, CMYK JPEG): slow but exact.
	return func(row []uint8, x, y int) {
		for i := 0; i < len(row); i, x = i+4, x+1 {
			r, g, b, a := img.At(x, y).RGBA()
			row[i], row[i+1], row[i+2], row[i+3] = uint8(r>>8), uint8(g>>8), uint8(b>>8), uint8(a>>8)
		}
	}
}

// chroma returns the Cb, Cr contributions to R, G, B in color.YCbCrToRGB's
// 16.16 fixed point.
func chroma(cb, cr uint8) (r, g, b int32) {
	cb1, cr1 := int32(cb)-128, int32(cr)-128
	return 91881 * cr1, -22554*cb1 - 46802*cr1, 116130 * cb1
}

// clamp16 turns a 16.16 fixed-point value into a byte, clamping to
// [0, 255] as color.YCbCrToRGB does.
func clamp16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}
