package e2e

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gmsl "github.com/matrix-org/gomatrixserverlib"
)

// writeTestCA writes a private CA (what an offline mesh, or Complement,
// hands a homeserver) and returns its files and a pool trusting it.
func writeTestCA(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mesh CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool
}

// With a CA given by path, the federation listener serves TLS with a
// certificate issued for the server name, and answers the key server
// (signed, verifiable) and version endpoints; the rest of the federation
// API is not built and says so.
func TestFederationListenerWithIssuedCertificate(t *testing.T) {
	caCert, caKey, pool := writeTestCA(t)
	fed := freeAddr(t)
	s := start(t, "LICHEN_FEDERATION_LISTEN="+fed, "LICHEN_TLS_CA_CERT="+caCert, "LICHEN_TLS_CA_KEY="+caKey)

	// The client verifies the chain against the CA alone, for the server
	// name "localhost".
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	get := func(path string) (int, []byte) {
		t.Helper()
		// No retry: once the client port answers (start waits for it),
		// federation must too; suites federate right after /versions.
		resp, err := hc.Get("https://" + fed + path)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, s.stderr.String())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := get("/_matrix/key/v2/server")
	if status != 200 {
		t.Fatalf("key server: %d %s", status, body)
	}
	var keys struct {
		ServerName   string                       `json:"server_name"`
		ValidUntilTS int64                        `json:"valid_until_ts"`
		VerifyKeys   map[string]map[string]string `json:"verify_keys"`
	}
	if err := json.Unmarshal(body, &keys); err != nil || keys.ServerName != "localhost" || len(keys.VerifyKeys) != 1 {
		t.Fatalf("key server body: %s (%v)", body, err)
	}
	if until := time.UnixMilli(keys.ValidUntilTS); until.Before(time.Now()) || until.After(time.Now().Add(48*time.Hour)) {
		t.Errorf("valid_until_ts %v", until)
	}
	for id, k := range keys.VerifyKeys {
		pub, err := base64.RawStdEncoding.DecodeString(k["key"])
		if err != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("verify key %s: %q", id, k["key"])
		}
		// Signed by the key it publishes (server-server API "Publishing Keys").
		if err := gmsl.VerifyJSON("localhost", gmsl.KeyID(id), pub, body); err != nil {
			t.Errorf("self-signature does not verify: %v", err)
		}
		// The key ID form answers the same key.
		if st, b := get("/_matrix/key/v2/server/" + id); st != 200 || !strings.Contains(string(b), k["key"]) {
			t.Errorf("key server by ID: %d %s", st, b)
		}
	}

	if status, body = get("/_matrix/federation/v1/version"); status != 200 || !strings.Contains(string(body), `"name":"Lichen"`) {
		t.Errorf("version: %d %s", status, body)
	}
	if status, body = get("/_matrix/federation/v1/make_join/!r:x/@u:y"); status != 404 || !strings.Contains(string(body), "M_UNRECOGNIZED") {
		t.Errorf("unbuilt federation endpoint: %d %s", status, body)
	}

	// A client that does not trust the CA refuses the certificate.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("https://" + fed + "/_matrix/federation/v1/version"); err == nil {
		resp.Body.Close()
		t.Error("certificate accepted without the CA")
	}
}

// Without a certificate the federation listener does not start (and says
// why); half a certificate pair stops the server at start.
func TestFederationListenerConfiguration(t *testing.T) {
	fed := freeAddr(t)
	s := start(t, "LICHEN_FEDERATION_LISTEN="+fed)
	if _, err := http.Get("http://" + fed + "/"); err == nil {
		t.Error("federation listener started without a certificate")
	}
	s.stop()
	if !strings.Contains(s.stderr.String(), "federation listener not started") {
		t.Errorf("no warning logged:\n%s", s.stderr.String())
	}

	caCert, _, _ := writeTestCA(t)
	cmd := exec.Command(binPath(t), "--data-dir", t.TempDir(), "--listen", freeAddr(t))
	cmd.Env = append(os.Environ(), "LICHEN_FEDERATION_LISTEN="+fed, "LICHEN_TLS_CA_CERT="+caCert)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tls_ca_cert and tls_ca_key must be set together") {
		t.Errorf("half a CA pair: err %v, output %s", err, out)
	}
}
