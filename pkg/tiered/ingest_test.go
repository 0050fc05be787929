package tiered

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// wait answers a ticket, failing the test on a storage or meta error.
func wait(t testing.TB, tk *Ticket) Result {
	t.Helper()
	res := tk.Wait(context.Background())
	if res.Err != nil {
		t.Fatalf("ticket: %v", res.Err)
	}
	return res
}

// answered reports whether the ticket's segment is done, without waiting.
func answered(tk *Ticket) bool {
	select {
	case <-tk.seg.done:
		return true
	default:
		return false
	}
}

// Every partition's appends within one flush interval share one object and
// one commit entry, and each partition's offsets run from 0 in append order.
func TestIngestOneObjectPerFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 250 * time.Millisecond
		r := newRig(t, IngestConfig{FlushInterval: interval}, meta.Options{}, nil)
		topics := []meta.TopicID{r.createTopic("a", 4), r.createTopic("b", 3), r.createTopic("c", 1)}
		before := r.seq()
		start := time.Now()

		type appended struct {
			tp     TopicPartition
			tk     *Ticket
			values []string
			n      int64
		}
		var all []appended
		// Three rounds over every partition, with differing batch and
		// record counts, so offsets depend on the order of appends.
		for round := range 3 {
			for ti, id := range topics {
				parts := []int32{4, 3, 1}[ti]
				for p := range parts {
					tp := TopicPartition{id, p}
					var bs []Batch
					var n int64
					var values []string
					for k := range 1 + (round+int(p))%2 {
						tag := fmt.Sprintf("t%d-p%d-r%d-b%d", ti, p, round, k)
						nrec := 1 + (round+k)%3
						bs = append(bs, mkBatch(t, tag, nrec, 1000))
						n += int64(nrec)
						for i := range nrec {
							values = append(values, fmt.Sprintf("%s/%d", tag, i))
						}
					}
					tk, err := r.in.Append(tp, bs, false)
					if err != nil {
						t.Fatal(err)
					}
					all = append(all, appended{tp, tk, values, n})
				}
			}
		}

		next := map[TopicPartition]int64{}
		for _, a := range all {
			res := wait(t, a.tk)
			if res.BaseOffset != next[a.tp] {
				t.Errorf("%v: base offset %d, want %d", a.tp, res.BaseOffset, next[a.tp])
			}
			if res.LogAppendTime != -1 {
				t.Errorf("%v: LogAppendTime %d for a CreateTime topic", a.tp, res.LogAppendTime)
			}
			next[a.tp] += a.n
		}
		if got := time.Since(start); got != interval {
			t.Errorf("answered %v after the first append, want one flush interval (%v)", got, interval)
		}

		keys := r.segmentKeys()
		if len(keys) != 1 {
			t.Fatalf("segment objects %v, want exactly one", keys)
		}
		entries := r.entriesSince(before)
		if len(entries) != 1 || len(entries[0].Ops) != 1 {
			t.Fatalf("%d entries after the flush, want one with one op", len(entries))
		}
		commit, ok := entries[0].Ops[0].(meta.Commit)
		if !ok || commit.Object != keys[0] || len(commit.Parts) != 8 {
			t.Fatalf("entry %+v, want one commit of %s with 8 parts", entries[0].Ops[0], keys[0])
		}

		// What a consumer reads, from the bucket and from the published
		// object alike: contiguous offsets, values in append order.
		for _, rd := range []*Reader{r.coldReader(), NewReader(r.faulty, r.cache)} {
			for tp, hw := range next {
				var want []string
				for _, a := range all {
					if a.tp == tp {
						want = append(want, a.values...)
					}
				}
				var got []string
				off := int64(0)
				for _, b := range r.readPartition(rd, tp.Topic, tp.Partition) {
					if b.h.BaseOffset != off {
						t.Errorf("%v: batch at %d, want %d", tp, b.h.BaseOffset, off)
					}
					if b.h.PartitionLeaderEpoch != 0 {
						t.Errorf("%v: leader epoch %d", tp, b.h.PartitionLeaderEpoch)
					}
					off = b.h.NextOffset()
					got = append(got, b.values...)
				}
				if off != hw || !slices.Equal(got, want) {
					t.Errorf("%v: read up to %d %v, want up to %d %v", tp, off, got, hw, want)
				}
			}
		}

		// The next append opens a new segment, flushed one interval later.
		start = time.Now()
		tk, err := r.in.Append(TopicPartition{topics[2], 0}, []Batch{mkBatch(t, "later", 1, 1000)}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res := wait(t, tk); res.BaseOffset != next[TopicPartition{topics[2], 0}] {
			t.Errorf("later append at %d, want %d", res.BaseOffset, next[TopicPartition{topics[2], 0}])
		}
		if got := time.Since(start); got != interval {
			t.Errorf("second flush after %v, want %v", got, interval)
		}
		if keys := r.segmentKeys(); len(keys) != 2 {
			t.Errorf("segment objects %v, want two", keys)
		}
	})
}

// The stored object holds the batches exactly as sent (base offset 0),
// grouped by partition in order of first appearance.
func TestIngestStoresBatchesAsSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: time.Second}, meta.Options{}, nil)
		id := r.createTopic("t", 2)
		b1, b2, b3 := mkBatch(t, "x", 2, 5), mkBatch(t, "y", 1, 5), mkBatch(t, "z", 3, 5)
		sent := [][]byte{bytes.Clone(b1.Data), bytes.Clone(b2.Data), bytes.Clone(b3.Data)}
		var tks []*Ticket
		for _, a := range []struct {
			p int32
			b Batch
		}{{1, b1}, {0, b2}, {1, b3}} {
			tk, err := r.in.Append(TopicPartition{id, a.p}, []Batch{a.b}, false)
			if err != nil {
				t.Fatal(err)
			}
			tks = append(tks, tk)
		}
		for _, tk := range tks {
			wait(t, tk)
		}
		for i, b := range []Batch{b1, b2, b3} {
			if !bytes.Equal(b.Data, sent[i]) {
				t.Errorf("batch %d: the caller's bytes were modified", i)
			}
		}
		keys := r.segmentKeys()
		if len(keys) != 1 {
			t.Fatalf("objects %v", keys)
		}
		obj, err := r.mem.Get(context.Background(), keys[0])
		if err != nil {
			t.Fatal(err)
		}
		// Partition 1 appeared first: x then z, then partition 0: y.
		want := slices.Concat([]byte(segMagic), []byte{segVersion, 0, 0, 0}, sent[0], sent[2], sent[1])
		if !bytes.HasPrefix(obj, want) {
			t.Errorf("object does not start with header + batches as sent")
		}
	})
}

// Size-based sealing writes several objects before the interval passes,
// and offsets keep each partition's append order across them.
func TestIngestSealsBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Batch sizes repeat every three appends; a segment fills with
		// exactly three.
		const appends = 10
		batches := make([]Batch, appends)
		for i := range batches {
			batches[i] = mkBatch(t, fmt.Sprintf("p%d-%d", i%2, i), 1+i%3, 0)
		}
		flushBytes := int64(len(batches[0].Data) + len(batches[1].Data) + len(batches[2].Data))
		r := newRig(t, IngestConfig{FlushInterval: time.Hour, FlushBytes: flushBytes, MaxInflight: 2}, meta.Options{}, nil)
		id := r.createTopic("t", 2)
		start := time.Now()

		var tks []*Ticket
		var tps []TopicPartition
		for i := range appends {
			tp := TopicPartition{id, int32(i % 2)}
			tk, err := r.in.Append(tp, []Batch{batches[i]}, false)
			if err != nil {
				t.Fatal(err)
			}
			tks, tps = append(tks, tk), append(tps, tp)
		}
		// Appends 1-9 sealed three full segments; the tenth is open until
		// Close.
		for _, tk := range tks[:9] {
			wait(t, tk)
		}
		if time.Since(start) != 0 {
			t.Errorf("size-sealed segments waited %v for the flush interval", time.Since(start))
		}
		if answered(tks[9]) {
			t.Errorf("the last append was answered before its segment filled or timed out")
		}
		if keys := r.segmentKeys(); len(keys) != 3 {
			t.Errorf("segment objects %v, want 3 sealed by size", keys)
		}
		r.in.Close()
		wait(t, tks[9])
		if keys := r.segmentKeys(); len(keys) != 4 {
			t.Errorf("segment objects %v, want 4 after Close", keys)
		}

		next := map[int32]int64{}
		var want [2][]string
		for i, tk := range tks {
			p := tps[i].Partition
			res := wait(t, tk)
			if res.BaseOffset != next[p] {
				t.Errorf("append %d to p%d at %d, want %d", i, p, res.BaseOffset, next[p])
			}
			n := 1 + i%3
			next[p] += int64(n)
			for k := range n {
				want[p] = append(want[p], fmt.Sprintf("p%d-%d/%d", p, i, k))
			}
		}
		rd := r.coldReader()
		for p := range int32(2) {
			var got []string
			off := int64(0)
			for _, b := range r.readPartition(rd, id, p) {
				if b.h.BaseOffset != off {
					t.Errorf("p%d: batch at %d, want %d", p, b.h.BaseOffset, off)
				}
				off = b.h.NextOffset()
				got = append(got, b.values...)
			}
			if !slices.Equal(got, want[p]) {
				t.Errorf("p%d read %v, want %v", p, got, want[p])
			}
		}
	})
}

// Topics with message.timestamp.type=LogAppendTime get the append time in
// the stored batch (maxTimestamp and attribute bit, CRC updated), in the
// index and in the answer; CreateTime partitions in the same object don't.
func TestIngestLogAppendTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: 100 * time.Millisecond}, meta.Options{}, nil)
		lat, ct := r.createTopic("lat", 1), r.createTopic("ct", 1)
		const producerTs = 12345
		b := mkBatch(t, "l", 3, producerTs)
		sent := bytes.Clone(b.Data)
		tkL, err := r.in.Append(TopicPartition{lat, 0}, []Batch{b}, true)
		if err != nil {
			t.Fatal(err)
		}
		tkC, err := r.in.Append(TopicPartition{ct, 0}, []Batch{mkBatch(t, "c", 2, producerTs)}, false)
		if err != nil {
			t.Fatal(err)
		}
		resL, resC := wait(t, tkL), wait(t, tkC)
		if want := time.Now().UnixMilli(); resL.LogAppendTime != want {
			t.Errorf("LogAppendTime %d, want the flush time %d", resL.LogAppendTime, want)
		}
		if resC.LogAppendTime != -1 {
			t.Errorf("CreateTime topic answered LogAppendTime %d", resC.LogAppendTime)
		}
		if !bytes.Equal(b.Data, sent) {
			t.Errorf("the producer's batch was stamped in place")
		}

		for _, rd := range []*Reader{r.coldReader(), NewReader(r.faulty, r.cache)} {
			bl := r.readPartition(rd, lat, 0)
			if len(bl) != 1 || bl[0].h.TimestampType() != 1 || bl[0].h.MaxTimestamp != resL.LogAppendTime || bl[0].h.FirstTimestamp != producerTs {
				t.Errorf("LogAppendTime batch read as %+v", bl)
			}
			bc := r.readPartition(rd, ct, 0)
			if len(bc) != 1 || bc[0].h.TimestampType() != 0 || bc[0].h.MaxTimestamp != producerTs+1 {
				t.Errorf("CreateTime batch read as %+v", bc)
			}
		}
		cs, _ := r.chunks(lat, 0)
		if len(cs) != 1 || cs[0].MaxTimestamp != resL.LogAppendTime {
			t.Errorf("index %+v, want MaxTimestamp %d", cs, resL.LogAppendTime)
		}
		cs, _ = r.chunks(ct, 0)
		if len(cs) != 1 || cs[0].MaxTimestamp != producerTs+1 {
			t.Errorf("index %+v, want MaxTimestamp %d", cs, producerTs+1)
		}
	})
}

// A segment whose PUT fails every attempt fails every ticket on it with
// ErrStorage and commits nothing; once the bucket heals, appends succeed
// and offsets start where they were (nothing was assigned).
func TestIngestPutFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: 10 * time.Millisecond, PutAttempts: 3}, meta.Options{}, nil)
		id := r.createTopic("t", 3)
		before := r.seq()
		r.faulty.FailAll(objstore.OpPut)

		var tks []*Ticket
		for p := range int32(3) {
			tk, err := r.in.Append(TopicPartition{id, p}, []Batch{mkBatch(t, "lost", 2, 0)}, false)
			if err != nil {
				t.Fatal(err)
			}
			tks = append(tks, tk)
		}
		for _, tk := range tks {
			if res := tk.Wait(context.Background()); !errors.Is(res.Err, ErrStorage) {
				t.Errorf("ticket answered %+v, want ErrStorage", res)
			}
		}
		if n := r.faulty.Calls(objstore.OpPut); n != 3 {
			t.Errorf("%d PUT attempts, want PutAttempts=3", n)
		}
		if got := r.seq(); got != before {
			t.Errorf("log advanced from %d to %d for a segment that was never stored", before, got)
		}
		if keys := r.segmentKeys(); len(keys) != 0 {
			t.Errorf("objects %v in the bucket", keys)
		}

		r.faulty.Heal()
		for p := range int32(3) {
			tk, err := r.in.Append(TopicPartition{id, p}, []Batch{mkBatch(t, "kept", 2, 0)}, false)
			if err != nil {
				t.Fatal(err)
			}
			if res := wait(t, tk); res.BaseOffset != 0 {
				t.Errorf("p%d: first stored batch at %d, want 0", p, res.BaseOffset)
			}
		}
	})
}

// A PUT that fails transiently is retried and the producer never notices.
func TestIngestPutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: 10 * time.Millisecond, PutAttempts: 3}, meta.Options{}, nil)
		id := r.createTopic("t", 1)
		r.faulty.FailNth(objstore.OpPut, 1)
		r.faulty.LoseNth(objstore.OpPut, 2) // stored, answer lost: the retry overwrites it
		tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, "x", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		wait(t, tk)
		if n := r.faulty.Calls(objstore.OpPut); n != 3 {
			t.Errorf("%d PUT attempts, want 3", n)
		}
		if got := r.readPartition(r.coldReader(), id, 0); len(got) != 1 {
			t.Errorf("read %v", got)
		}
	})
}

// A commit whose log append fails answers ErrStorage, and the log stays
// usable.
func TestIngestCommitFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: 10 * time.Millisecond}, meta.Options{MaxAttempts: 3}, nil)
		id := r.createTopic("t", 2)
		before := r.seq()
		r.faulty.FailAll(objstore.OpPutIfAbsent)

		tk0, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, "a", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		tk1, err := r.in.Append(TopicPartition{id, 1}, []Batch{mkBatch(t, "b", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range []*Ticket{tk0, tk1} {
			if res := tk.Wait(context.Background()); !errors.Is(res.Err, ErrStorage) {
				t.Errorf("ticket answered %+v, want ErrStorage", res)
			}
		}
		if got := r.seq(); got != before {
			t.Errorf("log advanced from %d to %d", before, got)
		}
		if _, hw := r.chunks(id, 0); hw != 0 {
			t.Errorf("high watermark %d after a failed commit", hw)
		}

		r.faulty.Heal()
		tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, "c", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res := wait(t, tk); res.BaseOffset != 0 {
			t.Errorf("after healing, stored at %d, want 0", res.BaseOffset)
		}
		if got := r.readPartition(r.coldReader(), id, 0); len(got) != 1 || got[0].values[0] != "c/0" {
			t.Errorf("read %v, want only the batch appended after healing", got)
		}
	})
}

// Meta errors of single batches (an unknown partition) reach the ticket.
func TestIngestUnknownPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: 10 * time.Millisecond}, meta.Options{}, nil)
		id := r.createTopic("t", 1)
		bad, err := r.in.Append(TopicPartition{id, 7}, []Batch{mkBatch(t, "x", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		good, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, "y", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res := bad.Wait(context.Background()); !errors.Is(res.Err, meta.ErrUnknownTopic) {
			t.Errorf("unknown partition answered %+v", res)
		}
		wait(t, good)
	})
}

// Close seals what is buffered without waiting for the interval, answers
// it, and refuses later appends.
func TestIngestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: time.Hour}, meta.Options{}, nil)
		id := r.createTopic("t", 2)
		start := time.Now()
		var tks []*Ticket
		for i := range 4 {
			tk, err := r.in.Append(TopicPartition{id, int32(i % 2)}, []Batch{mkBatch(t, "x", 1, 0)}, false)
			if err != nil {
				t.Fatal(err)
			}
			tks = append(tks, tk)
		}
		r.in.Close()
		if time.Since(start) != 0 {
			t.Errorf("Close waited %v for the flush interval", time.Since(start))
		}
		for i, tk := range tks {
			if !answered(tk) {
				t.Fatalf("ticket %d not answered when Close returned", i)
			}
			if res := wait(t, tk); res.BaseOffset != int64(i/2) {
				t.Errorf("ticket %d at %d, want %d", i, res.BaseOffset, i/2)
			}
		}
		if keys := r.segmentKeys(); len(keys) != 1 {
			t.Errorf("objects %v, want one", keys)
		}
		if _, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, "late", 1, 0)}, false); !errors.Is(err, ErrClosed) {
			t.Errorf("Append after Close: %v, want ErrClosed", err)
		}
		r.in.Close() // again: no effect
	})
}

// Close with nothing buffered returns at once.
func TestIngestCloseEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{}, meta.Options{}, nil)
		r.in.Close()
		if keys := r.segmentKeys(); len(keys) != 0 {
			t.Errorf("objects %v", keys)
		}
	})
}

// A waiter that gives up gets its context's error; the append still lands.
func TestIngestWaitContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: time.Second}, meta.Options{}, nil)
		id := r.createTopic("t", 1)
		tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, "x", 1, 0)}, false)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if res := tk.Wait(ctx); !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Errorf("Wait with an expired context: %+v", res)
		}
		wait(t, tk)
	})
}

// With MaxInflight segments in the pipeline and the PUT held, sealing
// another blocks Append: the buffer does not grow without bound.
func TestIngestBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gate *gateStore
		r := newRig(t, IngestConfig{FlushInterval: time.Hour, FlushBytes: 1, MaxInflight: 1}, meta.Options{},
			func(s objstore.Store) objstore.Store { gate = newGateStore(s, true, false); return gate })
		t.Cleanup(gate.Open) // before the rig's cleanups, should the test fail early
		id := r.createTopic("t", 1)

		const appends = 10
		var returned atomic.Int32
		tks := make([]*Ticket, appends)
		go func() {
			for i := range appends {
				tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, fmt.Sprint(i), 1, 0)}, false)
				if err != nil {
					t.Error(err)
				}
				tks[i] = tk
				returned.Add(1)
			}
		}()
		synctest.Wait() // everything that can run has run: the appender is stuck
		n := int(returned.Load())
		if n == appends {
			t.Fatalf("all %d appends returned while every PUT was held", appends)
		}
		// Sealed segments in memory: those uploading plus the one waiting
		// to be handed over. Bounded by MaxInflight, not by the appends.
		if held := int(gate.waiting.Load()); held > 2 || n > 2 {
			t.Errorf("%d appends returned and %d PUTs started with MaxInflight 1", n, held)
		}
		if r.faulty.Calls(objstore.OpPut) != int(gate.waiting.Load()) {
			t.Errorf("PUTs counted %d, held %d", r.faulty.Calls(objstore.OpPut), gate.waiting.Load())
		}

		gate.Open()
		synctest.Wait()
		if returned.Load() != appends {
			t.Fatalf("%d of %d appends returned after the PUTs were released", returned.Load(), appends)
		}
		for i, tk := range tks {
			if res := wait(t, tk); res.BaseOffset != int64(i) {
				t.Errorf("append %d at %d", i, res.BaseOffset)
			}
		}
	})
}

// Each ticket covers only its own batches: BaseOffset is that of its
// first batch, even when other appends to the partition share the segment.
func TestIngestTicketCoversOwnBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: time.Second}, meta.Options{}, nil)
		id := r.createTopic("t", 1)
		tp := TopicPartition{id, 0}
		tk1, _ := r.in.Append(tp, []Batch{mkBatch(t, "a", 2, 0), mkBatch(t, "b", 3, 0)}, false)
		tk2, _ := r.in.Append(tp, []Batch{mkBatch(t, "c", 4, 0)}, false)
		tk3, _ := r.in.Append(tp, nil, false) // nothing to store
		tk4, _ := r.in.Append(tp, []Batch{mkBatch(t, "d", 1, 0)}, false)
		for i, want := range []int64{0, 5, 0, 9} {
			tk := []*Ticket{tk1, tk2, tk3, tk4}[i]
			if res := wait(t, tk); res.BaseOffset != want {
				t.Errorf("ticket %d at %d, want %d", i+1, res.BaseOffset, want)
			}
		}
		if _, hw := r.chunks(id, 0); hw != 10 {
			t.Errorf("high watermark %d, want 10", hw)
		}
	})
}

// Decoding the object Ingest wrote gives one footer part per partition,
// matching the commit's byte ranges.
func TestIngestFooterMatchesCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: time.Second}, meta.Options{}, nil)
		a, b := r.createTopic("a", 2), r.createTopic("b", 1)
		before := r.seq()
		var tks []*Ticket
		for _, x := range []struct {
			id meta.TopicID
			p  int32
			n  int
		}{{a, 1, 2}, {b, 0, 1}, {a, 1, 1}, {a, 0, 3}} {
			bs := make([]Batch, x.n)
			for i := range bs {
				bs[i] = mkBatch(t, "f", 1+i, 0)
			}
			tk, err := r.in.Append(TopicPartition{x.id, x.p}, bs, false)
			if err != nil {
				t.Fatal(err)
			}
			tks = append(tks, tk)
		}
		for _, tk := range tks {
			wait(t, tk)
		}
		keys := r.segmentKeys()
		obj, err := r.mem.Get(context.Background(), keys[0])
		if err != nil {
			t.Fatal(err)
		}
		parts, err := DecodeSegment(obj)
		if err != nil {
			t.Fatal(err)
		}
		commit := r.entriesSince(before)[0].Ops[0].(meta.Commit)
		if commit.Size != int64(len(obj)) {
			t.Errorf("commit size %d, object %d bytes", commit.Size, len(obj))
		}
		want := []struct {
			id      meta.TopicID
			p       int32
			batches int
		}{{a, 1, 3}, {b, 0, 1}, {a, 0, 3}}
		if len(parts) != len(want) || len(commit.Parts) != len(want) {
			t.Fatalf("parts %+v, commit %+v", parts, commit.Parts)
		}
		for i, w := range want {
			p, cp := parts[i], commit.Parts[i]
			if p.Topic != w.id || p.Partition != w.p || p.Batches != w.batches || cp.Topic != w.id || cp.Partition != w.p || len(cp.Batches) != w.batches {
				t.Errorf("part %d: footer %+v, commit %+v, want %+v", i, p, cp, w)
				continue
			}
			first, last := cp.Batches[0], cp.Batches[len(cp.Batches)-1]
			if p.Pos != first.Pos || p.Pos+p.Len != last.Pos+last.Len {
				t.Errorf("part %d: footer range [%d,+%d), commit [%d,%d)", i, p.Pos, p.Len, first.Pos, last.Pos+last.Len)
			}
			if bs := decodeBatches(t, obj[p.Pos:p.Pos+p.Len]); len(bs) != w.batches {
				t.Errorf("part %d holds %d batches", i, len(bs))
			} else {
				for _, b := range bs {
					if b.h.BaseOffset != 0 {
						t.Errorf("part %d: stored base offset %d, want 0 as sent", i, b.h.BaseOffset)
					}
				}
			}
		}
	})
}

// discardSegments drops segment PUTs so a benchmark's bucket stays small.
type discardSegments struct{ objstore.Store }

func (d discardSegments) Put(ctx context.Context, key string, data []byte) error {
	if len(key) > 4 && key[:4] == "seg/" {
		return nil
	}
	return d.Store.Put(ctx, key, data)
}

// BenchmarkIngestAppend measures Append of pre-built batches spread over
// many partitions; uploads and commits run behind it as in the agent.
func BenchmarkIngestAppend(b *testing.B) {
	const topics, partitions = 4, 32
	for _, bc := range []struct {
		name     string
		parallel bool
	}{{"serial", false}, {"parallel", true}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRig(b, IngestConfig{FlushInterval: 5 * time.Millisecond}, meta.Options{},
				func(s objstore.Store) objstore.Store { return discardSegments{s} })
			var tps []TopicPartition
			for ti := range topics {
				id := r.createTopic(fmt.Sprint("t", ti), partitions)
				for p := range int32(partitions) {
					tps = append(tps, TopicPartition{id, p})
				}
			}
			// A typical small produce: 10 records of 100 bytes.
			recs := make([]batch.Record, 10)
			for i := range recs {
				recs[i] = batch.Record{OffsetDelta: int32(i), Value: bytes.Repeat([]byte{'v'}, 100)}
			}
			data, err := batch.Build(batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, batch.None, recs)
			if err != nil {
				b.Fatal(err)
			}
			h, _ := batch.Validate(data)
			batches := []Batch{{Data: data, Header: h}}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			if bc.parallel {
				var next atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for i := int(next.Add(1)); pb.Next(); i++ {
						if _, err := r.in.Append(tps[i%len(tps)], batches, false); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for i := 0; b.Loop(); i++ {
					if _, err := r.in.Append(tps[i%len(tps)], batches, false); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			r.in.Close()
		})
	}
}

// A segment is sealed, before its flush interval or size, once every
// producer with a request waiting has as many waiting as it keeps in
// flight, on it or on earlier segments: nothing more can come until a
// segment is answered; or once no request has come for an eighth of the
// flush interval. Not while a producer could send more, and not below a
// quarter of FlushBytes.
func TestIngestSealsWhenEveryProducerWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mkBatch(t, "x", 4, 0)
		var gate *gateStore
		r := newRig(t, IngestConfig{FlushInterval: time.Hour, FlushBytes: 4 * int64(len(b.Data)), MaxInflight: 4}, meta.Options{},
			func(s objstore.Store) objstore.Store { gate = newGateStore(s, true, false); return gate })
		t.Cleanup(gate.Open)
		id := r.createTopic("t", 1)
		tp := TopicPartition{id, 0}
		send := func(p *Producer, bs ...Batch) *Ticket {
			tk, err := r.in.Append(tp, bs, false)
			if err != nil {
				t.Fatal(err)
			}
			r.in.Hold(p, tk)
			return tk
		}
		puts := func() int { synctest.Wait(); return int(gate.waiting.Load()) }

		// a keeps one request in flight, w two.
		var a, w Producer
		send(&a, b) // a's only request, a quarter of FlushBytes: nothing more can come
		if n := puts(); n != 1 {
			t.Fatalf("%d segment PUTs after the only producer's request waited, want 1", n)
		}
		send(&w, b) // a's window is full on the first segment, w's on this one
		if n := puts(); n != 2 {
			t.Fatalf("%d segment PUTs after every producer's window filled, want 2", n)
		}
		send(&w, b)
		if n := puts(); n != 3 {
			t.Fatalf("%d segment PUTs after w's second request, want 3", n)
		}
		gate.Open()
		synctest.Wait()

		w3 := send(&w, b) // w could send another
		a2 := send(&a, b)
		synctest.Wait()
		if answered(w3) || answered(a2) {
			t.Fatal("sealed while a producer had room in its window")
		}
		w4 := send(&w, b)
		for _, tk := range []*Ticket{w3, a2, w4} {
			wait(t, tk)
			if tk.seg != w3.seg {
				t.Error("requests sent while w had room went into different segments")
			}
		}

		// w has room but sends nothing more: sealed after an eighth of the
		// flush interval without a request, not before.
		const quiet = time.Hour / quietShare
		start := time.Now()
		w5 := send(&w, b)
		time.Sleep(quiet / 2)
		a3 := send(&a, b) // a's window is full, w's is not: quiet again from here
		time.Sleep(quiet/2 + time.Millisecond)
		synctest.Wait()
		if answered(w5) {
			t.Fatal("sealed before the producers had been quiet for an eighth of the flush interval")
		}
		wait(t, a3)
		if d := time.Since(start); d != quiet/2+quiet {
			t.Errorf("sealed %v after the first request, want %v: an eighth of the flush interval after the last", d, quiet/2+quiet)
		}

		var small Producer
		s1 := send(&small, mkBatch(t, "y", 1, 0))
		synctest.Wait()
		if answered(s1) {
			t.Error("a segment under a quarter of FlushBytes was sealed early")
		}
		time.Sleep(time.Hour)
		wait(t, s1)

		var big Producer
		wait(t, send(&big, b, b, b, b)) // sealed by size before its Hold: no open segment to seal
		if keys := r.segmentKeys(); len(keys) != 7 {
			t.Errorf("segments %v, want 7", keys)
		}
	})
}

// Hold's accounting never waits for a seal: a seal blocked on a full
// pipeline holds the ingest's lock until the pipeline takes a segment, and
// answering a segment releases its producers meanwhile.
func TestIngestHoldUnderBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tokens *tokenStore
		r := newRig(t, IngestConfig{FlushInterval: time.Hour, FlushBytes: 1, MaxInflight: 1}, meta.Options{},
			func(s objstore.Store) objstore.Store {
				tokens = &tokenStore{Store: s, tokens: make(chan struct{}, 16)}
				return tokens
			})
		id := r.createTopic("t", 1)
		const appends = 8
		var p Producer
		tks := make(chan *Ticket, appends)
		go func() {
			for i := range appends { // each seals by size
				tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, fmt.Sprint(i), 1, 0)}, false)
				if err != nil {
					t.Error(err)
					return
				}
				r.in.Hold(&p, tk)
				tks <- tk
			}
			close(tks)
		}()
		// One segment PUT at a time, each once the appender is stuck on
		// the full pipeline: answering that segment releases its producer
		// while the next seal waits with the lock held.
		for range appends {
			synctest.Wait()
			tokens.tokens <- struct{}{}
		}
		i := 0
		for tk := range tks {
			if res := wait(t, tk); res.BaseOffset != int64(i) {
				t.Errorf("append %d at %d", i, res.BaseOffset)
			}
			i++
		}
	})
}

// tokenStore lets one segment PUT through per token.
type tokenStore struct {
	objstore.Store
	tokens chan struct{}
}

func (s *tokenStore) Put(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, "seg/") {
		<-s.tokens
		ctx = context.WithoutCancel(ctx) // the fake clock may have passed its deadline
	}
	return s.Store.Put(ctx, key, data)
}
