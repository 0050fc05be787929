package e2e

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// TestProduceOldVersions: the README's note under Supported APIs. ApiVersions
// lists Produce from v0, as Kafka 4 does (KAFKA-18659), at every ApiVersions
// version; a Produce v0, v1 or v2 is answered UNSUPPORTED_VERSION with its
// own correlation id, stores nothing and leaves the connection usable, and
// v3 on the same connection is served.
func TestProduceOldVersions(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createTopic(t, a.Addr, "old", 1, nil)

	produceRange := func(keys []kmsg.ApiVersionsResponseApiKey) (int16, int16, bool) {
		for _, k := range keys {
			if k.ApiKey == kmsg.Produce.Int16() {
				return k.MinVersion, k.MaxVersion, true
			}
		}
		return 0, 0, false
	}
	// ApiVersions v0 on a raw connection, v4 (flexible) through franz-go.
	c := dialRaw(t, a.Addr)
	v0 := kmsg.NewPtrApiVersionsRequest()
	if _, err := c.Write(frames([]kmsg.Request{v0}, 1)); err != nil {
		t.Fatal(err)
	}
	_, body := c.recv(t)
	raw := answer(t, v0, body).(*kmsg.ApiVersionsResponse)
	latest, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, client(t, a.Addr))
	if err != nil {
		t.Fatal(err)
	}
	for name, keys := range map[string][]kmsg.ApiVersionsResponseApiKey{"v0": raw.ApiKeys, "v4": latest.ApiKeys} {
		if lo, hi, ok := produceRange(keys); !ok || lo != 0 || hi != 11 {
			t.Errorf("ApiVersions %s lists Produce %d–%d (listed: %v), want 0–11", name, lo, hi, ok)
		}
	}

	for v := int16(0); v <= 2; v++ {
		req := produceRequest("old", buildBatch(t, 10))
		req.Version = v
		corr := int32(10 + v)
		if _, err := c.Write(frames([]kmsg.Request{req}, corr)); err != nil {
			t.Fatal(err)
		}
		got, body := c.recv(t)
		if got != corr || len(body) != 2 || int16(binary.BigEndian.Uint16(body)) != kerr.UnsupportedVersion.Code {
			t.Errorf("Produce v%d: correlation id %d, body %x; want %d and UNSUPPORTED_VERSION (%04x)", v, got, body, corr, kerr.UnsupportedVersion.Code)
		}
	}
	v3 := produceRequest("old", buildBatch(t, 10))
	v3.Version = 3
	if _, err := c.Write(frames([]kmsg.Request{v3}, 20)); err != nil {
		t.Fatal(err)
	}
	corr, body := c.recv(t)
	p := answer(t, v3, body).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if corr != 20 || p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("Produce v3 after v0–v2: correlation id %d, %v, base offset %d; want 20, no error, 0 (nothing stored before it)",
			corr, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if ends := endOffsets(t, a.Addr, "old"); ends[0] != 1 {
		t.Fatalf("high watermark %d, want 1 (only the v3 record)", ends[0])
	}
}
