package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
)

// leadersOf returns the leader node of every partition of topic as the
// agent at addr names it, and the agents' node ids by address.
func leadersOf(t *testing.T, addr, topic string) (map[int32]int32, map[int32]string) {
	t.Helper()
	resp, err := metadataSeen(addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int32{}
	for _, p := range resp.Topics[0].Partitions {
		if len(p.Replicas) != 1 || p.Replicas[0] != p.Leader || len(p.ISR) != 1 || p.ISR[0] != p.Leader {
			t.Fatalf("%s/%d from %s: leader %d, replicas %v, isr %v; want the leader alone", topic, p.Partition, addr, p.Leader, p.Replicas, p.ISR)
		}
		leaders[p.Partition] = p.Leader
	}
	nodes := map[int32]string{}
	for _, b := range resp.Brokers {
		nodes[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	return leaders, nodes
}

// sees reports whether the agent at addr knows topic and lists n agents.
func sees(addr, topic string, n int) bool {
	resp, err := metadataSeen(addr, topic)
	return err == nil && len(resp.Brokers) == n
}

// TestFleetLeadership: three agents on one MinIO bucket behind HAProxy
// (direct mode: each advertises itself). Metadata from every agent names
// the same leader for each partition, spread evenly over the three (within
// ±20 % over 3000 partitions), so producers and consumers of a partition
// meet on one agent: kcat and franz-go, given only the load balancer,
// produce and consume with no segment read from the bucket anywhere (each
// partition's tail is in its leader's cache). An agent stopped with
// SIGTERM takes its partitions' leadership with it at once.
func TestFleetLeadership(t *testing.T) {
	agents, lb := harness.Fleet(t, 3, harness.MinIOBackend(t), harness.AgentConfig{FlushInterval: 20 * time.Millisecond})
	const spread, spreadParts = "spread", 3000
	createTopic(t, agents[0].Addr, spread, spreadParts, nil)
	var first map[int32]int32
	for _, a := range agents {
		var leaders map[int32]int32
		var nodes map[int32]string
		harness.Eventually(t, time.Minute, func() bool { return sees(a.Addr, spread, 3) }, "%s never saw three agents and the topic", a)
		leaders, nodes = leadersOf(t, a.Addr, spread)
		if first == nil {
			first = leaders
			count := map[int32]int{}
			for _, l := range leaders {
				count[l]++
			}
			for id, addr := range nodes {
				if n := count[id]; n < spreadParts/3*8/10 || n > spreadParts/3*12/10 {
					t.Errorf("%s (node %d) leads %d of %d partitions, want %d ± 20 %%", addr, id, n, spreadParts, spreadParts/3)
				}
			}
			continue
		}
		for p, l := range leaders {
			if first[p] != l {
				t.Fatalf("%s names node %d leader of %s/%d, the first agent node %d", a, l, spread, p, first[p])
			}
		}
	}

	// kcat through the load balancer: produce, then consume everything.
	const topic, partitions, records = "lead", 8, 400
	createTopic(t, agents[0].Addr, topic, partitions, nil)
	for _, a := range agents {
		harness.Eventually(t, time.Minute, func() bool { return sees(a.Addr, topic, 3) }, "%s never saw %s", a, topic)
	}
	var in bytes.Buffer
	for i := range records {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	kcat(t, time.Minute, in.Bytes(), "-b", lb.Addr(), "-P", "-t", topic, "-K", ":", "-X", "enable.idempotence=true")
	// Acknowledged by each partition's leader; every agent's view gets
	// there within a poll.
	var ends map[int32]int64
	for _, a := range agents {
		harness.Eventually(t, time.Minute, func() bool {
			ends = endOffsetsSeen(t, a.Addr, topic)
			total := int64(0)
			for _, e := range ends {
				total += e
			}
			return total == records
		}, "%s never saw the %d records kcat produced: %v", a, records, lazy(func() string { return fmt.Sprint(ends) }))
	}
	out := kcat(t, time.Minute, nil, "-b", lb.Addr(), "-C", "-t", topic, "-e", "-f", "%k=%s\n")
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != records {
		t.Fatalf("kcat read %d records, want %d", len(lines), records)
	}
	// franz-go through the load balancer reads them all again.
	got := consumeAll(t, lb.Addr(), topic, ends)
	n := 0
	for _, rs := range got {
		n += len(rs)
	}
	if n != records {
		t.Fatalf("franz-go read %d records, want %d", n, records)
	}
	for _, a := range agents {
		m := scrape(t, a.HTTPAddr)
		if m[wholeReads]+m[rangeReads] != 0 {
			t.Errorf("%s read segments from the bucket (%v whole, %v ranged): a partition's tail was not on its leader", a, m[wholeReads], m[rangeReads])
		}
	}

	// SIGTERM one: once the others have read its departure they name only
	// themselves, and agree.
	gone := agents[2]
	_, nodes := leadersOf(t, agents[0].Addr, spread)
	goneID := int32(-1)
	for id, addr := range nodes {
		if addr == gone.Addr {
			goneID = id
		}
	}
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents[:2] {
		harness.Eventually(t, time.Minute, func() bool {
			leaders, nodes := leadersOf(t, a.Addr, spread)
			for _, l := range leaders {
				if nodes[l] == gone.Addr || nodes[l] == "" {
					return false
				}
			}
			return len(nodes) == 2
		}, "%s still names the departed agent", a)
	}
	l0, _ := leadersOf(t, agents[0].Addr, spread)
	l1, _ := leadersOf(t, agents[1].Addr, spread)
	for p := range l0 {
		if l0[p] != l1[p] {
			t.Fatalf("after the departure the agents disagree on %s/%d: %d and %d", spread, p, l0[p], l1[p])
		}
		if l0[p] != first[p] && first[p] != goneID {
			t.Fatalf("%s/%d moved from node %d to %d though its leader stayed", spread, p, first[p], l0[p])
		}
	}
}
