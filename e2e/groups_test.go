package e2e

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// groupMember is a franz-go group consumer that records what it reads and
// how often it was assigned partitions.
type groupMember struct {
	cl       *kgo.Client
	mu       sync.Mutex
	assigned int // OnPartitionsAssigned calls with partitions
	owned    map[int32]bool
	done     chan struct{}
}

func startMember(t *testing.T, addr, group, topic string, seen func(*kgo.Record), opts ...kgo.Opt) *groupMember {
	t.Helper()
	m := &groupMember{owned: map[int32]bool{}, done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.AutoCommitInterval(100 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(a[topic]) > 0 {
				m.assigned++
			}
			for _, p := range a[topic] {
				m.owned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			cl.CommitUncommittedOffsets(ctx)
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range r[topic] {
				delete(m.owned, p)
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
			fs.EachRecord(seen)
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
// producer writes 200,000 records. Every record is processed at least once
// and the committed offsets end at the high watermarks.
func TestGroupCooperativeJoinLeave(t *testing.T) {
	const (
		n          = 200_000
		partitions = 6
		topic      = "coop"
		group      = "coop-group"
	)
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay", "50ms")
	createTopic(t, a.Addr, topic, partitions, nil)

	var mu sync.Mutex
	seen := make([]bool, n)
	distinct := 0
	var dupAt []time.Time // when a record was processed again
	record := func(r *kgo.Record) {
		i, err := strconv.Atoi(string(r.Value))
		if err != nil || i < 0 || i >= n {
			t.Errorf("record %q", r.Value)
			return
		}
		mu.Lock()
		if !seen[i] {
			seen[i] = true
			distinct++
		} else {
			dupAt = append(dupAt, time.Now())
		}
		mu.Unlock()
	}
	// Rebalance windows: from a member's join or leave until the
	// partitions are owned again, plus a second for fetches in flight.
	var windows [][2]time.Time
	window := func(start time.Time) { windows = append(windows, [2]time.Time{start, time.Now().Add(time.Second)}) }
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
		start := time.Now()
		m := startMember(t, a.Addr, group, topic, record, coop)
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
		window(start)
	}
	for i := 2; i >= 1; i-- {
		start := time.Now()
		members[i].close()
		harness.Eventually(t, time.Minute, func() bool {
			total := 0
			for _, m := range members[:i] {
				total += m.ownedCount()
			}
			return total == partitions
		}, "member %d left: the others own all %d partitions", i+1, partitions)
		window(start)
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	harness.Eventually(t, 2*time.Minute, func() bool { return count() == n }, "every record processed (%d of %d)", count(), n)
	harness.Eventually(t, time.Minute, func() bool { return committedAtEnd(t, a.Addr, group, topic) },
		"committed offsets at the high watermarks")
	mu.Lock()
	for _, at := range dupAt {
		inWindow := false
		for _, w := range windows {
			inWindow = inWindow || !at.Before(w[0]) && !at.After(w[1])
		}
		if !inWindow {
			t.Errorf("a record was processed twice at %v, outside every rebalance window %v", at, windows)
		}
	}
	t.Logf("%d records, %d processed again, all inside rebalance windows", n, len(dupAt))
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
