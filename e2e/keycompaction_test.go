package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

// keyed is one record of a compacted topic as a consumer sees it.
type keyed struct {
	key       string
	value     string
	tombstone bool
}

// compactedRef is the reference a test computes from what it produced:
// per partition, offset → record, of the newest record of each key.
type compactedRef map[int32]map[int64]keyed

// newestPerKey reduces produced records to the newest per key.
func newestPerKey(produced []*kgo.Record) compactedRef {
	type at struct {
		p   int32
		off int64
		r   keyed
	}
	newest := map[string]at{}
	for _, r := range produced {
		k := string(r.Key)
		if cur, ok := newest[k]; !ok || r.Offset > cur.off {
			newest[k] = at{r.Partition, r.Offset, keyed{k, string(r.Value), r.Value == nil}}
		}
	}
	ref := compactedRef{}
	for _, a := range newest {
		if ref[a.p] == nil {
			ref[a.p] = map[int64]keyed{}
		}
		ref[a.p][a.off] = a.r
	}
	return ref
}

// diff describes how got differs from want, or returns "".
func (want compactedRef) diff(got compactedRef) string {
	var b strings.Builder
	for p, offs := range want {
		for off, w := range offs {
			if g, ok := got[p][off]; !ok {
				fmt.Fprintf(&b, "%d/%d: missing %+v\n", p, off, w)
			} else if g != w {
				fmt.Fprintf(&b, "%d/%d: %+v, want %+v\n", p, off, g, w)
			}
		}
	}
	for p, offs := range got {
		for off, g := range offs {
			if _, ok := want[p][off]; !ok {
				fmt.Fprintf(&b, "%d/%d: unexpected %+v\n", p, off, g)
			}
		}
	}
	if s := b.String(); len(s) > 4000 {
		return s[:4000] + "…"
	}
	return b.String()
}

// readCompactedFranz reads topic with franz-go from the start until it has
// seen every partition's last offset in want; offsets must ascend.
func readCompactedFranz(t *testing.T, addr, topic string, want compactedRef) compactedRef {
	t.Helper()
	last := map[int32]int64{}
	for p, offs := range want {
		for off := range offs {
			last[p] = max(last[p], off)
		}
	}
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got := compactedRef{}
	prev := map[int32]int64{}
	done := func() bool {
		for p, off := range last {
			if prev[p] < off {
				return false
			}
		}
		return true
	}
	for p := range last {
		prev[p] = -1
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go read %d partitions of %s, reached %v, want %v", len(got), topic, prev, last)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset <= prev[r.Partition] {
				t.Fatalf("%s/%d: offset %d after %d", topic, r.Partition, r.Offset, prev[r.Partition])
			}
			prev[r.Partition] = r.Offset
			if got[r.Partition] == nil {
				got[r.Partition] = map[int64]keyed{}
			}
			got[r.Partition][r.Offset] = keyed{string(r.Key), string(r.Value), r.Value == nil}
		})
	}
	return got
}

// readCompactedKcat reads topic with kcat (librdkafka) to the end of every
// partition.
func readCompactedKcat(t *testing.T, addr, topic string) compactedRef {
	t.Helper()
	// check.crcs: librdkafka verifies every batch's CRC, which cleaning
	// recomputed for each batch it rebuilt.
	out := kcat(t, 2*time.Minute, nil, "-b", addr, "-C", "-t", topic, "-e", "-o", "beginning", "-q",
		"-X", "check.crcs=true", "-f", `%p|%o|%k|%S|%s\n`)
	got := compactedRef{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 5 {
			t.Fatalf("kcat line %q", sc.Text())
		}
		p, err1 := strconv.ParseInt(f[0], 10, 32)
		off, err2 := strconv.ParseInt(f[1], 10, 64)
		size, err3 := strconv.Atoi(f[3])
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		if got[int32(p)] == nil {
			got[int32(p)] = map[int64]keyed{}
		}
		if _, dup := got[int32(p)][off]; dup {
			t.Fatalf("kcat read %d/%d twice", p, off)
		}
		got[int32(p)][off] = keyed{key: f[2], value: f[4], tombstone: size < 0}
	}
	return got
}

// cleanerState returns, per partition of topic, the high watermark, the
// clean/dirty boundary and whether every chunk is a cleaned object.
func cleanerState(t *testing.T, b harness.Backend, topic string) (hw, cleaned []int64, allCleaned bool) {
	t.Helper()
	allCleaned = true
	viewBucketState(t, b, func(st *meta.State) {
		for _, p := range st.Topic(topic).Partitions {
			hw = append(hw, p.HighWatermark)
			cleaned = append(cleaned, p.CleanedTo)
			for _, c := range p.Chunks {
				allCleaned = allCleaned && strings.HasPrefix(c.Object, "cln/")
			}
		}
	})
	return hw, cleaned, allCleaned
}

// lazy formats as what its function returns when the message is built.
type lazy func() string

func (l lazy) String() string { return l() }

// TestKeyCompaction: a compacted topic takes 100,000 updates over 1,000
// keys from four producers using every codec. Key compaction leaves the
// newest record of each key at its original offset, tombstones included;
// after delete.retention.ms (with max.compaction.lag.ms forcing a pass
// below the dirty ratio) later tombstones go too. kcat and franz-go read
// exactly the reference the test computes from the produce results, and
// the replaced ingestion objects leave the bucket. A record without a key
// is refused with INVALID_RECORD.
func TestKeyCompaction(t *testing.T) {
	const (
		topic      = "compacted"
		partitions = 4
		keys       = 1000
		updates    = 100_000
	)
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 20*time.Millisecond, "--cleaner-backoff=300ms", "--collect-grace=500ms",
		"--retention-check-interval=300ms", "--compaction-interval=0")
	createTopic(t, a.Addr, topic, partitions, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var produced []*kgo.Record
	produce := func(cl *kgo.Client, recs []*kgo.Record) {
		for _, r := range cl.ProduceSync(ctx, recs...) {
			if r.Err != nil {
				t.Errorf("produce: %v", r.Err)
				return
			}
		}
		mu.Lock()
		produced = append(produced, recs...)
		mu.Unlock()
	}

	// Phase 1: every codec, every 13th update a tombstone.
	codecs := []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	var wg sync.WaitGroup
	for w, codec := range codecs {
		cl := client(t, a.Addr, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
		wg.Go(func() {
			for from := w; from < updates; from += len(codecs) * 500 {
				var recs []*kgo.Record
				for i := from; i < min(from+len(codecs)*500, updates); i += len(codecs) {
					r := &kgo.Record{Key: fmt.Appendf(nil, "key-%04d", i*7919%keys)}
					if i%13 != 0 {
						r.Value = fmt.Appendf(nil, "v-%d", i)
					}
					recs = append(recs, r)
				}
				produce(cl, recs)
			}
		})
	}
	wg.Wait()
	if t.Failed() || len(produced) != updates {
		t.Fatalf("produced %d of %d updates", len(produced), updates)
	}
	ref := newestPerKey(produced)
	n, tombstones := 0, 0
	for _, offs := range ref {
		for _, r := range offs {
			n++
			if r.tombstone {
				tombstones++
			}
		}
	}
	if n != keys || tombstones == 0 {
		t.Fatalf("reference: %d keys, %d tombstones", n, tombstones)
	}
	seg := b.List(t, "seg/")

	harness.Eventually(t, 2*time.Minute, func() bool {
		hw, cleaned, all := cleanerState(t, b, topic)
		for p := range hw {
			if cleaned[p] != hw[p] {
				return false
			}
		}
		return all
	}, "the topic was never cleaned up to its high watermark")
	if d := ref.diff(readCompactedFranz(t, a.Addr, topic, ref)); d != "" {
		t.Fatalf("franz-go after compaction:\n%s", d)
	}
	if d := ref.diff(readCompactedKcat(t, a.Addr, topic)); d != "" {
		t.Fatalf("kcat after compaction:\n%s", d)
	}
	t.Logf("after compaction: %d records of %d updates, %d of them tombstones", keys, updates, tombstones)
	// ListOffsets by timestamp finds the first record kept, not a
	// superseded one.
	adm := kadm.NewClient(client(t, a.Addr))
	byTime, err := adm.ListOffsetsAfterMilli(ctx, 0, topic)
	if err != nil {
		t.Fatal(err)
	}
	byTime.Each(func(o kadm.ListedOffset) {
		first := int64(-1)
		for off := range ref[o.Partition] {
			if first < 0 || off < first {
				first = off
			}
		}
		if o.Err != nil || o.Offset != first {
			t.Errorf("%d: offset for timestamp 0 is %d (%v), want the first kept record's, %d", o.Partition, o.Offset, o.Err, first)
		}
	})

	// Phase 2: tombstones for every tenth key; a short delete.retention.ms
	// and a max.compaction.lag.ms that forces passes below the dirty ratio.
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "delete.retention.ms", Value: kadm.StringPtr("2000")},
		{Op: kadm.SetConfig, Name: "max.compaction.lag.ms", Value: kadm.StringPtr("1000")},
	}, topic)
	if err == nil {
		err = rs[0].Err
	}
	if err != nil {
		t.Fatalf("alter configs: %v", err)
	}
	cl := client(t, a.Addr, kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.DefaultProduceTopic(topic))
	var deletes []*kgo.Record
	for k := 0; k < keys; k += 10 {
		deletes = append(deletes, &kgo.Record{Key: fmt.Appendf(nil, "key-%04d", k)})
	}
	produce(cl, deletes)
	final := newestPerKey(produced)
	gone := 0
	for p, offs := range final {
		for off, r := range offs {
			if r.tombstone && ref[p][off] != r { // a phase 2 tombstone
				delete(offs, off)
				gone++
			}
		}
	}
	if gone != keys/10 {
		t.Fatalf("%d phase 2 tombstones in the reference, want %d", gone, keys/10)
	}
	var last string
	harness.Eventually(t, 2*time.Minute, func() bool {
		last = final.diff(readCompactedKcat(t, a.Addr, topic))
		return last == ""
	}, "kcat never read the reference once the tombstones were due:\n%s", lazy(func() string { return last }))
	if d := final.diff(readCompactedFranz(t, a.Addr, topic, final)); d != "" {
		t.Fatalf("franz-go after the tombstones went:\n%s", d)
	}

	// The ingestion objects the cleaned ones replaced leave the bucket.
	waitDeleted(t, b, seg, "replaced ingestion objects were never collected")

	// A compacted topic refuses a record without a key, as Kafka does.
	res := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")})
	if err := res.FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record: %v, want INVALID_RECORD", err)
	}
}
