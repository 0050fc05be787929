package e2e

import (
	"context"
	"fmt"
	"slices"
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
)

// TestSharedAddressGroups: three agents on one MinIO bucket behind HAProxy,
// each advertising the load balancer's address (shared-address mode), so
// a client reaches whichever agent HAProxy picks for each connection. A
// consumer group of three franz-go members and a group of two `kcat -G`
// members, given only the load balancer's address, read everything and
// commit; restarted, each group reads only what was produced after its
// commits. Every agent, asked directly, describes the franz-go group as its
// coordinator does: the two that do not coordinate it forward the request.
func TestSharedAddressGroups(t *testing.T) {
	const (
		topic      = "shared"
		partitions = 12
		first      = 3000
		second     = 600
	)
	agents, lb := harness.SharedFleet(t, 3, harness.MinIOBackend(t), harness.AgentConfig{FlushInterval: 20 * time.Millisecond,
		Args: []string{"--group-initial-rebalance-delay", "1s", "--auto-create-topics=false"}})
	createTopic(t, lb.Addr(), topic, partitions, nil)

	var (
		mu    sync.Mutex
		batch = map[string]int{} // value → the batch (1 or 2) it was produced in
	)
	produce := func(b, from, n int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		prod := client(t, lb.Addr(), kgo.DefaultProduceTopic(topic))
		defer prod.Close()
		var errs []error
		for i := from; i < from+n; i++ {
			v := "v-" + strconv.Itoa(i)
			prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				batch[v] = b
			})
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if len(errs) > 0 {
			t.Fatalf("%d produce errors through the load balancer; first: %v", len(errs), errs[0])
		}
	}
	produce(1, 0, first)

	// The agents are one broker to clients, at the load balancer's
	// address, whichever answers (librdkafka merges brokers of one
	// address and would lose the others' partitions).
	for range agents {
		md, err := metadataSeen(lb.Addr(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 1 || fmt.Sprintf("%s:%d", md.Brokers[0].Host, md.Brokers[0].Port) != lb.Addr() {
			t.Fatalf("metadata lists brokers %+v, want one at the load balancer's %s", md.Brokers, lb.Addr())
		}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader != md.Brokers[0].NodeID {
				t.Fatalf("partition %d led by %d, want the one broker %d", p.Partition, p.Leader, md.Brokers[0].NodeID)
			}
		}
	}

	// consumeGroup runs the franz-go group until it has read want values
	// and committed the end, and returns what it read.
	consumeGroup := func(group string, members int, want int) map[string]int {
		t.Helper()
		var (
			smu  sync.Mutex
			seen = map[string]int{}
		)
		var ms []*groupMember
		for range members {
			ms = append(ms, startMember(t, lb.Addr(), group, topic, func(r *kgo.Record) {
				smu.Lock()
				seen[string(r.Value)]++
				smu.Unlock()
			}))
		}
		harness.Eventually(t, 2*time.Minute, func() bool {
			smu.Lock()
			defer smu.Unlock()
			return len(seen) >= want
		}, "group %s read %d distinct records, want %d", group, len(seen), want)
		harness.Eventually(t, time.Minute, func() bool { return committedAtEnd(t, lb.Addr(), group, topic) },
			"group %s did not commit the end offsets", group)
		for _, m := range ms {
			m.close()
		}
		smu.Lock()
		defer smu.Unlock()
		return seen
	}
	checkBatch := func(who string, seen map[string]int, b int) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for v, bv := range batch {
			if bv == b {
				n++
				if seen[v] == 0 {
					t.Fatalf("%s did not read %s of batch %d", who, v, b)
				}
			}
		}
		for v := range seen {
			if batch[v] != b {
				t.Fatalf("%s read %s of batch %d, want only batch %d (it must resume from its commits)", who, v, batch[v], b)
			}
		}
		if len(seen) != n {
			t.Fatalf("%s read %d distinct records, want %d", who, len(seen), n)
		}
	}

	checkBatch("the franz-go group", consumeGroup("franz", 3, first), 1)

	// Asked directly, every agent describes the group as its coordinator
	// does; the two others forward the request.
	forwardedBefore := forwardedOK(t, agents)
	for _, a := range agents {
		g := describeGroupAt(t, a.Addr, "franz")
		if g.ErrorCode != 0 || g.State != "Empty" || g.ProtocolType != "consumer" {
			t.Fatalf("%s describes group franz as %+v, want it Empty with protocol type consumer", a, g)
		}
	}
	if n := forwardedOK(t, agents) - forwardedBefore; n != float64(len(agents)-1) {
		t.Fatalf("%v describe requests forwarded, want %d (by each agent but the coordinator)", n, len(agents)-1)
	}

	kcatGroup := func(members, want int) map[string]int {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var ks []*kcatMember
		for range members {
			ks = append(ks, startKcatMember(t, ctx, lb.Addr(), "kc", topic))
		}
		seen := map[string]int{}
		harness.Eventually(t, 2*time.Minute, func() bool {
			seen = map[string]int{}
			for _, k := range ks {
				k.mu.Lock()
				for v := range k.vals {
					seen[v]++
				}
				k.mu.Unlock()
			}
			return len(seen) >= want
		}, "the kcat group read %d distinct records, want %d", len(seen), want)
		// kcat commits every 5 s (auto.commit.interval.ms).
		harness.Eventually(t, time.Minute, func() bool { return committedAtEnd(t, lb.Addr(), "kc", topic) },
			"the kcat group did not commit the end offsets")
		return seen
	}
	checkBatch("the kcat group", kcatGroup(2, first), 1)

	produce(2, first, second)
	checkBatch("the restarted franz-go group", consumeGroup("franz", 3, second), 2)
	checkBatch("the restarted kcat group", kcatGroup(1, second), 2)
}

// describeGroupAt asks the agent at addr itself to describe group.
func describeGroupAt(t *testing.T, addr, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	cl := client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil || len(resp.Groups) != 1 {
		t.Fatalf("describe group %s at %s: %v %+v", group, addr, err, resp)
	}
	return resp.Groups[0]
}

// forwardedOK sums the group requests the agents forwarded and had
// answered.
func forwardedOK(t *testing.T, agents []*harness.Agent) float64 {
	t.Helper()
	var n float64
	for _, a := range agents {
		for k, v := range scrape(t, a.HTTPAddr) {
			if strings.HasPrefix(k, "barge_forwarded_requests_total") && strings.Contains(k, `outcome="ok"`) {
				n += v
			}
		}
	}
	return n
}

// TestSharedAddressManyGroups: with a shared address a client sees one
// broker, so it sends the requests that name many groups (OffsetFetch v8+,
// DescribeGroups, DeleteGroups) and ListGroups to whichever agent it
// reaches, though the groups' coordinators are spread over the fleet. Each
// agent, asked directly, answers for every group: it splits the request by
// coordinator, forwards the parts, and merges the answers in order.
func TestSharedAddressManyGroups(t *testing.T) {
	const topic = "many"
	agents, lb := harness.SharedFleet(t, 3, harness.MinIOBackend(t), harness.AgentConfig{FlushInterval: 20 * time.Millisecond})
	createTopic(t, lb.Addr(), topic, 1, nil)
	for _, a := range agents { // each coordinator checks commits against the topic
		harness.Eventually(t, time.Minute, func() bool { _, err := metadataSeen(a.Addr, topic); return err == nil }, "%s never saw topic %s", a, topic)
	}
	groups := make([]string, 12) // rendezvous spreads them over the three
	adm := kadm.NewClient(client(t, lb.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range groups {
		groups[i] = fmt.Sprint("many-", i)
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: int64(i + 1), LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, groups[i], offs); err != nil {
			t.Fatalf("commit for %s: %v", groups[i], err)
		}
	}

	for _, a := range agents {
		cl := client(t, a.Addr).SeedBrokers()[0]
		before := forwardedOK(t, agents)

		of := kmsg.NewPtrOffsetFetchRequest()
		for _, g := range groups {
			rg := kmsg.NewOffsetFetchRequestGroup()
			rg.Group = g // all topics
			of.Groups = append(of.Groups, rg)
		}
		ofr, err := of.RequestWith(ctx, cl)
		if err != nil || len(ofr.Groups) != len(groups) {
			t.Fatalf("OffsetFetch at %s: %v, %d groups", a, err, len(ofr.Groups))
		}
		for i, g := range ofr.Groups {
			if g.Group != groups[i] || g.ErrorCode != 0 || len(g.Topics) != 1 || g.Topics[0].Partitions[0].Offset != int64(i+1) {
				t.Fatalf("OffsetFetch at %s, group %d: %+v, want %s at offset %d", a, i, g, groups[i], i+1)
			}
		}

		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Groups = groups
		dgr, err := dg.RequestWith(ctx, cl)
		if err != nil || len(dgr.Groups) != len(groups) {
			t.Fatalf("DescribeGroups at %s: %v, %d groups", a, err, len(dgr.Groups))
		}
		for i, g := range dgr.Groups {
			if g.Group != groups[i] || g.ErrorCode != 0 || g.State != "Empty" {
				t.Fatalf("DescribeGroups at %s, group %d: %+v, want %s Empty", a, i, g, groups[i])
			}
		}

		lg := kmsg.NewPtrListGroupsRequest()
		lgr, err := lg.RequestWith(ctx, cl)
		if err != nil || lgr.ErrorCode != 0 {
			t.Fatalf("ListGroups at %s: %v %v", a, err, kerr.ErrorForCode(lgr.ErrorCode))
		}
		var listed []string
		for _, g := range lgr.Groups {
			listed = append(listed, g.Group)
		}
		slices.Sort(listed)
		if want := slices.Sorted(slices.Values(groups)); !slices.Equal(listed, want) {
			t.Fatalf("ListGroups at %s: %v, want %v", a, listed, want)
		}
		// Every agent but the one coordinating all of them (none does)
		// forwarded parts of each request.
		if n := forwardedOK(t, agents) - before; n < 3 {
			t.Fatalf("%s forwarded %v requests for three multi-group requests, want at least 3", a, n)
		}
	}

	// Deleting every group through one agent deletes them all.
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = groups
	delr, err := del.RequestWith(ctx, client(t, agents[0].Addr).SeedBrokers()[0])
	if err != nil || len(delr.Groups) != len(groups) {
		t.Fatalf("DeleteGroups: %v, %d groups", err, len(delr.Groups))
	}
	for i, g := range delr.Groups {
		if g.Group != groups[i] || g.ErrorCode != 0 {
			t.Fatalf("DeleteGroups, group %d: %+v (%v), want %s deleted", i, g, kerr.ErrorForCode(g.ErrorCode), groups[i])
		}
	}
	harness.Eventually(t, time.Minute, func() bool {
		listed, err := adm.ListGroups(ctx)
		return err == nil && len(listed) == 0
	}, "groups are still listed after DeleteGroups")
}
