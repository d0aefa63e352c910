package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCA makes a CA with the given key, PEM-encoded as keyType, and
// returns the paths of its certificate and key files.
func writeCA(t *testing.T, key crypto.Signer, keyType string, isCA bool) (string, string, *x509.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mesh CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	var kb []byte
	switch keyType {
	case "RSA PRIVATE KEY":
		kb = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case "EC PRIVATE KEY":
		kb, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	default:
		kb, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	must(t, os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: kb}), 0o600))
	cert, _ := x509.ParseCertificate(der)
	return cf, kf, cert
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFromCAIssuesVerifiableCertificates(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := []struct {
		name string
		key  crypto.Signer
		typ  string
	}{
		{"rsa pkcs1 (Complement)", rsaKey, "RSA PRIVATE KEY"},
		{"ec sec1", ecKey, "EC PRIVATE KEY"},
		{"ed25519 pkcs8", edKey, "PRIVATE KEY"},
	}
	names := []struct{ serverName, verifyAs string }{
		{"hs1", "hs1"},
		{"example.org:8448", "example.org"},
		{"10.1.2.3", "10.1.2.3"},
		{"[::1]:8448", "::1"},
	}
	for _, k := range keys {
		cf, kf, ca := writeCA(t, k.key, k.typ, true)
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		for _, n := range names {
			t.Run(k.name+"/"+n.serverName, func(t *testing.T) {
				src, err := FromCA(cf, kf, n.serverName)
				must(t, err)
				c, err := src.Certificate()
				must(t, err)
				_, err = c.Leaf.Verify(x509.VerifyOptions{DNSName: n.verifyAs, Roots: pool})
				must(t, err)
			})
		}
	}
}

// A real handshake on loopback: a client trusting only the CA connects
// with the server name and verifies the chain.
func TestHandshake(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	cf, kf, ca := writeCA(t, key, "RSA PRIVATE KEY", true)
	src, err := FromCA(cf, kf, "hs1")
	must(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", src.TLSConfig())
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok")) // runs the handshake
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "hs1"})
	must(t, err)
	defer conn.Close()
	buf := make([]byte, 2)
	if _, err := conn.Read(buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// A client expecting another name refuses the certificate.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "other"}); err == nil {
		c.Close()
		t.Fatal("certificate accepted for the wrong name")
	}
}

func TestRenewal(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cf, kf, _ := writeCA(t, key, "EC PRIVATE KEY", true)
	src, err := FromCA(cf, kf, "hs1")
	must(t, err)
	first, _ := src.Certificate()
	now := time.Now()
	src.now = func() time.Time { return now.Add(IssuedValidity / 2) }
	if c, _ := src.Certificate(); c != first {
		t.Fatal("renewed with half the validity left")
	}
	src.now = func() time.Time { return now.Add(IssuedValidity * 3 / 4) }
	c, err := src.Certificate()
	must(t, err)
	if c == first || !c.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatalf("not renewed with a quarter left: %v vs %v", c.Leaf.NotAfter, first.Leaf.NotAfter)
	}
}

func TestFromCAErrors(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cf, kf, _ := writeCA(t, key, "EC PRIVATE KEY", true)
	notCA, notCAKey, _ := writeCA(t, key, "EC PRIVATE KEY", false)
	_, otherKey, _ := writeCA(t, other, "EC PRIVATE KEY", true)
	garbage := filepath.Join(t.TempDir(), "garbage")
	must(t, os.WriteFile(garbage, []byte("not pem"), 0o600))
	tests := []struct {
		name, cert, key, want string
	}{
		{"missing cert", "/nonexistent/ca.crt", kf, "no such file"},
		{"missing key", cf, "/nonexistent/ca.key", "no such file"},
		{"not a CA", notCA, notCAKey, "not a CA"},
		{"key of another CA", cf, otherKey, "does not match"},
		{"garbage cert", garbage, kf, "no PEM CERTIFICATE"},
		{"garbage key", cf, garbage, "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromCA(tt.cert, tt.key, "hs1")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{"hs1": "hs1", "a.org:8448": "a.org", "[::1]:8448": "::1", "[::1]": "::1", "1.2.3.4": "1.2.3.4"} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}
