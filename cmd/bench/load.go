package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Load is what the producers and consumers do, the same against every
// broker.
type Load struct {
	RecordSize  int    // value bytes per record (≥ 8: the send time rides in the first 8)
	Partitions  int    // of the one topic
	Producers   int    // producer clients
	Consumers   int    // tail consumer clients, each assigned every Consumers-th partition
	Acks        string // all, 1 or 0
	Compression string // none, gzip, snappy, lz4, zstd
	Linger      time.Duration
	// TxnRecords, when nonzero, makes each producer transactional: it
	// commits a transaction every TxnRecords records, and the tail
	// consumers read with read_committed.
	TxnRecords int
}

// PhaseStats is what the clients saw in one measured window.
type PhaseStats struct {
	Seconds         float64
	Records, Bytes  int64 // acknowledged (sent, for acks=0) in the window
	ConsumedRecords int64 // by the tail consumers in the window
	ConsumedBytes   int64
	ProduceErrors   int64
	ProduceLat      *Histogram // records sent in the window: send → acknowledgement
	E2ELat          *Histogram // records consumed in the window: send → consumed
}

// driver runs Load against one broker: a topic, producer clients and tail
// consumer clients that live for the whole scenario.
type driver struct {
	load    Load
	seeds   []string
	topic   string
	payload []byte
	prods   []*kgo.Client
	cons    []*kgo.Client

	acked, ackedBytes, errs atomic.Int64
	consumed, consBytes     atomic.Int64
	sendHist, e2eHist       atomic.Pointer[Histogram] // nil: not measuring

	stopCons  context.CancelFunc
	consDone  sync.WaitGroup
	closeOnce sync.Once
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

func producerOpts(l Load) ([]kgo.Opt, error) {
	c, err := codec(l.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(c),
		kgo.MaxBufferedBytes(64 << 20),
		kgo.MaxBufferedRecords(1 << 20),
		kgo.ProduceRequestTimeout(30 * time.Second),
	}
	if l.Linger > 0 {
		opts = append(opts, kgo.ProducerLinger(l.Linger))
	}
	switch l.Acks {
	case "all", "-1":
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5))
	default:
		return nil, fmt.Errorf("acks %q: want all, 1 or 0", l.Acks)
	}
	return opts, nil
}

// newDriver creates the topic, runs settle (when not nil) and starts the
// producer clients and the tail consumers at offset 0 of the empty topic.
func newDriver(ctx context.Context, l Load, seeds []string, topic string, settle func(ctx context.Context, topic string) error) (*driver, error) {
	if l.RecordSize < 8 {
		return nil, errors.New("record size must be at least 8 bytes")
	}
	d := &driver{load: l, seeds: seeds, topic: topic}
	// Letters: compressible about as much as text, unlike random bytes.
	r := rand.New(rand.NewPCG(7, 11))
	d.payload = make([]byte, 1<<20+l.RecordSize)
	for i := range d.payload {
		d.payload[i] = byte('a' + r.IntN(26))
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	_, err = kadm.NewClient(admin).CreateTopic(actx, int32(l.Partitions), 1, nil, topic)
	cancel()
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("create topic %s (%d partitions): %w", topic, l.Partitions, err)
	}
	if settle != nil {
		if err := settle(ctx, topic); err != nil {
			return nil, err
		}
	}

	popts, err := producerOpts(l)
	if err != nil {
		return nil, err
	}
	for i := range l.Producers {
		opts := append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic)}, popts...)
		if l.TxnRecords > 0 {
			opts = append(opts, kgo.TransactionalID(fmt.Sprintf("bench-%s-%d", topic, i)))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			d.close()
			return nil, err
		}
		d.prods = append(d.prods, cl)
	}
	cctx, stop := context.WithCancel(context.Background())
	d.stopCons = stop
	for i := range l.Consumers {
		parts := map[int32]kgo.Offset{}
		for p := i; p < l.Partitions; p += l.Consumers {
			parts[int32(p)] = kgo.NewOffset().AtStart()
		}
		if len(parts) == 0 {
			continue
		}
		copts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
			kgo.FetchMaxWait(time.Second)}
		if l.TxnRecords > 0 {
			copts = append(copts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		}
		cl, err := kgo.NewClient(copts...)
		if err != nil {
			d.close()
			return nil, err
		}
		d.cons = append(d.cons, cl)
		d.consDone.Add(1)
		go d.consume(cctx, cl)
	}
	return d, nil
}

func (d *driver) consume(ctx context.Context, cl *kgo.Client) {
	defer d.consDone.Done()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now().UnixNano()
		h := d.e2eHist.Load()
		var n, b int64
		fs.EachRecord(func(r *kgo.Record) {
			n++
			b += int64(len(r.Value))
			if h != nil && len(r.Value) >= 8 {
				h.Record(time.Duration(now - int64(binary.LittleEndian.Uint64(r.Value))))
			}
		})
		d.consumed.Add(n)
		d.consBytes.Add(b)
	}
}

func (d *driver) close() { d.closeOnce.Do(d.closeClients) }

func (d *driver) closeClients() {
	if d.stopCons != nil {
		d.stopCons()
	}
	for _, cl := range d.cons {
		cl.Close()
	}
	d.consDone.Wait()
	for _, cl := range d.prods {
		cl.Close()
	}
}

// phase produces for dur: as fast as the broker answers when rate is 0,
// else at rate records per second in total. The first warmup is not
// measured; mark is called when the measured window opens (true) and
// closes (false), for the caller's scrapes. After the window the producers
// stop and every buffered record is flushed before phase returns.
func (d *driver) phase(ctx context.Context, dur, warmup time.Duration, rate float64, mark func(open bool)) (PhaseStats, error) {
	st := PhaseStats{ProduceLat: &Histogram{}, E2ELat: &Histogram{}}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var seq atomic.Uint64
	for i, cl := range d.prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.produce(pctx, cl, i, rate/float64(len(d.prods)), &seq)
		}()
	}
	sleep(ctx, warmup)
	mark(true)
	d.sendHist.Store(st.ProduceLat)
	d.e2eHist.Store(st.E2ELat)
	a0, b0, c0, cb0, e0 := d.acked.Load(), d.ackedBytes.Load(), d.consumed.Load(), d.consBytes.Load(), d.errs.Load()
	start := time.Now()
	sleep(ctx, dur-warmup)
	st.Seconds = time.Since(start).Seconds()
	st.Records, st.Bytes = d.acked.Load()-a0, d.ackedBytes.Load()-b0
	st.ConsumedRecords, st.ConsumedBytes = d.consumed.Load()-c0, d.consBytes.Load()-cb0
	d.sendHist.Store(nil)
	mark(false)
	stop()
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, cl := range d.prods {
		if err := cl.Flush(fctx); err != nil {
			return st, fmt.Errorf("flushing producers: %w", err)
		}
	}
	d.e2eHist.Store(nil) // records sent in the window may still arrive; they counted
	st.ProduceErrors = d.errs.Load() - e0
	return st, ctx.Err()
}

// produce sends records round-robin over the partitions, starting at a
// different one per producer.
func (d *driver) produce(ctx context.Context, cl *kgo.Client, id int, rate float64, seq *atomic.Uint64) {
	size := d.load.RecordSize
	p := id * d.load.Partitions / max(len(d.prods), 1)
	start := time.Now()
	inTxn := 0 // records in the open transaction
	defer func() {
		if inTxn > 0 {
			d.endTxn(cl)
		}
	}()
	for n := 0; ctx.Err() == nil; n++ {
		if d.load.TxnRecords > 0 {
			if inTxn == d.load.TxnRecords {
				d.endTxn(cl)
				inTxn = 0
			}
			if inTxn == 0 {
				if err := cl.BeginTransaction(); err != nil {
					d.errs.Add(1)
					return
				}
			}
			inTxn++
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				sleep(ctx, wait)
				if ctx.Err() != nil {
					return
				}
			}
		}
		off := int(seq.Add(7919) % (1 << 20))
		v := make([]byte, size)
		copy(v, d.payload[off:off+size])
		h := d.sendHist.Load()
		t0 := time.Now()
		binary.LittleEndian.PutUint64(v, uint64(t0.UnixNano()))
		rec := &kgo.Record{Value: v, Partition: int32(p)}
		p++
		if p == d.load.Partitions {
			p = 0
		}
		// Background, not ctx: ending the phase must not fail buffered
		// records; Produce blocks only while the client buffer is full.
		cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
			if err != nil {
				d.errs.Add(1)
				return
			}
			if h != nil {
				h.Record(time.Since(t0))
			}
			d.acked.Add(1)
			d.ackedBytes.Add(int64(size))
		})
	}
}

// endTxn flushes the producer's transaction and commits it (whatever the
// phase's context: its records count once acknowledged).
func (d *driver) endTxn(cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.Flush(ctx); err != nil {
		d.errs.Add(1)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		d.errs.Add(1)
	}
}

// waitConsumed waits until the tail consumers have read n records in total.
func (d *driver) waitConsumed(ctx context.Context, n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for d.consumed.Load() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 20*time.Millisecond)
	}
	return true
}

// CatchUp is one cold read of the whole topic.
type CatchUp struct {
	Seconds        float64
	Records, Bytes int64
	Complete       bool // read everything that was produced before the limit
	// Fetches is the Fetch answers with records the consumers read
	// (FetchBytes in all, framing included); AnswerSeconds the time they
	// spent, summed, from the end of writing each request to the last
	// byte of its answer in the client's memory: the broker's handling,
	// the transfer and the client's reading. A consumer has one fetch in
	// flight at a time, so the rest of its time is its own (decoding,
	// handing records over, asking again). Answers without records (a
	// consumer done with its share, waiting out fetch max wait) count in
	// neither.
	Fetches       int64
	FetchBytes    int64
	AnswerSeconds float64
}

// fetchCycle is a consumer's mean time per Fetch with records and, of it,
// the time the answer took to arrive (CatchUp.AnswerSeconds); with several
// consumers at once, per consumer.
func (c CatchUp) fetchCycle(clients int) (cycle, answer time.Duration) {
	if c.Fetches == 0 {
		return 0, 0
	}
	per := func(s float64) time.Duration { return time.Duration(s / float64(c.Fetches) * float64(time.Second)) }
	return per(c.Seconds * float64(max(clients, 1))), per(c.AnswerSeconds)
}

// fetchTimes is a kgo hook that counts a client's Fetch answers with
// records, their bytes and the time each took to arrive after its request
// was written.
type fetchTimes struct {
	fetches, bytes atomic.Int64
	nanos          atomic.Int64
}

// emptyFetchBytes is the most a Fetch answer without records takes: a
// few dozen bytes per partition.
const emptyFetchBytes = 16 << 10

func (h *fetchTimes) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key != int16(kmsg.Fetch) || e.Err() != nil || e.BytesRead <= emptyFetchBytes {
		return
	}
	h.fetches.Add(1)
	h.bytes.Add(int64(e.BytesRead))
	h.nanos.Add(int64(e.ReadWait + e.TimeToRead))
}

// catchUp reads the topic from offset 0 on every partition with clients
// new consumers, each given every clients-th partition as the members of
// a group would share them, until want records have arrived or limit has
// passed.
func catchUp(ctx context.Context, seeds []string, topic string, partitions, clients int, want int64, limit time.Duration) (CatchUp, error) {
	if want <= 0 {
		return CatchUp{Complete: true, Seconds: 1e-9}, nil // nothing to read: no rates to divide by zero
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var consumers []*kgo.Client
	var times fetchTimes
	defer func() {
		for _, cl := range consumers {
			cl.Close()
		}
	}()
	for i := range clients {
		parts := map[int32]kgo.Offset{}
		for p := i; p < partitions; p += clients {
			parts[int32(p)] = kgo.NewOffset().AtStart()
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
			kgo.FetchMaxWait(time.Second), kgo.FetchMaxBytes(64<<20), kgo.WithHooks(&times))
		if err != nil {
			return CatchUp{}, err
		}
		consumers = append(consumers, cl)
	}
	var records, bytes atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, cl := range consumers {
		wg.Go(func() {
			for cctx.Err() == nil {
				var n, b int64
				cl.PollFetches(cctx).EachRecord(func(r *kgo.Record) {
					n++
					b += int64(len(r.Value))
				})
				bytes.Add(b)
				if records.Add(n) >= want {
					cancel() // the others wait in PollFetches for more
				}
			}
		})
	}
	wg.Wait()
	res := CatchUp{Seconds: time.Since(start).Seconds(), Records: records.Load(), Bytes: bytes.Load(),
		Fetches: times.fetches.Load(), FetchBytes: times.bytes.Load(), AnswerSeconds: float64(times.nanos.Load()) / 1e9}
	res.Complete = res.Records >= want
	return res, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
