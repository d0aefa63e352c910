package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file starts and stops the server process and talks to it over
// loopback HTTP.

// server is one lichen process started by the tool.
type server struct {
	bin, dataDir, logPath string
	base                  string // http://127.0.0.1:port
	cmd                   *exec.Cmd
	log                   *os.File
	exited                chan struct{} // closed when the process has exited
	waitErr               error         // valid after exited is closed
	startup               time.Duration // exec to the first 200 from /versions
}

// startServer runs bin on a free loopback port with dataDir and waits (at
// most 15 s) until GET /_matrix/client/versions answers 200. The server's
// output goes to logPath (appended, so restarts share one log).
func startServer(bin, dataDir, logPath string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--data-dir", dataDir, "--listen", addr, "--server-name", "localhost")
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	s := &server{bin: bin, dataDir: dataDir, logPath: logPath, base: "http://" + addr, cmd: cmd, log: logf, exited: make(chan struct{})}

	probe := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	deadline := t0.Add(15 * time.Second)
	for {
		resp, err := probe.Get(s.base + "/_matrix/client/versions")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				s.startup = time.Since(t0)
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("server exited before serving (%v); log tail:\n%s", s.waitErr, s.logTail(15))
		default:
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("server not serving /versions after 15s (last: %v); log tail:\n%s", errOrStatus(err, resp), s.logTail(15))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func errOrStatus(err error, resp *http.Response) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// serverEnv is this process's environment without LICHEN_* variables (so
// a developer's config cannot change the figures), plus open registration
// and no rate limits.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LICHEN_") {
			env = append(env, kv)
		}
	}
	return append(env, "LICHEN_REGISTRATION=open", "LICHEN_RATE_LIMIT=off")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 15 s for the exit; it returns the
// exit code (-1 if killed by a signal) and how long the exit took.
func (s *server) stop() (code int, took time.Duration, err error) {
	t0 := time.Now()
	select {
	case <-s.exited:
	default:
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return -1, 0, err
		}
	}
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.kill()
		return -1, time.Since(t0), fmt.Errorf("server did not exit within 15s of SIGTERM; killed")
	}
	took = time.Since(t0)
	code = s.cmd.ProcessState.ExitCode()
	if code != 0 {
		why := ""
		if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			why = " (SIGTERM's default action: no handler was installed yet when it served /versions?)"
		}
		return code, took, fmt.Errorf("server exited with %v after SIGTERM%s; log tail:\n%s", s.waitErr, why, s.logTail(6))
	}
	return 0, took, nil
}

// kill ends the process with SIGKILL (only this tool's own child).
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
	}
}

func (s *server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// client is a Matrix client-server API client for one server. It records
// every unexpected answer in errs.
type client struct {
	base string
	hc   *http.Client
	errs *endpointErrors
}

func newClient(base string, errs *endpointErrors) *client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never a proxy
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, errs: errs}
}

// apiError is a non-2xx answer.
type apiError struct {
	Route   string
	Status  int
	Errcode string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Route, e.Status, e.Errcode, e.Message)
}

// raw sends one request and returns the status and body. in, if not nil,
// is sent as JSON. It records nothing.
func (c *client) raw(ctx context.Context, method, path, token string, in any) (int, []byte, error) {
	if in == nil {
		return c.rawBody(ctx, method, path, token, "", nil)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return 0, nil, err
	}
	return c.rawBody(ctx, method, path, token, "application/json", b)
}

// rawBody sends body as is with contentType (none when empty) and returns the status and
// body of the answer. It records nothing.
func (c *client) rawBody(ctx context.Context, method, path, token, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// do sends one request and decodes a 2xx answer into out (if not nil).
// route names the endpoint in error reports, e.g. "PUT /rooms/{roomId}/send".
// Failures are recorded unless the context was cancelled.
func (c *client) do(ctx context.Context, route, method, path, token string, in, out any) error {
	status, b, err := c.raw(ctx, method, path, token, in)
	if err == nil && (status < 200 || status > 299) {
		err = decodeAPIError(route, status, b)
	}
	if err == nil && out != nil {
		if jerr := json.Unmarshal(b, out); jerr != nil {
			err = fmt.Errorf("%s: decode %d answer: %w", route, status, jerr)
		}
	}
	if err != nil && ctx.Err() == nil {
		c.errs.add(route, err)
	}
	return err
}

func decodeAPIError(route string, status int, b []byte) *apiError {
	var m struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}
	e := &apiError{Route: route, Status: status}
	if json.Unmarshal(b, &m) == nil && m.Errcode != "" {
		e.Errcode, e.Message = m.Errcode, m.Error
	} else {
		e.Message = truncate(string(b), 160)
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// endpointErrors counts unexpected answers by endpoint, status and errcode.
type endpointErrors struct {
	mu sync.Mutex
	m  map[string]*errorEntry
}

type errorEntry struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
	First string `json:"first"`
}

func (e *endpointErrors) add(route string, err error) {
	key := route + " (transport error)"
	var ae *apiError
	if errors.As(err, &ae) {
		key = fmt.Sprintf("%s → %d %s", route, ae.Status, ae.Errcode)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]*errorEntry{}
	}
	ent := e.m[key]
	if ent == nil {
		ent = &errorEntry{Key: key, First: truncate(err.Error(), 240)}
		e.m[key] = ent
	}
	ent.Count++
}

func (e *endpointErrors) list() []errorEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]errorEntry, 0, len(e.m))
	for _, v := range e.m {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// user is a registered account with its access token.
type user struct {
	Name, ID, Token string
}

// register creates an account with the user-interactive dummy stage
// (spec: "Account registration", "Dummy Auth"): the first request answers
// 401 with a session, the second completes it.
func (c *client) register(ctx context.Context, name, password string) (user, error) {
	const route = "POST /register"
	req := map[string]any{"username": name, "password": password}
	status, b, err := c.raw(ctx, "POST", "/_matrix/client/v3/register", "", req)
	if err != nil {
		c.errs.add(route, err)
		return user{}, err
	}
	var out struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
		Session     string `json:"session"`
	}
	switch status {
	case 200: // no interactive auth asked for
		_ = json.Unmarshal(b, &out)
	case 401:
		if err := json.Unmarshal(b, &out); err != nil || out.Session == "" {
			err := fmt.Errorf("%s: 401 without a session: %s", route, truncate(string(b), 160))
			c.errs.add(route, err)
			return user{}, err
		}
		req["auth"] = map[string]any{"type": "m.login.dummy", "session": out.Session}
		out.Session = ""
		if err := c.do(ctx, route+" (m.login.dummy)", "POST", "/_matrix/client/v3/register", "", req, &out); err != nil {
			return user{}, err
		}
	default:
		err := decodeAPIError(route, status, b)
		c.errs.add(route, err)
		return user{}, err
	}
	if out.AccessToken == "" || out.UserID == "" {
		err := fmt.Errorf("%s: 200 without user_id or access_token", route)
		c.errs.add(route, err)
		return user{}, err
	}
	return user{Name: name, ID: out.UserID, Token: out.AccessToken}, nil
}

func (c *client) createRoom(ctx context.Context, u user, body map[string]any) (string, error) {
	if body == nil {
		body = map[string]any{}
	}
	var out struct {
		RoomID string `json:"room_id"`
	}
	if err := c.do(ctx, "POST /createRoom", "POST", "/_matrix/client/v3/createRoom", u.Token, body, &out); err != nil {
		return "", err
	}
	if out.RoomID == "" {
		err := errors.New("POST /createRoom: answer has no room_id")
		c.errs.add("POST /createRoom", err)
		return "", err
	}
	return out.RoomID, nil
}

func (c *client) join(ctx context.Context, u user, roomID string) error {
	return c.do(ctx, "POST /join/{roomIdOrAlias}", "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), u.Token, map[string]any{}, nil)
}

// send posts an m.room.message with body text.
func (c *client) send(ctx context.Context, u user, roomID, txnID, text string) error {
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/" + url.PathEscape(txnID)
	return c.do(ctx, "PUT /rooms/{roomId}/send/{eventType}/{txnId}", "PUT", path, u.Token,
		map[string]any{"msgtype": "m.text", "body": text}, nil)
}

// syncPath builds a /sync URL; empty strings and a negative timeout are
// left out.
func syncPath(since, filter string, timeoutMS int) string {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	if timeoutMS >= 0 {
		q.Set("timeout", fmt.Sprint(timeoutMS))
	}
	return "/_matrix/client/v3/sync?" + q.Encode()
}

// syncResponse is the part of a /sync answer the tool reads.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []struct {
					Type    string `json:"type"`
					Content struct {
						Body string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}
