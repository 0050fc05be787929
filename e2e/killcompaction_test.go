package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

// unreferenced counts the seg/ and cmp/ objects in the bucket that no
// chunk refers to and that are not released: the orphans.
func unreferenced(t *testing.T, b harness.Backend) int {
	t.Helper()
	n, err := unreferencedWithin(t, b, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// unreferencedWithin is unreferenced with a timeout: MinIO holds a read of
// an object while a PUT to it is in flight, so reading the log can block
// while its writer is frozen mid-append.
func unreferencedWithin(t *testing.T, b harness.Backend, d time.Duration) (n int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	keys := append(b.List(t, "seg/"), b.List(t, "cmp/")...)
	l, err := meta.Open(ctx, b.Open(t), meta.Options{WriterID: "probe"})
	if err != nil {
		return 0, err
	}
	l.View(func(st *meta.State) {
		for _, k := range keys {
			if st.ObjectRefs(k) == 0 && !st.IsReleased(k) {
				n++
			}
		}
	})
	return n, nil
}

// putHolder stands between an agent and MinIO and passes everything
// through, except that the first PUT whose path holds match is stored and
// then never answered: the object is in the bucket, and its writer is
// still waiting to hear so when the test kills it. landed is closed once
// that object is stored.
type putHolder struct {
	srv    *httptest.Server
	match  string
	once   sync.Once
	landed chan struct{}
}

func newPutHolder(t *testing.T, target, match string) *putHolder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &putHolder{match: match, landed: make(chan struct{})}
	// The Host header stays the proxy's, which the agent signed.
	pass := httputil.NewSingleHostReverseProxy(u)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held := false
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, match) {
			h.once.Do(func() { held = true })
		}
		if !held {
			pass.ServeHTTP(w, r)
			return
		}
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.RequestURI = u.Scheme, u.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			close(h.landed)
		}
		<-r.Context().Done() // the writer dies waiting
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// TestKillMidCompaction: an agent is killed while a compaction pass is
// writing cmp/ objects. After a restart no record is lost or duplicated,
// the next passes finish the job, and any output whose ReplaceChunks never
// applied is swept as an orphan after the grace period.
func TestKillMidCompaction(t *testing.T) {
	const partitions, rounds = 50, 30
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--compaction-interval=0")
	createTopic(t, a.Addr, "kc", partitions, nil)
	cl := client(t, a.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	produceSmallObjects(ctx, t, cl, "kc", partitions, rounds, 1)
	total := partitions * rounds
	ends := endOffsets(t, a.Addr, "kc")
	before := consumeKeyed(t, a.Addr, "kc", total)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	// Compact through a proxy that stores the first output and never
	// answers its PUT, and kill -9 the agent there: between the output's
	// PUT and its ReplaceChunks.
	m := harness.StartMinIO(t)
	holder := newPutHolder(t, m.Endpoint, "/cmp/")
	proxied := strings.Replace(b.URL, url.QueryEscape(m.Endpoint), url.QueryEscape(holder.srv.URL), 1)
	a = harness.StartAgent(t, harness.AgentConfig{Store: proxied, Env: b.Env, FlushInterval: 5 * time.Millisecond,
		Args: []string{"--compaction-interval=100ms", "--retention-check-interval=100ms", "--collect-grace=1h", "--orphan-grace=1h", "--job-lease=2s"}})
	select {
	case <-holder.landed:
	case <-ctx.Done():
		t.Fatal("no compaction output was written")
	}
	a.Kill()
	if n := unreferenced(t, b); n != 1 {
		t.Fatalf("%d unreferenced objects after the kill, want the one output whose replace never landed", n)
	}

	// The restarted agent has a new writer id: it waits for the killed
	// one's compaction lease to run out, so the lease is short.
	a = startAgent(t, b, 5*time.Millisecond, "--compaction-interval=100ms", "--retention-check-interval=100ms", "--collect-grace=1s", "--orphan-grace=5s", "--write-timeout=2s", "--job-lease=2s")
	harness.Eventually(t, 2*time.Minute, func() bool {
		return len(b.List(t, "seg/")) == 0 && len(b.List(t, "cmp/")) >= partitions && unreferenced(t, b) == 0
	}, "compaction not finished or orphans left")
	if got := endOffsetsSeen(t, a.Addr, "kc"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("end offsets %v, want %v", got, ends)
	}
	after := consumeKeyed(t, a.Addr, "kc", total)
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("record %s: %q after, %q before", k, after[k], v)
		}
	}
}
