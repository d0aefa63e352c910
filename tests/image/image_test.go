// Package image checks the container image built from firmware/Dockerfile:
// it starts a real container with the docker CLI and drives it over HTTP,
// as an operator and a client would.
//
// It runs only when LICHEN_TEST_IMAGE names the image to check (make
// image-test builds lichen:latest and sets it); plain go test skips it.
package image

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	serverName = "img.test"
	user       = "imgtest"
	password   = "image test password"
	// readyTimeout bounds a start: the binary opens its database and
	// listens in well under a second on a loaded 2-core CI machine.
	readyTimeout = 20 * time.Second
	// stopGrace is docker stop's SIGTERM-to-SIGKILL delay. A stop that
	// takes anywhere near it means SIGTERM was ignored.
	stopGrace = 20 * time.Second
	cleanStop = 10 * time.Second
)

func TestImage(t *testing.T) {
	img := os.Getenv("LICHEN_TEST_IMAGE")
	if img == "" {
		t.Skip("LICHEN_TEST_IMAGE is unset: run `make image-test` to build lichen:latest and check it in Docker")
	}
	// The image was asked for, so an unusable docker is a failure, not a skip.
	if out, err := docker("info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("docker is not usable: %v\n%s", err, out)
	}

	secret := rand.Text() // a fresh secret per run: nothing is baked into the image
	// docker create, then start: the container exists (and is removed at
	// cleanup) even when starting it fails, which docker run -d would leave.
	// A CA mounted read-only, as an operator (or Complement) hands it over:
	// Lichen issues its federation certificate from it.
	caDir, caPool := writeCA(t)
	id := mustDocker(t, "create", "-p", "127.0.0.1::8008", "-p", "127.0.0.1::8448",
		"-v", caDir+":/ca:ro",
		"-e", "LICHEN_TLS_CA_CERT=/ca/ca.crt", "-e", "LICHEN_TLS_CA_KEY=/ca/ca.key",
		"-e", "SERVER_NAME="+serverName,
		"-e", "LICHEN_REGISTRATION_SHARED_SECRET="+secret, img)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := docker("logs", id)
			t.Logf("docker logs %s:\n%s", id, logs)
		}
		docker("rm", "-f", id)
	})
	mustDocker(t, "start", id)

	began := time.Now()
	base := waitReady(t, id)
	t.Logf("first start: ready in %v at %s", time.Since(began).Round(time.Millisecond), base)

	// The image's metadata: non-root user, both Matrix ports.
	if u := mustDocker(t, "inspect", "-f", "{{.Config.User}}", id); u != "10001:10001" {
		t.Errorf("container user = %q, want 10001:10001", u)
	}
	// The running process itself, not just the config, is non-root.
	// (docker top needs the pid column to pick the container's processes.)
	top := mustDocker(t, "top", id, "-o", "pid,uid")
	for _, line := range strings.Split(top, "\n")[1:] {
		if f := strings.Fields(line); len(f) != 2 || f[1] != "10001" {
			t.Errorf("container process not running as uid 10001:\n%s", top)
			break
		}
	}
	ports := mustDocker(t, "image", "inspect", "-f", "{{json .Config.ExposedPorts}}", img)
	for _, p := range []string{"8008/tcp", "8448/tcp"} {
		if !strings.Contains(ports, `"`+p+`"`) {
			t.Errorf("image does not expose %s: %s", p, ports)
		}
	}

	// Federation answers on 8448 over TLS with a certificate for
	// SERVER_NAME that chains to the mounted CA.
	checkFederationTLS(t, id, caPool)

	// Shared-secret registration, then whoami: the user ID carries the
	// SERVER_NAME given at docker run, so it is read at runtime.
	token := registerSharedSecret(t, base, secret)
	status, who := call(t, "GET", base+"/_matrix/client/v3/account/whoami", token, nil)
	if want := "@" + user + ":" + serverName; status != 200 || who["user_id"] != want {
		t.Fatalf("whoami = %d %v, want user_id %s", status, who, want)
	}

	// Stop and start the same container: the entrypoint runs again on the
	// state it left in /data, so the account is still there.
	stopCleanly(t, id)
	mustDocker(t, "start", id)
	began = time.Now()
	base = waitReady(t, id) // the host port can change on restart
	t.Logf("restart: ready in %v", time.Since(began).Round(time.Millisecond))
	status, login := call(t, "POST", base+"/_matrix/client/v3/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	})
	if status != 200 || login["access_token"] == nil {
		t.Fatalf("login after restart = %d %v", status, login)
	}

	stopCleanly(t, id)
	if logs, _ := docker("logs", id); strings.Contains(strings.ToLower(logs), "panic") {
		t.Errorf("container log mentions a panic:\n%s", logs)
	}
}

// registerSharedSecret creates the test user with Synapse's shared-secret
// admin API and returns its access token.
func registerSharedSecret(t *testing.T, base, secret string) string {
	t.Helper()
	const path = "/_synapse/admin/v1/register"
	status, r := call(t, "GET", base+path, "", nil)
	nonce, _ := r["nonce"].(string)
	if status != 200 || nonce == "" {
		t.Fatalf("GET %s = %d %v", path, status, r)
	}
	// As Synapse documents: HMAC-SHA1 over nonce\0user\0password\0notadmin.
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(nonce + "\x00" + user + "\x00" + password + "\x00notadmin"))
	status, r = call(t, "POST", base+path, "", map[string]any{
		"nonce": nonce, "username": user, "password": password, "admin": false,
		"mac": hex.EncodeToString(m.Sum(nil)),
	})
	token, _ := r["access_token"].(string)
	if status != 200 || token == "" {
		t.Fatalf("POST %s = %d %v", path, status, r)
	}
	return token
}

// stopCleanly stops the container and checks that lichen exited by itself
// on SIGTERM: quickly, and with status 0 (SIGKILL would give 137).
func stopCleanly(t *testing.T, id string) {
	t.Helper()
	began := time.Now()
	mustDocker(t, "stop", "--time", fmt.Sprint(int(stopGrace.Seconds())), id)
	took := time.Since(began)
	t.Logf("docker stop took %v", took.Round(time.Millisecond))
	if took >= cleanStop {
		t.Errorf("docker stop took %v (grace %v): SIGTERM did not stop lichen promptly", took, stopGrace)
	}
	if code := mustDocker(t, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("exit code after docker stop = %s, want 0", code)
	}
}

// waitReady polls GET /_matrix/client/versions on the container's mapped
// port until it answers 200 with a non-empty versions list, and returns
// the base URL.
func waitReady(t *testing.T, id string) string {
	t.Helper()
	// docker port prints one "127.0.0.1:PORT" line, as bound by docker run.
	base := "http://" + strings.TrimSpace(strings.Split(mustDocker(t, "port", id, "8008/tcp"), "\n")[0])
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := http.Get(base + "/_matrix/client/versions")
		last := fmt.Sprint(err)
		if err == nil {
			last = resp.Status
			var body struct{ Versions []string }
			decodeErr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if decodeErr != nil || len(body.Versions) == 0 {
					t.Fatalf("/versions: %v, versions %v", decodeErr, body.Versions)
				}
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/_matrix/client/versions not 200 within %v (last: %s)", base, readyTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call sends a JSON request and returns the status and the decoded object.
func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd.Reset(b)
	}
	req, err := http.NewRequest(method, url, &rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: %d, body is not a JSON object: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// docker runs the docker CLI and returns its trimmed combined output. The
// timeout keeps a wedged engine from hanging CI.
func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// writeCA writes a throwaway CA into a directory the container's uid 10001
// can read, and returns the directory and a pool trusting the CA.
func writeCA(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "image test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, blk := range map[string]*pem.Block{
		"ca.crt": {Type: "CERTIFICATE", Bytes: der},
		"ca.key": {Type: "EC PRIVATE KEY", Bytes: kb},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil { // t.TempDir is 0700
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return dir, pool
}

// checkFederationTLS fetches /_matrix/federation/v1/version from the
// container's 8448, trusting only the test CA, for the name SERVER_NAME.
func checkFederationTLS(t *testing.T, id string, pool *x509.CertPool) {
	t.Helper()
	hostPort := strings.TrimSpace(strings.Split(mustDocker(t, "port", id, "8448/tcp"), "\n")[0])
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}}}
	var err error
	for deadline := time.Now().Add(readyTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var resp *http.Response
		if resp, err = hc.Get("https://" + hostPort + "/_matrix/federation/v1/version"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"Lichen"`) {
				t.Fatalf("federation version = %d %s", resp.StatusCode, body)
			}
			return
		}
	}
	t.Fatalf("federation listener over TLS: %v", err)
}
