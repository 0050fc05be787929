package protocol

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/security"
)

// Authentication, as Kafka's listeners do it (KIP-43, KIP-152, KIP-368).
//
// A connection is authenticated once its TLS handshake (with a client
// certificate, when the listener asks for one) and, on a SASL listener, a
// SaslHandshake and SaslAuthenticate exchange have succeeded. Until then
// only ApiVersions and the SASL APIs are served; any other request closes
// the connection unanswered, so an unauthenticated client learns nothing
// and changes nothing. A connection that has not authenticated within
// Security.AuthenticationTimeout is closed, so that connections which
// never authenticate hold a slot of max.connections.per.ip only briefly.
//
// The principal is "User:<name>" for SASL, "User:<subject DN>" for a TLS
// client certificate without SASL, and User:ANONYMOUS otherwise. Another
// agent's connection (a peer, forward.go) is authenticated by the peer
// token in its greeting and is authorized for everything: the agent that
// forwarded a request has already authorized it.
//
// Re-authentication (KIP-368): with Security.MaxReauth set, a successful
// SaslAuthenticate (v1+) tells the client its session lifetime; a request
// other than the SASL APIs after the session has expired closes the
// connection. The client authenticates again on the same connection, with
// the same mechanism and as the same principal.
//
// The SASL handlers run wholly in phase one, on the read loop, since they
// change the connection's own state, which later requests' gate reads.

// Security is the listener's security configuration.
type Security struct {
	// TLS, when set, makes the listener speak TLS (Serve wraps each
	// connection). With ClientAuth RequireAndVerifyClientCert a client
	// certificate's subject is the principal of a non-SASL connection.
	TLS *tls.Config
	// SASL lists the enabled mechanisms (PLAIN, SCRAM-SHA-256,
	// SCRAM-SHA-512); none: the listener has no SASL.
	SASL []string
	// BootstrapUser and BootstrapPassword are a user the agent checks
	// itself (--sasl-bootstrap-user), never written to the log; it is
	// always a super user.
	BootstrapUser, BootstrapPassword string
	// Authorizer checks every request (nil: everyone may do everything).
	Authorizer *security.Authorizer
	// AuthenticationTimeout bounds the time from accept to authenticated
	// (0: 10 s).
	AuthenticationTimeout time.Duration
	// MaxReauth is connections.max.reauth.ms (0: sessions do not expire).
	MaxReauth time.Duration
	// PeerTLS is how this agent dials other agents when their listener
	// speaks TLS (nil: plaintext).
	PeerTLS *tls.Config
	// FailedAuthDelay holds the answer to a failed authentication, and
	// the close after it, this long (Kafka's
	// connection.failed.authentication.delay.ms), so that guessing
	// passwords is slow; 0: 100 ms, negative: none.
	FailedAuthDelay time.Duration
}

// The SASL mechanism names.
const (
	mechPlain     = "PLAIN"
	mechSHA256    = "SCRAM-SHA-256"
	mechSHA512    = "SCRAM-SHA-512"
	anonymousUser = "User:ANONYMOUS"
	peerPrincipal = "User:barge-peer" // never a SASL user: they are authorized by the token
)

// securityProtocol names the listener as Kafka's listener names do.
func (s *Server) securityProtocol() string {
	sec := &s.cfg.Security
	switch {
	case sec.TLS != nil && len(sec.SASL) > 0:
		return "SASL_SSL"
	case sec.TLS != nil:
		return "SSL"
	case len(sec.SASL) > 0:
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// CheckSASLMechanisms reports an unknown mechanism name.
func CheckSASLMechanisms(mechs []string) error {
	for _, m := range mechs {
		if m != mechPlain && m != mechSHA256 && m != mechSHA512 {
			return fmt.Errorf("unknown SASL mechanism %q (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are served)", m)
		}
	}
	return nil
}

// authState is a connection's authentication. The read loop owns it;
// principal is written before the handlers that read it start, and
// never changes afterwards (re-authentication keeps it).
type authState struct {
	authed    bool
	principal string
	host      string                // the client's address, for ACLs' hosts
	agent     bool                  // another agent's own connection: authorized for everything
	mech      string                // of the exchange in progress ("": none)
	scram     *security.ScramServer // SCRAM's, in progress
	authMech  string                // the mechanism that authenticated the connection
	expires   time.Time             // the session's end (KIP-368); zero: none
	deadline  *time.Timer           // the authentication deadline
	closeNext error                 // set by a handler: stop reading, close once answered
}

// bootstrapCreds are the bootstrap user's SCRAM credentials, derived at
// start with a fresh salt: each agent has its own, which is fine, since a
// SCRAM exchange never leaves one connection.
type bootstrapCreds map[meta.ScramMechanism]meta.ScramCredential

// initSecurity fills in the defaults and derives the bootstrap user's
// credentials. The agent has checked the mechanisms (CheckSASLMechanisms).
func (s *Server) initSecurity() {
	sec := &s.cfg.Security
	orDefault(&sec.AuthenticationTimeout, 10*time.Second)
	if sec.FailedAuthDelay == 0 {
		sec.FailedAuthDelay = 100 * time.Millisecond
	}
	if sec.BootstrapUser == "" {
		return
	}
	s.bootstrap = bootstrapCreds{}
	for _, m := range []meta.ScramMechanism{meta.ScramSHA256, meta.ScramSHA512} {
		salt := make([]byte, 24)
		rand.Read(salt)
		c, err := security.NewScramCredential(m, []byte(sec.BootstrapPassword), salt, meta.ScramMinIterations)
		if err != nil {
			panic(err) // a known mechanism and a valid count: cannot fail
		}
		s.bootstrap[m] = c
	}
}

// clusterFormat is the metadata log's cluster format now.
func (s *Server) clusterFormat() (f meta.Format) {
	s.log.View(func(st *meta.State) { f = st.Format() })
	return f
}

// superUser reports whether principal bypasses the authorizer.
func (s *Server) superUser(principal string) bool {
	return s.cfg.Security.BootstrapUser != "" && principal == "User:"+s.cfg.Security.BootstrapUser
}

// beginAuth sets up a new connection's authentication: authenticated at
// once on a plain listener, else within the deadline.
func (c *conn) beginAuth() {
	sec := &c.s.cfg.Security
	c.auth.principal, c.auth.host = anonymousUser, c.ip
	if sec.TLS == nil && len(sec.SASL) == 0 {
		c.auth.authed = true
		return
	}
	c.auth.deadline = time.AfterFunc(sec.AuthenticationTimeout, func() {
		c.s.metrics.authFailed.WithLabelValues("timeout").Inc()
		c.s.cfg.Logger.Debug("closing connection: not authenticated in time", "remote", c.nc.RemoteAddr().String())
		c.nc.Close()
	})
}

// handshake runs the TLS handshake of a TLS listener's connection and
// takes a client certificate's subject as the principal. On a listener
// without SASL that authenticates the connection.
func (c *conn) handshake(ctx context.Context) error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		c.s.metrics.authFailed.WithLabelValues("tls").Inc()
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		c.auth.principal = security.CertPrincipal(certs[0])
	}
	if len(c.s.cfg.Security.SASL) == 0 {
		c.authenticated()
	}
	return nil
}

// authenticated marks the connection authenticated and stops its
// deadline.
func (c *conn) authenticated() {
	c.auth.authed = true
	if c.auth.deadline != nil {
		c.auth.deadline.Stop()
	}
}

// maxUnauthenticatedRequest bounds a frame before authentication: Kafka's
// sasl.server.max.receive.size, so that a client without credentials
// cannot take a large share of queued.max.request.bytes.
const maxUnauthenticatedRequest = 512 << 10

var (
	errUnauthenticated = errors.New("request before authentication")
	errSessionExpired  = errors.New("SASL session expired without re-authentication (connections.max.reauth.ms)")
)

// gate reports whether a request of API key may be served on the
// connection now; an error closes it unanswered.
func (c *conn) gate(key int16) error {
	if sec := &c.s.cfg.Security; c.peer || sec.TLS == nil && len(sec.SASL) == 0 {
		return nil
	}
	// As Kafka's Processor: an expired session closes on any request,
	// its re-authentication included, which must begin before the end.
	if c.auth.authed && !c.auth.expires.IsZero() && time.Now().After(c.auth.expires) {
		return errSessionExpired
	}
	switch key {
	case kmsg.ApiVersions.Int16(), kmsg.SASLHandshake.Int16(), kmsg.SASLAuthenticate.Int16():
		return nil
	}
	if !c.auth.authed {
		c.s.metrics.authFailed.WithLabelValues("unauthenticated").Inc()
		return errUnauthenticated
	}
	return nil
}

// connOf returns the connection a handler runs for (nil outside one).
func connOf(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

// SaslHandshake, version 1 (v0, which sends bare SASL tokens afterwards,
// is gone from Kafka 4, KIP-896). It picks the mechanism of the
// SaslAuthenticate exchange that follows; on an authenticated connection it
// begins re-authentication.
func init() { register(17, 1, 1, twoPhase(handleSaslHandshake)) }

func handleSaslHandshake(ctx context.Context, s *Server, req *kmsg.SASLHandshakeRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	c := connOf(ctx)
	mechs := s.cfg.Security.SASL
	resp.SupportedMechanisms = slices.Clone(mechs)
	switch {
	case c == nil || len(mechs) == 0 || c.peer:
		// Kafka answers a listener without SASL so, and keeps the
		// connection.
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case c.auth.mech != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code
		c.failAuth("SASL handshake out of place")
	case !slices.Contains(mechs, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.failAuth("unsupported SASL mechanism " + req.Mechanism)
	case c.auth.authed && req.Mechanism != c.auth.authMech:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		c.failAuth("re-authentication must keep the mechanism " + c.auth.authMech)
	default:
		c.auth.mech = req.Mechanism
		if m, ok := security.MechanismByName(req.Mechanism); ok {
			c.auth.scram = security.NewScramServer(m, func(user string) (meta.ScramCredential, bool) {
				return s.scramCredential(user, m)
			})
		}
	}
	return func() kmsg.Response { return resp }
}

// failAuth closes the connection once the answer being made is written.
func (c *conn) failAuth(why string) {
	if c == nil {
		return
	}
	c.s.metrics.authFailed.WithLabelValues("failed").Inc()
	c.auth.closeNext = errors.New(why)
}

// SaslAuthenticate, versions 0-2 (KIP-152; v1: session lifetime, KIP-368;
// v2: flexible).
func init() { register(36, 0, 2, twoPhase(handleSaslAuthenticate)) }

func handleSaslAuthenticate(ctx context.Context, s *Server, req *kmsg.SASLAuthenticateRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	c := connOf(ctx)
	answer := func() kmsg.Response { return resp }
	if c == nil || c.auth.mech == "" {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = strp("SaslAuthenticate before SaslHandshake")
		c.failAuth("SaslAuthenticate before SaslHandshake")
		return answer
	}
	mech := c.auth.mech
	var user string
	var err error
	if mech == mechPlain {
		user, err = s.checkPlain(req.SASLAuthBytes)
	} else {
		var done bool
		resp.SASLAuthBytes, done, err = c.auth.scram.Step(req.SASLAuthBytes)
		if err == nil && !done {
			return answer // the server-first message; the client's final one follows
		}
		if err == nil {
			user = c.auth.scram.User()
		}
	}
	c.auth.mech, c.auth.scram = "", nil
	principal := "User:" + user
	if err == nil && c.auth.authed && principal != c.auth.principal {
		err = errors.New("re-authentication must keep the principal " + c.auth.principal)
	}
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = strp(authFailure(mech, err))
		resp.SASLAuthBytes = nil
		c.failAuth(err.Error())
		s.cfg.Logger.Info("authentication failed", "remote", c.nc.RemoteAddr().String(), "mechanism", mech, "err", err)
		return func() kmsg.Response {
			// The read loop has stopped (and cancelled ctx, as for a
			// client gone); this holds only the answer, a bounded time.
			if d := s.cfg.Security.FailedAuthDelay; d > 0 {
				time.Sleep(d)
			}
			return resp
		}
	}
	if !c.auth.authed {
		// Only now: handlers read the principal concurrently once the
		// connection is authenticated, and re-authentication keeps it.
		c.auth.principal, c.auth.authMech = principal, mech
	}
	c.authenticated()
	if d := s.cfg.Security.MaxReauth; d > 0 {
		c.auth.expires = time.Now().Add(d)
		resp.SessionLifetimeMillis = d.Milliseconds()
	}
	return answer
}

// authFailure is the message a client is told: Kafka's, which never says
// whether the user exists.
func authFailure(mech string, err error) string {
	if errors.Is(err, security.ErrAuthentication) {
		return "Authentication failed during authentication due to invalid credentials with SASL mechanism " + mech
	}
	return "Authentication failed: " + err.Error()
}

// scramCredential looks user up: the bootstrap user, else the log.
func (s *Server) scramCredential(user string, m meta.ScramMechanism) (c meta.ScramCredential, ok bool) {
	if s.cfg.Security.BootstrapUser != "" && user == s.cfg.Security.BootstrapUser {
		c, ok = s.bootstrap[m]
		return c, ok
	}
	s.log.View(func(st *meta.State) { c, ok = st.ScramCredential(user, m) })
	return c, ok
}

// checkPlain authenticates a PLAIN message against the bootstrap user or
// the user's SCRAM credentials in the log, of either mechanism.
func (s *Server) checkPlain(msg []byte) (string, error) {
	_, user, password, err := security.ParsePlain(msg)
	if err != nil {
		return "", err
	}
	sec := &s.cfg.Security
	if sec.BootstrapUser != "" && user == sec.BootstrapUser {
		if subtle.ConstantTimeCompare([]byte(password), []byte(sec.BootstrapPassword)) == 1 {
			return user, nil
		}
		return "", security.ErrAuthentication
	}
	for _, m := range []meta.ScramMechanism{meta.ScramSHA512, meta.ScramSHA256} {
		if c, ok := s.scramCredential(user, m); ok {
			if security.CheckPassword(m, c, []byte(password)) {
				return user, nil
			}
			return "", security.ErrAuthentication
		}
	}
	// An unknown user costs what a known one does, so the time of the
	// answer does not say which users exist.
	security.CheckPassword(meta.ScramSHA512, unknownUser, []byte(password))
	return "", security.ErrAuthentication
}

// unknownUser is the credential a PLAIN login of an unknown user is
// checked against: no password matches it.
var unknownUser = meta.ScramCredential{Iterations: 8192, Salt: []byte("barge-unknown-user"),
	StoredKey: make([]byte, 64), ServerKey: make([]byte, 64)}

// ParseBootstrapUser splits --sasl-bootstrap-user's NAME:PASSWORD.
func ParseBootstrapUser(v string) (name, password string, err error) {
	name, password, ok := strings.Cut(v, ":")
	if !ok || name == "" || password == "" {
		return "", "", errors.New("the bootstrap user must be NAME:PASSWORD")
	}
	return name, password, nil
}
