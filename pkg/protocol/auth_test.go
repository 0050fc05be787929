package protocol

import "testing"

// A relay's greeting carries the client's principal; one that claims to
// be a relay without one must not pass for an agent's own connection,
// which is authorized for everything.
func TestParsePeerHello(t *testing.T) {
	for _, c := range []struct {
		in                     string
		token, host, principal string
		ok                     bool
	}{
		{"abc", "abc", "", "", true},
		{peerHello{token: "abc", host: "10.0.0.1", principal: "User:CN=a b,O=c"}.String(), "abc", "10.0.0.1", "User:CN=a b,O=c", true},
		{"abc relay 10.0.0.1", "abc", "10.0.0.1", "", false},
		{"abc relay  User:x", "abc", "", "User:x", false},
		{"abc 10.0.0.1 User:x", "abc", "", "", false},
		{"abc ", "abc", "", "", false},
	} {
		token, host, principal, ok := parsePeerHello(c.in)
		if ok != c.ok || ok && (token != c.token || host != c.host || principal != c.principal) {
			t.Errorf("%q: %q %q %q %v, want %q %q %q %v", c.in, token, host, principal, ok, c.token, c.host, c.principal, c.ok)
		}
	}
}
