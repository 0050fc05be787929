package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestMetricsAndHealth: /metrics shows produce and fetch traffic, flushes,
// bucket requests by kind with latency, and cache hits and misses;
// /healthz and /readyz answer.
func TestMetricsAndHealth(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { checkMetricsAndHealth(t, b) })
	}
}

func checkMetricsAndHealth(t *testing.T, b harness.Backend) {
	a := startAgent(t, b, 0)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + a.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createTopic(t, a.Addr, "m", 2, nil)
	pcl := client(t, a.Addr, kgo.DefaultProduceTopic("m"))
	for i := 0; i < 10; i++ {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte("metric me")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ccl := client(t, a.Addr, kgo.ConsumeTopics("m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for n := 0; n < 10; {
		fs := ccl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		n += fs.NumRecords()
	}

	m := scrape(t, a.HTTPAddr)
	for _, name := range []string{
		"barge_produce_bytes_total",
		"barge_produce_records_total",
		"barge_fetch_bytes_total",
		`barge_requests_total{api="Produce"}`,
		`barge_requests_total{api="Fetch"}`,
		`barge_request_seconds_count{api="Produce"}`,
		"barge_flush_bytes_count",
		"barge_flush_bytes_sum",
		"barge_flush_seconds_count",
		"barge_flush_seconds_sum",
		`barge_objstore_requests_total{op="put",result="ok"}`,
		`barge_objstore_requests_total{op="put_if_absent",result="ok"}`,
		`barge_objstore_request_seconds_count{op="put"}`,
		`barge_objstore_bytes_total{op="put"}`,
		"barge_cache_hits_total",
	} {
		if m[name] <= 0 {
			t.Errorf("metric %s = %v, want > 0", name, m[name])
		}
	}
	if _, ok := m["barge_cache_misses_total"]; !ok {
		t.Errorf("metric barge_cache_misses_total missing")
	}
	if m["barge_produce_records_total"] != 10 {
		t.Errorf("barge_produce_records_total = %v, want 10", m["barge_produce_records_total"])
	}
	// Each ProduceSync is one batch, acknowledged before the next is
	// sent: every segment holds one.
	if n, sum := m["barge_flush_batches_count"], m["barge_flush_batches_sum"]; n != 10 || sum != 10 {
		t.Errorf("barge_flush_batches count %v sum %v, want 10 segments of one batch", n, sum)
	}
	if n := m["barge_flush_failures_total"]; n != 0 {
		t.Errorf("barge_flush_failures_total = %v with the bucket up, want 0", n)
	}
}
