package security

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves the listener's certificate, loaded again when its
// files change, so that a rotated certificate is used without a restart.
// The files are looked at no more than once a second, at a handshake; a
// pair that fails to load (half written, say) leaves the last good one in
// use.
type CertReloader struct {
	certFile, keyFile string
	// OnError is told of a reload that failed (nil: nothing).
	OnError func(error)
	now     func() time.Time // time.Now, but in tests

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewCertReloader loads the pair, which must load.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, now: time.Now}
	stamp, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	return r, nil
}

func (r *CertReloader) stamps() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, err
		}
		out[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

// current returns the certificate, reloading it first if the files
// changed since the last look, a second or more ago.
func (r *CertReloader) current() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < time.Second {
		return r.cert
	}
	r.checked = now
	stamp, err := r.stamps()
	if err != nil || stamp == r.stamp {
		return r.cert
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.OnError != nil {
			r.OnError(err)
		}
		return r.cert // and try again at the next look
	}
	r.cert, r.stamp = &cert, stamp
	return r.cert
}

// GetCertificate is tls.Config's, for the listener.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// GetClientCertificate is tls.Config's, for dialing other agents with the
// agent's own certificate.
func (r *CertReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// LoadCertPool reads a PEM bundle of CA certificates.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}

// CertPrincipal is the principal of a client certificate: its subject in
// RFC 2253 form, as Kafka's default ssl.principal.mapping.rules give it
// (Java's X500Principal.getName()). From the raw subject, in the
// certificate's own order: pkix.Name would put the attributes in a fixed
// one, and principals copied from Kafka's ACLs would not match.
func CertPrincipal(c *x509.Certificate) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(c.RawSubject, &rdns); err != nil || len(rest) > 0 {
		return "User:" + c.Subject.String()
	}
	return "User:" + rdns.String()
}
