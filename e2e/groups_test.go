package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// groupMember is a franz-go group consumer that records what it reads and
// which partitions it owns.
type groupMember struct {
	cl    *kgo.Client
	mu    sync.Mutex
	owned map[int32]bool
	span  map[int32]int // partition → the ownership span it is (or was last) owned in
	done  chan struct{}
}

// ownership numbers the spans in which the members of one group own a
// partition, each from an OnPartitionsAssigned naming it to the
// OnPartitionsRevoked or OnPartitionsLost that takes it away, and keeps
// what was committed when a span ended by revocation: the next owner
// starts from the group's committed offset, so it cannot read below it.
type ownership struct {
	mu       sync.Mutex
	spans    int
	handover map[int32]int64 // partition → offset committed at its last revocation
	floor    map[int]int64   // span → its partition's handover offset when it began
}

func newOwnership() *ownership {
	return &ownership{handover: map[int32]int64{}, floor: map[int]int64{}}
}

func (o *ownership) begin(p int32) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spans++
	o.floor[o.spans] = o.handover[p]
	return o.spans
}

func (o *ownership) revoked(p int32, committed int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.handover[p] = max(o.handover[p], committed)
}

// lowest is the lowest offset span may read.
func (o *ownership) lowest(span int) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.floor[span]
}

func startMember(t *testing.T, addr, group, topic string, seen func(*kgo.Record), opts ...kgo.Opt) *groupMember {
	t.Helper()
	return startSpanMember(t, addr, group, topic, newOwnership(), func(r *kgo.Record, _ int) { seen(r) }, opts...)
}

// startSpanMember is startMember for a member whose spans o numbers; seen
// is given the span each record was read in (the partition's current or,
// for a record of a fetch returned before a revocation, last span).
func startSpanMember(t *testing.T, addr, group, topic string, o *ownership, seen func(r *kgo.Record, span int), opts ...kgo.Opt) *groupMember {
	t.Helper()
	m := &groupMember{owned: map[int32]bool{}, span: map[int32]int{}, done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.AutoCommitInterval(100 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.owned[p] = true
				m.span[p] = o.begin(p)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			cl.CommitUncommittedOffsets(ctx)
			committed := cl.CommittedOffsets()[topic]
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.owned, p)
				if c, ok := committed[p]; ok {
					o.revoked(p, c.Offset)
				}
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range l[topic] {
				delete(m.owned, p)
			}
		}),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				m.mu.Lock()
				span := m.span[r.Partition]
				m.mu.Unlock()
				seen(r, span)
			})
		}
	}()
	t.Cleanup(m.close)
	return m
}

func (m *groupMember) close() {
	select {
	case <-m.done:
		return
	default:
	}
	m.cl.Close()
	<-m.done
}

func (m *groupMember) ownedSet() map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.owned)
}

func (m *groupMember) ownedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.owned)
}

// committedAtEnd reports whether the group's committed offsets equal the
// topic's end offsets.
func committedAtEnd(t *testing.T, addr, group, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr)) // closed here: this is polled
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	at := true
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs.Lookup(topic, e.Partition)
		if !ok {
			o.At = 0 // nothing committed: only right for an empty partition
		}
		if o.At != e.Offset {
			at = false
		}
	})
	return at
}

// TestGroupCooperativeJoinLeave: franz-go consumers with the
// cooperative-sticky balancer join one by one and leave one by one while a
// producer writes 200,000 records. Every record is processed at least once,
// again only by a later owner of its partition from the offset committed
// when the partition changed hands, and the committed offsets end at the
// high watermarks.
func TestGroupCooperativeJoinLeave(t *testing.T) {
	const (
		n          = 200_000
		partitions = 6
		topic      = "coop"
		group      = "coop-group"
	)
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay", "50ms")
	createTopic(t, a.Addr, topic, partitions, nil)

	// A record may be processed again only by a new owner of its partition
	// (a later ownership span) that took it over from where the group's
	// offsets were committed when it changed hands: never twice in one
	// span, and never below the handover offset.
	var mu sync.Mutex
	own := newOwnership()
	spansOf := make([][]int, n) // record → the spans that processed it
	distinct, again, bad := 0, 0, 0
	fail := func(format string, args ...any) { // under mu
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	record := func(r *kgo.Record, span int) {
		i, err := strconv.Atoi(string(r.Value))
		if err != nil || i < 0 || i >= n {
			t.Errorf("record %q", r.Value)
			return
		}
		low := own.lowest(span)
		mu.Lock()
		defer mu.Unlock()
		if r.Offset < low {
			fail("%d/%d processed in span %d, below the offset %d committed when its partition changed hands", r.Partition, r.Offset, span, low)
		}
		if slices.Contains(spansOf[i], span) {
			fail("record %d (%d/%d) processed twice in ownership span %d", i, r.Partition, r.Offset, span)
		}
		if len(spansOf[i]) == 0 {
			distinct++
		} else {
			again++
		}
		spansOf[i] = append(spansOf[i], span)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return distinct }

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
	produced := make(chan error, 1)
	go func() {
		for start := 0; start < n; start += 250 {
			rs := make([]*kgo.Record, 250)
			for i := range rs {
				rs[i] = &kgo.Record{Value: []byte(strconv.Itoa(start + i))}
			}
			if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	coop := kgo.Balancers(kgo.CooperativeStickyBalancer())
	var members []*groupMember
	for i := range 3 {
		m := startSpanMember(t, a.Addr, group, topic, own, record, coop)
		members = append(members, m)
		harness.Eventually(t, time.Minute, func() bool {
			total := 0
			for _, m := range members {
				if m.ownedCount() == 0 {
					return false
				}
				total += m.ownedCount()
			}
			return total == partitions
		}, "member %d joining: every member owns partitions, %d in all", i+1, partitions)
	}
	for i := 2; i >= 1; i-- {
		members[i].close()
		harness.Eventually(t, time.Minute, func() bool {
			total := 0
			for _, m := range members[:i] {
				total += m.ownedCount()
			}
			return total == partitions
		}, "member %d left: the others own all %d partitions", i+1, partitions)
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	harness.Eventually(t, 2*time.Minute, func() bool { return count() == n }, "every record processed (%d of %d)", count(), n)
	harness.Eventually(t, time.Minute, func() bool { return committedAtEnd(t, a.Addr, group, topic) },
		"committed offsets at the high watermarks")
	own.mu.Lock()
	spans := own.spans
	own.mu.Unlock()
	mu.Lock()
	if bad > 10 {
		t.Errorf("%d records processed where they may not be in all", bad)
	}
	t.Logf("%d records, %d processed again, each by a later owner from its handover offset (%d ownership spans)", n, again, spans)
	mu.Unlock()
	members[0].close()
	if !committedAtEnd(t, a.Addr, group, topic) {
		t.Fatal("committed offsets moved off the high watermarks on close")
	}
}

// TestGroupOffsetsSurviveKill: committed offsets are in the metadata log,
// so after kill -9 and a restart they are all there, and a consumer of the
// group resumes from them: it reads only what was produced after.
func TestGroupOffsetsSurviveKill(t *testing.T) {
	const (
		topic = "resume"
		group = "resume-group"
		n     = 5_000
	)
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0, "--group-initial-rebalance-delay", "50ms")
			createTopic(t, a.Addr, topic, 4, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			produce := func(from, to int) {
				prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
				rs := make([]*kgo.Record, 0, to-from)
				for i := from; i < to; i++ {
					rs = append(rs, &kgo.Record{Value: []byte(strconv.Itoa(i))})
				}
				if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
			}
			produce(0, n)
			var mu sync.Mutex
			read := map[string]bool{}
			record := func(r *kgo.Record) { mu.Lock(); read[string(r.Value)] = true; mu.Unlock() }
			m := startMember(t, a.Addr, group, topic, record)
			harness.Eventually(t, time.Minute, func() bool { return committedAtEnd(t, a.Addr, group, topic) },
				"committed offsets at the high watermarks")
			before := endOffsets(t, a.Addr, topic)
			m.close()

			a.Kill()
			a.Restart(t)
			adm := kadm.NewClient(client(t, a.Addr))
			offs, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			for p, end := range before {
				if o, ok := offs.Lookup(topic, p); ok && o.At != end || !ok && end != 0 {
					t.Fatalf("after restart partition %d committed %+v, want %d", p, o, end)
				}
			}

			mu.Lock()
			read = map[string]bool{}
			mu.Unlock()
			produce(n, n+100)
			startMember(t, a.Addr, group, topic, record)
			harness.Eventually(t, time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return len(read) >= 100 },
				"the resumed consumer reads the 100 new records")
			mu.Lock()
			defer mu.Unlock()
			for v := range read {
				if i, _ := strconv.Atoi(v); i < n {
					t.Fatalf("resumed consumer re-read record %s, committed before the restart", v)
				}
			}
		})
	}
}

// TestGroupStaticRestart: a static member (group.instance.id) that
// restarts within the session timeout takes its place back without a
// rebalance: the group's generation stays what it was, and the other
// member keeps exactly the partitions it owned.
func TestGroupStaticRestart(t *testing.T) {
	const (
		topic = "static"
		group = "static-group"
	)
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay", "50ms")
	createTopic(t, a.Addr, topic, 4, nil)
	var mu sync.Mutex
	read := map[string]bool{}
	record := func(r *kgo.Record) { mu.Lock(); read[string(r.Value)] = true; mu.Unlock() }
	long := kgo.SessionTimeout(60 * time.Second)
	s1 := startMember(t, a.Addr, group, topic, record, kgo.InstanceID("s1"), long)
	s2 := startMember(t, a.Addr, group, topic, record, kgo.InstanceID("s2"), long)
	// The cooperative balancer (franz-go's default) reaches this in two
	// rebalances; both members then hold the same, final generation.
	var gen int32
	harness.Eventually(t, time.Minute, func() bool {
		_, g1 := s1.cl.GroupMetadata()
		_, g2 := s2.cl.GroupMetadata()
		gen = g1
		return s1.ownedCount() > 0 && s2.ownedCount() > 0 && s1.ownedCount()+s2.ownedCount() == 4 && g1 > 0 && g1 == g2
	}, "both static members own partitions in one generation")
	owned := s2.ownedSet()

	s1.close() // a static member does not leave the group on close
	s1 = startMember(t, a.Addr, group, topic, record, kgo.InstanceID("s1"), long)
	harness.Eventually(t, time.Minute, func() bool { return s1.ownedCount() > 0 }, "the restarted member gets its partitions back")
	// A rebalance would answer the restarted member's JoinGroup only with
	// the generation it completes, so its generation says whether one ran.
	if _, g := s1.cl.GroupMetadata(); g != gen {
		t.Fatalf("the restarted member joined generation %d, want %d (a rebalance ran)", g, gen)
	}

	// Records on every partition are read, by both members.
	prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(4) {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "p%d", p)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return len(read) == 4 }, "records of all partitions read")
	if _, g := s2.cl.GroupMetadata(); g != gen {
		t.Fatalf("the other member is in generation %d, want %d (a rebalance ran)", g, gen)
	}
	if now := s2.ownedSet(); !maps.Equal(now, owned) {
		t.Fatalf("the other member owns %v, owned %v before the restart", now, owned)
	}
	adm := kadm.NewClient(client(t, a.Addr))
	dg, err := adm.DescribeGroups(context.Background(), group)
	if err != nil || dg[group].State != "Stable" || len(dg[group].Members) != 2 {
		t.Fatalf("describe: %v %+v", err, dg[group])
	}
}

// TestGroupsRebalanceTogether: five groups of three members each, all
// joining at once, all converge: every partition owned by exactly one
// member of each group, and the groups are Stable.
func TestGroupsRebalanceTogether(t *testing.T) {
	const topic = "many"
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay", "50ms")
	createTopic(t, a.Addr, topic, 6, nil)
	var all [5][]*groupMember
	for g := range all {
		for range 3 {
			all[g] = append(all[g], startMember(t, a.Addr, fmt.Sprintf("many-%d", g), topic, func(*kgo.Record) {}))
		}
	}
	harness.Eventually(t, 2*time.Minute, func() bool {
		for _, ms := range all {
			owners := map[int32]int{}
			for _, m := range ms {
				m.mu.Lock()
				if len(m.owned) == 0 {
					m.mu.Unlock()
					return false
				}
				for p := range m.owned {
					owners[p]++
				}
				m.mu.Unlock()
			}
			if len(owners) != 6 {
				return false
			}
			for _, c := range owners {
				if c != 1 {
					return false
				}
			}
		}
		return true
	}, "every group's partitions owned once, by all three members")
	adm := kadm.NewClient(client(t, a.Addr))
	dg, err := adm.DescribeGroups(context.Background(), "many-0", "many-1", "many-2", "many-3", "many-4")
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range dg {
		if g.State != "Stable" || len(g.Members) != 3 {
			t.Errorf("group %s: %s with %d members", name, g.State, len(g.Members))
		}
	}
}
