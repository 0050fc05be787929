package harness_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bargehq/barge/internal/harness"
)

// TestNewCerts: the server certificate verifies against the CA for
// 127.0.0.1, ::1 and localhost as a server, the client certificate as a
// client with the subject ClientPrincipal names, and ClientTLS completes a
// mutual TLS handshake with a server that requires the CA's clients.
func TestNewCerts(t *testing.T) {
	c := harness.NewCerts(t)
	for _, p := range []string{c.CA, c.ServerCert, c.ServerKey, c.ClientCert, c.ClientKey} {
		if filepath.Dir(p) != c.Dir {
			t.Fatalf("%s is outside %s", p, c.Dir)
		}
	}
	if root := harness.RepoRoot(); strings.HasPrefix(c.Dir, root+string(filepath.Separator)) {
		t.Fatalf("certificates written inside the repository: %s", c.Dir)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, c.CA))

	server := readCert(t, c.ServerCert)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := server.Verify(x509.VerifyOptions{DNSName: name, Roots: roots,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if err := server.VerifyHostname("example.com"); err == nil {
		t.Error("the server certificate verifies for example.com")
	}

	client := readCert(t, c.ClientCert)
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if got := "User:" + client.Subject.String(); got != harness.ClientPrincipal {
		t.Errorf("client principal %q, want %q", got, harness.ClientPrincipal)
	}
	if _, err := tls.LoadX509KeyPair(c.ServerCert, c.ServerKey); err != nil {
		t.Errorf("server key pair: %v", err)
	}

	if conf := c.ClientTLS(t, false); len(conf.Certificates) != 0 || conf.RootCAs == nil {
		t.Errorf("ClientTLS without a certificate: %d certificates, roots %v", len(conf.Certificates), conf.RootCAs)
	}

	// A handshake over a pipe: the server requires and verifies a client
	// certificate from the CA, the client verifies the server as
	// 127.0.0.1.
	pair, err := tls.LoadX509KeyPair(c.ServerCert, c.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	sconf := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert}
	cconf := c.ClientTLS(t, true)
	cconf.ServerName = "127.0.0.1"
	cn, sn := net.Pipe()
	defer cn.Close()
	defer sn.Close()
	srv := tls.Server(sn, sconf)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := tls.Client(cn, cconf).Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	peers := srv.ConnectionState().PeerCertificates
	if len(peers) == 0 || "User:"+peers[0].Subject.String() != harness.ClientPrincipal {
		t.Fatalf("the server saw client certificates %v", peers)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
