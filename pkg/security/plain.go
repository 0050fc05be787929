package security

import (
	"fmt"
	"strings"
)

// maxPlainMessage bounds a PLAIN message: three fields of at most 1 KiB.
const maxPlainMessage = 3*1024 + 2

// ParsePlain splits a SASL PLAIN message (RFC 4616): authzid NUL authcid
// NUL password. The authorization id must be empty or the user: nobody
// logs in as someone else.
func ParsePlain(msg []byte) (authzid, user, password string, err error) {
	if len(msg) > maxPlainMessage {
		return "", "", "", fmt.Errorf("%w: PLAIN message too long", ErrAuthentication)
	}
	parts := strings.Split(string(msg), "\x00")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("%w: malformed PLAIN message", ErrAuthentication)
	}
	if parts[0] != "" && parts[0] != parts[1] {
		return "", "", "", fmt.Errorf("%w: the authorization id must be the user", ErrAuthentication)
	}
	return parts[0], parts[1], parts[2], nil
}
