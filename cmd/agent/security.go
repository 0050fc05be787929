package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/bargehq/barge/pkg/protocol"
	"github.com/bargehq/barge/pkg/security"
)

// securityFlags are the listener's TLS, SASL and authorizer settings, by
// Kafka's names where Kafka has one (ssl.keystore.*, sasl.enabled.mechanisms,
// authorizer.class.name, super.users, allow.everyone.if.no.acl.found,
// connections.max.reauth.ms).
type securityFlags struct {
	TLSCert, TLSKey, TLSClientCA, TLSPeerCA string
	TLSPeerServerName                       string
	SASLMechanisms                          string
	BootstrapUser                           string
	Authorizer                              string
	SuperUsers                              string
	AllowIfNoACL                            bool
	AuthTimeout                             time.Duration
	MaxReauth                               time.Duration
	FailedAuthDelay                         time.Duration
}

func (f *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.TLSCert, "tls-cert-file", "", "PEM certificate (chain) of the Kafka listener; with --tls-key-file the listener speaks TLS (SSL, or SASL_SSL with --sasl-mechanisms). Reloaded when the files change")
	fs.StringVar(&f.TLSKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&f.TLSClientCA, "tls-client-ca-file", "", "PEM CA bundle; clients must then present a certificate it signed (ssl.client.auth=required), whose subject is the principal of a connection without SASL (User:CN=...)")
	fs.StringVar(&f.TLSPeerCA, "tls-peer-ca-file", "", "PEM CA bundle other agents' listener certificates are checked against when this agent dials them (default: the system's roots and --tls-client-ca-file)")
	fs.StringVar(&f.TLSPeerServerName, "tls-peer-server-name", "", "the name other agents' listener certificates are checked for when this agent dials them (default: the host of their peer address); set it when the agents share one certificate for a name that is not their addresses, such as a load balancer's")
	fs.StringVar(&f.SASLMechanisms, "sasl-mechanisms", "", "comma-separated SASL mechanisms clients must authenticate with: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (sasl.enabled.mechanisms; empty: no SASL)")
	fs.StringVar(&f.BootstrapUser, "sasl-bootstrap-user", "", "NAME:PASSWORD of a user this agent accepts by itself with every mechanism, never stored in the bucket, and always a super user: it creates the first users and ACLs of a fresh cluster (prefer the BARGE_SASL_BOOTSTRAP_USER variable, which ps does not show)")
	fs.StringVar(&f.Authorizer, "authorizer", "none", "acl: check every request against the ACLs in the metadata log, denying what no ACL allows; none: every client may do everything (authorizer.class.name)")
	fs.StringVar(&f.SuperUsers, "super-users", "", "semicolon-separated principals the authorizer always allows, e.g. User:admin;User:CN=ops (super.users)")
	fs.BoolVar(&f.AllowIfNoACL, "allow-everyone-if-no-acl-found", false, "with --authorizer acl, allow a request on a resource no ACL names (allow.everyone.if.no.acl.found)")
	fs.DurationVar(&f.AuthTimeout, "authentication-timeout", 10*time.Second, "close a connection that has not finished its TLS handshake and SASL authentication within this long")
	fs.DurationVar(&f.FailedAuthDelay, "connection-failed-authentication-delay", 100*time.Millisecond, "how long the answer to a failed authentication, and the close after it, is held, to slow password guessing (connection.failed.authentication.delay.ms; 0: none)")
	fs.DurationVar(&f.MaxReauth, "connections-max-reauth", 0, "SASL session lifetime: clients re-authenticate on the connection within it or are disconnected (connections.max.reauth.ms; 0: never)")
}

// check validates the flags alone.
func (f *securityFlags) check() error {
	if (f.TLSCert == "") != (f.TLSKey == "") {
		return fmt.Errorf("tls-cert-file and tls-key-file go together")
	}
	if f.TLSClientCA != "" && f.TLSCert == "" {
		return fmt.Errorf("tls-client-ca-file needs tls-cert-file and tls-key-file")
	}
	if err := protocol.CheckSASLMechanisms(f.mechanisms()); err != nil {
		return err
	}
	if f.BootstrapUser != "" {
		if _, _, err := protocol.ParseBootstrapUser(f.BootstrapUser); err != nil {
			return err
		}
		if f.SASLMechanisms == "" {
			return fmt.Errorf("sasl-bootstrap-user needs sasl-mechanisms")
		}
	}
	if f.Authorizer != "none" && f.Authorizer != "acl" {
		return fmt.Errorf("authorizer must be acl or none, not %q", f.Authorizer)
	}
	if f.AuthTimeout <= 0 || f.MaxReauth < 0 || f.FailedAuthDelay < 0 || f.FailedAuthDelay >= f.AuthTimeout {
		return fmt.Errorf("authentication-timeout must be positive, connections-max-reauth and connection-failed-authentication-delay not negative, and the delay shorter than the timeout")
	}
	for _, p := range f.superUsers() {
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			return fmt.Errorf("super-users: %q is not a principal (User:name)", p)
		}
	}
	return nil
}

func (f *securityFlags) mechanisms() []string {
	var out []string
	for _, m := range strings.Split(f.SASLMechanisms, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, strings.ToUpper(m))
		}
	}
	return out
}

func (f *securityFlags) superUsers() []string {
	var out []string
	for _, p := range strings.Split(f.SuperUsers, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// build loads the certificates and makes the protocol layer's Security.
func (f *securityFlags) build(logger *slog.Logger) (protocol.Security, error) {
	sec := protocol.Security{SASL: f.mechanisms(), AuthenticationTimeout: f.AuthTimeout, MaxReauth: f.MaxReauth,
		FailedAuthDelay: f.FailedAuthDelay}
	if sec.FailedAuthDelay == 0 {
		sec.FailedAuthDelay = -1 // none, as asked
	}
	if f.BootstrapUser != "" {
		sec.BootstrapUser, sec.BootstrapPassword, _ = protocol.ParseBootstrapUser(f.BootstrapUser)
	}
	if f.Authorizer == "acl" {
		sec.Authorizer = security.NewAuthorizer(f.superUsers(), f.AllowIfNoACL)
	}
	if f.TLSCert == "" {
		return sec, nil
	}
	certs, err := security.NewCertReloader(f.TLSCert, f.TLSKey)
	if err != nil {
		return sec, fmt.Errorf("tls-cert-file: %w", err)
	}
	certs.OnError = func(err error) { logger.Error("reloading the TLS certificate; keeping the old one", "err", err) }
	sec.TLS = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	peerRoots, err := x509.SystemCertPool()
	if err != nil {
		peerRoots = x509.NewCertPool()
	}
	if f.TLSClientCA != "" {
		pool, err := security.LoadCertPool(f.TLSClientCA)
		if err != nil {
			return sec, fmt.Errorf("tls-client-ca-file: %w", err)
		}
		sec.TLS.ClientCAs, sec.TLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
		if f.TLSPeerCA == "" {
			peerRoots, err = addPEMFile(peerRoots, f.TLSClientCA)
			if err != nil {
				return sec, err
			}
		}
	}
	if f.TLSPeerCA != "" {
		if peerRoots, err = security.LoadCertPool(f.TLSPeerCA); err != nil {
			return sec, fmt.Errorf("tls-peer-ca-file: %w", err)
		}
	}
	// Agents dial each other with their own certificate, which a listener
	// that requires client certificates accepts if the same CA signed it.
	sec.PeerTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: peerRoots, GetClientCertificate: certs.GetClientCertificate,
		ServerName: f.TLSPeerServerName}
	return sec, nil
}

// addPEMFile adds a PEM bundle's certificates to pool.
func addPEMFile(pool *x509.CertPool, file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}
