package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestSIGTERMFlushesAndAnswers: with a flush interval far longer than the
// test, a produce can only be answered by the drain on SIGTERM; it must be
// answered with success, the agent must exit 0, and the record must be
// there after a restart.
func TestSIGTERMFlushesAndAnswers(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, time.Hour)
			createTopic(t, a.Addr, "drain", 1, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			pcl := client(t, a.Addr, kgo.DefaultProduceTopic("drain"), kgo.RecordRetries(0))
			acked := make(chan *kgo.Record, 1)
			errs := make(chan error, 1)
			pcl.Produce(ctx, &kgo.Record{Value: []byte("buffered")}, func(r *kgo.Record, err error) {
				if err != nil {
					errs <- err
					return
				}
				acked <- r
			})
			harness.Eventually(t, time.Minute, func() bool {
				return scrape(t, a.HTTPAddr)["barge_produce_records_total"] == 1
			}, "the agent never buffered the record")
			select {
			case r := <-acked:
				t.Fatalf("acknowledged at offset %d before any flush", r.Offset)
			default:
			}
			if err := a.Stop(); err != nil {
				t.Fatalf("agent exit after SIGTERM: %v", err)
			}
			select {
			case r := <-acked:
				if r.Offset != 0 {
					t.Fatalf("acknowledged at offset %d, want 0", r.Offset)
				}
			case err := <-errs:
				t.Fatalf("produce failed during drain: %v", err)
			case <-ctx.Done():
				t.Fatal("produce never answered")
			}

			a.Restart(t)
			ccl := client(t, a.Addr, kgo.ConsumeTopics("drain"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			fs := ccl.PollFetches(ctx)
			if ctx.Err() != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "buffered" {
				t.Fatalf("after restart: %d records, ctx %v", fs.NumRecords(), ctx.Err())
			}
		})
	}
}

// TestDrainTimeout: SIGTERM makes /readyz answer 503 at once (the load
// balancer stops sending connections) while the agent drains, and
// --drain-timeout bounds the whole drain. Here the bucket hangs, so the
// buffered record can never be stored: the agent gives up on it at the
// timeout, exits with an error, and never acknowledges the record.
func TestDrainTimeout(t *testing.T) {
	const timeout = 4 * time.Second
	b := harness.MinIOBackend(t)
	m := harness.StartMinIO(t)
	proxy := newBucketProxy(t, strings.TrimPrefix(m.Endpoint, "http://"))
	storeURL := strings.Replace(b.URL, url.QueryEscape(m.Endpoint), url.QueryEscape("http://"+proxy.ln.Addr().String()), 1)
	a := harness.StartAgent(t, harness.AgentConfig{Store: storeURL, Env: b.Env, FlushInterval: time.Hour,
		Args: []string{"--drain-timeout", timeout.String()}})
	createTopic(t, a.Addr, "drain-timeout", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pcl := client(t, a.Addr, kgo.DefaultProduceTopic("drain-timeout"), kgo.RecordRetries(0))
	answered := make(chan error, 1)
	pcl.Produce(ctx, &kgo.Record{Value: []byte("buffered")}, func(_ *kgo.Record, err error) { answered <- err })
	harness.Eventually(t, time.Minute, func() bool {
		return scrape(t, a.HTTPAddr)["barge_produce_records_total"] == 1
	}, "the agent never buffered the record")

	proxy.stall()
	readyz := func() int {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + a.HTTPAddr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz answered %d before SIGTERM", code)
	}
	sent := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop() }()
	// Not ready from the first moment of the drain, while it still
	// answers: the health check sees 503, not a closed port.
	var code int
	for range 50 {
		if code = readyz(); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz answered %d after SIGTERM, want 503", code)
	}
	if took := time.Since(sent); took > time.Second {
		t.Fatalf("/readyz turned 503 only %v after SIGTERM", took)
	}
	for time.Since(sent) < timeout/2 {
		if code := readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d %v into the drain, want 503", code, time.Since(sent).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}

	err := <-stopped
	took := time.Since(sent)
	if err == nil || a.ExitCode() != 1 {
		t.Errorf("exit after a timed-out drain: %v (code %d), want exit code 1", err, a.ExitCode())
	}
	// It waited for the bucket until the answering phase ended (the
	// timeout less its reserve of a fifth), and no longer than the timeout.
	if took < timeout*4/5-200*time.Millisecond || took > timeout+2*time.Second {
		t.Errorf("the drain took %v with --drain-timeout %v", took.Round(time.Millisecond), timeout)
	}
	if log := a.Log(); !strings.Contains(log, "drain timeout") {
		t.Errorf("the agent's log does not say the drain timed out:\n%s", log)
	}
	select {
	case err := <-answered:
		if err == nil {
			t.Fatal("the record was acknowledged though the bucket never stored it")
		}
	case <-time.After(3 * time.Second):
		// Not answered yet: the connection went with the agent.
	}
}
