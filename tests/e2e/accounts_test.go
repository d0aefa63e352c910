package e2e

// Accounts over HTTP: Synapse's shared-secret registration, rate limits,
// login/logout, devices and their UIA, password change, deactivation,
// username availability, refresh tokens and profile propagation.

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const accountPassword = "correct horse battery" // the harness's register password

// sharedSecretMAC is Synapse's registration MAC:
// hex(HMAC-SHA1(secret, nonce\0user\0password\0admin|notadmin)).
func sharedSecretMAC(secret, nonce, user, password string, admin bool) string {
	role := "notadmin"
	if admin {
		role = "admin"
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(nonce + "\x00" + user + "\x00" + password + "\x00" + role))
	return hex.EncodeToString(m.Sum(nil))
}

func TestAccountsSharedSecret(t *testing.T) {
	const secret = "complement"
	const path = "/_synapse/admin/v1/register"
	s := start(t, "LICHEN_REGISTRATION_SHARED_SECRET="+secret)

	nonce := s.must(200, "GET", path, "", nil).str("nonce")
	if nonce == "" {
		t.Fatal("no nonce")
	}
	r := s.must(200, "POST", path, "", map[string]any{
		"nonce": nonce, "username": "ssuser", "password": "ss password", "admin": false,
		"mac": sharedSecretMAC(secret, nonce, "ssuser", "ss password", false),
	})
	ss := user{ID: r.str("user_id"), Token: r.str("access_token"), Device: r.str("device_id")}
	if ss.ID != "@ssuser:localhost" || ss.Token == "" {
		t.Fatalf("shared-secret registration: %s", r.Raw)
	}
	if w := s.must(200, "GET", cs+"/account/whoami", ss.Token, nil); w.str("user_id") != ss.ID {
		t.Errorf("whoami: %s", w.Raw)
	}
	if r := loginPassword(s, "ssuser", "ss password"); r.Status != 200 {
		t.Errorf("login with the shared-secret password: %d %s", r.Status, r.Raw)
	}

	// The nonce was used: a second registration with it is 400.
	r = s.do("POST", path, "", map[string]any{
		"nonce": nonce, "username": "ssuser2", "password": "pw", "admin": false,
		"mac": sharedSecretMAC(secret, nonce, "ssuser2", "pw", false),
	})
	wantErr(t, r, 400)

	// A wrong MAC (other secret, or other fields) is 403.
	wrongMACs := []func(n string) string{
		func(n string) string { return sharedSecretMAC("not the secret", n, "ssuser3", "pw", false) },
		func(n string) string { return sharedSecretMAC(secret, n, "ssuser3", "pw", true) },      // claims admin
		func(n string) string { return sharedSecretMAC(secret, n, "someoneelse", "pw", false) }, // other user
	}
	for _, mac := range wrongMACs {
		n := s.must(200, "GET", path, "", nil).str("nonce")
		r := s.do("POST", path, "", map[string]any{"nonce": n, "username": "ssuser3", "password": "pw", "admin": false, "mac": mac(n)})
		wantErr(t, r, 403, "M_FORBIDDEN")
	}
	if r := loginPassword(s, "ssuser3", "pw"); r.Status == 200 {
		t.Errorf("a wrong MAC created ssuser3")
	}

	// admin: true (with the matching MAC) makes a server admin.
	n := s.must(200, "GET", path, "", nil).str("nonce")
	r = s.must(200, "POST", path, "", map[string]any{
		"nonce": n, "username": "ssadmin", "password": "pw", "admin": true,
		"mac": sharedSecretMAC(secret, n, "ssadmin", "pw", true),
	})
	admin := user{ID: r.str("user_id"), Token: r.str("access_token")}
	plainRoom := s.createRoom(ss, nil)
	adminRoom := s.createRoom(admin, nil)
	if !canAdminister(s, admin, plainRoom) {
		t.Errorf("shared-secret admin: true did not make a server admin")
	}
	if canAdminister(s, ss, adminRoom) {
		t.Errorf("shared-secret admin: false made a server admin")
	}

	// Without the secret the endpoint refuses both calls.
	off := start(t)
	r = off.do("GET", path, "", nil)
	if r.Status == 200 || r.str("nonce") != "" {
		t.Errorf("GET %s without a shared secret: %d %s", path, r.Status, r.Raw)
	} else {
		wantErr(t, r, r.Status)
	}
	r = off.do("POST", path, "", map[string]any{
		"nonce": "abc", "username": "x", "password": "pw", "admin": false,
		"mac": sharedSecretMAC("", "abc", "x", "pw", false),
	})
	if r.Status == 200 || r.str("access_token") != "" {
		t.Errorf("POST %s without a shared secret: %d %s", path, r.Status, r.Raw)
	}
	t.Logf("shared secret unset: GET/POST answer %d %s", r.Status, r.Raw)
}

// wantRateLimited checks a 429 M_LIMIT_EXCEEDED with an integer
// retry_after_ms > 0.
func wantRateLimited(t *testing.T, r response) {
	t.Helper()
	wantErr(t, r, 429, "M_LIMIT_EXCEEDED")
	ms, ok := r.Body["retry_after_ms"].(float64)
	if !ok || ms <= 0 || ms != math.Trunc(ms) {
		t.Errorf("retry_after_ms is not a positive integer: %s", r.Raw)
	}
}

func TestAccountsRateLimits(t *testing.T) {
	s := start(t, "LICHEN_RATE_LIMIT=on")
	u := s.register("victim")

	// Wrong passwords: 403 until the bucket is empty, then 429.
	var limited *response
	n := 0
	for n < 50 && limited == nil {
		n++
		body, _ := json.Marshal(map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "victim"},
			"password": fmt.Sprint("guess", n),
		})
		resp, raw, err := rawDo(s, nil, "POST", cs+"/login", map[string]string{"Content-Type": "application/json"}, body)
		if err != nil {
			t.Fatal(err)
		}
		r := toResponse(resp, raw)
		switch r.Status {
		case 429:
			limited = &r
			if ra := resp.Header.Get("Retry-After"); ra == "" {
				t.Errorf("429 without a Retry-After header (spec: SHOULD)")
			} else if v, err := strconv.Atoi(ra); err != nil || v <= 0 {
				t.Errorf("Retry-After %q is not a positive number of seconds", ra)
			}
		case 403:
			wantErr(t, r, 403, "M_FORBIDDEN")
		default:
			t.Fatalf("login attempt %d: %d %s", n, r.Status, r.Raw)
		}
	}
	if limited == nil {
		t.Fatalf("50 wrong-password logins were never rate limited")
	}
	t.Logf("login limited after %d attempts: %s", n, limited.Raw)
	wantRateLimited(t, *limited)
	// The right password is refused too while the caller is limited.
	if r := loginPassword(s, "victim", accountPassword); r.Status != 429 {
		t.Errorf("correct login while limited: %d %s", r.Status, r.Raw)
	}

	// Messages: send concurrently until one is refused (bounded).
	room := s.createRoom(u, nil)
	const maxSends = 800
	var sent atomic.Int64
	var once sync.Once
	var hit response
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > maxSends {
					return
				}
				r, err := tryDo(s, "PUT", rpath(room, fmt.Sprintf("/send/m.room.message/w%d-%d", w, i)), u.Token,
					map[string]any{"msgtype": "m.text", "body": "spam"})
				if err != nil {
					return
				}
				if r.Status == 429 {
					once.Do(func() { hit = r; close(stop) })
					return
				}
				if r.Status != 200 {
					once.Do(func() { hit = r; close(stop) })
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if hit.Status == 0 {
		t.Fatalf("%d messages sent without a 429", maxSends)
	}
	t.Logf("send limited after about %d requests: %d %s", sent.Load(), hit.Status, hit.Raw)
	wantRateLimited(t, hit)
}

// uiaPassword performs a request protected by m.login.password: the first
// try must be a 401 offering it; the second carries the password.
func uiaPassword(s *server, method, path, token string, body map[string]any, name, password string) (challenge, final response) {
	s.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	challenge = s.do(method, path, token, body)
	if challenge.Status != 401 || challenge.str("session") == "" || !hasStage(flowsOf(challenge), "m.login.password") {
		s.t.Fatalf("%s %s without auth: %d %s (want 401 with an m.login.password flow)", method, path, challenge.Status, challenge.Raw)
	}
	body["auth"] = map[string]any{
		"type": "m.login.password", "session": challenge.str("session"), "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": name},
	}
	return challenge, s.do(method, path, token, body)
}

func userFrom(r response) user {
	return user{ID: r.str("user_id"), Token: r.str("access_token"), Device: r.str("device_id")}
}

func wantTokenDead(t *testing.T, s *server, tok, what string) {
	t.Helper()
	r := s.do("GET", cs+"/account/whoami", tok, nil)
	if r.Status != 401 || r.str("errcode") != "M_UNKNOWN_TOKEN" {
		t.Errorf("%s: whoami answered %d %s, want 401 M_UNKNOWN_TOKEN", what, r.Status, r.Raw)
	}
}

func wantTokenAlive(t *testing.T, s *server, u user, what string) {
	t.Helper()
	r := s.do("GET", cs+"/account/whoami", u.Token, nil)
	if r.Status != 200 || r.str("user_id") != u.ID {
		t.Errorf("%s: whoami answered %d %s", what, r.Status, r.Raw)
	}
}

func deviceIDs(s *server, u user) []string {
	s.t.Helper()
	var ids []string
	for _, d := range objList(s.must(200, "GET", cs+"/devices", u.Token, nil).Body, "devices") {
		ids = append(ids, objStr(d, "device_id"))
	}
	return ids
}

func TestAccountsLoginDevices(t *testing.T) {
	s := start(t)
	reg := s.register("dana")

	// Login with the deprecated top-level "user" and with an identifier.
	legacy := s.must(200, "POST", cs+"/login", "", map[string]any{
		"type": "m.login.password", "user": "dana", "password": accountPassword,
	})
	d1 := userFrom(legacy)
	d2 := userFrom(s.must(200, "POST", cs+"/login", "", map[string]any{
		"type": "m.login.password", "password": accountPassword,
		"identifier":                  map[string]any{"type": "m.id.user", "user": "@dana:localhost"},
		"initial_device_display_name": "second phone",
	}))
	if d1.ID != reg.ID || d2.ID != reg.ID || d1.Device == "" || d2.Device == "" || d1.Device == d2.Device {
		t.Fatalf("logins: %+v %+v", d1, d2)
	}
	if legacy.str("home_server") == "" {
		t.Logf("login answer lacks the deprecated home_server: %s", legacy.Raw)
	}
	w := s.must(200, "GET", cs+"/account/whoami", d1.Token, nil)
	if w.str("user_id") != reg.ID || w.str("device_id") != d1.Device {
		t.Errorf("whoami: %s", w.Raw)
	}
	devs := deviceIDs(s, d1)
	for _, want := range []string{reg.Device, d1.Device, d2.Device} {
		if !contains(devs, want) {
			t.Errorf("GET /devices %v lacks %s", devs, want)
		}
	}
	if d := s.must(200, "GET", cs+"/devices/"+d2.Device, d1.Token, nil); d.str("display_name") != "second phone" {
		t.Errorf("device display name: %s", d.Raw)
	}

	// Deleting a device needs UIA; a wrong password is refused.
	delPath := cs + "/devices/" + d2.Device
	ch := s.must(401, "DELETE", delPath, d1.Token, map[string]any{})
	r := s.do("DELETE", delPath, d1.Token, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": ch.str("session"), "password": "wrong",
		"identifier": map[string]any{"type": "m.id.user", "user": "dana"},
	}})
	if r.Status != 401 || r.str("errcode") != "M_FORBIDDEN" {
		t.Errorf("delete device with a wrong password: %d %s (want 401 with errcode M_FORBIDDEN)", r.Status, r.Raw)
	}
	wantTokenAlive(t, s, d2, "device after a refused delete")
	_, r = uiaPassword(s, "DELETE", delPath, d1.Token, nil, "dana", accountPassword)
	if r.Status != 200 {
		t.Fatalf("delete device with the password: %d %s", r.Status, r.Raw)
	}
	wantTokenDead(t, s, d2.Token, "deleted device's token")
	if contains(deviceIDs(s, d1), d2.Device) {
		t.Errorf("deleted device still listed")
	}
	wantTokenAlive(t, s, d1, "deleting another device")

	// /logout ends only the caller's device.
	s.must(200, "POST", cs+"/logout", reg.Token, map[string]any{})
	wantTokenDead(t, s, reg.Token, "after /logout")
	wantTokenAlive(t, s, d1, "other device after /logout")

	// /logout/all ends every device.
	d3 := loginDevice(s, "dana")
	s.must(200, "POST", cs+"/logout/all", d1.Token, map[string]any{})
	wantTokenDead(t, s, d1.Token, "caller after /logout/all")
	wantTokenDead(t, s, d3.Token, "other device after /logout/all")
	d4 := loginDevice(s, "dana")
	if devs := deviceIDs(s, d4); len(devs) != 1 || devs[0] != d4.Device {
		t.Errorf("devices after /logout/all and a new login: %v", devs)
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestAccountsPasswordChange(t *testing.T) {
	s := start(t)
	a := s.register("erin")
	other := loginDevice(s, "erin")
	_, r := uiaPassword(s, "POST", cs+"/account/password", a.Token, map[string]any{"new_password": "new erin password"}, "erin", accountPassword)
	if r.Status != 200 {
		t.Fatalf("change password: %d %s", r.Status, r.Raw)
	}
	wantErr(t, loginPassword(s, "erin", accountPassword), 403, "M_FORBIDDEN")
	if r := loginPassword(s, "erin", "new erin password"); r.Status != 200 {
		t.Errorf("login with the new password: %d %s", r.Status, r.Raw)
	}
	// Spec: the caller's token SHOULD stay; logout_devices defaults to
	// true, so other devices are logged out.
	wantTokenAlive(t, s, a, "caller after password change")
	wantTokenDead(t, s, other.Token, "other device after password change (logout_devices default true)")

	// UIA with the old password fails now.
	ch := s.must(401, "POST", cs+"/account/password", a.Token, map[string]any{"new_password": "third"})
	r = s.do("POST", cs+"/account/password", a.Token, map[string]any{"new_password": "third", "auth": map[string]any{
		"type": "m.login.password", "session": ch.str("session"), "password": accountPassword,
		"identifier": map[string]any{"type": "m.id.user", "user": "erin"},
	}})
	if r.Status != 401 {
		t.Errorf("password change with the old password: %d %s", r.Status, r.Raw)
	}
}

func TestAccountsDeactivate(t *testing.T) {
	s := start(t)
	a := s.register("frank")
	other := loginDevice(s, "frank")
	room := s.createRoom(a, map[string]any{"preset": "public_chat"})
	g := s.register("")
	mustJoin(s, g, room)
	_, r := uiaPassword(s, "POST", cs+"/account/deactivate", a.Token, nil, "frank", accountPassword)
	if r.Status != 200 {
		t.Fatalf("deactivate: %d %s", r.Status, r.Raw)
	}
	if v := r.str("id_server_unbind_result"); v != "success" && v != "no-support" {
		t.Errorf("id_server_unbind_result: %s", r.Raw)
	}
	r = loginPassword(s, "frank", accountPassword)
	wantErr(t, r, 403, "M_USER_DEACTIVATED", "M_FORBIDDEN")
	wantTokenDead(t, s, a.Token, "deactivated caller")
	wantTokenDead(t, s, other.Token, "deactivated user's other device")
	// The ID stays taken, and the user left its rooms.
	wantErr(t, s.do("GET", cs+"/register/available?username=frank", "", nil), 400, "M_USER_IN_USE")
	if m := membershipOf(s, g, room, a.ID); m != "leave" {
		t.Errorf("deactivated user's membership: %q, want leave", m)
	}
}

func TestAccountsAvailable(t *testing.T) {
	s := start(t)
	s.register("gina")
	wantErr(t, s.do("GET", cs+"/register/available?username=gina", "", nil), 400, "M_USER_IN_USE")
	wantErr(t, s.do("GET", cs+"/register/available?username=GINA", "", nil), 400, "M_USER_IN_USE")
	for _, bad := range []string{"bad%20name", "a%3Ab", "%C3%A9t%C3%A9", "bad!"} {
		wantErr(t, s.do("GET", cs+"/register/available?username="+bad, "", nil), 400, "M_INVALID_USERNAME")
	}
	r := s.must(200, "GET", cs+"/register/available?username=free.name", "", nil)
	if r.Body["available"] != true {
		t.Errorf("available: %s", r.Raw)
	}
}

func TestAccountsRefreshTokens(t *testing.T) {
	s := start(t)
	s.register("hank")
	r := s.must(200, "POST", cs+"/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "hank"},
		"password": accountPassword, "refresh_token": true,
	})
	ms, _ := r.Body["expires_in_ms"].(float64)
	if r.str("refresh_token") == "" || ms <= 0 {
		t.Fatalf("login with refresh_token: true: %s", r.Raw)
	}
	u0 := userFrom(r)
	rt0 := r.str("refresh_token")
	wantTokenAlive(t, s, u0, "fresh access token")

	// A login without refresh_token gets neither.
	if r := loginPassword(s, "hank", accountPassword); r.str("refresh_token") != "" {
		t.Errorf("refresh token issued without refresh_token: true: %s", r.Raw)
	}

	r1 := s.must(200, "POST", cs+"/refresh", "", map[string]any{"refresh_token": rt0})
	at1, rt1 := r1.str("access_token"), r1.str("refresh_token")
	if at1 == "" || rt1 == "" || at1 == u0.Token || rt1 == rt0 {
		t.Fatalf("refresh did not rotate: %s", r1.Raw)
	}
	if ms, _ := r1.Body["expires_in_ms"].(float64); ms <= 0 {
		t.Errorf("refresh answer lacks expires_in_ms: %s", r1.Raw)
	}
	u1 := u0
	u1.Token = at1
	wantTokenAlive(t, s, u1, "refreshed access token")
	if w := s.must(200, "GET", cs+"/account/whoami", at1, nil); w.str("device_id") != u0.Device {
		t.Errorf("refreshed token moved to another device: %s", w.Raw)
	}
	// Spec: the old refresh token is revoked once the new access token is used.
	wantErr(t, s.do("POST", cs+"/refresh", "", map[string]any{"refresh_token": rt0}), 401, "M_UNKNOWN_TOKEN")
	// The new refresh token rotates again.
	r2 := s.must(200, "POST", cs+"/refresh", "", map[string]any{"refresh_token": rt1})
	if r2.str("access_token") == "" || r2.str("refresh_token") == "" || r2.str("refresh_token") == rt1 {
		t.Errorf("second refresh: %s", r2.Raw)
	}
	wantErr(t, s.do("POST", cs+"/refresh", "", map[string]any{"refresh_token": "not-a-token"}), 401, "M_UNKNOWN_TOKEN")
}

func TestAccountsProfile(t *testing.T) {
	s := start(t)
	alice, bob := s.register("pia"), s.register("quinn")
	room := s.createRoom(alice, map[string]any{"preset": "public_chat"})
	mustJoin(s, bob, room)

	s.must(200, "PUT", cs+"/profile/"+esc(alice.ID)+"/displayname", alice.Token, map[string]any{"displayname": "Pia P."})
	m := s.must(200, "GET", rpath(room, "/state/m.room.member/"+esc(alice.ID)), bob.Token, nil)
	if m.str("displayname") != "Pia P." || m.str("membership") != "join" {
		t.Errorf("member event after displayname change: %s", m.Raw)
	}
	if p := s.must(200, "GET", cs+"/profile/"+esc(alice.ID)+"/displayname", "", nil); p.str("displayname") != "Pia P." {
		t.Errorf("profile displayname: %s", p.Raw)
	}

	s.must(200, "PUT", cs+"/profile/"+esc(alice.ID)+"/avatar_url", alice.Token, map[string]any{"avatar_url": "mxc://localhost/abcDEF123"})
	m = s.must(200, "GET", rpath(room, "/state/m.room.member/"+esc(alice.ID)), bob.Token, nil)
	if m.str("avatar_url") != "mxc://localhost/abcDEF123" || m.str("displayname") != "Pia P." {
		t.Errorf("member event after avatar change: %s", m.Raw)
	}

	// Another user's profile is not ours to change.
	wantErr(t, s.do("PUT", cs+"/profile/"+esc(alice.ID)+"/displayname", bob.Token, map[string]any{"displayname": "hacked"}), 403, "M_FORBIDDEN")
	wantErr(t, s.do("PUT", cs+"/profile/"+esc(alice.ID)+"/avatar_url", bob.Token, map[string]any{"avatar_url": "mxc://localhost/x"}), 403, "M_FORBIDDEN")
	// avatar_url must be a string of at most 1000 bytes; it is not
	// required to be an mxc:// URI (see accounts.setClassic).
	for _, bad := range []any{42, map[string]any{}, strings.Repeat("x", 1001)} {
		wantErr(t, s.do("PUT", cs+"/profile/"+esc(alice.ID)+"/avatar_url", alice.Token, map[string]any{"avatar_url": bad}), 400)
	}
	if p := s.must(200, "GET", cs+"/profile/"+esc(alice.ID), "", nil); p.str("displayname") != "Pia P." || p.str("avatar_url") != "mxc://localhost/abcDEF123" {
		t.Errorf("profile changed by refused requests: %s", p.Raw)
	}
}
