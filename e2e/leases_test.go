package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/meta"
)

// uncompacted counts the partitions of topics that still hold two
// consecutive chunks of ingestion objects, or none of a compacted one.
func uncompacted(t *testing.T, b harness.Backend, topics []string) int {
	t.Helper()
	n := 0
	viewBucketState(t, b, func(st *meta.State) {
		for _, name := range topics {
			for _, p := range st.Topic(name).Partitions {
				runs, compacted, prevSeg := false, false, false
				for _, c := range p.Chunks {
					seg := strings.HasPrefix(c.Object, "seg/")
					runs = runs || seg && prevSeg
					compacted = compacted || strings.HasPrefix(c.Object, "cmp/")
					prevSeg = seg
				}
				if runs || !compacted {
					n++
				}
			}
		}
	})
	return n
}

// TestJobLeasesTwoAgents: two agents with jobs on share one bucket and
// compact topics each of them owns. Read back from the metadata log, every
// job's leases went to one agent at a time, each compaction ran under its
// lease and was accepted, the bucket holds exactly one compacted object
// per accepted replacement (no job ran twice), and both agents did work.
func TestJobLeasesTwoAgents(t *testing.T) {
	const perAgent, partitions, rounds = 3, 4, 20
	b := harness.MinIOBackend(t)
	args := []string{"--compaction-interval=200ms", "--retention-check-interval=200ms",
		"--collect-grace=1h", "--meta-retention=0"}
	agents := []*harness.Agent{startAgent(t, b, 5*time.Millisecond, args...), startAgent(t, b, 5*time.Millisecond, args...)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Both agents see each other before there is any work, so each owns
	// the jobs rendezvous gives it from the start.
	for _, a := range agents {
		adm := kadm.NewClient(client(t, a.Addr))
		harness.Eventually(t, 30*time.Second, func() bool {
			bs, err := adm.ListBrokers(ctx)
			return err == nil && len(bs) == 2
		}, "%s does not see both agents", a)
	}
	addrs := []string{agents[0].Addr, agents[1].Addr}
	var names []string
	owned := map[string]int{}
	for i := 0; len(names) < 2*perAgent; i++ {
		name := fmt.Sprint("lease-", i)
		if o := fleet.Rendezvous("compact/"+name, addrs); owned[o] < perAgent {
			owned[o]++
			names = append(names, name)
			createTopic(t, agents[0].Addr, name, partitions, nil)
		}
	}
	// Many small ingestion objects, each with a batch of every partition
	// of every topic, written through both agents.
	clients := []*kgo.Client{client(t, agents[0].Addr, kgo.RecordPartitioner(kgo.ManualPartitioner())),
		client(t, agents[1].Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))}
	for r := range rounds {
		var recs []*kgo.Record
		for _, n := range names {
			for p := range int32(partitions) {
				recs = append(recs, &kgo.Record{Topic: n, Partition: p, Value: fmt.Appendf(nil, "r%d", r)})
			}
		}
		if err := clients[r%2].ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	harness.Eventually(t, 2*time.Minute, func() bool { return uncompacted(t, b, names) == 0 },
		"topics not compacted")
	var metric []float64
	for _, a := range agents {
		m := scrape(t, a.HTTPAddr)
		metric = append(metric, m[`barge_job_leases_total{outcome="granted"}`])
		// The replaced objects are released and, with an hour's
		// --collect-grace, still in the bucket: every agent's gauge
		// (the shared state's count) shows them.
		objs := len(b.List(t, "seg/")) + len(b.List(t, "cmp/"))
		if n := m["barge_released_objects"]; n == 0 || n > float64(objs) {
			t.Errorf("%s: barge_released_objects %v, want some of the %d seg/ and cmp/ objects", a, n, objs)
		}
	}
	// Stopped, the agents release their leases and write no more entries.
	for _, a := range agents {
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	h := harness.ReadLeaseHistory(t, b.Open(t))
	cmp := b.List(t, "cmp/")
	t.Logf("%d accepted replaces, %d cmp/ objects, leases granted per job and writer %v, metric %v",
		h.Replaces, len(cmp), h.Grants, metric)
	if h.Replaces == 0 || len(cmp) != h.Replaces {
		t.Fatalf("%d cmp/ objects for %d accepted replaces: a compaction ran twice or its output was refused", len(cmp), h.Replaces)
	}
	byAddr := map[string]int{}
	for job, ws := range h.Grants {
		for w, n := range ws {
			if strings.HasPrefix(job, "compact/") {
				byAddr[h.Addrs[w]] += n
			}
		}
	}
	for i, a := range agents {
		if byAddr[a.Addr] == 0 || metric[i] == 0 {
			t.Errorf("%s held no compaction lease (log: %v, metric: %v)", a, byAddr, metric)
		}
	}
	for _, n := range names {
		if len(h.Grants["compact/"+n]) == 0 {
			t.Errorf("compact/%s was never leased", n)
		}
	}
	// A clean shutdown releases what it holds: a restarted agent, with a
	// new writer id, need not wait for the leases to run out.
	// (A released sequencer lease stays, lapsed, so that its holder is
	// not picked again while it drains: meta/leases.go.)
	for job := range h.Grants {
		if l, ok := h.Final.Lease(job); ok && (job != meta.SequencerJob || h.Open[job]) {
			t.Errorf("%s still leased after both agents stopped: %+v", job, l)
		}
	}
}
