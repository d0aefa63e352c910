package media

import (
	"errors"
	"testing"
)

func TestDisposition(t *testing.T) {
	for _, tc := range []struct{ ct, name, want string }{
		{"image/png", "cat.png", `inline; filename="cat.png"`},
		{"IMAGE/PNG", "", "inline"},
		{"text/plain; charset=utf-8", "a.txt", `inline; filename="a.txt"`},
		{"text/html", "x.html", `attachment; filename="x.html"`},
		{"image/svg+xml", "x.svg", `attachment; filename="x.svg"`},
		{"application/octet-stream", "", "attachment"},
		{"not a type", "", "attachment"},
		{"application/pdf", `a"b.pdf`, "attachment; filename*=utf-8''a%22b.pdf"},
		{"image/jpeg", "naïve.jpg", "inline; filename*=utf-8''na%C3%AFve.jpg"},
		{"text/plain", "a\r\nSet-Cookie: x", "inline; filename*=utf-8''a%0D%0ASet-Cookie%3A%20x"},
	} {
		if got := Disposition(tc.ct, tc.name); got != tc.want {
			t.Errorf("Disposition(%q, %q) = %q, want %q", tc.ct, tc.name, got, tc.want)
		}
	}
}

func TestPickThumbSize(t *testing.T) {
	for _, tc := range []struct {
		w, h   int
		method string
		want   ThumbSize
		err    bool
	}{
		{1, 1, "crop", ThumbSize{32, 32, "crop"}, false},
		{32, 32, "crop", ThumbSize{32, 32, "crop"}, false},
		{33, 10, "crop", ThumbSize{96, 96, "crop"}, false},
		{500, 500, "crop", ThumbSize{640, 640, "crop"}, false},
		{320, 240, "crop", ThumbSize{320, 240, "crop"}, false},
		{97, 97, "crop", ThumbSize{320, 320, "crop"}, false},
		{200, 100, "crop", ThumbSize{320, 240, "crop"}, false},
		{100, 200, "crop", ThumbSize{320, 320, "crop"}, false},
		{700, 700, "crop", ThumbSize{800, 800, "crop"}, false},
		{900, 900, "crop", ThumbSize{800, 800, "crop"}, false},
		{64, 64, "", ThumbSize{320, 240, "scale"}, false},
		{320, 241, "scale", ThumbSize{640, 480, "scale"}, false},
		{800, 600, "scale", ThumbSize{800, 600, "scale"}, false},
		{4000, 3000, "scale", ThumbSize{800, 600, "scale"}, false},
		{0, 10, "scale", ThumbSize{}, true},
		{10, 10, "stretch", ThumbSize{}, true},
	} {
		got, err := PickThumbSize(tc.w, tc.h, tc.method)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("PickThumbSize(%d, %d, %q) = %v, %v; want %v, err %v", tc.w, tc.h, tc.method, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("error %v is not ErrBadRequest", err)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"AQwafuaFswefuhsfAFAgsw": true, "a_b-c": true, "": false,
		"../etc": false, "a/b": false, "a.b": false, "a%2F": false, "é": false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
	for i := 0; i < 100; i++ {
		if id := newID(); !ValidID(id) {
			t.Fatalf("newID %q is not valid", id)
		}
	}
}
