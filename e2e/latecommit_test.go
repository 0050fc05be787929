package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/fleet"
)

// commitHolder stands between an agent and MinIO and passes everything
// through, except that the first metadata-log PUT after the agent's first
// segment upload (the segment's commit) is held until gone() says the
// segment has left the bucket: a commit that lands after the orphan sweep
// judged its segment, as one from an agent paused or partitioned past
// every bound would.
type commitHolder struct {
	srv      *httptest.Server
	mu       sync.Mutex
	segment  string        // the first segment's key, once uploaded
	held     bool          // a commit PUT has been held
	released chan struct{} // closed when the held PUT goes on
}

func newCommitHolder(t *testing.T, target string, gone func(key string) bool) *commitHolder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &commitHolder{released: make(chan struct{})}
	pass := httputil.NewSingleHostReverseProxy(u)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			pass.ServeHTTP(w, r)
			return
		}
		hold := false
		h.mu.Lock()
		switch {
		case h.segment == "" && strings.Contains(r.URL.Path, "/seg/"):
			h.segment = r.URL.Path[strings.Index(r.URL.Path, "/seg/")+1:]
		case h.segment != "" && !h.held && strings.Contains(r.URL.Path, "/meta/log/"):
			h.held, hold = true, true
		}
		seg := h.segment
		h.mu.Unlock()
		if hold {
			deadline := time.Now().Add(time.Minute)
			for !gone(seg) && time.Now().Before(deadline) && r.Context().Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			close(h.released)
		}
		pass.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// TestLateCommitLosesToSweep: a segment's commit reaches the log only
// after another agent's orphan sweep has judged the segment an orphan and
// deleted it. The log decides between them: the sweep condemned the object
// first, so the late commit is refused and its producer, told to retry,
// writes the records again. Every acknowledged record stays readable.
func TestLateCommitLosesToSweep(t *testing.T) {
	b := harness.MinIOBackend(t)
	m := harness.StartMinIO(t)
	startSweeper := func() *harness.Agent {
		return startAgent(t, b, 5*time.Millisecond, "--orphan-grace=3s", "--write-timeout=2s",
			"--retention-check-interval=200ms", "--compaction-interval=0", "--cleaner-backoff=0")
	}
	sweeper := startSweeper()

	gone := func(key string) bool { return !slices.Contains(b.List(t, "seg/"), key) }
	var holder *commitHolder
	var writer *harness.Agent
	for try := 0; writer == nil; try++ {
		// The sweep runs on the agent that rendezvous hashing picks for
		// "collect"; the writer runs no jobs, so it must be the other.
		holder = newCommitHolder(t, m.Endpoint, gone)
		proxied := strings.Replace(b.URL, url.QueryEscape(m.Endpoint), url.QueryEscape(holder.srv.URL), 1)
		a := harness.StartAgent(t, harness.AgentConfig{Store: proxied, Env: b.Env, FlushInterval: 5 * time.Millisecond,
			// It appends its own commits (no sequencer), so that the
			// holder between it and the bucket can delay one; a
			// sequencer never writes an agent's entry after its
			// deadline (meta/relay.go).
			Args: []string{"--jobs=false", "--write-timeout=1m", "--meta-sequencer=false"}})
		if fleet.Rendezvous("collect", []string{sweeper.Addr, a.Addr}) == sweeper.Addr {
			writer = a
			continue
		}
		// Stopped, not killed: it leaves the live set at once, so the
		// next pair is two agents. A sweeper whose address loses to most
		// others is replaced too.
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		if try%4 == 3 {
			if err := sweeper.Stop(); err != nil {
				t.Fatal(err)
			}
			sweeper = startSweeper()
		}
		if try == 40 {
			t.Fatal("no pair of addresses hashed the collection job to the sweeper")
		}
	}

	// The producer goes to the partition's leader, which must be the
	// writer: topic ids are random, so a few topics give one it leads.
	late := ""
	for i := 0; late == ""; i++ {
		name := fmt.Sprint("late-", i)
		createTopic(t, sweeper.Addr, name, 1, nil)
		if fleet.Rendezvous(fleet.PartitionKey(topicID(t, sweeper.Addr, name), 0), []string{sweeper.Addr, writer.Addr}) == writer.Addr {
			late = name
		} else if i == 40 {
			t.Fatal("no topic's partition hashed to the writer")
		}
	}
	harness.Eventually(t, time.Minute, func() bool { return sees(writer.Addr, late, 2) }, "the writer never saw %s and the sweeper", late)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, writer.Addr, kgo.DefaultProduceTopic(late), kgo.ProduceRequestTimeout(time.Minute))
	res := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("acknowledged")})
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	select {
	case <-holder.released:
	default:
		t.Fatal("the commit was never held: the race did not happen")
	}
	holder.mu.Lock()
	first := holder.segment
	holder.mu.Unlock()
	if !gone(first) {
		t.Fatalf("the sweep never deleted %s", first)
	}
	// Read from the bucket, not from the writer's cache of what it wrote:
	// only the sweeper serves, freshly started.
	r := res[0].Record
	writer.Kill()
	sweeper.Restart(t)
	got := consumeAll(t, sweeper.Addr, late, map[int32]int64{0: r.Offset + 1})
	if v := string(got[0][r.Offset].Value); v != "acknowledged" {
		t.Fatalf("offset %d holds %q", r.Offset, v)
	}
}
