package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A request answered before its body is read (unknown route, missing
// token) must not leave the body on a keep-alive connection, where it
// would be parsed as the next request.
func TestUnreadBodyKeepsConnectionUsable(t *testing.T) {
	s := start(t)
	// Larger than fasthttp's read buffer, so the body is still on the wire
	// when the answer is written.
	body := `{"device_keys":{"@a:localhost":[]},"pad":"` + strings.Repeat("x", 200<<10) + `"}`
	for _, first := range []string{
		"POST /_matrix/client/v3/no/such/route HTTP/1.1",
		"POST /_matrix/client/v3/keys/query HTTP/1.1", // no access token
	} {
		conn, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := first + "\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body +
			"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		for i, want := range []int{0, 200} {
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("%s: response %d: %v", first, i, err)
			}
			resp.Body.Close()
			if i == 0 && (resp.StatusCode != 404 && resp.StatusCode != 401) {
				t.Errorf("%s: first answer %d", first, resp.StatusCode)
			}
			if want != 0 && resp.StatusCode != want {
				t.Errorf("%s: the request after it got %d, want %d", first, resp.StatusCode, want)
			}
		}
		conn.Close()
	}
}
