package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// kcatMember is one `kcat -G` process and what it printed.
type kcatMember struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen map[int32]int    // partition → records
	vals map[string]int32 // value → partition
	done chan struct{}
}

func startKcatMember(t *testing.T, ctx context.Context, addr, group, topic string) *kcatMember {
	t.Helper()
	m := &kcatMember{seen: map[int32]int{}, vals: map[string]int32{}, done: make(chan struct{})}
	m.cmd = exec.CommandContext(ctx, "kcat", "-b", addr, "-G", group, topic, "-q", "-u",
		"-f", "%p %o %s\n", "-X", "auto.offset.reset=earliest",
		"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500")
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue
			}
			p, _ := strconv.Atoi(f[0])
			m.mu.Lock()
			m.seen[int32(p)]++
			m.vals[f[2]] = int32(p)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { m.cmd.Process.Kill(); <-m.done })
	return m
}

func (m *kcatMember) snapshot() map[int32]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[int32]int, len(m.seen))
	for p, n := range m.seen {
		out[p] = n
	}
	return out
}

// TestKcatGroup: three `kcat -G` members share a 12-partition topic, every
// partition read by exactly one of them; kill one without leaving and the
// other two take its partitions once its session times out.
func TestKcatGroup(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay", "1s")
	const parts = 12
	createTopic(t, a.Addr, "kg", parts, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := client(t, a.Addr, kgo.DefaultProduceTopic("kg"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(round int) {
		var recs []*kgo.Record
		for i := 0; i < parts*50; i++ {
			recs = append(recs, &kgo.Record{Partition: int32(i % parts), Value: fmt.Appendf(nil, "%d-%d", round, i)})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	total := func(ms ...*kcatMember) (sum int, owners map[int32][]int) {
		owners = map[int32][]int{}
		for i, m := range ms {
			for part, n := range m.snapshot() {
				sum += n
				owners[part] = append(owners[part], i)
			}
		}
		return sum, owners
	}

	members := []*kcatMember{
		startKcatMember(t, ctx, a.Addr, "kg-group", "kg"),
		startKcatMember(t, ctx, a.Addr, "kg-group", "kg"),
		startKcatMember(t, ctx, a.Addr, "kg-group", "kg"),
	}
	// Wait until all three are in the group before producing, so that
	// the first assignment is the three-way one.
	harness.Eventually(t, 2*time.Minute, func() bool {
		var n int
		for _, g := range describeGroup(t, a.Addr, "kg-group") {
			n += g
		}
		return n == 3
	}, "three kcat members never joined")
	produce(1)
	harness.Eventually(t, 2*time.Minute, func() bool { n, _ := total(members...); return n >= parts*50 }, "the first round was not consumed")
	n, owners := total(members...)
	if n != parts*50 {
		t.Fatalf("consumed %d records, want %d", n, parts*50)
	}
	for part := int32(0); part < parts; part++ {
		if len(owners[part]) != 1 {
			t.Fatalf("partition %d read by members %v, want exactly one", part, owners[part])
		}
	}
	for i, m := range members {
		if len(m.snapshot()) == 0 {
			t.Fatalf("member %d got no partition", i)
		}
	}

	// Kill one member outright: no LeaveGroup, so the others take over
	// only when its session times out.
	killed := members[2]
	killed.cmd.Process.Kill()
	<-killed.done
	produce(2)
	// Every second-round record, on every partition, is read by the two
	// survivors: the killed member's partitions were taken over.
	round2 := func() map[int32]int {
		union := map[string]int32{}
		for _, m := range members[:2] {
			m.mu.Lock()
			for v, part := range m.vals {
				if strings.HasPrefix(v, "2-") {
					union[v] = part
				}
			}
			m.mu.Unlock()
		}
		got := map[int32]int{}
		for _, part := range union {
			got[part]++
		}
		return got
	}
	harness.Eventually(t, 2*time.Minute, func() bool {
		got := round2()
		for part := int32(0); part < parts; part++ {
			if got[part] < 50 {
				return false
			}
		}
		return true
	}, "the surviving members never took over the killed member's partitions: %v", round2())
}

// describeGroup returns the members of a Stable group (none otherwise).
func describeGroup(t *testing.T, addr, group string) map[string]int {
	t.Helper()
	cl := client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Groups) != 1 {
		return nil
	}
	out := map[string]int{}
	if resp.Groups[0].State != "Stable" {
		return out
	}
	for _, m := range resp.Groups[0].Members {
		out[m.MemberID] = 1
	}
	return out
}
