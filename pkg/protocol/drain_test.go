package protocol

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Drain returns once its context ends even while a request still waits
// (here a CreateTopics on a log that never runs, as if the bucket hung,
// with a minute of its own timeout): the waits end with the connections,
// so the agent's --drain-timeout holds.
func TestDrainEndsWaitsAtItsDeadline(t *testing.T) {
	_, log := openLog(t)
	s := New(Config{Logger: slog.New(slog.DiscardHandler)}, log, nil, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(4)
	create.TimeoutMillis = 60_000
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "never", 1, 1
	create.Topics = append(create.Topics, ct)
	f := frame(create, 0)
	if _, err := nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for requestsInFlight(s) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request was never read")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan struct{})
	go func() { s.Drain(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain still waits for the request 10s after its deadline")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Drain took %v with a 200ms deadline", took)
	}
}

// requestsInFlight counts the requests read and not yet answered.
func requestsInFlight(s *Server) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int32
	for c := range s.conns {
		n += c.inflight.Load()
	}
	return n
}
