package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
	"github.com/bargehq/barge/pkg/tiered"
)

// fuzzServer is one whole agent in the test process (a metadata log, an
// ingest buffer and a reader over a bucket in memory), listening on
// loopback, shared by every input of a fuzz run.
var fuzzServer = sync.OnceValue(func() string {
	store := objstore.NewMemory()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := meta.Open(context.Background(), store, meta.Options{WriterID: "fuzz", Logger: quiet})
	if err != nil {
		panic(err)
	}
	go l.Run(context.Background())
	if _, err := l.Append(context.Background(), meta.CreateTopic{Name: "t", ID: meta.TopicID{1}, Partitions: 2}); err != nil {
		panic(err)
	}
	c, err := cache.New(64<<20, nil)
	if err != nil {
		panic(err)
	}
	in := tiered.NewIngest(tiered.IngestConfig{FlushInterval: time.Millisecond, WriterID: "fuzz", Logger: quiet}, store, l, c, nil)
	s := New(Config{Logger: quiet, AutoCreateTopics: true, GroupInitialRebalanceDelay: time.Millisecond,
		GroupMinSessionTimeout: time.Millisecond, ConnectionsMaxIdle: 10 * time.Second}, l, in, tiered.NewReader(store, c), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go s.Serve(ln)
	return ln.Addr().String()
})

// FuzzConnection: whatever bytes a client sends, the agent neither panics
// nor hangs: once the client has sent them and closed its side, every
// answer comes back as a well-formed frame, in the order of the requests
// that were read (a request's correlation id, the framing of the bytes
// as the agent reads them), and then the agent closes the connection.
// It covers the size-prefix framing, the header, every API's decoder and
// handler with hostile field values, and pipelining.
//
//	go test -run X -fuzz FuzzConnection -fuzztime 30s ./pkg/protocol/
func FuzzConnection(f *testing.F) {
	var all []byte
	for _, fr := range seedFrames() {
		one := binary.BigEndian.AppendUint32(nil, uint32(len(fr)))
		one = append(one, fr...)
		f.Add(one)
		all = append(all, one...)
	}
	f.Add(all)                            // every API pipelined on one connection
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff}) // a 2 GiB size prefix
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0}) // a frame shorter than a header
	f.Add(append([]byte{0, 0, 0, 10}, make([]byte, 10)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		// A hang anywhere (an agent that stops reading but never closes
		// blocks the write) is a finding: the fuzzer saves the input of a
		// worker that panics.
		watchdog := time.AfterFunc(time.Minute, func() { panic(fmt.Sprintf("the connection hung on %x", b)) })
		defer watchdog.Stop()
		c, err := net.DialTimeout("tcp", fuzzServer(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// What the agent will read as requests, with their correlation
		// ids: whole frames of a legal size, up to the first that is not.
		var want []int32
		for rest := b; len(rest) >= 4; {
			size := int(int32(binary.BigEndian.Uint32(rest)))
			if size < 8 || size > len(rest)-4 || size > 100<<20 {
				break
			}
			fr := rest[4 : 4+size]
			if !(kmsg.Key(int16(binary.BigEndian.Uint16(fr))) == kmsg.Produce && acksZero(fr)) {
				want = append(want, int32(binary.BigEndian.Uint32(fr[4:])))
			}
			rest = rest[4+size:]
		}
		written := make(chan error, 1)
		go func() {
			_, err := c.Write(b)
			c.(*net.TCPConn).CloseWrite()
			written <- err
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []int32
		r := io.Reader(c)
		for {
			var size [4]byte
			_, err := io.ReadFull(r, size[:])
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the agent neither answered nor closed the connection within 10 s (answers %v, requests %v)", got, want)
				}
				break // closed: after the last answer, or at bytes it refused
			}
			n := binary.BigEndian.Uint32(size[:])
			if n < 4 || n > 256<<20 {
				t.Fatalf("an answer frame of %d bytes", n)
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				t.Fatalf("an answer cut short: %v", err)
			}
			got = append(got, int32(binary.BigEndian.Uint32(body)))
		}
		<-written
		// Answers come in request order; a request the agent could not
		// decode ends the connection, so a prefix of them is answered.
		if len(got) > len(want) {
			t.Fatalf("%d answers to %d requests: %v, %v", len(got), len(want), got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("answer %d has correlation id %d, the request %d", i, got[i], want[i])
			}
		}
	})
}

// acksZero reports whether a Produce frame asks for no answer, as the
// agent reads it.
func acksZero(fr []byte) bool {
	req := kmsg.NewPtrProduceRequest()
	version := int16(binary.BigEndian.Uint16(fr[2:]))
	if a := apis[req.Key()]; version < a.minV || version > a.maxV {
		return false // answered UNSUPPORTED_VERSION
	}
	req.SetVersion(version)
	body := fr[8:]
	if len(body) < 2 {
		return false
	}
	idLen := int(int16(binary.BigEndian.Uint16(body)))
	body = body[2:]
	if idLen > 0 {
		if idLen > len(body) {
			return false
		}
		body = body[idLen:]
	}
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return false
		}
	}
	return req.ReadFrom(body) == nil && req.Acks == 0
}
