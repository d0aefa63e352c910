// Package tlscert provides the certificate of the federation listener:
// either one loaded from files, or one the server issues itself from a
// certificate authority given by path. The second is what an offline mesh
// with its own private CA needs (no ACME, no public CA reachable): every
// node holds the mesh CA and mints its own certificate for its server name
// at start, and again before that certificate expires. Complement hands
// homeservers a CA the same way (/complement/ca/ca.crt and ca.key).
package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// IssuedValidity is the lifetime of a certificate issued from a CA. It is
// short because re-issuing costs one signature; renewal starts when a
// third of it is left.
const IssuedValidity = 30 * 24 * time.Hour

// Source serves a certificate to TLS handshakes.
type Source struct {
	mu    sync.Mutex
	cert  *tls.Certificate
	renew func() (*tls.Certificate, error) // nil for a loaded certificate
	now   func() time.Time
}

// FromFiles loads a PEM certificate chain and its key.
func FromFiles(certFile, keyFile string) (*Source, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	return &Source{cert: &c, now: time.Now}, nil
}

// FromCA issues a certificate for serverName (its host part: a DNS name or
// an IP literal) signed by the CA in caCertFile/caKeyFile (PEM; the key as
// PKCS#1 RSA, SEC 1 EC or PKCS#8). The leaf key is a fresh P-256 key kept
// only in memory.
func FromCA(caCertFile, caKeyFile, serverName string) (*Source, error) {
	caCert, caKey, err := loadCA(caCertFile, caKeyFile)
	if err != nil {
		return nil, err
	}
	host := hostOf(serverName)
	s := &Source{now: time.Now}
	s.renew = func() (*tls.Certificate, error) { return issue(caCert, caKey, host, s.now()) }
	if s.cert, err = s.renew(); err != nil {
		return nil, err
	}
	return s, nil
}

// Certificate returns the current certificate, issuing a new one first if
// an issued certificate has less than a third of its life left.
func (s *Source) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renew != nil && s.now().After(s.cert.Leaf.NotAfter.Add(-IssuedValidity/3)) {
		c, err := s.renew()
		if err != nil {
			return nil, err
		}
		s.cert = c
	}
	return s.cert, nil
}

// TLSConfig is a server configuration using the source (TLS 1.2 or later).
func (s *Source) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.Certificate()
		},
	}
}

func loadCA(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls CA certificate: %w", err)
	}
	blk, _ := pem.Decode(cb)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("tls CA certificate %s: no PEM CERTIFICATE block", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tls CA certificate %s: %w", certFile, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("tls CA certificate %s: not a CA (basic constraints)", certFile)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls CA key: %w", err)
	}
	key, err := parseKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("tls CA key %s: %w", keyFile, err)
	}
	if !publicEqual(cert.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("tls CA key %s does not match certificate %s", keyFile, certFile)
	}
	return cert, key, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unsupported key type %q", blk.Type)
}

func publicEqual(a, b crypto.PublicKey) bool {
	if e, ok := a.(interface{ Equal(crypto.PublicKey) bool }); ok {
		return e.Equal(b)
	}
	return false
}

func issue(ca *x509.Certificate, caKey crypto.Signer, host string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:     now.Add(IssuedValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Federation uses the certificate both to serve and, for
		// servers that check it, to connect.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// hostOf strips a port from a server name ("example.org:8448",
// "[::1]:8448") and the brackets of an IPv6 literal.
func hostOf(serverName string) string {
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		return h
	}
	if len(serverName) > 1 && serverName[0] == '[' && serverName[len(serverName)-1] == ']' {
		return serverName[1 : len(serverName)-1]
	}
	return serverName
}
