package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a fresh self-signed certificate for cn and its key.
func writePair(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Barge Test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func servedCN(t *testing.T, r *CertReloader) string {
	t.Helper()
	c, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	first := writePair(t, cert, key, "one")
	if got := CertPrincipal(first); got != "User:CN=one,O=Barge Test" {
		t.Fatalf("principal %q", got)
	}
	// The certificate's order, reversed as RFC 2253 writes it, not
	// pkix.Name's fixed one.
	odd := &x509.Certificate{RawSubject: mustMarshal(t, pkix.RDNSequence{
		{{Type: []int{2, 5, 4, 3}, Value: "svc"}}, {{Type: []int{2, 5, 4, 10}, Value: "Org"}}, {{Type: []int{2, 5, 4, 11}, Value: "Unit"}},
	})}
	if got := CertPrincipal(odd); got != "User:OU=Unit,O=Org,CN=svc" {
		t.Fatalf("principal %q, want the certificate's order reversed", got)
	}
	r, err := NewCertReloader(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	var failures int
	r.OnError = func(error) { failures++ }

	writePair(t, cert, key, "two")
	if got := servedCN(t, r); got != "one" {
		t.Fatalf("within a second of the last look: %q, want the old one", got)
	}
	now = now.Add(2 * time.Second)
	if got := servedCN(t, r); got != "two" {
		t.Fatalf("after the files changed: %q, want the new one", got)
	}
	// A half-written pair keeps the last good one.
	os.WriteFile(key, []byte("not a key, and a different size"), 0o600)
	now = now.Add(2 * time.Second)
	if got := servedCN(t, r); got != "two" || failures != 1 {
		t.Fatalf("a broken pair: serving %q, %d failures; want two, 1", got, failures)
	}
	if _, err := NewCertReloader(cert, key); err == nil {
		t.Fatal("a broken pair loaded at start")
	}
	if _, err := LoadCertPool(key); err == nil {
		t.Fatal("a pool from no certificate")
	}
	if _, err := LoadCertPool(cert); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
