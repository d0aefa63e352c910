package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/mxerr"
	"github.com/lichen-hs/lichen/core/rooms"
	"github.com/lichen-hs/lichen/core/secret"
)

// The account service is the room engine's source of local users.
var _ rooms.Users = (*accounts.Service)(nil)

// These tests drive the account service end to end over a real bbolt file.

const acctServer = "test.local"

type acctClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *acctClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *acctClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type acctHooks struct {
	mu       sync.Mutex
	profiles []string
	left     []string
	added    []string
	deleted  []string
}

func (h *acctHooks) UpdateProfile(u string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.profiles = append(h.profiles, u)
	return nil
}

func (h *acctHooks) LeaveAll(u string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.left = append(h.left, u)
	return nil
}

func (h *acctHooks) DeviceAdded(u, d string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.added = append(h.added, d)
}

func (h *acctHooks) DevicesDeleted(u string, ds []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted = append(h.deleted, ds...)
}

type acctEnv struct {
	t     *testing.T
	path  string
	st    *Store
	svc   *accounts.Service
	clock *acctClock
	hooks *acctHooks
	cfg   accounts.Config
}

func newAcctEnv(t *testing.T, cfg accounts.Config) *acctEnv {
	t.Helper()
	e := &acctEnv{t: t, path: filepath.Join(t.TempDir(), "lichen.db"), clock: &acctClock{t: time.UnixMilli(1_700_000_000_000)}, hooks: &acctHooks{}}
	cfg.ServerName = acctServer
	cfg.Now = e.clock.Now
	e.cfg = cfg
	e.open()
	t.Cleanup(func() { e.st.Close() })
	return e
}

// open (re)opens the store and makes a fresh service over it.
func (e *acctEnv) open() {
	st, err := Open(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.svc = accounts.New(st, e.cfg, e.hooks)
	e.svc.SetDeviceObserver(e.hooks)
}

func (e *acctEnv) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func authJSON(kv ...any) json.RawMessage {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

func passwordAuth(session, user, pw string) json.RawMessage {
	return authJSON("type", "m.login.password", "session", session, "password", pw,
		"identifier", map[string]string{"type": "m.id.user", "user": user})
}

func wantMx(t *testing.T, err error, status int, code string) *mxerr.Error {
	t.Helper()
	var e *mxerr.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
	return e
}

func wantChallenge(t *testing.T, err error, errcode string) *accounts.UIAChallenge {
	t.Helper()
	var ch *accounts.UIAChallenge
	if !errors.As(err, &ch) {
		t.Fatalf("err = %v, want a UIA challenge", err)
	}
	if ch.Session == "" || len(ch.Flows) == 0 || ch.Params == nil || ch.Completed == nil || ch.Errcode != errcode {
		t.Fatalf("challenge = %+v, want session, flows, params, completed and errcode %q", ch, errcode)
	}
	return ch
}

// register registers localpart with the dummy flow (open mode) in one call.
func (e *acctEnv) register(localpart, pw string, refresh bool) *accounts.LoginResponse {
	e.t.Helper()
	resp, err := e.svc.Register(accounts.RegisterRequest{Username: localpart, Password: pw, RefreshToken: refresh,
		Auth: authJSON("type", "m.login.dummy")}, "", "10.0.0.1")
	if err != nil {
		e.t.Fatalf("register %s: %v", localpart, err)
	}
	return resp
}

func (e *acctEnv) login(user, pw, device string, refresh bool) *accounts.LoginResponse {
	e.t.Helper()
	resp, err := e.svc.Login(accounts.LoginRequest{Type: "m.login.password", Password: pw, DeviceID: device, RefreshToken: refresh,
		Identifier: &accounts.UserIdentifier{Type: "m.id.user", User: user}}, "10.0.0.2")
	if err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return resp
}

func (e *acctEnv) authOK(token string) accounts.Session {
	e.t.Helper()
	s, err := e.svc.Authenticate(token)
	if err != nil {
		e.t.Fatalf("Authenticate: %v", err)
	}
	return s
}

func (e *acctEnv) authFails(token string, soft bool) {
	e.t.Helper()
	_, err := e.svc.Authenticate(token)
	me := wantMx(e.t, err, 401, "M_UNKNOWN_TOKEN")
	if got := me.Fields["soft_logout"] == true; got != soft {
		e.t.Fatalf("soft_logout = %v, want %v", got, soft)
	}
}

func TestAccountsRegisterModes(t *testing.T) {
	tests := []struct {
		mode      string
		flows     [][]string
		dummyWork bool
	}{
		{accounts.ModeOpen, [][]string{{"m.login.dummy"}, {"m.login.registration_token"}}, true},
		{accounts.ModeToken, [][]string{{"m.login.registration_token"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			e := newAcctEnv(t, accounts.Config{Registration: tt.mode})
			_, err := e.svc.Register(accounts.RegisterRequest{Username: "alice"}, "", "")
			ch := wantChallenge(t, err, "")
			var flows [][]string
			for _, f := range ch.Flows {
				flows = append(flows, f.Stages)
			}
			if !slices.EqualFunc(flows, tt.flows, slices.Equal) {
				t.Fatalf("flows = %v, want %v", flows, tt.flows)
			}
			_, err = e.svc.Register(accounts.RegisterRequest{Username: "alice", Password: "pw",
				Auth: authJSON("type", "m.login.dummy", "session", ch.Session)}, "", "")
			if tt.dummyWork {
				if err != nil {
					t.Fatalf("dummy registration: %v", err)
				}
			} else {
				wantChallenge(t, err, "M_UNRECOGNIZED")
			}
			// A token created by the admin registers in both modes, once.
			one := 1
			tok, err := e.svc.CreateRegistrationToken(accounts.RegistrationToken{UsesAllowed: &one})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := e.svc.RegistrationTokenValid(tok); !ok || err != nil {
				t.Fatalf("validity = %v, %v", ok, err)
			}
			resp, err := e.svc.Register(accounts.RegisterRequest{Username: "bob", Password: "pw",
				Auth: authJSON("type", "m.login.registration_token", "token", tok)}, "", "")
			if err != nil || resp.UserID != "@bob:test.local" || resp.AccessToken == "" || resp.DeviceID == "" {
				t.Fatalf("token registration = %+v, %v", resp, err)
			}
			if e.svc.IsAdmin("@bob:test.local") {
				t.Fatal("an ordinary token made an admin")
			}
			if ok, _ := e.svc.RegistrationTokenValid(tok); ok {
				t.Fatal("used-up token still valid")
			}
			_, err = e.svc.Register(accounts.RegisterRequest{Username: "carol", Password: "pw",
				Auth: authJSON("type", "m.login.registration_token", "token", tok)}, "", "")
			wantChallenge(t, err, "M_UNAUTHORIZED")
		})
	}
}

func TestAccountsClosedAndBootstrap(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeClosed})
	_, err := e.svc.RegistrationTokenValid("x")
	wantMx(t, err, 403, "M_FORBIDDEN") // no bootstrap token yet: nothing can register
	_, err = e.svc.Register(accounts.RegisterRequest{Username: "early"}, "", "")
	wantMx(t, err, 403, "M_FORBIDDEN")
	tok, created, err := e.svc.EnsureBootstrap()
	if err != nil || !created || tok == "" {
		t.Fatalf("EnsureBootstrap = %q, %v, %v", tok, created, err)
	}
	e.reopen() // printed at every start until used
	again, created, err := e.svc.EnsureBootstrap()
	if err != nil || created || again != tok {
		t.Fatalf("EnsureBootstrap after restart = %q, %v, %v; want %q, false", again, created, err, tok)
	}
	// Ordinary tokens do not work in closed mode.
	other, _ := e.svc.CreateRegistrationToken(accounts.RegistrationToken{})
	_, err = e.svc.Register(accounts.RegisterRequest{Username: "mallory", Password: "pw",
		Auth: authJSON("type", "m.login.registration_token", "token", other)}, "", "")
	wantChallenge(t, err, "M_UNAUTHORIZED")

	if ok, err := e.svc.RegistrationTokenValid(tok); !ok || err != nil {
		t.Fatalf("bootstrap validity = %v, %v", ok, err)
	}
	resp, err := e.svc.Register(accounts.RegisterRequest{Username: "admin", Password: "pw",
		Auth: authJSON("type", "m.login.registration_token", "token", tok)}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !e.svc.IsAdmin(resp.UserID) || !e.authOK(resp.AccessToken).Admin {
		t.Fatal("the bootstrap token did not make an admin")
	}
	if tok, _, _ := e.svc.EnsureBootstrap(); tok != "" {
		t.Fatalf("EnsureBootstrap after the first account = %q", tok)
	}
	_, err = e.svc.Register(accounts.RegisterRequest{Username: "late"}, "", "")
	me := wantMx(t, err, 403, "M_FORBIDDEN")
	if me.Message != "registration is closed" {
		t.Fatalf("message = %q", me.Message)
	}
	_, err = e.svc.RegistrationTokenValid(tok)
	wantMx(t, err, 403, "M_FORBIDDEN")
}

func TestAccountsBootstrapVoidedByCLIUser(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeToken})
	tok, _, _ := e.svc.EnsureBootstrap()
	if err := e.svc.CreateUser("Root", "pw", true); err != nil {
		t.Fatal(err)
	}
	if !e.svc.IsAdmin("@root:test.local") {
		t.Fatal("CreateUser admin flag lost")
	}
	if ok, _ := e.svc.RegistrationTokenValid(tok); ok {
		t.Fatal("the bootstrap token outlived the first account")
	}
	wantMx(t, e.svc.CreateUser("root", "pw", false), 400, "M_USER_IN_USE")
}

func TestAccountsRegisterChecks(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	e.register("taken", "pw", false)
	tests := []struct {
		name   string
		req    accounts.RegisterRequest
		kind   string
		status int
		code   string
	}{
		{"guest", accounts.RegisterRequest{}, "guest", 403, "M_GUEST_ACCESS_FORBIDDEN"},
		{"bad kind", accounts.RegisterRequest{}, "robot", 400, "M_INVALID_PARAM"},
		{"invalid username", accounts.RegisterRequest{Username: "a!b"}, "", 400, "M_INVALID_USERNAME"},
		{"reserved", accounts.RegisterRequest{Username: "_bridge"}, "", 400, "M_INVALID_USERNAME"},
		{"taken", accounts.RegisterRequest{Username: "TAKEN"}, "", 400, "M_USER_IN_USE"},
		{"bad device", accounts.RegisterRequest{DeviceID: "a\x00b"}, "", 400, "M_INVALID_PARAM"},
		{"no password", accounts.RegisterRequest{Username: "nopw", Auth: authJSON("type", "m.login.dummy")}, "", 400, "M_MISSING_PARAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Register(tt.req, tt.kind, "")
			wantMx(t, err, tt.status, tt.code)
		})
	}
	wantMx(t, e.svc.Available("taken"), 400, "M_USER_IN_USE")
	wantMx(t, e.svc.Available("no way"), 400, "M_INVALID_USERNAME")
	if err := e.svc.Available("free"); err != nil {
		t.Fatal(err)
	}

	// Upper case is mapped to lower case; device and display name are kept.
	resp, err := e.svc.Register(accounts.RegisterRequest{Username: "Dora", Password: "pw", DeviceID: "PHONE",
		InitialDeviceDisplayName: "Dora's phone", Auth: authJSON("type", "m.login.dummy")}, "", "")
	if err != nil || resp.UserID != "@dora:test.local" || resp.DeviceID != "PHONE" || resp.HomeServer != acctServer || resp.ExpiresInMS != 0 {
		t.Fatalf("register Dora = %+v, %v", resp, err)
	}
	if d, _ := e.svc.Device("@dora:test.local", "PHONE"); d.DisplayName != "Dora's phone" {
		t.Fatalf("device = %+v", d)
	}
	if dn, _, ok := e.svc.Profile("@dora:test.local"); !ok || dn != "dora" {
		t.Fatalf("default display name = %q, %v", dn, ok)
	}
	// No username: one is generated. inhibit_login: no token, no device.
	resp, err = e.svc.Register(accounts.RegisterRequest{Password: "pw", InhibitLogin: true, Auth: authJSON("type", "m.login.dummy")}, "user", "")
	if err != nil || resp.AccessToken != "" || resp.DeviceID != "" || len(resp.UserID) < len("@x:test.local") {
		t.Fatalf("generated, inhibited = %+v, %v", resp, err)
	}
	if ds, _ := e.svc.Devices(resp.UserID); len(ds) != 0 {
		t.Fatalf("inhibit_login created devices %v", ds)
	}
	// refresh_token: true gets a refresh token and the default lifetime.
	r := e.register("fresh", "pw", true)
	if r.RefreshToken == "" || r.ExpiresInMS != accounts.DefaultRefreshLifetime.Milliseconds() {
		t.Fatalf("refresh registration = %+v", r)
	}
}

func TestAccountsUIASessionSurvivesRestart(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeToken})
	tok, _ := e.svc.CreateRegistrationToken(accounts.RegistrationToken{})
	_, err := e.svc.Register(accounts.RegisterRequest{Username: "alice", Password: "pw"}, "", "")
	ch := wantChallenge(t, err, "")
	if len(ch.Completed) != 0 {
		t.Fatalf("completed = %v", ch.Completed)
	}
	e.reopen()
	// A wrong token: 401 with the error, same session, nothing completed.
	_, err = e.svc.Register(accounts.RegisterRequest{Username: "alice", Password: "pw",
		Auth: authJSON("type", "m.login.registration_token", "token", "nope", "session", ch.Session)}, "", "")
	ch2 := wantChallenge(t, err, "M_UNAUTHORIZED")
	if ch2.Session != ch.Session {
		t.Fatalf("session changed: %s -> %s", ch.Session, ch2.Session)
	}
	e.reopen()
	// The right token, but the password is missing: the stage completes and
	// the session stays for the retry.
	_, err = e.svc.Register(accounts.RegisterRequest{Username: "alice",
		Auth: authJSON("type", "m.login.registration_token", "token", tok, "session", ch.Session)}, "", "")
	wantMx(t, err, 400, "M_MISSING_PARAM")
	resp, err := e.svc.Register(accounts.RegisterRequest{Username: "alice", Password: "pw",
		Auth: authJSON("session", ch.Session)}, "", "")
	if err != nil || resp.UserID != "@alice:test.local" {
		t.Fatalf("register after restart = %+v, %v", resp, err)
	}
	// The session is gone once used.
	_, err = e.svc.Register(accounts.RegisterRequest{Username: "alice2", Password: "pw", Auth: authJSON("session", ch.Session)}, "", "")
	wantMx(t, err, 400, "M_UNKNOWN")
}

func TestAccountsUIAExpiryAndBinding(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	alice := e.register("alice", "apw", false)
	bob := e.register("bob", "bpw", false)
	aSess, bSess := e.authOK(alice.AccessToken), e.authOK(bob.AccessToken)

	err := e.svc.ChangePassword(aSess, accounts.PasswordRequest{NewPassword: "x"})
	ch := wantChallenge(t, err, "")
	if len(ch.Flows) != 1 || !slices.Equal(ch.Flows[0].Stages, []string{"m.login.password"}) {
		t.Fatalf("password flows = %+v", ch.Flows)
	}
	// Bob cannot ride Alice's session, even with his own password...
	err = e.svc.ChangePassword(bSess, accounts.PasswordRequest{NewPassword: "x", Auth: passwordAuth(ch.Session, "bob", "bpw")})
	wantMx(t, err, 403, "M_FORBIDDEN")
	// ...and Alice's session cannot authenticate as Bob, even with his
	// password: a hard 403, not a retryable stage failure.
	err = e.svc.ChangePassword(aSess, accounts.PasswordRequest{NewPassword: "x", Auth: passwordAuth(ch.Session, "bob", "bpw")})
	wantMx(t, err, 403, "M_FORBIDDEN")
	err = e.svc.ChangePassword(aSess, accounts.PasswordRequest{NewPassword: "x", Auth: passwordAuth(ch.Session, "alice", "bpw")})
	wantChallenge(t, err, "M_FORBIDDEN")
	// A session for one operation is refused for another.
	_, err = e.svc.Deactivate(aSess, accounts.DeactivateRequest{Auth: passwordAuth(ch.Session, "alice", "apw")})
	wantMx(t, err, 403, "M_FORBIDDEN")
	// Sessions expire after 30 minutes.
	e.clock.Advance(31 * time.Minute)
	err = e.svc.ChangePassword(aSess, accounts.PasswordRequest{NewPassword: "x", Auth: passwordAuth(ch.Session, "alice", "apw")})
	wantMx(t, err, 400, "M_UNKNOWN")
}

func TestAccountsLogin(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	e.register("alice", "secret", false)
	id := func(user string) *accounts.UserIdentifier {
		return &accounts.UserIdentifier{Type: "m.id.user", User: user}
	}
	tests := []struct {
		name   string
		req    accounts.LoginRequest
		status int
		code   string
	}{
		{"identifier localpart", accounts.LoginRequest{Identifier: id("alice"), Password: "secret"}, 200, ""},
		{"identifier full ID", accounts.LoginRequest{Identifier: id("@alice:test.local"), Password: "secret"}, 200, ""},
		{"legacy user", accounts.LoginRequest{User: "alice", Password: "secret"}, 200, ""},
		{"upper case", accounts.LoginRequest{User: "Alice", Password: "secret"}, 200, ""},
		{"wrong password", accounts.LoginRequest{User: "alice", Password: "Secret"}, 403, "M_FORBIDDEN"},
		{"unknown user", accounts.LoginRequest{User: "nobody", Password: "secret"}, 403, "M_FORBIDDEN"},
		{"other server", accounts.LoginRequest{User: "@alice:elsewhere.org", Password: "secret"}, 403, "M_FORBIDDEN"},
		{"3pid", accounts.LoginRequest{Identifier: &accounts.UserIdentifier{Type: "m.id.thirdparty", Medium: "email", Address: "a@b"}, Password: "secret"}, 403, "M_FORBIDDEN"},
		{"no user", accounts.LoginRequest{Password: "secret"}, 400, "M_MISSING_PARAM"},
		{"bad type", accounts.LoginRequest{Type: "m.login.token", Token: "x"}, 400, "M_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Type == "" {
				tt.req.Type = "m.login.password"
			}
			resp, err := e.svc.Login(tt.req, "")
			if tt.status != 200 {
				wantMx(t, err, tt.status, tt.code)
				return
			}
			if err != nil || resp.UserID != "@alice:test.local" || resp.HomeServer != acctServer {
				t.Fatalf("login = %+v, %v", resp, err)
			}
			if s := e.authOK(resp.AccessToken); s.DeviceID != resp.DeviceID || s.UserID != resp.UserID || s.Admin {
				t.Fatalf("session = %+v", s)
			}
		})
	}

	// Reusing a device ID replaces that device's tokens and keeps its name.
	first, err := e.svc.Login(accounts.LoginRequest{Type: "m.login.password", User: "alice", Password: "secret",
		DeviceID: "LAPTOP", InitialDeviceDisplayName: "Laptop"}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.authOK(first.AccessToken) // cached now
	second := e.login("alice", "secret", "LAPTOP", false)
	if second.DeviceID != "LAPTOP" {
		t.Fatalf("device = %s", second.DeviceID)
	}
	e.authFails(first.AccessToken, false)
	e.authOK(second.AccessToken)
	d, err := e.svc.Device("@alice:test.local", "LAPTOP")
	if err != nil || d.DisplayName != "Laptop" || d.LastSeenIP != "10.0.0.2" || d.LastSeenTS == 0 {
		t.Fatalf("device = %+v, %v", d, err)
	}
}

func TestAccountsTokensHashedOnDisk(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	r := e.register("alice", "pw", true)
	l := e.login("alice", "pw", "", true)
	ref, err := e.svc.Refresh(l.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{r.AccessToken, r.RefreshToken, l.AccessToken, l.RefreshToken, ref.AccessToken, ref.RefreshToken} {
		if bytes.Contains(raw, []byte(tok)) {
			t.Fatalf("token %s is stored in plain text", tok)
		}
	}
	h := secret.HashToken(ref.AccessToken)
	if !bytes.Contains(raw, h[:]) {
		t.Fatal("the access token's hash is not in the file")
	}
	if bytes.Contains(raw, []byte("pw\x00")) || !bytes.Contains(raw, []byte("$argon2id$")) {
		t.Fatal("password not stored as an argon2id hash")
	}
	e.open()
	e.authOK(ref.AccessToken) // still valid after restart
}

func TestAccountsRefreshRotation(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	e.register("alice", "pw", false)
	l := e.login("alice", "pw", "PHONE", true)
	e.authOK(l.AccessToken)

	r1, err := e.svc.Refresh(l.RefreshToken)
	if err != nil || r1.RefreshToken == "" || r1.ExpiresInMS != accounts.DefaultRefreshLifetime.Milliseconds() {
		t.Fatalf("refresh = %+v, %v", r1, err)
	}
	e.authFails(l.AccessToken, false) // the old access token is revoked at once

	// The answer was "lost": the old refresh token still works, and the pair
	// issued by the first try is revoked.
	r2, err := e.svc.Refresh(l.RefreshToken)
	if err != nil {
		t.Fatalf("repeat refresh: %v", err)
	}
	e.authFails(r1.AccessToken, false)
	if _, err := e.svc.Refresh(r1.RefreshToken); err == nil {
		t.Fatal("the superseded refresh token still works")
	}
	// Using the new access token revokes the old refresh token for good.
	if s := e.authOK(r2.AccessToken); s.DeviceID != "PHONE" {
		t.Fatalf("refreshed session = %+v", s)
	}
	_, err = e.svc.Refresh(l.RefreshToken)
	me := wantMx(t, err, 401, "M_UNKNOWN_TOKEN")
	if me.Fields["soft_logout"] != nil {
		t.Fatal("reused refresh token answered with soft_logout")
	}
	// A chain of refreshes keeps working; using a refresh token also
	// revokes its predecessor.
	r3, err := e.svc.Refresh(r2.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	r4, err := e.svc.Refresh(r3.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refresh(r2.RefreshToken); err == nil {
		t.Fatal("refresh token two generations old still works")
	}
	e.authOK(r4.AccessToken)
	_, err = e.svc.Refresh("lcr_unknown")
	wantMx(t, err, 401, "M_UNKNOWN_TOKEN")
	_, err = e.svc.Refresh("")
	wantMx(t, err, 400, "M_MISSING_PARAM")
	// Logging the device out revokes its refresh token too.
	if err := e.svc.Logout(e.authOK(r4.AccessToken)); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Refresh(r4.RefreshToken)
	wantMx(t, err, 401, "M_UNKNOWN_TOKEN")
}

func TestAccountsSoftLogout(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	e.register("alice", "pw", false)
	plain := e.login("alice", "pw", "", false)
	l := e.login("alice", "pw", "", true)
	e.authOK(l.AccessToken) // cached: expiry must hold on the cached path too
	e.clock.Advance(accounts.DefaultRefreshLifetime + time.Second)
	e.authFails(l.AccessToken, true)
	e.reopen()
	e.authFails(l.AccessToken, true) // and on the database path
	e.authOK(plain.AccessToken)      // tokens without refresh do not expire by default
	r, err := e.svc.Refresh(l.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	e.authOK(r.AccessToken)

	// A configured lifetime applies to every token.
	e.cfg.AccessTokenLifetime = time.Hour
	e.reopen()
	short := e.login("alice", "pw", "", false)
	if short.ExpiresInMS != time.Hour.Milliseconds() || short.RefreshToken != "" {
		t.Fatalf("login = %+v", short)
	}
	e.clock.Advance(time.Hour)
	e.authFails(short.AccessToken, true)
}

func TestAccountsLogoutAndDevices(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	reg := e.register("alice", "pw", false)
	a := e.login("alice", "pw", "A", false)
	b := e.login("alice", "pw", "B", false)
	if ds, _ := e.svc.Devices("@alice:test.local"); len(ds) != 3 {
		t.Fatalf("devices = %+v", ds)
	}
	if err := e.svc.Logout(e.authOK(a.AccessToken)); err != nil {
		t.Fatal(err)
	}
	e.authFails(a.AccessToken, false)
	e.authOK(b.AccessToken)
	_, err := e.svc.Device("@alice:test.local", "A")
	wantMx(t, err, 404, "M_NOT_FOUND")

	name := "Work phone"
	wantMx(t, e.svc.SetDeviceDisplayName("@alice:test.local", "A", &name), 404, "M_NOT_FOUND")
	if err := e.svc.SetDeviceDisplayName("@alice:test.local", "B", &name); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.svc.Device("@alice:test.local", "B"); d.DisplayName != name {
		t.Fatalf("device B = %+v", d)
	}

	if err := e.svc.LogoutAll(e.authOK(b.AccessToken)); err != nil {
		t.Fatal(err)
	}
	e.authFails(b.AccessToken, false)
	e.authFails(reg.AccessToken, false)
	if ds, _ := e.svc.Devices("@alice:test.local"); len(ds) != 0 {
		t.Fatalf("devices after logout/all = %+v", ds)
	}
	e.hooks.mu.Lock()
	defer e.hooks.mu.Unlock()
	if len(e.hooks.added) != 3 || len(e.hooks.deleted) != 3 {
		t.Fatalf("observer saw added %v, deleted %v", e.hooks.added, e.hooks.deleted)
	}
}

func TestAccountsDeleteDevicesUIA(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	main := e.register("alice", "pw", false)
	old := e.login("alice", "pw", "OLD", false)
	other := e.login("alice", "pw", "OTHER", false)
	sess := e.authOK(main.AccessToken)

	err := e.svc.DeleteDevices(sess, []string{"OLD"}, nil)
	ch := wantChallenge(t, err, "")
	err = e.svc.DeleteDevices(sess, []string{"OLD"}, passwordAuth(ch.Session, "alice", "wrong"))
	ch2 := wantChallenge(t, err, "M_FORBIDDEN")
	if ch2.Session != ch.Session || len(ch2.Completed) != 0 {
		t.Fatalf("after a wrong password: %+v", ch2)
	}
	e.authOK(old.AccessToken)
	// Another device list is another operation.
	err = e.svc.DeleteDevices(sess, []string{"OTHER"}, passwordAuth(ch.Session, "alice", "pw"))
	wantMx(t, err, 403, "M_FORBIDDEN")
	if err := e.svc.DeleteDevices(sess, []string{"OLD"}, passwordAuth(ch.Session, "alice", "pw")); err != nil {
		t.Fatal(err)
	}
	e.authFails(old.AccessToken, false)
	e.authOK(other.AccessToken)
	// The legacy top-level user and no session at all work too; unknown
	// device IDs are not an error.
	if err := e.svc.DeleteDevices(sess, []string{"OTHER", "GONE"}, authJSON("type", "m.login.password", "user", "@alice:test.local", "password", "pw")); err != nil {
		t.Fatal(err)
	}
	e.authFails(other.AccessToken, false)
	if ds, _ := e.svc.Devices("@alice:test.local"); len(ds) != 1 || ds[0].DeviceID != sess.DeviceID {
		t.Fatalf("devices = %+v", ds)
	}
}

func TestAccountsChangePassword(t *testing.T) {
	for _, logout := range []bool{true, false} {
		e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
		me := e.register("alice", "old", false)
		other := e.login("alice", "old", "OTHER", true)
		sess := e.authOK(me.AccessToken)
		req := accounts.PasswordRequest{NewPassword: "new", LogoutDevices: &logout, Auth: passwordAuth("", "alice", "old")}
		if err := e.svc.ChangePassword(sess, req); err != nil {
			t.Fatal(err)
		}
		e.authOK(me.AccessToken) // the caller keeps its token
		if logout {
			e.authFails(other.AccessToken, false)
			_, err := e.svc.Refresh(other.RefreshToken)
			wantMx(t, err, 401, "M_UNKNOWN_TOKEN")
		} else {
			e.authOK(other.AccessToken)
		}
		_, err := e.svc.Login(accounts.LoginRequest{Type: "m.login.password", User: "alice", Password: "old"}, "")
		wantMx(t, err, 403, "M_FORBIDDEN")
		e.login("alice", "new", "", false)
	}
}

func TestAccountsDeactivate(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	me := e.register("alice", "pw", false)
	other := e.login("alice", "pw", "", true)
	sess := e.authOK(me.AccessToken)
	if err := e.svc.SetProfileField(sess, sess.UserID, "displayname", json.RawMessage(`{"displayname":"Alice"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Deactivate(sess, accounts.DeactivateRequest{})
	ch := wantChallenge(t, err, "")
	resp, err := e.svc.Deactivate(sess, accounts.DeactivateRequest{Auth: passwordAuth(ch.Session, "alice", "pw")})
	if err != nil || resp.IDServerUnbindResult != "success" {
		t.Fatalf("deactivate = %+v, %v", resp, err)
	}
	e.authFails(me.AccessToken, false)
	e.authFails(other.AccessToken, false)
	_, err = e.svc.Refresh(other.RefreshToken)
	wantMx(t, err, 401, "M_UNKNOWN_TOKEN")
	if _, _, ok := e.svc.Profile("@alice:test.local"); ok {
		t.Fatal("a deactivated user still exists for the room engine")
	}
	_, err = e.svc.GetProfile("@alice:test.local")
	wantMx(t, err, 404, "M_NOT_FOUND")
	_, err = e.svc.Login(accounts.LoginRequest{Type: "m.login.password", User: "alice", Password: "pw"}, "")
	wantMx(t, err, 403, "M_USER_DEACTIVATED")
	_, err = e.svc.Login(accounts.LoginRequest{Type: "m.login.password", User: "alice", Password: "bad"}, "")
	wantMx(t, err, 403, "M_FORBIDDEN")
	wantMx(t, e.svc.Available("alice"), 400, "M_USER_IN_USE")
	e.register("bob", "pw", false)
	if us, err := e.svc.LocalUsers(); err != nil || len(us) != 1 || us[0].UserID != "@bob:test.local" || us[0].DisplayName != "bob" {
		t.Fatalf("LocalUsers = %+v, %v", us, err)
	}
	e.hooks.mu.Lock()
	defer e.hooks.mu.Unlock()
	if !slices.Equal(e.hooks.left, []string{"@alice:test.local"}) {
		t.Fatalf("LeaveAll calls = %v", e.hooks.left)
	}
}

func TestAccountsProfile(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	alice := e.authOK(e.register("alice", "pw", false).AccessToken)
	bob := e.authOK(e.register("bob", "pw", false).AccessToken)
	const a = "@alice:test.local"
	set := func(s accounts.Session, user, key, body string) error {
		return e.svc.SetProfileField(s, user, key, json.RawMessage(body))
	}
	tests := []struct {
		name        string
		sess        accounts.Session
		user, key   string
		body        string
		status      int
		code        string
		wantProfile bool
	}{
		{"own displayname", alice, a, "displayname", `{"displayname":"Alice A."}`, 200, "", true},
		{"own avatar", alice, a, "avatar_url", `{"avatar_url":"mxc://test.local/abc_123"}`, 200, "", true},
		// Any string is stored (accounts.setClassic says why), up to 1000 bytes.
		{"avatar too long", alice, a, "avatar_url", `{"avatar_url":"mxc://test.local/` + string(bytes.Repeat([]byte("a"), 1000)) + `"}`, 400, "M_INVALID_PARAM", false},
		{"avatar not string", alice, a, "avatar_url", `{"avatar_url":5}`, 400, "M_BAD_JSON", false},
		{"displayname not string", alice, a, "displayname", `{"displayname":5}`, 400, "M_BAD_JSON", false},
		{"missing key", alice, a, "displayname", `{"avatar_url":""}`, 400, "M_MISSING_PARAM", false},
		{"someone else's", bob, a, "displayname", `{"displayname":"pwned"}`, 403, "M_FORBIDDEN", false},
		{"time zone", alice, a, "m.tz", `{"m.tz":"Europe/Berlin"}`, 200, "", false},
		{"custom", alice, a, "org.example.pets", `{"org.example.pets":["cat", 2]}`, 200, "", false},
		{"bad key", alice, a, "Pets", `{"Pets":1}`, 400, "M_INVALID_PARAM", false},
		{"too large", alice, a, "org.example.big", `{"org.example.big":"` + string(bytes.Repeat([]byte("x"), 70000)) + `"}`, 400, "M_PROFILE_TOO_LARGE", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.hooks.mu.Lock()
			before := len(e.hooks.profiles)
			e.hooks.mu.Unlock()
			err := set(tt.sess, tt.user, tt.key, tt.body)
			if tt.status != 200 {
				wantMx(t, err, tt.status, tt.code)
			} else if err != nil {
				t.Fatal(err)
			}
			e.hooks.mu.Lock()
			propagated := len(e.hooks.profiles) > before
			e.hooks.mu.Unlock()
			if propagated != tt.wantProfile {
				t.Fatalf("UpdateProfile called = %v, want %v", propagated, tt.wantProfile)
			}
		})
	}
	p, err := e.svc.GetProfile(a)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(p)
	want := `{"avatar_url":"mxc://test.local/abc_123","displayname":"Alice A.","m.tz":"Europe/Berlin","org.example.pets":["cat",2]}`
	if string(got) != want {
		t.Fatalf("profile = %s, want %s", got, want)
	}
	if dn, av, ok := e.svc.Profile(a); !ok || dn != "Alice A." || av != "mxc://test.local/abc_123" {
		t.Fatalf("Profile = %q, %q, %v", dn, av, ok)
	}
	f, err := e.svc.GetProfileField(a, "displayname")
	if err != nil || string(f["displayname"]) != `"Alice A."` {
		t.Fatalf("field = %s, %v", f["displayname"], err)
	}
	// null clears a classic field; DELETE removes any field.
	if err := set(alice, a, "displayname", `{"displayname":null}`); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.GetProfileField(a, "displayname")
	wantMx(t, err, 404, "M_NOT_FOUND")
	if err := e.svc.DeleteProfileField(alice, a, "m.tz"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.GetProfileField(a, "m.tz")
	wantMx(t, err, 404, "M_NOT_FOUND")
	wantMx(t, e.svc.DeleteProfileField(bob, a, "org.example.pets"), 403, "M_FORBIDDEN")

	for _, user := range []string{"@nobody:test.local", "@alice:elsewhere.org"} {
		_, err = e.svc.GetProfile(user)
		wantMx(t, err, 404, "M_NOT_FOUND")
	}
	_, err = e.svc.GetProfile("alice")
	wantMx(t, err, 400, "M_INVALID_PARAM")
}

func TestAccountsSharedSecret(t *testing.T) {
	off := newAcctEnv(t, accounts.Config{})
	_, err := off.svc.SharedSecretNonce()
	me := wantMx(t, err, 400, "M_UNKNOWN")
	if me.Message != "Shared secret registration is not enabled" {
		t.Fatalf("message = %q", me.Message)
	}

	e := newAcctEnv(t, accounts.Config{SharedSecret: "s3cret"}) // registration closed
	nonce, err := e.svc.SharedSecretNonce()
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := secret.SharedSecretRegistrationMAC([]byte("s3cret"), nonce, "Boss", "pw", true, "")
	req := accounts.SharedSecretRequest{Nonce: nonce, Username: "Boss", Password: "pw", Admin: true, MAC: mac, DisplayName: "The Boss"}
	resp, err := e.svc.SharedSecretRegister(req, "")
	if err != nil || resp.UserID != "@boss:test.local" || resp.AccessToken == "" || resp.DeviceID == "" || resp.HomeServer != acctServer {
		t.Fatalf("shared-secret registration = %+v, %v", resp, err)
	}
	if s := e.authOK(resp.AccessToken); !s.Admin {
		t.Fatal("admin flag lost")
	}
	if dn, _, _ := e.svc.Profile(resp.UserID); dn != "The Boss" {
		t.Fatalf("display name = %q", dn)
	}
	// Nonces are single use.
	_, err = e.svc.SharedSecretRegister(req, "")
	wantMx(t, err, 400, "M_UNKNOWN")
	// A wrong MAC, or an expired nonce, is refused.
	nonce, _ = e.svc.SharedSecretNonce()
	_, err = e.svc.SharedSecretRegister(accounts.SharedSecretRequest{Nonce: nonce, Username: "eve", Password: "pw", MAC: mac}, "")
	wantMx(t, err, 403, "M_FORBIDDEN")
	nonce, _ = e.svc.SharedSecretNonce()
	mac, _ = secret.SharedSecretRegistrationMAC([]byte("s3cret"), nonce, "eve", "pw", false, "")
	e.clock.Advance(accounts.NonceLifetime + time.Second)
	_, err = e.svc.SharedSecretRegister(accounts.SharedSecretRequest{Nonce: nonce, Username: "eve", Password: "pw", MAC: mac}, "")
	wantMx(t, err, 400, "M_UNKNOWN")
}

func TestAccountsSeenThrottled(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	r := e.register("alice", "pw", false)
	const user = "@alice:test.local"
	waitIP := func(want string) accounts.DeviceInfo {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			d, err := e.svc.Device(user, r.DeviceID)
			if err == nil && d.LastSeenIP == want {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("device = %+v, %v; want last_seen_ip %s", d, err, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitIP("10.0.0.1") // from registration
	e.svc.Seen(user, r.DeviceID, "192.0.2.1")
	time.Sleep(50 * time.Millisecond)
	waitIP("10.0.0.1") // within a minute of the last write: nothing written
	e.clock.Advance(accounts.SeenInterval)
	e.svc.Seen(user, r.DeviceID, "192.0.2.2")
	d := waitIP("192.0.2.2")
	if d.LastSeenTS != e.clock.Now().UnixMilli() {
		t.Fatalf("last_seen_ts = %d, want %d", d.LastSeenTS, e.clock.Now().UnixMilli())
	}
	// Seen of a deleted device must not bring it back.
	if err := e.svc.Logout(e.authOK(r.AccessToken)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(accounts.SeenInterval)
	e.svc.Seen(user, r.DeviceID, "192.0.2.3")
	time.Sleep(50 * time.Millisecond)
	if _, err := e.svc.Device(user, r.DeviceID); err == nil {
		t.Fatal("Seen recreated a deleted device")
	}
}

// TestAccountsAuthenticateRacesLogout checks that a token revoked by a
// logout never authenticates afterwards, however the cache was raced.
func TestAccountsAuthenticateRacesLogout(t *testing.T) {
	e := newAcctEnv(t, accounts.Config{Registration: accounts.ModeOpen})
	e.register("alice", "pw", false)
	for i := 0; i < 5; i++ {
		l := e.login("alice", "pw", "", false)
		sess := e.authOK(l.AccessToken)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						_, _ = e.svc.Authenticate(l.AccessToken)
					}
				}
			}()
		}
		if err := e.svc.Logout(sess); err != nil {
			t.Fatal(err)
		}
		e.authFails(l.AccessToken, false)
		close(stop)
		wg.Wait()
		e.authFails(l.AccessToken, false)
	}
}
