package tiered

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rig is an Ingest over an in-memory bucket (behind Faulty) and a running
// metadata log. Everything it starts is stopped by t.Cleanup, so a rig made
// inside a synctest bubble is torn down inside it.
type rig struct {
	t      testing.TB
	mem    *objstore.Memory
	faulty *objstore.Faulty
	log    *meta.Log
	cache  *cache.Cache
	in     *Ingest
}

// newRig wires store (nil: a fresh Memory) behind a Faulty. The ingest
// writes through the Faulty, so tests can break PUTs and log appends.
func newRig(t testing.TB, cfg IngestConfig, opts meta.Options, wrap func(objstore.Store) objstore.Store) *rig {
	t.Helper()
	r := &rig{t: t, mem: objstore.NewMemory()}
	var inner objstore.Store = r.mem
	if wrap != nil {
		inner = wrap(inner)
	}
	r.faulty = objstore.NewFaulty(inner)

	c, err := cache.New(4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.cache = c
	t.Cleanup(c.Close)

	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.WriterID == "" {
		opts.WriterID = "w1"
	}
	r.log, err = meta.Open(context.Background(), r.faulty, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.log.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.WriterID == "" {
		cfg.WriterID = opts.WriterID
	}
	r.in = NewIngest(cfg, r.faulty, r.log, c, nil)
	t.Cleanup(r.in.Close) // runs first: the log must still be running
	return r
}

func topicID(name string) (id meta.TopicID) {
	copy(id[:], name)
	return id
}

func (r *rig) createTopic(name string, partitions int32) meta.TopicID {
	r.t.Helper()
	id := topicID(name)
	res, err := r.log.Append(context.Background(), meta.CreateTopic{Name: name, ID: id, Partitions: partitions, ReplicationFactor: 1})
	if err != nil || res[0].Err != nil {
		r.t.Fatalf("create topic %s: %v %v", name, err, res)
	}
	return id
}

func (r *rig) seq() (seq uint64) {
	r.log.View(func(s *meta.State) { seq = s.Seq })
	return seq
}

// chunks copies a partition's index out of the state.
func (r *rig) chunks(id meta.TopicID, p int32) (cs []meta.Chunk, hw int64) {
	r.log.View(func(s *meta.State) {
		part := s.TopicByID(id).Partition(p)
		cs = append(cs, part.Chunks...)
		hw = part.HighWatermark
	})
	return cs, hw
}

// segmentKeys lists the segment objects in the bucket.
func (r *rig) segmentKeys() []string {
	r.t.Helper()
	objs, err := r.mem.List(context.Background(), "seg/", "", 0)
	if err != nil {
		r.t.Fatal(err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}

// entriesSince decodes the log entries after slot seq.
func (r *rig) entriesSince(seq uint64) []*meta.Entry {
	r.t.Helper()
	objs, err := r.mem.List(context.Background(), "meta/log/", meta.EntryKey(seq), 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*meta.Entry
	for _, o := range objs {
		b, err := r.mem.Get(context.Background(), o.Key)
		if err != nil {
			r.t.Fatal(err)
		}
		en, err := meta.DecodeEntry(b)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, en)
	}
	return out
}

// mkBatch builds a valid uncompressed batch of n records with values
// "tag/0" … "tag/n-1", base offset 0 and leader epoch -1, as a producer
// sends it.
func mkBatch(t testing.TB, tag string, n int, ts int64) Batch {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Value: fmt.Appendf(nil, "%s/%d", tag, i)}
	}
	b, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, FirstTimestamp: ts, MaxTimestamp: ts + int64(n) - 1,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, batch.None, recs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	return Batch{Data: b, Header: h}
}

// readBatch is one batch as a consumer sees it.
type readBatch struct {
	h      batch.Header
	values []string
}

func (b readBatch) String() string {
	return fmt.Sprintf("@%d %s", b.h.BaseOffset, strings.Join(b.values, ","))
}

// decodeBatches splits and fully validates concatenated batches.
func decodeBatches(t testing.TB, b []byte) []readBatch {
	t.Helper()
	var out []readBatch
	err := batch.Split(b, func(bb []byte, h batch.Header) error {
		if _, err := batch.Validate(bb); err != nil {
			return err
		}
		recs, err := batch.Records(bb, 1<<20)
		if err != nil {
			return err
		}
		rb := readBatch{h: h}
		for _, rec := range recs {
			rb.values = append(rb.values, string(rec.Value))
		}
		out = append(out, rb)
		return nil
	})
	if err != nil {
		t.Fatalf("decoding batches: %v", err)
	}
	return out
}

// readPartition reads a partition's whole log through rd.
func (r *rig) readPartition(rd *Reader, id meta.TopicID, p int32) []readBatch {
	r.t.Helper()
	cs, _ := r.chunks(id, p)
	var out []readBatch
	for _, c := range cs {
		b, err := rd.Chunk(context.Background(), c)
		if err != nil {
			r.t.Fatalf("reading %+v: %v", c, err)
		}
		out = append(out, decodeBatches(r.t, b)...)
	}
	return out
}

// coldReader reads from the bucket through an empty cache, so it never
// sees the objects Ingest published.
func (r *rig) coldReader() *Reader {
	c, err := cache.New(4<<20, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(c.Close)
	return NewReader(r.mem, c)
}

// gateStore holds chosen operations until the gate opens, and counts the
// callers waiting at it. Used inside synctest bubbles, where a goroutine
// blocked on the gate channel is durably blocked.
type gateStore struct {
	objstore.Store
	gatePut, gateGetRange bool

	once    sync.Once
	open    chan struct{}
	waiting atomic.Int32
}

func newGateStore(s objstore.Store, put, getRange bool) *gateStore {
	return &gateStore{Store: s, gatePut: put, gateGetRange: getRange, open: make(chan struct{})}
}

func (g *gateStore) Open() { g.once.Do(func() { close(g.open) }) }

func (g *gateStore) hold() {
	g.waiting.Add(1)
	<-g.open
	g.waiting.Add(-1)
}

func (g *gateStore) Put(ctx context.Context, key string, data []byte) error {
	if g.gatePut && strings.HasPrefix(key, "seg/") {
		g.hold()
		// The caller's deadline may have passed on the fake clock while held.
		ctx = context.WithoutCancel(ctx)
	}
	return g.Store.Put(ctx, key, data)
}

func (g *gateStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if g.gateGetRange {
		g.hold()
	}
	return g.Store.GetRange(ctx, key, off, n)
}
