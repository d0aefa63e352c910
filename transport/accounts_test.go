package transport

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/lichen-hs/lichen/boltstore"
	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/secret"
)

// acctTestServer is a server with the account endpoints over a real store.
func acctTestServer(t *testing.T) *Server {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "lichen.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := accounts.New(st, accounts.Config{ServerName: "test.local", Registration: accounts.ModeOpen, SharedSecret: "shh"}, nil)
	s := NewServer(Config{ServerName: "test.local", PublicBaseURL: "https://hub.test"}, AccountsAuth{A: a})
	s.MountAccounts(a)
	return s
}

// acctCall performs one request in-process and decodes the JSON answer.
func acctCall(t *testing.T, s *Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	if token != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		b, _ := json.Marshal(body)
		ctx.Request.SetBody(b)
		ctx.Request.Header.SetContentType("application/json")
	}
	s.Handle(&ctx)
	var out map[string]any
	if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, path, ctx.Response.Body(), err)
	}
	return ctx.Response.StatusCode(), out
}

func wantStatus(t *testing.T, what string, got, want int, body map[string]any) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: status %d, want %d; body %v", what, got, want, body)
	}
}

func TestAccountsHTTP(t *testing.T) {
	s := acctTestServer(t)
	const v3 = "/_matrix/client/v3"

	st, body := acctCall(t, s, "GET", "/_matrix/client/r0/login", "", nil)
	wantStatus(t, "GET /login", st, 200, body)
	if flows := body["flows"].([]any); flows[0].(map[string]any)["type"] != "m.login.password" {
		t.Fatalf("login flows = %v", body)
	}

	// The UIA challenge has the spec's shape.
	st, body = acctCall(t, s, "POST", v3+"/register", "", map[string]any{"username": "alice", "password": "pw"})
	wantStatus(t, "register without auth", st, 401, body)
	session, _ := body["session"].(string)
	if session == "" || body["params"] == nil || body["completed"] == nil || len(body["flows"].([]any)) != 2 || body["errcode"] != nil {
		t.Fatalf("challenge = %v", body)
	}
	st, body = acctCall(t, s, "POST", v3+"/register", "", map[string]any{"username": "alice", "password": "pw",
		"auth": map[string]any{"type": "m.login.dummy", "session": session}})
	wantStatus(t, "register", st, 200, body)
	token, _ := body["access_token"].(string)
	if body["user_id"] != "@alice:test.local" || token == "" || body["device_id"] == nil || body["home_server"] != "test.local" {
		t.Fatalf("register = %v", body)
	}
	if wk, _ := body["well_known"].(map[string]any); wk == nil {
		t.Fatalf("register without well_known: %v", body)
	}

	st, body = acctCall(t, s, "GET", v3+"/account/whoami", token, nil)
	wantStatus(t, "whoami", st, 200, body)
	if body["user_id"] != "@alice:test.local" || body["is_guest"] != false || body["device_id"] == nil {
		t.Fatalf("whoami = %v", body)
	}
	st, body = acctCall(t, s, "GET", v3+"/account/whoami", "", nil)
	wantStatus(t, "whoami without token", st, 401, body)
	if body["errcode"] != "M_MISSING_TOKEN" {
		t.Fatalf("whoami without token = %v", body)
	}

	st, body = acctCall(t, s, "GET", v3+"/devices", token, nil)
	wantStatus(t, "devices", st, 200, body)
	devs := body["devices"].([]any)
	dev := devs[0].(map[string]any)["device_id"].(string)
	if len(devs) != 1 || devs[0].(map[string]any)["last_seen_ts"] == nil {
		t.Fatalf("devices = %v", body)
	}

	st, body = acctCall(t, s, "PUT", v3+"/profile/@alice:test.local/displayname", token, map[string]any{"displayname": "Alice"})
	wantStatus(t, "set displayname", st, 200, body)
	st, body = acctCall(t, s, "GET", v3+"/profile/%40alice%3Atest.local", "", nil)
	wantStatus(t, "get profile", st, 200, body)
	if body["displayname"] != "Alice" {
		t.Fatalf("profile = %v", body)
	}
	st, body = acctCall(t, s, "GET", v3+"/profile/@nobody:test.local/displayname", "", nil)
	wantStatus(t, "unknown profile", st, 404, body)

	st, body = acctCall(t, s, "DELETE", v3+"/devices/"+dev, token, map[string]any{})
	wantStatus(t, "delete device without auth", st, 401, body)
	if body["flows"].([]any)[0].(map[string]any)["stages"].([]any)[0] != "m.login.password" {
		t.Fatalf("delete challenge = %v", body)
	}
	st, body = acctCall(t, s, "POST", v3+"/delete_devices", token, map[string]any{})
	wantStatus(t, "delete_devices without devices", st, 400, body)

	st, body = acctCall(t, s, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=abc", "", nil)
	wantStatus(t, "token validity", st, 200, body)
	if body["valid"] != false {
		t.Fatalf("validity = %v", body)
	}

	st, body = acctCall(t, s, "POST", v3+"/logout", token, nil)
	wantStatus(t, "logout", st, 200, body)
	st, body = acctCall(t, s, "GET", v3+"/account/whoami", token, nil)
	wantStatus(t, "whoami after logout", st, 401, body)
	if body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("whoami after logout = %v", body)
	}

	// Shared-secret registration as Complement does it.
	st, body = acctCall(t, s, "GET", "/_synapse/admin/v1/register", "", nil)
	wantStatus(t, "nonce", st, 200, body)
	nonce := body["nonce"].(string)
	mac, _ := secret.SharedSecretRegistrationMAC([]byte("shh"), nonce, "bot", "pw", false, "")
	st, body = acctCall(t, s, "POST", "/_synapse/admin/v1/register", "", map[string]any{
		"nonce": nonce, "username": "bot", "password": "pw", "admin": false, "mac": mac})
	wantStatus(t, "shared-secret register", st, 200, body)
	if body["user_id"] != "@bot:test.local" || body["access_token"] == nil || body["device_id"] == nil {
		t.Fatalf("shared-secret register = %v", body)
	}

	st, body = acctCall(t, s, "POST", v3+"/login", "", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong"})
	wantStatus(t, "bad login", st, 403, body)
	st, body = acctCall(t, s, "POST", v3+"/login", "", map[string]any{"type": "m.login.password", "user": "alice", "password": "pw", "refresh_token": true})
	wantStatus(t, "login", st, 200, body)
	st, body = acctCall(t, s, "POST", v3+"/refresh", "", map[string]any{"refresh_token": body["refresh_token"]})
	wantStatus(t, "refresh", st, 200, body)
	if body["access_token"] == nil || body["refresh_token"] == nil || body["expires_in_ms"] == nil {
		t.Fatalf("refresh = %v", body)
	}
}
