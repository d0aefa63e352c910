// Package e2e starts the real lichen binary on a loopback port and drives
// it over HTTP, as a client would.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// server is a running lichen process.
type server struct {
	t       *testing.T
	URL     string
	DataDir string
	Addr    string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	env     []string
}

func binPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LICHEN_BIN")
	if p == "" {
		p = "../../bin/lichen"
	}
	abs, _ := filepath.Abs(p)
	if _, err := os.Stat(abs); err != nil {
		t.Skipf("lichen binary not found at %s (run make build, or set LICHEN_BIN)", abs)
	}
	return abs
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs lichen with open registration and no rate limits, plus env.
func start(t *testing.T, env ...string) *server {
	t.Helper()
	s := &server{t: t, DataDir: t.TempDir(), Addr: freeAddr(t)}
	s.URL = "http://" + s.Addr
	s.env = append([]string{"LICHEN_REGISTRATION=open", "LICHEN_RATE_LIMIT=off"}, env...)
	s.launch()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *server) launch() {
	t := s.t
	s.stderr = &bytes.Buffer{}
	s.cmd = exec.Command(binPath(t), "--data-dir", s.DataDir, "--listen", s.Addr, "--server-name", "localhost")
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not start: %s", s.stderr.String())
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("lichen exited uncleanly: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("lichen did not stop on SIGTERM")
	}
}

// kill stops the process with SIGKILL (power cut).
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// response is a decoded answer.
type response struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

func (r response) str(key string) string { v, _ := r.Body[key].(string); return v }

var client = &http.Client{Timeout: 60 * time.Second}

// do sends a request with an optional token and JSON body (string bodies
// are sent verbatim).
func (s *server) do(method, path, token string, body any) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// must asserts a status.
func (s *server) must(status int, method, path, token string, body any) response {
	s.t.Helper()
	r := s.do(method, path, token, body)
	if r.Status != status {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Raw)
	}
	return r
}

// user is a registered account.
type user struct {
	ID, Token, Device string
}

var userSeq atomic.Int64

// register creates an account through the UIA dummy flow.
func (s *server) register(name string) user {
	s.t.Helper()
	if name == "" {
		name = fmt.Sprintf("user%d", userSeq.Add(1))
	}
	body := map[string]any{"username": name, "password": "correct horse battery"}
	r := s.do("POST", "/_matrix/client/v3/register", "", body)
	if r.Status == 401 {
		body["auth"] = map[string]any{"type": "m.login.dummy", "session": r.str("session")}
		r = s.do("POST", "/_matrix/client/v3/register", "", body)
	}
	if r.Status != 200 {
		s.t.Fatalf("register %s: %d %s", name, r.Status, r.Raw)
	}
	return user{ID: r.str("user_id"), Token: r.str("access_token"), Device: r.str("device_id")}
}

func (s *server) createRoom(u user, body map[string]any) string {
	s.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return s.must(200, "POST", "/_matrix/client/v3/createRoom", u.Token, body).str("room_id")
}

func esc(s string) string {
	return strings.NewReplacer("!", "%21", "#", "%23", ":", "%3A", "$", "%24", "@", "%40").Replace(s)
}

// tryDo is do without failing the test on a transport error (the server
// may be dead on purpose).
func tryDo(s *server, method, path, token string, body any) (response, error) {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	out := response{Status: resp.StatusCode, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out, nil
}
