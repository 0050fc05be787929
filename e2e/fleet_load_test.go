package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/fleet"
)

// The scale test's clients refresh metadata at most once a second while a
// broker fails them, as the Java client does (retry.backoff.max.ms 1 s) and
// librdkafka faster still; franz-go's own default is 5 s. (The kill test
// runs with franz-go's defaults.)
var fastMetadata = kgo.MetadataMinAge(time.Second)

// produced is one record of a load: where it went and what its promise
// said.
type produced struct {
	p       int32
	sentAt  time.Time // when Produce was called
	ackedAt time.Time // zero until acknowledged
	off     int64
	err     error
}

// load is continuous idempotent produce (franz-go's default, acks=all):
// each of its producers, a client of its own, produces one record every
// interval to the next partition in turn, so every partition gets records
// all along, each with a value unique in the load.
type load struct {
	topic      string
	partitions int32
	ctx        context.Context
	cancel     context.CancelFunc
	clients    []*kgo.Client
	stop       chan struct{}
	wg         sync.WaitGroup
	stopped    bool

	mu   sync.Mutex
	recs map[string]*produced // by value
	errs []error
}

func startLoad(t *testing.T, addr, topic string, partitions int32, producers int, every time.Duration, opts ...kgo.Opt) *load {
	t.Helper()
	l := &load{topic: topic, partitions: partitions, stop: make(chan struct{}), recs: map[string]*produced{}}
	l.ctx, l.cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(func() {
		if !l.stopped {
			close(l.stop)
			l.wg.Wait()
		}
		l.cancel()
	})
	for id := range producers {
		cl := client(t, addr, append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
		l.clients = append(l.clients, cl)
		l.wg.Add(1)
		go l.produce(id, cl, every)
	}
	return l
}

func (l *load) produce(id int, cl *kgo.Client, every time.Duration) {
	defer l.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		v := fmt.Sprintf("p%d-%d", id, seq)
		rec := &produced{p: int32(seq) % l.partitions, sentAt: time.Now()}
		l.mu.Lock()
		l.recs[v] = rec
		l.mu.Unlock()
		cl.Produce(l.ctx, &kgo.Record{Topic: l.topic, Partition: rec.p, Value: []byte(v)}, func(r *kgo.Record, err error) {
			now := time.Now()
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case err != nil:
				rec.err = err
				l.errs = append(l.errs, fmt.Errorf("%s to partition %d: %w", v, rec.p, err))
			case r.Partition != rec.p:
				rec.err = fmt.Errorf("acknowledged in partition %d", r.Partition)
				l.errs = append(l.errs, fmt.Errorf("%s to partition %d: %w", v, rec.p, rec.err))
			default:
				rec.ackedAt, rec.off = now, r.Offset
			}
		})
	}
}

// resumedAt returns, for each partition that has one, when the first record
// produced at or after t0 was acknowledged.
func (l *load) resumedAt(t0 time.Time) map[int32]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int32]time.Time{}
	for _, r := range l.recs {
		if r.ackedAt.IsZero() || r.sentAt.Before(t0) {
			continue
		}
		if at, ok := out[r.p]; !ok || r.ackedAt.Before(at) {
			out[r.p] = r.ackedAt
		}
	}
	return out
}

// ackedSince reports whether every partition has at least n records
// produced at or after t0 acknowledged.
func (l *load) ackedSince(t0 time.Time, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := map[int32]int{}
	for _, r := range l.recs {
		if !r.ackedAt.IsZero() && !r.sentAt.Before(t0) {
			count[r.p]++
		}
	}
	for p := range l.partitions {
		if count[p] < n {
			return false
		}
	}
	return true
}

// finish stops producing, waits until every record's promise has been
// called, and fails the test if any record failed: with franz-go's
// unlimited retries none should.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.stopped = true
	for _, cl := range l.clients {
		if err := cl.Flush(l.ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for v, r := range l.recs {
		if r.ackedAt.IsZero() && r.err == nil {
			t.Fatalf("%s: no answer after the flush", v)
		}
	}
	if len(l.errs) > 0 {
		t.Errorf("%d of %d records failed; first: %v", len(l.errs), len(l.recs), l.errs[0])
	}
}

// acked returns the acknowledged records by value.
func (l *load) acked() map[string]*produced {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]*produced{}
	for v, r := range l.recs {
		if !r.ackedAt.IsZero() {
			out[v] = r
		}
	}
	return out
}

// verify reads the whole topic back through addr once the agent at seen
// has every acknowledged record, and fails the test unless each one is
// there exactly once, at the offset it was acknowledged with, and nothing
// else is (a record whose produce failed may be there, once).
func (l *load) verify(t *testing.T, addr, seen string) {
	t.Helper()
	acked := l.acked()
	// The topic holds at least the acknowledged records once the agent has
	// applied them all; where they are is what reading it checks.
	var ends map[int32]int64
	var total int64
	harness.Eventually(t, time.Minute, func() bool {
		ends, total = endOffsetsSeen(t, seen, l.topic), 0
		for _, e := range ends {
			total += e
		}
		return total >= int64(len(acked))
	}, "%s never held the %d acknowledged records: end offsets %v", seen, len(acked), lazy(func() string { return fmt.Sprint(ends) }))
	// consumeAll fails unless every partition reads 0, 1, 2, … to its end
	// without a gap or a repeat.
	got := consumeAll(t, addr, l.topic, ends)
	l.mu.Lock()
	defer l.mu.Unlock()
	at := map[string]string{}
	n := 0
	for p, rs := range got {
		for _, r := range rs {
			n++
			v := string(r.Value)
			here := fmt.Sprintf("%d/%d", p, r.Offset)
			if prev, ok := at[v]; ok {
				t.Fatalf("%s is in %s/%s and %s: written twice", v, l.topic, prev, here)
			}
			at[v] = here
			rec, ok := l.recs[v]
			switch {
			case !ok:
				t.Fatalf("%s/%s holds %q, which was never produced", l.topic, here, v)
			case rec.ackedAt.IsZero() && rec.err == nil:
				t.Fatalf("%s/%s holds %q, still unanswered", l.topic, here, v)
			case !rec.ackedAt.IsZero() && (rec.p != p || rec.off != r.Offset):
				t.Fatalf("%s/%s holds %q, acknowledged at %d/%d", l.topic, here, v, rec.p, rec.off)
			}
		}
	}
	for v, r := range acked {
		if _, ok := at[v]; !ok {
			t.Fatalf("%s, acknowledged at %s/%d/%d, is not in the topic", v, l.topic, r.p, r.off)
		}
	}
	t.Logf("read back %d records, each acknowledged one (%d) once at its offset", n, len(acked))
}

// nodeIDs maps the agents' addresses to their node ids as the agent at
// addr lists them.
func nodeIDs(t *testing.T, addr, topic string) map[string]int32 {
	t.Helper()
	_, nodes := leadersOf(t, addr, topic)
	out := map[string]int32{}
	for id, a := range nodes {
		out[a] = id
	}
	return out
}

// coordinatorsSeen returns the coordinator node of each group as the agent
// at addr itself names it (FindCoordinator v4, all groups in one request).
func coordinatorsSeen(t *testing.T, addr string, groups []string) map[string]int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = groups
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil {
		t.Fatalf("FindCoordinator at %s: %v", addr, err)
	}
	out := map[string]int32{}
	for _, c := range resp.Coordinators {
		if err := kerr.ErrorForCode(c.ErrorCode); err != nil {
			t.Fatalf("FindCoordinator %s at %s: %v", c.Key, addr, err)
		}
		out[c.Key] = c.NodeID
	}
	if len(out) != len(groups) {
		t.Fatalf("FindCoordinator at %s answered %d of %d groups", addr, len(out), len(groups))
	}
	return out
}

// groupRead is one record as a group member processed it.
type groupRead struct {
	member, span int
	p            int32
	off          int64
}

// TestFleetKillUnderLoad (issue 11, acceptance 3): three agents on one
// MinIO bucket behind HAProxy, clients given only its address. Three
// idempotent producers (acks=all) write to 32 partitions, and a group of
// three franz-go consumers reads them. The agent coordinating the group,
// which also leads about a third of the partitions, is killed with
// SIGKILL and left in the load balancer, whose /readyz health check takes
// it out. The first surviving member probes it once it has missed a
// heartbeat (4 s of silence), finds its port refusing connections, and
// records it gone, so its partitions and the group move then rather than
// after the liveness TTL (10 s). The clients run with franz-go's defaults:
//
//   - produce resumes on every partition within 15 s of the kill (the first
//     acknowledgement of a record produced after it);
//   - the group settles on a new generation with a live coordinator, its
//     three members consume again, and every acknowledged record is
//     processed at least once; a record is processed again only by a later
//     owner of its partition (never twice in one ownership span), never
//     when its offset had been committed before the kill, never if it was
//     produced after the group settled, and never more than twice: the
//     duplicates are the records between the last commit before the kill
//     and the new generation, which the group processes again from the
//     offsets committed through the dead coordinator;
//   - reading the whole topic back finds every acknowledged record exactly
//     once, at the offset its producer was given.
func TestFleetKillUnderLoad(t *testing.T) {
	const (
		topic      = "kill-load"
		group      = "kill-load-group"
		partitions = 32
		members    = 3
		resumeMax  = 15 * time.Second // the bound
	)
	start := time.Now()
	agents, lb := harness.Fleet(t, 3, harness.MinIOBackend(t), harness.AgentConfig{
		FlushInterval: 50 * time.Millisecond, Args: []string{"--group-initial-rebalance-delay=100ms"}})
	createTopic(t, lb.Addr(), topic, partitions, nil)
	for _, a := range agents {
		harness.Eventually(t, time.Minute, func() bool { return sees(a.Addr, topic, 3) }, "%s never saw three agents and %s", a, topic)
	}
	nodes := nodeIDs(t, agents[0].Addr, topic)
	leaders, _ := leadersOf(t, agents[0].Addr, topic)

	// The victim is the group's coordinator.
	coord := coordinatorsSeen(t, agents[0].Addr, []string{group})[group]
	var victim *harness.Agent
	var survivors []*harness.Agent
	for _, a := range agents {
		if nodes[a.Addr] == coord {
			victim = a
		} else {
			survivors = append(survivors, a)
		}
	}
	if victim == nil {
		t.Fatalf("coordinator node %d of %s is none of the agents %v", coord, group, nodes)
	}
	var victimLeads []int32
	for p, l := range leaders {
		if l == coord {
			victimLeads = append(victimLeads, p)
		}
	}
	if len(victimLeads) == 0 {
		t.Fatalf("the victim %s leads none of the %d partitions: the kill would move no leader", victim, partitions)
	}
	slices.Sort(victimLeads)

	ld := startLoad(t, lb.Addr(), topic, partitions, 3, 5*time.Millisecond)

	var mu sync.Mutex
	reads := map[string][]groupRead{}
	own := newOwnership()
	ms := make([]*groupMember, members)
	for i := range ms {
		ms[i] = startSpanMember(t, lb.Addr(), group, topic, own, func(r *kgo.Record, span int) {
			mu.Lock()
			defer mu.Unlock()
			v := string(r.Value)
			reads[v] = append(reads[v], groupRead{member: i, span: span, p: r.Partition, off: r.Offset})
		})
	}
	// generation returns the group's generation if every member is in the
	// same one and between them they own every partition once, or -1.
	generation := func() int32 {
		gen, owned := int32(-1), map[int32]bool{}
		for i, m := range ms {
			_, g := m.cl.GroupMetadata()
			if i == 0 {
				gen = g
			}
			set := m.ownedSet()
			if g != gen || len(set) == 0 {
				return -1
			}
			for p := range set {
				if owned[p] {
					return -1
				}
				owned[p] = true
			}
		}
		if len(owned) != partitions {
			return -1
		}
		return gen
	}

	// Steady state before the kill: every partition acknowledged and
	// consumed, with offsets committed for each.
	adm := kadm.NewClient(client(t, lb.Addr()))
	var committed map[int32]int64
	var genBefore int32
	harness.Eventually(t, time.Minute, func() bool {
		if genBefore = generation(); genBefore < 0 || !ld.ackedSince(start, 5) {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		committed = map[int32]int64{}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.Err == nil && o.At > 0 {
				committed[o.Partition] = o.At
			}
		})
		return len(committed) == partitions
	}, "the group never consumed and committed on all %d partitions: %v", partitions, lazy(func() string { return fmt.Sprint(committed) }))

	victim.Kill()
	killed := time.Now()
	t.Logf("killed %s (node %d), coordinator of %s and leader of partitions %v, %v into the test",
		victim, coord, group, victimLeads, killed.Sub(start).Round(time.Millisecond))

	// Produce resumes on every partition.
	harness.Eventually(t, time.Minute, func() bool { return len(ld.resumedAt(killed)) == partitions },
		"produce never resumed on all %d partitions after the kill: %v", partitions, lazy(func() string { return fmt.Sprint(len(ld.resumedAt(killed))) }))
	resumed := ld.resumedAt(killed)
	var worst time.Duration
	var moved, stayed []string
	for p := range int32(partitions) {
		d := resumed[p].Sub(killed)
		worst = max(worst, d)
		s := fmt.Sprintf("%d:%v", p, d.Round(10*time.Millisecond))
		if slices.Contains(victimLeads, p) {
			moved = append(moved, s)
		} else {
			stayed = append(stayed, s)
		}
	}
	t.Logf("produce resumed after the kill, the victim's partitions: %v; the others': %v", moved, stayed)
	if worst > resumeMax {
		t.Errorf("produce resumed on every partition only %v after the kill, want within %v", worst.Round(time.Millisecond), resumeMax)
	}

	// The group settles on a generation after the kill, its coordinator a
	// survivor.
	var gen int32
	harness.Eventually(t, time.Minute, func() bool {
		gen = generation()
		return gen > genBefore
	}, "the group never settled after the kill (generation %d before it)", genBefore)
	settled := time.Now()
	coordAfter := coordinatorsSeen(t, survivors[0].Addr, []string{group})[group]
	if coordAfter == coord || !slices.Contains([]int32{nodes[survivors[0].Addr], nodes[survivors[1].Addr]}, coordAfter) {
		t.Fatalf("after the kill %s names node %d coordinator of %s, want a survivor (%v)", survivors[0], coordAfter, group, nodes)
	}
	t.Logf("group settled in generation %d (was %d) at node %d, %v after the kill",
		gen, genBefore, coordAfter, settled.Sub(killed).Round(time.Millisecond))

	// Records produced after the group settled, on every partition; then
	// the group processes everything.
	harness.Eventually(t, time.Minute, func() bool { return ld.ackedSince(settled, 5) },
		"produce after the group settled never reached every partition")
	ld.finish(t)
	acked := ld.acked()
	var missing []string
	harness.Eventually(t, time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		missing = missing[:0]
		for v := range acked {
			if len(reads[v]) == 0 {
				missing = append(missing, v)
			}
		}
		return len(missing) == 0
	}, "the group never processed every acknowledged record: %v of %d missing, e.g. %v",
		lazy(func() string { return strconv.Itoa(len(missing)) }), len(acked), lazy(func() string { return fmt.Sprint(missing[:min(5, len(missing))]) }))

	mu.Lock()
	again, bad := 0, 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	afterSettle := map[int]int{} // member → records produced after settling it processed
	for v, rs := range reads {
		rec, ok := acked[v]
		if !ok {
			fail("the group processed %q, which no producer had acknowledged", v)
			continue
		}
		if !rec.sentAt.Before(settled) {
			afterSettle[rs[0].member]++
		}
		if len(rs) == 1 {
			continue
		}
		again++
		spans := map[int]bool{}
		for _, r := range rs {
			if spans[r.span] {
				fail("%s (%d/%d) processed twice in one ownership span: %+v", v, rec.p, rec.off, rs)
			}
			spans[r.span] = true
		}
		switch {
		case rec.off < committed[rec.p]:
			fail("%s (%d/%d) processed again though the group had committed offset %d before the kill: %+v", v, rec.p, rec.off, committed[rec.p], rs)
		case !rec.sentAt.Before(settled):
			fail("%s (%d/%d), produced after the group settled, processed %d times: %+v", v, rec.p, rec.off, len(rs), rs)
		case len(rs) > 2:
			fail("%s (%d/%d) processed %d times: %+v", v, rec.p, rec.off, len(rs), rs)
		}
	}
	if bad > 10 {
		t.Errorf("%d records processed where they may not be in all", bad)
	}
	mu.Unlock()
	for i := range ms {
		if afterSettle[i] == 0 {
			t.Errorf("member %d processed none of the records produced after the group settled: %v", i, afterSettle)
		}
	}
	t.Logf("%d acknowledged records, all processed by the group, %d of them twice (in the failover window); after settling the members processed %v",
		len(acked), again, afterSettle)
	harness.Eventually(t, time.Minute, func() bool { return committedAtEnd(t, survivors[0].Addr, group, topic) },
		"the group's committed offsets never reached the end offsets")

	ld.verify(t, lb.Addr(), survivors[0].Addr)
	t.Logf("test took %v", time.Since(start).Round(time.Millisecond))
}

// TestFleetScaleUpDown (issue 11, acceptance 4): one agent behind HAProxy
// under continuous idempotent produce to 32 partitions; two more start and
// join the load balancer. As soon as each agent has applied the newcomers'
// registrations (one metadata poll: nothing else is waited for) its
// Metadata names all three and agrees with the others on leaders and group
// coordinators, which spread to the newcomers, and the producers move
// partitions to them. Then the two are stopped with SIGTERM one after the
// other: as soon as the remaining agents have applied the departure, well
// within the 10 s liveness TTL, they name only themselves and take over
// exactly the departed agent's partitions and groups. Nothing acknowledged
// is lost or duplicated.
func TestFleetScaleUpDown(t *testing.T) {
	const (
		topic      = "scale-load"
		partitions = 32
	)
	start := time.Now()
	b := harness.MinIOBackend(t)
	cfg := harness.AgentConfig{FlushInterval: 50 * time.Millisecond}
	agents, lb := harness.Fleet(t, 1, b, cfg)
	first := agents[0]
	createTopic(t, lb.Addr(), topic, partitions, nil)
	groups := make([]string, 30)
	for i := range groups {
		groups[i] = fmt.Sprint("scale-group-", i)
	}

	// MetadataMaxAge: the producers look at Metadata every 2 s, not
	// franz-go's default 5 min, so that they move to the new leaders while
	// the test runs (any agent serves any partition, so nothing else tells
	// them to).
	ld := startLoad(t, lb.Addr(), topic, partitions, 3, 5*time.Millisecond, fastMetadata, kgo.MetadataMaxAge(2*time.Second))
	harness.Eventually(t, time.Minute, func() bool { return ld.ackedSince(start, 5) }, "produce never reached every partition")

	// applied is the last metadata-log slot the agent has applied.
	applied := func(a *harness.Agent) float64 { return scrape(t, a.HTTPAddr)["barge_meta_applied_slot"] }
	produceRecords := func(a *harness.Agent) float64 { return scrape(t, a.HTTPAddr)["barge_produce_records_total"] }
	// check asserts that every agent of live names exactly live, that they
	// agree on every partition's leader and every group's coordinator, and
	// that each leads and coordinates some. It returns the leaders and
	// coordinators by address.
	// The leader epoch of every partition goes up with each change of the
	// fleet (it is the membership epoch), and every agent names the same.
	var lastEpoch int32 = -1
	var lastFleet string
	check := func(live []*harness.Agent, when string) (map[int32]string, map[string]string) {
		t.Helper()
		var leaders map[int32]string
		var coords map[string]string
		epoch := int32(-1)
		for _, a := range live {
			resp, err := metadataSeen(a.Addr, topic)
			if err != nil {
				t.Fatalf("%s: %s: %v", when, a, err)
			}
			for _, p := range resp.Topics[0].Partitions {
				if epoch < 0 {
					epoch = p.LeaderEpoch
				}
				if p.LeaderEpoch != epoch {
					t.Fatalf("%s: %s names leader epoch %d for partition %d, and %d elsewhere", when, a, p.LeaderEpoch, p.Partition, epoch)
				}
			}
			var listed []string
			for _, br := range resp.Brokers {
				listed = append(listed, fmt.Sprintf("%s:%d", br.Host, br.Port))
			}
			var want []string
			for _, b := range live {
				want = append(want, b.Addr)
			}
			sort.Strings(listed)
			sort.Strings(want)
			if !slices.Equal(listed, want) {
				t.Fatalf("%s: %s lists brokers %v, want %v", when, a, listed, want)
			}
			ls, nodes := leadersOf(t, a.Addr, topic)
			l := map[int32]string{}
			for p, id := range ls {
				l[p] = nodes[id]
			}
			c := map[string]string{}
			for g, id := range coordinatorsSeen(t, a.Addr, groups) {
				c[g] = nodes[id]
			}
			if leaders == nil {
				leaders, coords = l, c
				continue
			}
			if !maps.Equal(l, leaders) || !maps.Equal(c, coords) {
				t.Fatalf("%s: %s names leaders %v and coordinators %v; %s named %v and %v", when, a, l, c, live[0], leaders, coords)
			}
		}
		leads, coordinates := map[string]int{}, map[string]int{}
		for _, a := range leaders {
			leads[a]++
		}
		for _, a := range coords {
			coordinates[a]++
		}
		for _, a := range live {
			if leads[a.Addr] == 0 || coordinates[a.Addr] == 0 {
				t.Fatalf("%s: %s leads %d of %d partitions and coordinates %d of %d groups, want some of each",
					when, a, leads[a.Addr], partitions, coordinates[a.Addr], len(groups))
			}
		}
		fleetNow := fmt.Sprint(live)
		switch {
		case fleetNow != lastFleet && epoch <= lastEpoch:
			t.Fatalf("%s: leader epoch %d, not above %d, the epoch before the fleet changed", when, epoch, lastEpoch)
		case fleetNow == lastFleet && epoch != lastEpoch:
			t.Fatalf("%s: leader epoch %d, was %d, with no change of the fleet", when, epoch, lastEpoch)
		}
		lastEpoch, lastFleet = epoch, fleetNow
		t.Logf("%s: leader epoch %d, partitions led %v, groups coordinated %v", when, epoch, leads, coordinates)
		return leaders, coords
	}

	check([]*harness.Agent{first}, "one agent")

	// Scale up: two more agents, then the load balancer sends to all three.
	full := cfg
	full.Store, full.Env = b.URL, b.Env
	a1 := harness.StartAgent(t, full)
	a2 := harness.StartAgent(t, full)
	ready := time.Now()
	// Each newcomer registered before it was ready: the slots it has
	// applied include its registration.
	joined := max(applied(a1), applied(a2))
	all := []*harness.Agent{first, a1, a2}
	lb.SetBackends(t, all...)
	for _, a := range all {
		harness.Eventually(t, time.Minute, func() bool { return applied(a) >= joined }, "%s never applied slot %v, the newcomers' registrations", a, joined)
	}
	t.Logf("every agent applied the newcomers' registrations %v after both were ready", time.Since(ready).Round(time.Millisecond))
	leaders3, coords3 := check(all, "scaled up to three")
	// The producers follow: the newcomers take produce traffic.
	for _, a := range []*harness.Agent{a1, a2} {
		harness.Eventually(t, time.Minute, func() bool { return produceRecords(a) > 0 }, "%s, leader of partitions, never took a produce", a)
	}
	scaled := time.Now()
	harness.Eventually(t, time.Minute, func() bool { return ld.ackedSince(scaled, 5) }, "produce with three agents never reached every partition")

	// Scale down: SIGTERM one newcomer, then the other.
	live := all
	for _, gone := range []*harness.Agent{a2, a1} {
		prevLeaders, prevCoords := leaders3, coords3
		if len(live) == 2 {
			prevLeaders, prevCoords = check(live, "before stopping "+gone.String())
		}
		name := gone.String()
		sigterm := time.Now()
		if err := gone.Stop(); err != nil {
			t.Fatalf("stop %s: %v", name, err)
		}
		stopped := time.Now()
		live = slices.DeleteFunc(slices.Clone(live), func(a *harness.Agent) bool { return a == gone })
		// The departure is in the bucket once the agent has exited: the
		// newest entry then is at or after it.
		keys := b.List(t, "meta/log/")
		last, err := strconv.ParseUint(strings.TrimPrefix(keys[len(keys)-1], "meta/log/"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range live {
			harness.Eventually(t, time.Minute, func() bool { return applied(a) >= float64(last) }, "%s never applied slot %d, after %s's departure", a, last, name)
		}
		when := "after stopping " + name
		leaders, coords := check(live, when)
		if waited := time.Since(stopped); waited >= fleet.TTL {
			t.Fatalf("%s: reading the departure took %v, the liveness TTL: the check cannot tell a departure from silence", when, waited)
		}
		t.Logf("%s: the others took over %v after it exited", when, time.Since(stopped).Round(time.Millisecond))
		for p, l := range prevLeaders {
			if l != gone.Addr && leaders[p] != l {
				t.Fatalf("%s: partition %d moved from %s to %s though its leader stayed", when, p, l, leaders[p])
			}
		}
		for g, c := range prevCoords {
			if c != gone.Addr && coords[g] != c {
				t.Fatalf("%s: group %s moved from %s to %s though its coordinator stayed", when, g, c, coords[g])
			}
		}
		lb.SetBackends(t, live...)
		// Produce resumes on every partition (the first acknowledgement
		// of a record produced once the agent had exited), counted from
		// the SIGTERM: before the TTL could have moved anything.
		harness.Eventually(t, time.Minute, func() bool { return ld.ackedSince(stopped, 5) }, "%s: produce never reached every partition again", when)
		var worst time.Duration
		for _, at := range ld.resumedAt(stopped) {
			worst = max(worst, at.Sub(sigterm))
		}
		t.Logf("%s: it exited %v after SIGTERM; produce resumed on every partition %v after SIGTERM",
			when, stopped.Sub(sigterm).Round(time.Millisecond), worst.Round(time.Millisecond))
		if worst >= fleet.TTL {
			t.Fatalf("%s: produce resumed on every partition only %v after SIGTERM, the liveness TTL", when, worst.Round(time.Millisecond))
		}
	}

	ld.finish(t)
	ld.verify(t, lb.Addr(), first.Addr)
	t.Logf("test took %v", time.Since(start).Round(time.Millisecond))
}
