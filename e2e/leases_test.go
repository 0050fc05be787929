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
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/protocol"
)

// leaseHistory is what the whole metadata log says about the jobs.
type leaseHistory struct {
	replaces int                       // accepted ReplaceChunks
	grants   map[string]map[string]int // job → writer → leases granted (renewals not counted)
	addrs    map[string]string         // writer → the address it heartbeats
	final    *meta.State
}

// readLeaseHistory reads every entry of the bucket's metadata log (none
// may have been trimmed) and folds it, failing the test where the log
// shows a job lease granted to one writer while another held it, a
// ReplaceChunks appended without its topic's "compact/<topic>" lease, or
// one the state rejected.
func readLeaseHistory(t *testing.T, b harness.Backend) leaseHistory {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := b.Open(t)
	infos, err := store.List(ctx, "meta/log/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	type span struct {
		holder      string
		from, until int64
		open        bool // not released yet
	}
	spans := map[string][]*span{}
	h := leaseHistory{grants: map[string]map[string]int{}, addrs: map[string]string{}, final: meta.NewState()}
	st := h.final
	for i, info := range infos {
		if info.Key != meta.EntryKey(uint64(i+1)) {
			t.Fatalf("log entry %d is %s: the log was trimmed", i+1, info.Key)
		}
		data, err := store.Get(ctx, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		en, err := meta.DecodeEntry(data)
		if err != nil {
			t.Fatalf("%s: %v", info.Key, err)
		}
		for _, op := range en.Ops {
			if rc, ok := op.(meta.ReplaceChunks); ok {
				job := "compact/" + st.TopicByID(rc.Topic).Name
				if l, ok := st.Lease(job); !ok || l.Holder != en.Writer || !l.Held(en.TimeMs) {
					t.Errorf("%s: %s replaced chunks of %s without its lease (%+v)", info.Key, en.Writer, job, l)
				}
			}
		}
		res := st.Apply(uint64(i+1), en)
		for j, op := range en.Ops {
			switch op := op.(type) {
			case meta.AgentHeartbeat:
				h.addrs[en.Writer] = op.Addr
			case meta.ReplaceChunks:
				if res[j].Err != nil {
					t.Errorf("%s: ReplaceChunks by %s: %v", info.Key, en.Writer, res[j].Err)
				} else {
					h.replaces++
				}
			case meta.AcquireLease:
				if res[j].Err != nil {
					continue
				}
				ss := spans[op.Job]
				if n := len(ss); n > 0 && ss[n-1].holder == en.Writer && ss[n-1].open && en.TimeMs < ss[n-1].until {
					ss[n-1].until = en.TimeMs + op.DurationMs // a renewal
					continue
				}
				spans[op.Job] = append(ss, &span{holder: en.Writer, from: en.TimeMs, until: en.TimeMs + op.DurationMs, open: true})
				if h.grants[op.Job] == nil {
					h.grants[op.Job] = map[string]int{}
				}
				h.grants[op.Job][en.Writer]++
			case meta.ReleaseLease:
				if ss := spans[op.Job]; len(ss) > 0 && ss[len(ss)-1].holder == en.Writer && ss[len(ss)-1].open {
					ss[len(ss)-1].until = min(ss[len(ss)-1].until, en.TimeMs)
					ss[len(ss)-1].open = false
				}
			}
		}
	}
	for job, ss := range spans {
		for i := 1; i < len(ss); i++ {
			if prev, cur := ss[i-1], ss[i]; prev.holder != cur.holder && cur.from < prev.until {
				t.Errorf("%s: granted to %s at %d while %s held it until %d", job, cur.holder, cur.from, prev.holder, prev.until)
			}
		}
	}
	return h
}

// uncompacted counts the partitions of topics that still hold two
// consecutive chunks of ingestion objects, or none of a compacted one.
func uncompacted(t *testing.T, b harness.Backend, topics []string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := meta.Open(ctx, b.Open(t), meta.Options{WriterID: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	l.View(func(st *meta.State) {
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
		if o := protocol.Rendezvous("compact/"+name, addrs); owned[o] < perAgent {
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
		metric = append(metric, scrape(t, a.HTTPAddr)[`barge_job_leases_total{outcome="granted"}`])
	}
	// Stopped, the agents release their leases and write no more entries.
	for _, a := range agents {
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
	}

	h := readLeaseHistory(t, b)
	cmp := b.List(t, "cmp/")
	t.Logf("%d accepted replaces, %d cmp/ objects, leases granted per job and writer %v, metric %v",
		h.replaces, len(cmp), h.grants, metric)
	if h.replaces == 0 || len(cmp) != h.replaces {
		t.Fatalf("%d cmp/ objects for %d accepted replaces: a compaction ran twice or its output was refused", len(cmp), h.replaces)
	}
	byAddr := map[string]int{}
	for job, ws := range h.grants {
		for w, n := range ws {
			if strings.HasPrefix(job, "compact/") {
				byAddr[h.addrs[w]] += n
			}
		}
	}
	for i, a := range agents {
		if byAddr[a.Addr] == 0 || metric[i] == 0 {
			t.Errorf("%s held no compaction lease (log: %v, metric: %v)", a, byAddr, metric)
		}
	}
	for _, n := range names {
		if len(h.grants["compact/"+n]) == 0 {
			t.Errorf("compact/%s was never leased", n)
		}
	}
	// A clean shutdown releases what it holds: a restarted agent, with a
	// new writer id, need not wait for the leases to run out.
	for job := range h.grants {
		if l, ok := h.final.Lease(job); ok {
			t.Errorf("%s still leased after both agents stopped: %+v", job, l)
		}
	}
}
