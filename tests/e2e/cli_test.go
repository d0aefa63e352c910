package e2e

// The lichen binary as an operator meets it: `lichen version`, the first
// start with no configuration at all (closed registration, the one-time
// admin token, the data directory's files), `lichen user add`, the
// configuration precedence defaults < file < env < flags, a clean SIGTERM
// during a long-poll, and refusing a bad configuration.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuf is a bytes.Buffer safe to read while a process writes to it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cleanEnv is the test's environment without any LICHEN_* variable, plus
// extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LICHEN_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCLI runs the binary to completion in dir and returns its output and
// exit code.
func runCLI(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("lichen %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("lichen %v did not finish in 30s: %s", args, e.String())
	}
	return o.String(), e.String(), code
}

// cliServer is a lichen process started with explicit arguments and
// environment (the harness's start always adds --server-name and
// LICHEN_* settings).
type cliServer struct {
	*server
	out     *syncBuf // stdout and stderr
	done    chan struct{}
	waitErr error
}

// launchCLI starts `lichen args... --listen <free port>` in dir with env
// and waits until it serves /_matrix/client/versions.
func launchCLI(t *testing.T, dir string, env []string, args ...string) *cliServer {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binPath(t), append(args, "--listen", addr)...)
	cmd.Dir, cmd.Env = dir, env
	c := &cliServer{out: &syncBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.waitErr = cmd.Wait(); close(c.done) }()
	c.server = &server{t: t, URL: "http://" + addr, Addr: addr, cmd: cmd, stderr: &bytes.Buffer{}, env: env}
	t.Cleanup(c.stop)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			t.Fatalf("lichen exited before serving (%v): %s", c.waitErr, c.out.String())
		default:
		}
		resp, err := http.Get(c.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("lichen did not start: %s", c.out.String())
	return nil
}

// stop sends SIGTERM and expects a clean exit.
func (c *cliServer) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.waitErr != nil {
			c.t.Errorf("lichen exited uncleanly: %v\n%s", c.waitErr, c.out.String())
		}
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		c.t.Errorf("lichen did not stop on SIGTERM")
	}
}

// bootstrapToken finds the one-time registration token in the startup
// output ("...registration token was created:\n\n    TOKEN\n").
var bootstrapTokenRE = regexp.MustCompile(`(?m)^ {4}([A-Za-z0-9._~-]+)\s*$`)

func bootstrapToken(out string) string {
	i := strings.Index(out, "registration token")
	if i < 0 {
		return ""
	}
	m := bootstrapTokenRE.FindStringSubmatch(out[i:])
	if m == nil {
		return ""
	}
	return m[1]
}

// flowsOf lists the stages of each flow of a UIA answer.
func flowsOf(r response) [][]string {
	var out [][]string
	for _, f := range objList(r.Body, "flows") {
		var stages []string
		for _, st := range objList(f, "stages") {
			s, _ := st.(string)
			stages = append(stages, s)
		}
		out = append(out, stages)
	}
	return out
}

func hasStage(flows [][]string, stage string) bool {
	for _, f := range flows {
		if slices.Contains(f, stage) {
			return true
		}
	}
	return false
}

// canAdminister reports whether u may publish a room it is not in, which
// only a server admin may (Lichen's admin override of the directory).
func canAdminister(s *server, u user, room string) bool {
	s.t.Helper()
	r := s.do("PUT", cs+"/directory/list/room/"+esc(room), u.Token, map[string]any{"visibility": "public"})
	switch r.Status {
	case 200:
		return true
	case 403:
		return false
	}
	s.t.Fatalf("PUT directory visibility: %d %s", r.Status, r.Raw)
	return false
}

func loginPassword(s *server, name, password string) response {
	s.t.Helper()
	return s.do("POST", cs+"/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": name},
		"password":   password,
	})
}

func TestCLIVersion(t *testing.T) {
	out, errOut, code := runCLI(t, t.TempDir(), cleanEnv(), "version")
	if code != 0 {
		t.Fatalf("lichen version exited %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`^lichen \S+\n$`).MatchString(out) {
		t.Errorf("lichen version printed %q", out)
	}
	if _, errOut, code := runCLI(t, t.TempDir(), cleanEnv(), "frobnicate"); code == 0 || !strings.Contains(errOut, "frobnicate") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
}

// TestCLIFirstStartNoConfig: no file, no LICHEN_* variable, only
// --data-dir and --listen.
func TestCLIFirstStartNoConfig(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := cleanEnv()
	c := launchCLI(t, dir, env, "--data-dir", data)
	s := c.server

	v := s.must(200, "GET", "/_matrix/client/versions", "", nil)
	if len(objList(v.Body, "versions")) == 0 {
		t.Errorf("versions: %s", v.Raw)
	}

	// Registration is closed: no flow offers m.login.dummy, and completing
	// a dummy stage anyway creates no account.
	body := map[string]any{"username": "eve", "password": "eve's password"}
	r := s.do("POST", cs+"/register", "", body)
	switch r.Status {
	case 403:
		wantErr(t, r, 403, "M_FORBIDDEN")
	case 401:
		if hasStage(flowsOf(r), "m.login.dummy") {
			t.Errorf("closed registration offers m.login.dummy: %s", r.Raw)
		}
		body["auth"] = map[string]any{"type": "m.login.dummy", "session": r.str("session")}
		r2 := s.do("POST", cs+"/register", "", body)
		if r2.Status == 200 || r2.str("access_token") != "" {
			t.Errorf("closed registration accepted m.login.dummy: %d %s", r2.Status, r2.Raw)
		}
	default:
		t.Errorf("register with closed registration: %d %s", r.Status, r.Raw)
	}
	for _, b := range []map[string]any{
		{"username": "eve2", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}},
		{"username": "eve3", "password": "pw", "auth": map[string]any{"type": "m.login.registration_token", "token": "not-the-token"}},
	} {
		if r := s.do("POST", cs+"/register", "", b); r.Status == 200 {
			t.Errorf("closed registration created an account from %v: %s", b, r.Raw)
		}
	}

	// The one-time token is printed on stderr.
	tok := bootstrapToken(c.out.String())
	if tok == "" {
		t.Fatalf("no registration token in the startup output:\n%s", c.out.String())
	}
	val := s.must(200, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+tok, "", nil)
	if val.Body["valid"] != true {
		t.Errorf("bootstrap token not valid: %s", val.Raw)
	}

	// Register the first account with it: 401 {session, flows}, then the
	// registration-token stage (and a dummy stage if some flow needs it).
	body = map[string]any{"username": "root", "password": "root password"}
	r = s.must(401, "POST", cs+"/register", "", body)
	if r.str("session") == "" || !hasStage(flowsOf(r), "m.login.registration_token") {
		t.Fatalf("first /register: %s", r.Raw)
	}
	session := r.str("session")
	body["auth"] = map[string]any{"type": "m.login.registration_token", "token": tok, "session": session}
	r = s.do("POST", cs+"/register", "", body)
	if r.Status == 401 && hasStage(flowsOf(r), "m.login.dummy") {
		body["auth"] = map[string]any{"type": "m.login.dummy", "session": session}
		r = s.do("POST", cs+"/register", "", body)
	}
	if r.Status != 200 {
		t.Fatalf("register with the bootstrap token: %d %s", r.Status, r.Raw)
	}
	root := user{ID: r.str("user_id"), Token: r.str("access_token"), Device: r.str("device_id")}
	if root.ID != "@root:localhost" || root.Token == "" {
		t.Errorf("first account: %s (want @root:localhost: the default server name)", r.Raw)
	}
	if w := s.must(200, "GET", cs+"/account/whoami", root.Token, nil); w.str("user_id") != root.ID {
		t.Errorf("whoami: %s", w.Raw)
	}
	// A login with eve's password finds no account.
	if r := loginPassword(s, "eve", "eve's password"); r.Status != 403 {
		t.Errorf("eve exists after closed registration: %d %s", r.Status, r.Raw)
	}

	// The token is spent: it no longer validates or registers.
	if val := s.do("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+tok, "", nil); val.Status == 200 && val.Body["valid"] != false {
		t.Errorf("spent token still valid: %s", val.Raw)
	}
	body = map[string]any{"username": "second", "password": "pw"}
	r = s.do("POST", cs+"/register", "", body)
	if r.Status == 401 {
		body["auth"] = map[string]any{"type": "m.login.registration_token", "token": tok, "session": r.str("session")}
		r = s.do("POST", cs+"/register", "", body)
	} else {
		wantErr(t, r, 403, "M_FORBIDDEN")
	}
	if r.Status == 200 {
		t.Errorf("spent token registered a second account: %s", r.Raw)
	}
	rootRoom := s.createRoom(root, map[string]any{"preset": "private_chat"})

	// The data directory holds the database and the key, private.
	for _, f := range []string{"lichen.db", "signing.key"} {
		fi, err := os.Stat(filepath.Join(data, f))
		if err != nil {
			t.Errorf("data dir: %v", err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", f, m)
		}
	}
	if fi, err := os.Stat(data); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("data dir has mode %o, want no group/other access", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "lichen-data")); err == nil {
		t.Errorf("./lichen-data was created although --data-dir was given")
	}

	// Restart, with a second (non-admin) user added offline: no token is
	// printed any more, and the first account is the server admin.
	c.stop()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("bob password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, e, code := runCLI(t, dir, env, "user", "add", "bob", "--password-file", pw, "--data-dir", data); code != 0 {
		t.Fatalf("user add bob: exit %d: %s", code, e)
	}
	c = launchCLI(t, dir, env, "--data-dir", data)
	s = c.server
	if out := c.out.String(); strings.Contains(out, "registration token") {
		t.Errorf("restart printed a registration token again:\n%s", out)
	}
	if r := s.do("GET", cs+"/account/whoami", root.Token, nil); r.str("user_id") != root.ID {
		t.Errorf("root's token after restart: %d %s", r.Status, r.Raw)
	}
	lr := loginPassword(s, "bob", "bob password")
	if lr.Status != 200 {
		t.Fatalf("bob login: %d %s", lr.Status, lr.Raw)
	}
	bob := user{ID: lr.str("user_id"), Token: lr.str("access_token")}
	bobRoom := s.createRoom(bob, nil)
	if !canAdminister(s, root, bobRoom) {
		t.Errorf("the account registered with the bootstrap token is not a server admin")
	}
	if canAdminister(s, bob, rootRoom) {
		t.Errorf("bob (user add without --admin) acts as a server admin")
	}
}

func TestCLIUserAdd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("alice's long password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv()
	out, e, code := runCLI(t, dir, env, "user", "add", "alice", "--password-file", pw, "--admin", "--data-dir", data)
	if code != 0 {
		t.Fatalf("user add alice: exit %d: %s", code, e)
	}
	if !strings.Contains(out, "@alice:localhost") {
		t.Errorf("user add printed %q", out)
	}
	if _, e, code := runCLI(t, dir, env, "user", "add", "carol", "--password-file", pw, "--data-dir", data); code != 0 {
		t.Fatalf("user add carol: exit %d: %s", code, e)
	}
	// An existing name fails, with or without --admin.
	for _, args := range [][]string{
		{"user", "add", "alice", "--password-file", pw, "--data-dir", data},
		{"user", "add", "alice", "--password-file", pw, "--admin", "--data-dir", data},
		{"user", "add", "Alice", "--password-file", pw, "--data-dir", data},
	} {
		if _, e, code := runCLI(t, dir, env, args...); code == 0 {
			t.Errorf("%v succeeded for an existing user", args)
		} else if strings.TrimSpace(e) == "" {
			t.Errorf("%v failed silently", args)
		}
	}
	// Usage errors fail too.
	if _, _, code := runCLI(t, dir, env, "user", "add", "--password-file", pw, "--data-dir", data); code == 0 {
		t.Errorf("user add without a name succeeded")
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, _, code := runCLI(t, dir, env, "user", "add", "dave", "--password-file", empty, "--data-dir", data); code == 0 {
		t.Errorf("user add with an empty password succeeded")
	}

	c := launchCLI(t, dir, cleanEnv("LICHEN_REGISTRATION=open", "LICHEN_RATE_LIMIT=off"), "--data-dir", data)
	s := c.server
	if strings.Contains(c.out.String(), "registration token") {
		t.Errorf("a registration token was printed although accounts exist:\n%s", c.out.String())
	}
	r := loginPassword(s, "alice", "alice's long password")
	if r.Status != 200 || r.str("user_id") != "@alice:localhost" || r.str("access_token") == "" {
		t.Fatalf("login as the CLI-created user: %d %s", r.Status, r.Raw)
	}
	alice := user{ID: r.str("user_id"), Token: r.str("access_token")}
	wantErr(t, loginPassword(s, "alice", "wrong"), 403, "M_FORBIDDEN")
	// The trailing newline of the password file is not part of the password.
	wantErr(t, loginPassword(s, "alice", "alice's long password\n"), 403, "M_FORBIDDEN")
	r = loginPassword(s, "carol", "alice's long password")
	if r.Status != 200 {
		t.Fatalf("login carol: %d %s", r.Status, r.Raw)
	}
	carol := user{ID: r.str("user_id"), Token: r.str("access_token")}
	// --admin made alice a server admin; carol is not.
	bob := s.register("bob")
	room := s.createRoom(bob, nil)
	if !canAdminister(s, alice, room) {
		t.Errorf("user add --admin did not make alice a server admin")
	}
	if canAdminister(s, carol, room) {
		t.Errorf("carol (no --admin) acts as a server admin")
	}
}

// TestCLIConfigPrecedence: defaults < TOML file < LICHEN_* < flags, seen
// in the domain of a registered user ID.
func TestCLIConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "lichen.toml")
	// The file also closes registration and names a port nobody uses:
	// the environment and --listen override those.
	if err := os.WriteFile(cfgFile, []byte("server_name = \"file.example\"\nregistration = \"closed\"\nlisten = \"127.0.0.1:1\"\nrate_limit = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"file", nil, []string{"--config", cfgFile}, "file.example"},
		{"LICHEN_CONFIG", []string{"LICHEN_CONFIG=" + cfgFile}, nil, "file.example"},
		{"env over file", []string{"LICHEN_SERVER_NAME=env.example"}, []string{"--config", cfgFile}, "env.example"},
		{"flag over env and file", []string{"LICHEN_SERVER_NAME=env.example"}, []string{"--config", cfgFile, "--server-name", "flag.example"}, "flag.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			env := cleanEnv(append([]string{"LICHEN_REGISTRATION=open"}, tc.env...)...)
			c := launchCLI(t, dir, env, append([]string{"--data-dir", data}, tc.args...)...)
			u := c.register("pat")
			if u.ID != "@pat:"+tc.want {
				t.Errorf("user ID %q, want @pat:%s", u.ID, tc.want)
			}
		})
	}
}

// TestCLISigtermDuringLongPoll: a parked /sync is answered and the process
// exits 0 promptly.
func TestCLISigtermDuringLongPoll(t *testing.T) {
	s := start(t)
	u := s.register("")
	since := s.must(200, "GET", cs+"/sync", u.Token, nil).str("next_batch")

	type result struct {
		r   response
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		r, err := tryDo(s, "GET", cs+"/sync?timeout=30000&since="+since, u.Token, nil)
		got <- result{r, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case res := <-got:
		t.Fatalf("long-poll returned before SIGTERM: %v %s", res.err, res.r.Raw)
	default:
	}

	exited := make(chan error, 1)
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- s.cmd.Wait() }()
	select {
	case err := <-exited:
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("exit took %v after SIGTERM, want <= 2s", d)
		}
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-exited
		t.Fatalf("lichen still running 5s after SIGTERM\n%s", s.stderr.String())
	}
	select {
	case res := <-got:
		if res.err != nil {
			t.Fatalf("long-poll got no answer (connection reset?): %v", res.err)
		}
		t.Logf("long-poll answered %d after %v: %s", res.r.Status, res.at.Sub(t0), res.r.Raw)
		if res.r.Status == 200 && res.r.str("next_batch") == "" {
			t.Errorf("long-poll answer lacks next_batch: %s", res.r.Raw)
		}
		if res.r.Status != 200 && res.r.str("errcode") == "" {
			t.Errorf("long-poll answer is neither a sync nor a Matrix error: %d %s", res.r.Status, res.r.Raw)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("long-poll unanswered 2s after the process exited")
	}
}

// TestCLIBadConfig: invalid settings stop the binary before it serves, with
// a message that names the key.
func TestCLIBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.toml", "registration = \"maybe\"\n")
	typo := write("typo.toml", "registraton = \"open\"\n")
	cases := []struct {
		name string
		env  []string
		args []string
		key  string
	}{
		{"file registration", nil, []string{"--config", bad}, "registration"},
		{"env registration", []string{"LICHEN_REGISTRATION=maybe"}, nil, "registration"},
		{"env rate limit", []string{"LICHEN_RATE_LIMIT=sometimes"}, nil, "LICHEN_RATE_LIMIT"},
		{"unknown key", nil, []string{"--config", typo}, "registraton"},
		{"missing file", nil, []string{"--config", filepath.Join(dir, "nope.toml")}, "nope.toml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"--data-dir", data, "--listen", freeAddr(t)}, tc.args...)
			out, e, code := runCLI(t, dir, cleanEnv(tc.env...), args...)
			if code == 0 {
				t.Fatalf("exit 0 for a bad configuration: %s%s", out, e)
			}
			if !strings.Contains(e, tc.key) {
				t.Errorf("error does not name %q: %q", tc.key, e)
			}
		})
	}
}
