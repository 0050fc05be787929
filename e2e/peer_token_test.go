package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

// TestPeerToken: the agents' private APIs (the metadata log's relay) and
// group forwarding are served only on a connection that greets with the
// cluster's peer token, a secret in the bucket. A client that names the
// peer software without it, or with another, is an ordinary client, and a
// private API request is answered UNSUPPORTED_VERSION.
func TestPeerToken(t *testing.T) {
	b := harness.FileBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	token, err := b.Open(t).Get(ctx, meta.PeerTokenKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 32 {
		t.Fatalf("peer token %q: too short to be a secret", token)
	}
	for _, tc := range []struct {
		name, version string
		peer          bool
	}{
		{"no token", "1", false},
		{"another token", string(token[:len(token)-1]) + "x", false},
		{"the token", string(token), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", a.Addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(nc)
			f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("peer-token-test"))
			hello := kmsg.NewPtrApiVersionsRequest()
			hello.Version = 3
			hello.ClientSoftwareName, hello.ClientSoftwareVersion = "barge-peer", tc.version
			if _, err := nc.Write(f.AppendRequest(nil, hello, 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := readAnswer(br); err != nil {
				t.Fatal(err)
			}
			// BargeSlots v0: after slot 1<<40, wait 0 ms, up to 1 MiB.
			body := binary.BigEndian.AppendUint64(nil, 1<<40)
			body = binary.BigEndian.AppendUint32(body, 0)
			body = binary.BigEndian.AppendUint32(body, 1<<20)
			if _, err := nc.Write(f.AppendRequest(nil, &rawRequest{key: 32001, body: body}, 2)); err != nil {
				t.Fatal(err)
			}
			got, err := readAnswer(br)
			if err != nil {
				t.Fatal(err)
			}
			unsupported := []byte{0, 35} // UNSUPPORTED_VERSION
			if tc.peer {
				if want := []byte{0, 0, 0, 0, 0, 0}; string(got) != string(want) {
					t.Fatalf("a peer's BargeSlots: answer %x, want %x (no error, no slots)", got, want)
				}
			} else if string(got) != string(unsupported) {
				t.Fatalf("BargeSlots from a client: answer %x, want %x", got, unsupported)
			}
		})
	}
}

// readAnswer reads one answer frame and returns its body (after the
// correlation id; the private APIs and these answers have header v0).
func readAnswer(br *bufio.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(br, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(br, frame); err != nil {
		return nil, err
	}
	return frame[4:], nil
}

// rawRequest is a request of any key, version 0, with a body as it is.
type rawRequest struct {
	key  int16
	body []byte
}

func (r *rawRequest) Key() int16                  { return r.key }
func (r *rawRequest) MaxVersion() int16           { return 0 }
func (r *rawRequest) SetVersion(int16)            {}
func (r *rawRequest) GetVersion() int16           { return 0 }
func (r *rawRequest) IsFlexible() bool            { return false }
func (r *rawRequest) AppendTo(b []byte) []byte    { return append(b, r.body...) }
func (r *rawRequest) ReadFrom([]byte) error       { return nil }
func (r *rawRequest) ResponseKind() kmsg.Response { return nil }
