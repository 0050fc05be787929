package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freePortErr()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return p
}

// handedOut holds every port freePort returned in this process. Linux
// hands a just-closed ephemeral port out again soon, so without it an agent
// started after another was killed often gets the dead one's address, and
// tests that look for an address with some property (where rendezvous
// hashing puts a job or a partition) would see the same few over and over.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

func freePortErr() (int, error) {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("free port: the kernel offered only ports already handed out")
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// tail returns about the last max bytes of the file, starting at a line.
func tail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
