package security

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/bargehq/barge/pkg/meta"
)

// ErrAuthentication is every failed authentication.
var ErrAuthentication = errors.New("security: authentication failed")

// The mechanisms' names, as SaslHandshake carries them.
const (
	NameSHA256 = "SCRAM-SHA-256"
	NameSHA512 = "SCRAM-SHA-512"
)

// MechanismByName returns the SCRAM mechanism of a SASL mechanism name.
func MechanismByName(name string) (meta.ScramMechanism, bool) {
	switch name {
	case NameSHA256:
		return meta.ScramSHA256, true
	case NameSHA512:
		return meta.ScramSHA512, true
	}
	return 0, false
}

func hashOf(m meta.ScramMechanism) func() hash.Hash {
	switch m {
	case meta.ScramSHA256:
		return sha256.New
	case meta.ScramSHA512:
		return sha512.New
	}
	return nil
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	mac := hmac.New(h, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// NewScramCredential derives the credential of password (RFC 5802 §3).
func NewScramCredential(m meta.ScramMechanism, password, salt []byte, iterations int) (meta.ScramCredential, error) {
	h := hashOf(m)
	if h == nil {
		return meta.ScramCredential{}, fmt.Errorf("security: unknown SCRAM mechanism %d", m)
	}
	salted, err := pbkdf2.Key(h, string(password), salt, iterations, h().Size())
	if err != nil {
		return meta.ScramCredential{}, err
	}
	return CredentialFromSaltedPassword(m, salted, salt, iterations)
}

// CredentialFromSaltedPassword derives the credential from the salted
// password, which AlterUserScramCredentials carries instead of the
// password.
func CredentialFromSaltedPassword(m meta.ScramMechanism, salted, salt []byte, iterations int) (meta.ScramCredential, error) {
	h := hashOf(m)
	if h == nil {
		return meta.ScramCredential{}, fmt.Errorf("security: unknown SCRAM mechanism %d", m)
	}
	if len(salted) != h().Size() {
		return meta.ScramCredential{}, fmt.Errorf("security: a %d-byte salted password for a %d-byte hash", len(salted), h().Size())
	}
	stored := h()
	stored.Write(hmacOf(h, salted, "Client Key"))
	return meta.ScramCredential{Iterations: int32(iterations), Salt: bytes.Clone(salt),
		StoredKey: stored.Sum(nil), ServerKey: hmacOf(h, salted, "Server Key")}, nil
}

// CheckPassword reports whether password is the credential's.
func CheckPassword(m meta.ScramMechanism, c meta.ScramCredential, password []byte) bool {
	d, err := NewScramCredential(m, password, c.Salt, int(c.Iterations))
	return err == nil && subtle.ConstantTimeCompare(d.StoredKey, c.StoredKey) == 1
}

// maxScramMessage bounds a client's SCRAM message.
const maxScramMessage = 4096

// ScramServer is the server's side of one SCRAM exchange: two steps.
type ScramServer struct {
	mech   meta.ScramMechanism
	lookup func(user string) (meta.ScramCredential, bool)
	step   int // 0: awaiting client-first; 1: client-final; 2: done; -1: failed

	user, gs2, clientFirstBare, serverFirst, nonce string
	cred                                           meta.ScramCredential
}

// NewScramServer starts an exchange for mechanism m; lookup finds a
// user's credential.
func NewScramServer(m meta.ScramMechanism, lookup func(user string) (meta.ScramCredential, bool)) *ScramServer {
	return &ScramServer{mech: m, lookup: lookup}
}

// User is the authenticated user, once Step has reported done.
func (s *ScramServer) User() string {
	if s.step != 2 {
		return ""
	}
	return s.user
}

func (s *ScramServer) fail(why string) ([]byte, bool, error) {
	s.step = -1
	return nil, false, fmt.Errorf("%w: %s", ErrAuthentication, why)
}

// Step takes the client's next message and returns the server's answer;
// done once the client is authenticated. Any error ends the exchange.
func (s *ScramServer) Step(msg []byte) (reply []byte, done bool, err error) {
	if len(msg) > maxScramMessage {
		return s.fail("message too long")
	}
	switch s.step {
	case 0:
		return s.first(string(msg))
	case 1:
		return s.final(string(msg))
	}
	return s.fail("exchange already ended")
}

// first reads client-first-message: gs2-header client-first-message-bare.
func (s *ScramServer) first(msg string) ([]byte, bool, error) {
	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok || (flag != "n" && flag != "y") {
		return s.fail("channel binding is not supported")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return s.fail("malformed client-first-message")
	}
	s.gs2 = flag + "," + authz + ","
	s.clientFirstBare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return s.fail("malformed client-first-message")
	}
	user, err := saslName(attrs[0][2:])
	if err != nil || user == "" {
		return s.fail("malformed user name")
	}
	for _, ext := range attrs[2:] {
		if strings.HasPrefix(ext, "tokenauth=") {
			return s.fail("delegation tokens are not supported")
		}
	}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return s.fail("malformed authorization id")
		}
		if id, err := saslName(authz[2:]); err != nil || id != user {
			return s.fail("the authorization id must be the user")
		}
	}
	clientNonce := attrs[1][2:]
	if clientNonce == "" || strings.ContainsAny(clientNonce, ",") {
		return s.fail("malformed nonce")
	}
	cred, ok := s.lookup(user)
	if !ok || len(cred.StoredKey) != meta.ScramKeyLen(s.mech) {
		// Kafka fails an unknown user here too, with the message every
		// failure gets.
		return s.fail("unknown user")
	}
	s.user, s.cred = user, cred
	var r [24]byte
	rand.Read(r[:])
	s.nonce = clientNonce + base64.RawStdEncoding.EncodeToString(r[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(int(cred.Iterations))
	s.step = 1
	return []byte(s.serverFirst), false, nil
}

// final reads client-final-message: c=..., r=..., [extensions,] p=proof.
func (s *ScramServer) final(msg string) ([]byte, bool, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return s.fail("malformed client-final-message")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return s.fail("malformed client-final-message")
	}
	if cb, err := base64.StdEncoding.DecodeString(attrs[0][2:]); err != nil || string(cb) != s.gs2 {
		return s.fail("channel binding mismatch")
	}
	// Kafka checks that the nonce ends with the server-first one, not
	// that it is it: librdkafka sends its own nonce before the whole
	// server nonce (which begins with it again).
	if got := attrs[1][2:]; len(got) < len(s.nonce) ||
		subtle.ConstantTimeCompare([]byte(got[len(got)-len(s.nonce):]), []byte(s.nonce)) != 1 {
		return s.fail("nonce mismatch")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	h := hashOf(s.mech)
	if err != nil || len(proof) != h().Size() {
		return s.fail("malformed proof")
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	signature := hmacOf(h, s.cred.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	for k := range proof {
		clientKey[k] = proof[k] ^ signature[k]
	}
	stored := h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), s.cred.StoredKey) != 1 {
		return s.fail("wrong password")
	}
	s.step = 2
	serverSig := hmacOf(h, s.cred.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), true, nil
}

// saslName decodes RFC 5802's saslname: "=2C" is ",", "=3D" is "=", and
// no other "=" may appear.
func saslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("bad escape")
		}
		i += 2
	}
	return b.String(), nil
}
