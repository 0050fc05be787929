package e2e

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// Issue 13, acceptance 2: the metadata log's sequencer (meta/sequencer.go)
// on MinIO, under produce through HAProxy to three agents.

// sequencerAudit is what replaying the whole log says about sequencing.
type sequencerAudit struct {
	state       *meta.State
	contributed int // appends that landed inside a sequencer's entry
	direct      int // appends by agents other than the sequencer of the time, by themselves
	duplicates  int // appends that landed twice, applied once
	holders     []string
}

// auditSequencing replays store's log and fails the test if an append
// (writer and append number) or a segment's commit was applied twice.
func auditSequencing(t *testing.T, store objstore.Store) sequencerAudit {
	t.Helper()
	au := sequencerAudit{state: meta.NewState()}
	applied := map[string]string{} // writer/num → slot
	objects := map[string]string{} // committed object → slot
	for i, en := range harness.LogEntries(t, store) {
		key := meta.EntryKey(uint64(i + 1))
		seq, sequenced := au.state.Sequencer(en.TimeMs)
		res := au.state.Apply(uint64(i+1), en)
		for k, ap := range meta.Appends(en, res) {
			if len(ap.Ops) == 0 {
				continue // a sequencer's entry of others' appends only
			}
			if k > 0 {
				au.contributed++
			} else if sequenced && seq.ID != ap.Writer {
				au.direct++
			}
			if errors.Is(ap.Results[0].Err, meta.ErrDuplicate) {
				au.duplicates++
				continue
			}
			if ap.Num > 0 {
				id := fmt.Sprintf("%s/%d", ap.Writer, ap.Num)
				if at, ok := applied[id]; ok {
					t.Fatalf("%s: append %s applied again (first at %s)", key, id, at)
				}
				applied[id] = key
			}
			for j, op := range ap.Ops {
				c, ok := op.(meta.Commit)
				if !ok || len(ap.Results[j].Parts) == 0 || len(ap.Results[j].Parts[0]) == 0 || ap.Results[j].Parts[0][0].Err != nil {
					continue
				}
				if at, ok := objects[c.Object]; ok {
					t.Fatalf("%s: %s committed again (first at %s)", key, c.Object, at)
				}
				objects[c.Object] = key
			}
		}
		if a, ok := au.state.Sequencer(en.TimeMs); ok && (len(au.holders) == 0 || au.holders[len(au.holders)-1] != a.Addr) {
			au.holders = append(au.holders, a.Addr)
		}
	}
	return au
}

// sequencerAgent waits until the log names a sequencer other than the
// agents in not, and returns it.
func sequencerAgent(t *testing.T, store objstore.Store, agents []*harness.Agent, not ...*harness.Agent) *harness.Agent {
	t.Helper()
	var found *harness.Agent
	harness.Eventually(t, time.Minute, func() bool {
		st := meta.NewState()
		for i, en := range harness.LogEntries(t, store) {
			st.Apply(uint64(i+1), en)
		}
		seq, ok := st.Sequencer(time.Now().UnixMilli())
		if !ok {
			return false
		}
		for _, a := range agents {
			if a.Addr == seq.Addr && !contains(not, a) {
				found = a
				return true
			}
		}
		return false
	}, "no new sequencer in the log")
	return found
}

func contains(as []*harness.Agent, a *harness.Agent) bool {
	for _, b := range as {
		if a == b {
			return true
		}
	}
	return false
}

// sequencedLoad starts three agents on MinIO behind HAProxy and produces
// to a topic of theirs until the sequencer (returned with the others) has
// appended a few dozen of the others' entries.
func sequencedLoad(t *testing.T, topic string, partitions int32) ([]*harness.Agent, *harness.LoadBalancer, objstore.Store, *harness.Agent, *load) {
	t.Helper()
	b := harness.MinIOBackend(t)
	agents, lb := harness.Fleet(t, 3, b, harness.AgentConfig{FlushInterval: 20 * time.Millisecond})
	createTopic(t, lb.Addr(), topic, partitions, nil)
	for _, a := range agents {
		harness.Eventually(t, time.Minute, func() bool { return sees(a.Addr, topic, 3) }, "%s never saw three agents and %s", a, topic)
	}
	store := b.Open(t)
	victim := sequencerAgent(t, store, agents)
	start := time.Now()
	ld := startLoad(t, lb.Addr(), topic, partitions, 3, 2*time.Millisecond)
	harness.Eventually(t, time.Minute, func() bool {
		return ld.ackedSince(start, 5) && auditSequencing(t, store).contributed > 20
	}, "no load through the sequencer")
	return agents, lb, store, victim, ld
}

// TestSequencerKilled: the sequencer is killed (SIGKILL) while the others
// send it their commits continuously, so that appends are in flight in it;
// they fall back to appending directly, another agent takes the lease, and
// nothing acknowledged is lost or committed twice.
func TestSequencerKilled(t *testing.T) {
	const partitions = 16
	agents, lb, store, victim, ld := sequencedLoad(t, "seq-killed", partitions)
	pre := auditSequencing(t, store)
	t.Logf("before the kill: %d appends sequenced, %d appended directly by others", pre.contributed, pre.direct)
	victim.Kill()
	killed := time.Now()
	next := sequencerAgent(t, store, agents, victim)
	t.Logf("killed the sequencer %s; %s took over %v later", victim, next, time.Since(killed).Round(time.Millisecond))
	harness.Eventually(t, time.Minute, func() bool { return len(ld.resumedAt(killed)) == partitions },
		"produce never resumed on every partition after the kill")
	took := time.Now()
	harness.Eventually(t, time.Minute, func() bool { return ld.ackedSince(took, 3) }, "no produce on every partition with the new sequencer")
	ld.finish(t)
	var survivor *harness.Agent
	for _, a := range agents {
		if a != victim {
			survivor = a
		}
	}
	ld.verify(t, lb.Addr(), survivor.Addr)
	au := auditSequencing(t, store)
	fellBack := 0
	for _, a := range agents {
		if a != victim && strings.Contains(a.Log(), "appending to the metadata log directly for a while") {
			fellBack++
		}
	}
	if fellBack == 0 {
		t.Errorf("no survivor fell back from the dead sequencer")
	}
	harness.ReadLeaseHistory(t, store) // fails the test on overlapping grants
	t.Logf("%d appends sequenced, %d appended directly by others meanwhile, %d landed twice and were applied once; sequencers in turn: %v",
		au.contributed, au.direct, au.duplicates, au.holders)
}

// TestSequencerPaused: the sequencer is stopped (SIGSTOP: cut off from
// the bucket and its peers alike). The others append directly meanwhile
// and one takes the lease within a lease of the pause. When the old one
// wakes it writes at whatever tail it knows; whether it first reads the
// tail or has an append refused (412) is up to its scheduler (the refusal
// is made certain in meta's TestSequencerStaleHolderLoses). Either way the
// log never shows the lease granted to two agents at once, the woken agent
// does not hold it again, and nothing acknowledged is lost or committed
// twice.
func TestSequencerPaused(t *testing.T) {
	const partitions = 16
	agents, lb, store, victim, ld := sequencedLoad(t, "seq-paused", partitions)
	if err := syscall.Kill(victim.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(victim.Pid(), syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer resume()
	next := sequencerAgent(t, store, agents, victim)
	took := time.Since(paused)
	t.Logf("paused the sequencer %s; %s took over %v later", victim, next, took.Round(time.Millisecond))
	// The lease may have been renewed just before the pause; the new
	// holder's poll and append, and this test's read, come on top.
	if limit := meta.SequencerLease + 3*time.Second; took > limit {
		t.Errorf("the paused sequencer was replaced %v after the pause, want within its lease (%v) and a poll", took, limit)
	}
	resume()
	woke := time.Now()
	harness.Eventually(t, time.Minute, func() bool { return ld.ackedSince(woke, 3) }, "no produce on every partition after the old sequencer woke")
	ld.finish(t)
	ld.verify(t, lb.Addr(), victim.Addr)
	au := auditSequencing(t, store)
	if last := au.holders[len(au.holders)-1]; last == victim.Addr {
		t.Errorf("the woken sequencer %s holds the lease again: sequencers in turn %v", victim, au.holders)
	}
	harness.ReadLeaseHistory(t, store)
	t.Logf("%d appends sequenced, %d appended directly by others meanwhile, %d landed twice and were applied once; sequencers in turn: %v",
		au.contributed, au.direct, au.duplicates, au.holders)
}
