package thumbnail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// photo returns a w×h YCbCr 4:2:0 image with smooth gradients and a little
// noise, like a photograph, quick to make at any size.
func photo(w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	seed := uint32(2463534242)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			m.Y[y*m.YStride+x] = uint8((x*255/w+y*255/h)/2) + uint8(seed&15)
		}
	}
	for y := 0; y < (h+1)/2; y++ {
		for x := 0; x < (w+1)/2; x++ {
			m.Cb[y*m.CStride+x] = uint8(x * 511 / w)
			m.Cr[y*m.CStride+x] = uint8(y * 511 / h)
		}
	}
	return m
}

func encJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// translucent returns a w×h NRGBA image whose left half is fully
// transparent and whose right half is opaque red.
func translucent(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := w / 2; x < w; x++ {
			m.SetNRGBA(x, y, color.NRGBA{R: 255, A: 255})
		}
	}
	return m
}

func encGIF(t testing.TB, w, h int) []byte {
	t.Helper()
	pal := append(color.Palette{color.Transparent}, palette.Plan9[1:]...)
	m := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for y := 0; y < h; y++ {
		for x := w / 2; x < w; x++ {
			m.SetColorIndex(x, y, uint8(1+(x+y)%200))
		}
	}
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader crafts a PNG signature and a valid IHDR chunk claiming w×h
// 8-bit RGBA, with nothing after it: all a decompression bomb needs to get
// past a header check that is not there.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 0, 17)
	ihdr = append(ihdr, "IHDR"...)
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // depth 8, RGBA, deflate, filter 0, no interlace
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// gifHeader crafts a GIF header whose logical screen is w×h.
func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 0, 0) // no global colour table
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeOut decodes a thumbnail with the decoder its type names.
func decodeOut(t *testing.T, out []byte, typ string) image.Image {
	t.Helper()
	var m image.Image
	var err error
	switch typ {
	case typeJPEG:
		m, err = jpeg.Decode(bytes.NewReader(out))
	case typePNG:
		m, err = png.Decode(bytes.NewReader(out))
	default:
		t.Fatalf("unexpected output type %q", typ)
	}
	if err != nil {
		t.Fatalf("decoding %s output: %v", typ, err)
	}
	return m
}

func TestTestdataWebPDecodes(t *testing.T) {
	for _, name := range []string{"blue-purple-pink.lossy.webp", "gopher-doc.with-alpha.lossless.webp"} {
		m, err := webp.Decode(bytes.NewReader(readFile(t, name)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %T %v", name, m, m.Bounds())
	}
}

func TestMakeSizes(t *testing.T) {
	landscape := encJPEG(t, photo(1600, 1200))
	portrait := encJPEG(t, photo(1200, 1600))
	wide := encJPEG(t, photo(2000, 500))
	small := encJPEG(t, photo(100, 50))
	pngPhoto := encPNG(t, photo(1024, 768))

	tests := []struct {
		name          string
		src           []byte
		ctype         string
		w, h          int
		method        string
		wantW, wantH  int
		wantType      string
		wantUnchanged bool // the original bytes come back
	}{
		{"32 crop landscape", landscape, "image/jpeg", 32, 32, "crop", 32, 32, typeJPEG, false},
		{"96 crop landscape", landscape, "image/jpeg", 96, 96, "crop", 96, 96, typeJPEG, false},
		{"320x240 scale landscape", landscape, "image/jpeg", 320, 240, "scale", 320, 240, typeJPEG, false},
		{"640x480 scale landscape", landscape, "image/jpeg", 640, 480, "scale", 640, 480, typeJPEG, false},
		{"800x600 scale landscape", landscape, "image/jpeg", 800, 600, "scale", 800, 600, typeJPEG, false},
		{"96 crop portrait", portrait, "image/jpeg", 96, 96, "crop", 96, 96, typeJPEG, false},
		{"320x240 scale portrait", portrait, "image/jpeg", 320, 240, "scale", 180, 240, typeJPEG, false},
		{"800x600 scale portrait", portrait, "image/jpeg", 800, 600, "scale", 450, 600, typeJPEG, false},
		{"320x240 scale wide", wide, "image/jpeg", 320, 240, "scale", 320, 80, typeJPEG, false},
		{"640x480 crop wide", wide, "image/jpeg", 640, 480, "crop", 640, 480, typeJPEG, false},
		{"32 crop wide", wide, "image/jpeg", 32, 32, "crop", 32, 32, typeJPEG, false},
		// No upscaling: a source smaller than the request comes back as is
		// (scale) or is only cropped to the requested aspect (crop).
		{"800x600 scale small", small, "image/jpeg", 800, 600, "scale", 100, 50, typeJPEG, true},
		{"96 crop small", small, "image/jpeg", 96, 96, "crop", 50, 50, typeJPEG, false},
		{"32 crop small", small, "image/jpeg", 32, 32, "crop", 32, 32, typeJPEG, false},
		{"100x50 scale exact", small, "image/jpeg", 100, 50, "scale", 100, 50, typeJPEG, true},
		// Output formats by source.
		{"png photo stays png", pngPhoto, "image/png", 320, 240, "scale", 320, 240, typePNG, false},
		{"declared png, really jpeg", landscape, "image/png", 320, 240, "scale", 320, 240, typeJPEG, false},
		{"content type parameters", landscape, "Image/JPEG; charset=binary", 96, 96, "crop", 96, 96, typeJPEG, false},
		{"lossy webp to jpeg", readFile(t, "blue-purple-pink.lossy.webp"), "image/webp", 32, 32, "crop", 32, 32, typeJPEG, false},
		{"alpha webp to png", readFile(t, "gopher-doc.with-alpha.lossless.webp"), "image/webp", 32, 32, "crop", 32, 32, typePNG, false},
		{"gif to png", encGIF(t, 400, 300), "image/gif", 96, 96, "crop", 96, 96, typePNG, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, typ, err := Make(tt.src, tt.ctype, tt.w, tt.h, tt.method)
			if err != nil {
				t.Fatal(err)
			}
			if typ != tt.wantType {
				t.Fatalf("type %q, want %q", typ, tt.wantType)
			}
			if unchanged := bytes.Equal(out, tt.src); unchanged != tt.wantUnchanged {
				t.Fatalf("output is the original: %v, want %v", unchanged, tt.wantUnchanged)
			}
			b := decodeOut(t, out, typ).Bounds()
			if b.Dx() != tt.wantW || b.Dy() != tt.wantH {
				t.Fatalf("got %d×%d, want %d×%d", b.Dx(), b.Dy(), tt.wantW, tt.wantH)
			}
		})
	}
}

func TestMakeKeepsTransparency(t *testing.T) {
	tests := []struct {
		name  string
		src   []byte
		ctype string
	}{
		{"png", encPNG(t, translucent(600, 400)), "image/png"},
		{"gif", encGIF(t, 600, 400), "image/gif"},
	}
	for _, tt := range tests {
		for _, method := range []string{"scale", "crop"} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				out, typ, err := Make(tt.src, tt.ctype, 96, 96, method)
				if err != nil {
					t.Fatal(err)
				}
				if typ != typePNG {
					t.Fatalf("type %q, want image/png", typ)
				}
				m := decodeOut(t, out, typ)
				b := m.Bounds()
				if _, _, _, a := m.At(b.Min.X, b.Min.Y).RGBA(); a != 0 {
					t.Errorf("left edge alpha %d, want transparent", a)
				}
				if _, _, _, a := m.At(b.Max.X-1, b.Min.Y).RGBA(); a != 0xffff {
					t.Errorf("right edge alpha %d, want opaque", a)
				}
			})
		}
	}
}

func TestMakeAverages(t *testing.T) {
	// A 1-pixel black/white checkerboard reduced 8×8 must come out mid-grey
	// everywhere: a sampling scaler would alias it to black or white.
	m := image.NewGray(image.Rect(0, 0, 800, 800))
	for i := range m.Pix {
		if (i%800+i/800)%2 == 0 {
			m.Pix[i] = 255
		}
	}
	out, typ, err := Make(encPNG(t, m), "image/png", 100, 100, "scale")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeOut(t, out, typ)
	for _, p := range []image.Point{{0, 0}, {50, 50}, {99, 99}} {
		r, _, _, _ := got.At(p.X, p.Y).RGBA()
		if v := r >> 8; v < 120 || v > 135 {
			t.Errorf("pixel %v = %d, want about 128", p, v)
		}
	}
}

func TestErrors(t *testing.T) {
	valid := encJPEG(t, photo(320, 240))
	validPNG := encPNG(t, photo(320, 240))
	badCRC := bytes.Clone(validPNG)
	badCRC[29] ^= 0xff // the IHDR chunk's CRC
	zeroPNG := pngHeader(0, 10)

	tests := []struct {
		name   string
		src    []byte
		ctype  string
		w, h   int
		method string
		want   error
	}{
		{"png bomb 40000x40000", pngHeader(40000, 40000), "image/png", 96, 96, "crop", ErrTooLarge},
		{"png bomb 30000x30000", pngHeader(30000, 30000), "image/png", 800, 600, "scale", ErrTooLarge},
		{"png long strip", pngHeader(1<<20, 1), "image/png", 96, 96, "crop", ErrTooLarge},
		{"png 2^31-1 side", pngHeader(1<<31-1, 1<<31-1), "image/png", 96, 96, "crop", ErrTooLarge},
		{"gif bomb", gifHeader(65535, 65535), "image/gif", 96, 96, "crop", ErrTooLarge},
		{"png zero width", zeroPNG, "image/png", 96, 96, "crop", ErrInvalid},
		{"truncated jpeg", valid[:len(valid)/2], "image/jpeg", 96, 96, "crop", ErrInvalid},
		{"jpeg header only", valid[:4], "image/jpeg", 96, 96, "crop", ErrInvalid},
		{"png bad crc", badCRC, "image/png", 96, 96, "crop", ErrInvalid},
		{"truncated png", validPNG[:len(validPNG)/2], "image/png", 96, 96, "crop", ErrInvalid},
		{"truncated webp", readFile(t, "blue-purple-pink.lossy.webp")[:100], "image/webp", 32, 32, "crop", ErrInvalid},
		{"text declared png", []byte("hello, world, not an image at all"), "image/png", 96, 96, "crop", ErrUnsupported},
		{"empty", nil, "image/jpeg", 96, 96, "crop", ErrUnsupported},
		{"bmp", append([]byte("BM"), make([]byte, 64)...), "image/bmp", 96, 96, "crop", ErrUnsupported},
		{"bmp declared png", append([]byte("BM"), make([]byte, 64)...), "image/png", 96, 96, "crop", ErrUnsupported},
		{"svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"), "image/svg+xml", 96, 96, "crop", ErrUnsupported},
		{"jpeg declared html", valid, "text/html", 96, 96, "crop", ErrUnsupported},
		{"jpeg declared octet-stream", valid, "application/octet-stream", 96, 96, "crop", ErrUnsupported},
		{"no content type", valid, "", 96, 96, "crop", ErrUnsupported},
		{"bad method", valid, "image/jpeg", 96, 96, "stretch", ErrInvalid},
		{"zero width", valid, "image/jpeg", 0, 96, "scale", ErrInvalid},
		{"negative height", valid, "image/jpeg", 96, -1, "crop", ErrInvalid},
		{"huge request", valid, "image/jpeg", 1 << 20, 96, "crop", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, typ, err := Make(tt.src, tt.ctype, tt.w, tt.h, tt.method)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if out != nil || typ != "" {
				t.Fatalf("output %d bytes of %q alongside an error", len(out), typ)
			}
		})
	}
}

func TestDimensions(t *testing.T) {
	tests := []struct {
		name         string
		src          []byte
		ctype        string
		wantW, wantH int
		want         error
	}{
		{"jpeg", encJPEG(t, photo(123, 45)), "image/jpeg", 123, 45, nil},
		{"png", encPNG(t, translucent(7, 9)), "image/png", 7, 9, nil},
		{"gif", encGIF(t, 31, 17), "image/gif", 31, 17, nil},
		{"webp", readFile(t, "blue-purple-pink.lossy.webp"), "image/webp", 0, 0, nil},
		// Dimensions applies no size limit: the header is all it reads.
		{"png bomb header", pngHeader(40000, 40000), "image/png", 40000, 40000, nil},
		{"zero", pngHeader(0, 0), "image/png", 0, 0, ErrInvalid},
		{"garbage", []byte("garbage"), "image/png", 0, 0, ErrUnsupported},
		{"declared pdf", encJPEG(t, photo(8, 8)), "application/pdf", 0, 0, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h, err := Dimensions(tt.src, tt.ctype)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if tt.wantW == 0 { // compare with a full decode instead
				m, err := webp.Decode(bytes.NewReader(tt.src))
				if err != nil {
					t.Fatal(err)
				}
				tt.wantW, tt.wantH = m.Bounds().Dx(), m.Bounds().Dy()
			}
			if w != tt.wantW || h != tt.wantH {
				t.Fatalf("got %d×%d, want %d×%d", w, h, tt.wantW, tt.wantH)
			}
		})
	}
}

// TestBombAllocatesLittle checks that a header claiming 40000×40000
// (6.4 GB as RGBA) is refused having allocated almost nothing.
func TestBombAllocatesLittle(t *testing.T) {
	bomb := pngHeader(40000, 40000)
	var err error
	allocs := testing.AllocsPerRun(20, func() {
		_, _, err = Make(bomb, "image/png", 800, 600, "scale")
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		Make(bomb, "image/png", 800, 600, "scale")
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / 100
	t.Logf("bomb refused: %.0f allocs, %d bytes per call", allocs, perCall)
	if perCall > 64<<10 {
		t.Fatalf("refusing a bomb allocated %d bytes per call, want < 64 KiB", perCall)
	}
}

var (
	bigOnce sync.Once
	bigJPEG []byte
)

// big4000x3000 returns a 4000×3000 baseline JPEG, made once per run.
func big4000x3000(t testing.TB) []byte {
	bigOnce.Do(func() { bigJPEG = encJPEG(t, photo(4000, 3000)) })
	return bigJPEG
}

// peakHeap runs f while sampling the heap, and returns the peak of
// HeapInuse above what was in use before, and the bytes allocated.
func peakHeap(f func()) (peak, total uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, alloc0 := ms.HeapInuse, ms.TotalAlloc
	done := make(chan struct{})
	var max uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var s runtime.MemStats
		for {
			runtime.ReadMemStats(&s)
			if s.HeapInuse > max {
				max = s.HeapInuse
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > max {
		max = ms.HeapInuse
	}
	if max < base {
		max = base
	}
	return max - base, ms.TotalAlloc - alloc0
}

// TestPeakHeap4000x3000JPEG reports (does not assert) the memory that
// thumbnailing a 4000×3000 photo to 800×600 takes.
func TestPeakHeap4000x3000JPEG(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a 12 Mpx JPEG")
	}
	src := big4000x3000(t)
	var out []byte
	var err error
	peak, total := peakHeap(func() { out, _, err = Make(src, "image/jpeg", 800, 600, "scale") })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("4000×3000 JPEG (%d KiB) → 800×600 (%d KiB): peak heap in use +%.1f MiB, allocated %.1f MiB",
		len(src)>>10, len(out)>>10, float64(peak)/(1<<20), float64(total)/(1<<20))
}

func BenchmarkMake4000x3000JPEG(b *testing.B) {
	src := big4000x3000(b)
	for _, sz := range []struct {
		name   string
		w, h   int
		method string
	}{
		{"800x600_scale", 800, 600, "scale"},
		{"96x96_crop", 96, 96, "crop"},
	} {
		b.Run(sz.name, func(b *testing.B) {
			// The heap sampler stops the world, so it runs once, outside
			// the timed loop.
			peak, _ := peakHeap(func() {
				if _, _, err := Make(src, "image/jpeg", sz.w, sz.h, sz.method); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := Make(src, "image/jpeg", sz.w, sz.h, sz.method); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		})
	}
}

// BenchmarkScalers compares, on a decoded 4000×3000 photo reduced to
// 800×600, resize (box filter then ApproxBiLinear) with one pass of
// x/image/draw's ApproxBiLinear and CatmullRom: B/op shows the kernel
// scaler's intermediate buffer.
func BenchmarkScalers(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(big4000x3000(b)))
	if err != nil {
		b.Fatal(err)
	}
	sr := img.Bounds()
	for _, s := range []struct {
		name string
		f    func() *image.RGBA
	}{
		{"box+ApproxBiLinear", func() *image.RGBA { return resize(img, sr, 800, 600) }},
		{"box+ApproxBiLinear_to_750x560", func() *image.RGBA { return resize(img, sr, 750, 560) }},
		{"ApproxBiLinear", func() *image.RGBA {
			dst := image.NewRGBA(image.Rect(0, 0, 800, 600))
			draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, sr, draw.Src, nil)
			return dst
		}},
		{"CatmullRom", func() *image.RGBA {
			dst := image.NewRGBA(image.Rect(0, 0, 800, 600))
			draw.CatmullRom.Scale(dst, dst.Bounds(), img, sr, draw.Src, nil)
			return dst
		}},
	} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.f()
			}
		})
	}
}

func TestMakeKeepsColour(t *testing.T) {
	// A flat colour survives every path (box filter on YCbCr, RGBA and
	// paletted sources, and the direct bilinear path) within JPEG's error.
	want := color.RGBA{200, 60, 30, 255}
	flat := image.NewRGBA(image.Rect(0, 0, 900, 700))
	draw.Draw(flat, flat.Bounds(), image.NewUniform(want), image.Point{}, draw.Src)
	for _, tt := range []struct {
		name, ctype string
		src         []byte
		w, h        int
	}{
		{"jpeg box", "image/jpeg", encJPEG(t, flat), 96, 96},
		{"jpeg bilinear", "image/jpeg", encJPEG(t, flat), 640, 480},
		{"png box", "image/png", encPNG(t, flat), 96, 96},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, typ, err := Make(tt.src, tt.ctype, tt.w, tt.h, "crop")
			if err != nil {
				t.Fatal(err)
			}
			m := decodeOut(t, out, typ)
			r, g, b, _ := m.At(m.Bounds().Dx()/2, m.Bounds().Dy()/2).RGBA()
			for i, c := range [][2]uint32{{r >> 8, uint32(want.R)}, {g >> 8, uint32(want.G)}, {b >> 8, uint32(want.B)}} {
				if d := int(c[0]) - int(c[1]); d < -8 || d > 8 {
					t.Errorf("channel %d = %d, want %d", i, c[0], c[1])
				}
			}
		})
	}
}

// TestBoxShrinkFastPaths checks each fast row reader against the exact
// At-based one, on regions at odd offsets (chroma subsampling phase).
func TestBoxShrinkFastPaths(t *testing.T) {
	ph := photo(301, 203)
	rgba := image.NewRGBA(ph.Bounds())
	draw.Draw(rgba, rgba.Bounds(), ph, image.Point{}, draw.Src)
	nrgba := image.NewNRGBA(ph.Bounds())
	draw.Draw(nrgba, nrgba.Bounds(), translucent(301, 203), image.Point{}, draw.Src)
	gray := image.NewGray(ph.Bounds())
	draw.Draw(gray, gray.Bounds(), ph, image.Point{}, draw.Src)
	pal := image.NewPaletted(ph.Bounds(), palette.Plan9)
	draw.Draw(pal, pal.Bounds(), ph, image.Point{}, draw.Src)
	type wrapped struct{ image.Image } // hides the concrete type: slow path
	for _, tt := range []struct {
		name string
		img  image.Image
	}{
		{"ycbcr420", ph},
		{"ycbcr444", func() image.Image {
			m := image.NewYCbCr(ph.Bounds(), image.YCbCrSubsampleRatio444)
			for y := 0; y < 203; y++ {
				for x := 0; x < 301; x++ {
					c := ph.YCbCrAt(x, y)
					m.Y[m.YOffset(x, y)], m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)] = c.Y, c.Cb, c.Cr
				}
			}
			return m
		}()},
		{"rgba", rgba}, {"nrgba", nrgba}, {"gray", gray}, {"paletted", pal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, sr := range []image.Rectangle{image.Rect(0, 0, 301, 203), image.Rect(3, 5, 290, 200)} {
				got := resize(tt.img, sr, sr.Dx()/3, sr.Dy()/3)
				want := resize(wrapped{tt.img}, sr, sr.Dx()/3, sr.Dy()/3)
				for i := range got.Pix {
					if d := int(got.Pix[i]) - int(want.Pix[i]); d < -3 || d > 3 {
						t.Fatalf("region %v: byte %d = %d, exact path %d", sr, i, got.Pix[i], want.Pix[i])
					}
				}
			}
		})
	}
}
