package security

import (
	"context"
	"crypto/pbkdf2"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/bargehq/barge/pkg/meta"
)

// RFC 7677's example: user "user", password "pencil", salt and 4096
// iterations, from which its exchange's server signature follows.
func TestScramDerivationRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	c, err := NewScramCredential(meta.ScramSHA256, []byte("pencil"), salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	s := NewScramServer(meta.ScramSHA256, func(u string) (meta.ScramCredential, bool) { return c, u == "user" })
	if _, _, err := s.Step([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")); err != nil {
		t.Fatal(err)
	}
	// Replay the RFC's exchange with its server nonce.
	s.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	s.serverFirst = "r=" + s.nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	reply, done, err := s.Step([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || !done {
		t.Fatalf("RFC 7677's proof refused: %v", err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(reply) != want {
		t.Fatalf("server signature %q, want RFC 7677's %q", reply, want)
	}
	if s.User() != "user" {
		t.Fatalf("user %q", s.User())
	}
}

// exchange runs franz-go's SCRAM client against the server.
func exchange(t *testing.T, m sasl.Mechanism, srv *ScramServer) error {
	t.Helper()
	sess, msg, err := m.Authenticate(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for {
		reply, done, err := srv.Step(msg)
		if err != nil {
			return err
		}
		clientDone, next, err := sess.Challenge(reply)
		if err != nil {
			return errors.New("client: " + err.Error())
		}
		if done != clientDone {
			return errors.New("server and client disagree on the end")
		}
		if done {
			return nil
		}
		msg = next
	}
}

func TestScramWithFranzGo(t *testing.T) {
	for _, tc := range []struct {
		m    meta.ScramMechanism
		mech func(scram.Auth) sasl.Mechanism
	}{
		{meta.ScramSHA256, scram.Auth.AsSha256Mechanism},
		{meta.ScramSHA512, scram.Auth.AsSha512Mechanism},
	} {
		c, err := NewScramCredential(tc.m, []byte("alice-secret"), []byte("salty"), 4096)
		if err != nil {
			t.Fatal(err)
		}
		lookup := func(u string) (meta.ScramCredential, bool) { return c, u == "alice" }
		srv := NewScramServer(tc.m, lookup)
		if err := exchange(t, tc.mech(scram.Auth{User: "alice", Pass: "alice-secret"}), srv); err != nil {
			t.Fatalf("mechanism %d: %v", tc.m, err)
		}
		if srv.User() != "alice" {
			t.Fatalf("user %q", srv.User())
		}
		for _, bad := range []scram.Auth{{User: "alice", Pass: "wrong"}, {User: "mallory", Pass: "alice-secret"}} {
			srv := NewScramServer(tc.m, lookup)
			err := exchange(t, tc.mech(bad), srv)
			if !errors.Is(err, ErrAuthentication) || srv.User() != "" {
				t.Fatalf("%+v: %v, user %q; want ErrAuthentication", bad, err, srv.User())
			}
			if _, _, err := srv.Step([]byte("n,,n=alice,r=x")); err == nil {
				t.Fatal("a failed exchange went on")
			}
		}
		if !CheckPassword(tc.m, c, []byte("alice-secret")) || CheckPassword(tc.m, c, []byte("alice-secreT")) {
			t.Fatal("CheckPassword")
		}
	}
}

func TestScramRefusesTamperingAndOddInput(t *testing.T) {
	c, _ := NewScramCredential(meta.ScramSHA512, []byte("pw"), []byte("salt"), 4096)
	lookup := func(u string) (meta.ScramCredential, bool) { return c, u == "al,ice" }
	srv := NewScramServer(meta.ScramSHA512, lookup)
	first, _, err := srv.Step([]byte("n,,n=al=2Cice,r=abc"))
	if err != nil {
		t.Fatalf("an escaped name: %v", err)
	}
	nonce := strings.TrimPrefix(strings.Split(string(first), ",")[0], "r=")
	proof := base64.StdEncoding.EncodeToString(make([]byte, 64))
	if _, _, err := srv.Step([]byte("c=biws,r=" + nonce + ",p=" + proof)); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("a forged proof: %v", err)
	}
	for _, msg := range []string{
		"p=tls-unique,,n=al=2Cice,r=abc",     // channel binding
		"n,a=bob,n=al=2Cice,r=abc",           // someone else's authorization
		"n,,n=al=2Cice,r=abc,tokenauth=true", // delegation token
		"n,,n=al=1ice,r=abc",                 // a bad escape
		"n,,r=abc",                           // no name
		strings.Repeat("x", 5000),
	} {
		if _, _, err := NewScramServer(meta.ScramSHA512, lookup).Step([]byte(msg)); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%.40q: %v, want ErrAuthentication", msg, err)
		}
	}
}

func TestParsePlain(t *testing.T) {
	if _, u, p, err := ParsePlain([]byte("\x00alice\x00pw")); err != nil || u != "alice" || p != "pw" {
		t.Fatalf("%q %q %v", u, p, err)
	}
	if _, u, _, err := ParsePlain([]byte("alice\x00alice\x00pw")); err != nil || u != "alice" {
		t.Fatalf("authzid equal to the user: %v", err)
	}
	for _, bad := range []string{"bob\x00alice\x00pw", "\x00alice", "\x00\x00pw", "\x00alice\x00", "a\x00b\x00c\x00d"} {
		if _, _, _, err := ParsePlain([]byte(bad)); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// librdkafka's client-final nonce is its own nonce followed by the whole
// server nonce; Kafka accepts it (the nonce must end with the server's).
func TestScramLibrdkafkaNonce(t *testing.T) {
	c, _ := NewScramCredential(meta.ScramSHA256, []byte("pw"), []byte("salt"), 4096)
	srv := NewScramServer(meta.ScramSHA256, func(string) (meta.ScramCredential, bool) { return c, true })
	first, _, err := srv.Step([]byte("n,,n=u,r=cnonce"))
	if err != nil {
		t.Fatal(err)
	}
	full := strings.TrimPrefix(strings.Split(string(first), ",")[0], "r=")
	withoutProof := "c=biws,r=cnonce" + full
	auth := "n=u,r=cnonce," + string(first) + "," + withoutProof
	// ClientProof = ClientKey XOR HMAC(StoredKey, auth), with ClientKey
	// recomputed from the password.
	h := hashOf(meta.ScramSHA256)
	saltedPassword := pbkdf2Key(t, h, "pw", "salt")
	clientKey := hmacOf(h, saltedPassword, "Client Key")
	sig := hmacOf(h, c.StoredKey, auth)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	if _, done, err := srv.Step([]byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))); err != nil || !done {
		t.Fatalf("librdkafka's nonce form refused: %v", err)
	}
}

func pbkdf2Key(t *testing.T, h func() hash.Hash, password, salt string) []byte {
	t.Helper()
	k, err := pbkdf2.Key(h, password, []byte(salt), 4096, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	return k
}
