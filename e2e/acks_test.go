package e2e

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// ackedProduce is a Produce v8 (the newest without flexible headers) of
// values, one batch, to partition 0 of topic with the given acks.
func ackedProduce(t *testing.T, topic string, acks int16, values ...string) *kmsg.ProduceRequest {
	t.Helper()
	req := produceRequest(topic, recordsBatch(t, values, nil, nil, time.Now().UnixMilli(), time.Now().UnixMilli()))
	req.Version, req.Acks = 8, acks
	return req
}

// TestProduceAcks: the README's durability row. acks=0 gets no answer at
// all (on a raw connection, the next request's answer is the next thing
// the agent writes) and its records are stored; acks=1 is answered once
// its records are stored; any other acks value is answered
// INVALID_REQUIRED_ACKS, as Kafka does, and stores nothing; an acks=0
// produce that fails closes the connection.
func TestProduceAcks(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	createTopic(t, a.Addr, "acks", 1, nil)
	c := dialRaw(t, a.Addr)
	frame := func(req kmsg.Request, corr int32) []byte { return frames([]kmsg.Request{req}, corr) }
	apiVersions := kmsg.NewPtrApiVersionsRequest() // v0

	// Two acks=0 produces, each followed by an ApiVersions, all in one
	// write: only the ApiVersions are answered, in order.
	var out []byte
	out = append(out, frame(ackedProduce(t, "acks", 0, "z0", "z1", "z2"), 1)...)
	out = append(out, frame(apiVersions, 2)...)
	out = append(out, frame(ackedProduce(t, "acks", 0, "z3", "z4", "z5"), 3)...)
	out = append(out, frame(apiVersions, 4)...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int32{2, 4} {
		corr, body := c.recv(t)
		if corr != want {
			t.Fatalf("answer with correlation id %d where the ApiVersions' %d was next: an acks=0 produce was answered", corr, want)
		}
		resp := answer(t, apiVersions, body).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
			t.Fatalf("ApiVersions after an acks=0 produce: %v, %d keys", kerr.ErrorForCode(resp.ErrorCode), len(resp.ApiKeys))
		}
	}
	// Nothing acknowledges them: wait for the records to show up.
	harness.Eventually(t, time.Minute, func() bool { return endOffsets(t, a.Addr, "acks")[0] == 6 },
		"the acks=0 records never reached the high watermark 6")

	// acks=1 is answered, once its records are stored.
	ack1 := ackedProduce(t, "acks", 1, "o6", "o7", "o8")
	if _, err := c.Write(frame(ack1, 5)); err != nil {
		t.Fatal(err)
	}
	corr, body := c.recv(t)
	p := answer(t, ack1, body).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if corr != 5 || p.ErrorCode != 0 || p.BaseOffset != 6 {
		t.Fatalf("acks=1: correlation id %d, %v, base offset %d; want 5, no error, 6", corr, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if ends := endOffsets(t, a.Addr, "acks"); ends[0] != 9 {
		t.Fatalf("high watermark %d once acks=1 was answered, want 9", ends[0])
	}

	// Invalid acks: INVALID_REQUIRED_ACKS, nothing stored. The acks=-1
	// produce after them on the same connection lands right after the
	// acks=1 records, so neither refused one was appended before it.
	for i, acks := range []int16{2, -2, 3} {
		req := ackedProduce(t, "acks", acks, "bad")
		if _, err := c.Write(frame(req, int32(6+i))); err != nil {
			t.Fatal(err)
		}
		corr, body := c.recv(t)
		p := answer(t, req, body).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		if corr != int32(6+i) || p.ErrorCode != kerr.InvalidRequiredAcks.Code {
			t.Errorf("acks=%d: correlation id %d, %v; want %d and INVALID_REQUIRED_ACKS", acks, corr, kerr.ErrorForCode(p.ErrorCode), 6+i)
		}
	}
	all := ackedProduce(t, "acks", -1, "a9")
	if _, err := c.Write(frame(all, 9)); err != nil {
		t.Fatal(err)
	}
	_, body = c.recv(t)
	if p := answer(t, all, body).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 9 {
		t.Fatalf("acks=-1 after the refused produces: %v, base offset %d; want 9", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if t.Failed() {
		return
	}
	// An acks=0 produce that fails closes the connection, as in Kafka,
	// once the answers before it are written: the producer's only sign.
	// The good partition of the same request is still stored.
	bad := dialRaw(t, a.Addr)
	failing := ackedProduce(t, "acks", 0, "b10")
	failing.Topics = append(failing.Topics, ackedProduce(t, "no-such-topic", 0, "lost").Topics...)
	out = append(frame(apiVersions, 20), frame(failing, 21)...)
	if _, err := bad.Write(append(out, frame(apiVersions, 22)...)); err != nil {
		t.Fatal(err)
	}
	if corr, _ := bad.recv(t); corr != 20 {
		t.Fatalf("answer %d before the failing acks=0 produce, want 20", corr)
	}
	bad.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := bad.r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after a failing acks=0 produce: read %d bytes, %v; want the connection closed", n, err)
	}
	harness.Eventually(t, time.Minute, func() bool { return endOffsets(t, a.Addr, "acks")[0] == 11 },
		"the good partition of the failing acks=0 produce was not stored")

	got := consumeAll(t, a.Addr, "acks", map[int32]int64{0: 11})[0]
	for i, r := range got {
		want := fmt.Sprintf("%c%d", "zzzzzzoooab"[i], i)
		if string(r.Value) != want {
			t.Errorf("offset %d: %q, want %q", i, r.Value, want)
		}
	}
}
