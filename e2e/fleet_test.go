package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestFleetThroughLoadBalancer: three agents on one MinIO bucket behind a
// real HAProxy, clients given only its address. Each agent advertises its
// own address (direct mode), so after bootstrapping through the load
// balancer a client talks to the agents themselves. A producer writes 1000
// records to a 6-partition topic and a separate consumer reads every one
// back, each once, where the producer was told it was written.
func TestFleetThroughLoadBalancer(t *testing.T) {
	const (
		topic      = "fleet"
		partitions = 6
		records    = 1000
	)
	agents, lb := harness.Fleet(t, 3, harness.MinIOBackend(t), harness.AgentConfig{FlushInterval: 20 * time.Millisecond})
	createTopic(t, lb.Addr(), topic, partitions, nil)
	// The producer's bootstrap lands on whichever agent is next: wait until
	// each has tailed the creation, so none auto-creates a one-partition
	// topic of that name. (The test looks at each agent; the clients under
	// test are given only the load balancer.)
	for _, a := range agents {
		adm := kadm.NewClient(client(t, a.Addr))
		harness.Eventually(t, 30*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			td, err := adm.ListTopics(ctx, topic)
			return err == nil && len(td[topic].Partitions) == partitions
		}, "%s does not see topic %s with %d partitions", a, topic, partitions)
	}

	type pos struct {
		p   int32
		off int64
	}
	var (
		mu    sync.Mutex
		acked = map[string]pos{}
		errs  []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prod := client(t, lb.Addr(), kgo.DefaultProduceTopic(topic))
	for i := range records {
		v := "v-" + strconv.Itoa(i)
		prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v, err))
				return
			}
			acked[v] = pos{r.Partition, r.Offset}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d produce errors; first: %v", len(errs), errs[0])
	}
	if len(acked) != records {
		t.Fatalf("%d records acknowledged, want %d", len(acked), records)
	}

	ends := map[int32]int64{}
	for p := range int32(partitions) {
		ends[p] = 0
	}
	for _, at := range acked {
		ends[at.p] = max(ends[at.p], at.off+1)
	}
	used := 0
	for _, end := range ends {
		if end > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("records went to %d partitions (%v), want them spread", used, ends)
	}

	// consumeAll fails unless each partition reads 0, 1, 2, … up to its
	// end without a gap or a repeat.
	got := consumeAll(t, lb.Addr(), topic, ends)
	for v, at := range acked {
		if r := got[at.p][at.off]; string(r.Value) != v {
			t.Fatalf("%s/%d offset %d: read %q, acknowledged as %q", topic, at.p, at.off, r.Value, v)
		}
	}
	n := 0
	for _, rs := range got {
		n += len(rs)
	}
	if n != records {
		t.Fatalf("read %d records, want %d", n, records)
	}
}
