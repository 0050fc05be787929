package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// Cross-agent visibility (issue 13, acceptance 3), in the fleet run: how
// long after one agent acknowledges a record a consumer reading through
// another agent gets it. A producer writes to a partition that agent A
// leads, through A; a consumer long-polls the same partition with Fetch
// requests sent to agent B, which learns of A's commit from the metadata
// log (pushed by the sequencer, or read at its next poll) and then reads
// the segment from the bucket. The figure is B's answer time minus A's
// acknowledgement time, per record (0 when B answered first: the commit is
// applied before A's answer travels back).
const (
	visibilityRecords = 300
	visibilityEvery   = 20 * time.Millisecond
)

// VisibilityFigures are the probe's results.
type VisibilityFigures struct {
	Samples int     `json:"samples"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

func measureVisibility(ctx context.Context, agents []*harness.Agent, topic string) (*VisibilityFigures, error) {
	if len(agents) < 2 {
		return nil, errors.New("visibility needs two agents")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(agents[0].Addr))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	md, err := kadm.NewClient(admin).Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	// A leads the partition; B is another agent.
	hostOf := map[int32]string{}
	for _, b := range md.Brokers {
		hostOf[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	var a, b string
	partition := int32(-1)
	for _, p := range md.Topics[topic].Partitions.Sorted() {
		if partition < 0 && hostOf[p.Leader] != "" {
			partition, a = p.Partition, hostOf[p.Leader]
		}
	}
	for _, ag := range agents {
		if ag.Addr != a && b == "" {
			b = ag.Addr
		}
	}
	if partition < 0 || b == "" {
		return nil, fmt.Errorf("no partition of %s with a leader, and another agent, in %v", topic, hostOf)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(a), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(b))
	if err != nil {
		return nil, err
	}
	defer cons.Close()

	// Start past what is there already.
	lo, err := kadm.NewClient(cons).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	start := int64(0)
	if o, ok := lo.Lookup(topic, partition); ok {
		start = o.Offset
	}

	var mu sync.Mutex
	acked := map[int64]time.Time{}
	seen := map[int64]time.Time{}
	fetchErr := make(chan error, 1)
	fctx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	id := md.Topics[topic].ID
	go func() { fetchErr <- fetchFrom(fctx, cons.SeedBrokers()[0], topic, id, partition, start, &mu, seen) }()

	var wg sync.WaitGroup
	var produceErr error
	for i := range visibilityRecords {
		wg.Add(1)
		prod.Produce(ctx, &kgo.Record{Partition: partition, Value: []byte(strconv.Itoa(i))}, func(r *kgo.Record, err error) {
			defer wg.Done()
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				produceErr = err
				return
			}
			acked[r.Offset] = now
		})
		sleep(ctx, visibilityEvery)
	}
	wg.Wait()
	if produceErr != nil {
		return nil, produceErr
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := len(seen) >= len(acked)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the consumer on %s saw %d of %d records", b, len(seen), len(acked))
		}
		select {
		case err := <-fetchErr:
			return nil, fmt.Errorf("the consumer on %s: %w", b, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopFetch()
	if err := <-fetchErr; err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	var h Histogram
	var worst time.Duration
	mu.Lock()
	defer mu.Unlock()
	for off, at := range acked {
		d := max(seen[off].Sub(at), 0)
		h.Record(d)
		worst = max(worst, d)
	}
	return &VisibilityFigures{Samples: len(acked), P50ms: ms(h.Quantile(0.5)), P99ms: ms(h.Quantile(0.99)), MaxMs: ms(worst)}, nil
}

// fetchFrom long-polls one partition through one broker from offset on,
// noting when each offset is first returned.
// The client picks the version (13 and up name the topic by id).
func fetchFrom(ctx context.Context, br *kgo.Broker, topic string, id [16]byte, partition int32, offset int64, mu *sync.Mutex, seen map[int64]time.Time) error {
	for ctx.Err() == nil {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = 1000, 1, 1<<20, -1 // no session
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = partition, offset, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, br)
		if err != nil {
			return err
		}
		now := time.Now()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, offset, err)
				}
				for raw := p.RecordBatches; len(raw) >= 61; {
					var rb kmsg.RecordBatch
					if err := rb.ReadFrom(raw); err != nil {
						return fmt.Errorf("fetch %s/%d: %w", topic, partition, err)
					}
					raw = raw[12+int(rb.Length):]
					mu.Lock()
					for o := rb.FirstOffset; o <= rb.FirstOffset+int64(rb.LastOffsetDelta); o++ {
						if _, ok := seen[o]; !ok && o >= offset {
							seen[o] = now
						}
					}
					mu.Unlock()
					offset = max(offset, rb.FirstOffset+int64(rb.LastOffsetDelta)+1)
				}
			}
		}
	}
	return ctx.Err()
}
