package e2e

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// bucketProxy stands between an agent and MinIO so a test can make the
// bucket vanish (every connection dropped and refused) and come back.
type bucketProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	down    bool
	stalled bool
	conns   map[net.Conn]bool
}

func newBucketProxy(t *testing.T, target string) *bucketProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &bucketProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *bucketProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		if p.stalled { // held open, never answered
			p.conns[c] = true
			p.mu.Unlock()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// cut drops every connection and refuses new ones until restore.
func (p *bucketProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *bucketProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.stalled = false, false
}

// stall drops every connection and, until restore, accepts new ones but
// never answers on them: a bucket that hangs rather than refuses.
func (p *bucketProxy) stall() {
	p.cut()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.stalled = false, true
}

// TestBucketOutage: while the bucket is unreachable, produce gets a
// retriable Kafka error after bounded retries and acknowledges nothing,
// reads of cached data keep working, and once the bucket is back the agent
// recovers by itself with every acknowledged record in place.
func TestBucketOutage(t *testing.T) {
	b := harness.MinIOBackend(t)
	m := harness.StartMinIO(t)
	minioHost := strings.TrimPrefix(m.Endpoint, "http://")
	proxy := newBucketProxy(t, minioHost)
	storeURL := strings.Replace(b.URL, url.QueryEscape(m.Endpoint), url.QueryEscape("http://"+proxy.ln.Addr().String()), 1)
	a := harness.StartAgent(t, harness.AgentConfig{Store: storeURL, Env: b.Env, FlushInterval: 20 * time.Millisecond})
	createTopic(t, a.Addr, "outage", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := client(t, a.Addr)
	for i := 0; i < 5; i++ {
		if code := produceRaw(ctx, t, cl, "outage", buildBatch(t, 10, 10)); code != 0 {
			t.Fatalf("produce before the outage: %v", kerr.ErrorForCode(code))
		}
	}

	if n := scrape(t, a.HTTPAddr)["barge_flush_failures_total"]; n != 0 {
		t.Fatalf("barge_flush_failures_total %v before the outage", n)
	}
	proxy.cut()
	code := produceRaw(ctx, t, cl, "outage", buildBatch(t, 10, 10))
	if code != kerr.KafkaStorageError.Code {
		t.Fatalf("produce during the outage: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	if !kerr.IsRetriable(kerr.ErrorForCode(code)) {
		t.Fatalf("%v is not retriable", kerr.ErrorForCode(code))
	}
	// Committed data is served from the cache while the bucket is away.
	p := fetchRaw(ctx, t, cl, "outage", 0, 0)
	if got := batchesIn(t, p.RecordBatches); p.ErrorCode != 0 || len(got) != 5 || p.HighWatermark != 50 {
		t.Fatalf("fetch during the outage: %v, %d batches, hwm %d", kerr.ErrorForCode(p.ErrorCode), len(got), p.HighWatermark)
	}

	// The segment holding it failed (its upload or commit), counted
	// before its producer was answered.
	if n := scrape(t, a.HTTPAddr)["barge_flush_failures_total"]; n < 1 {
		t.Fatalf("barge_flush_failures_total %v after a produce failed on the outage", n)
	}
	proxy.restore()
	harness.Eventually(t, time.Minute, func() bool {
		return produceRaw(ctx, t, cl, "outage", buildBatch(t, 10, 10)) == 0
	}, "produce never recovered after the bucket came back")
	if ends := endOffsets(t, a.Addr, "outage"); ends[0] != 60 {
		t.Fatalf("high watermark %d after recovery, want 60 (the failed batch was not acknowledged, so not stored)", ends[0])
	}
	// A consumer reads every acknowledged record, offsets contiguous.
	ccl := client(t, a.Addr, kgo.ConsumeTopics("outage"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := int64(0)
	for next < 60 {
		fs := ccl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 60", next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next {
				t.Fatalf("offset %d, want %d", r.Offset, next)
			}
			next++
		})
	}
}
