package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestMetaLogTrim: with a tiny --meta-retention the trim job snapshots the
// metadata log and deletes the entries the snapshots cover, so meta/log/
// shrinks; a restarted agent comes back with every record at its offset
// and the group's committed offsets.
func TestMetaLogTrim(t *testing.T) {
	const partitions, rounds = 4, 300
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--meta-retention=1s", "--meta-snapshot-entries=20",
		"--retention-check-interval=200ms", "--compaction-interval=0")
	createTopic(t, a.Addr, "trim", partitions, nil)
	cl := client(t, a.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	acked := ackedRecords{}
	for r := range rounds {
		rec := &kgo.Record{Topic: "trim", Partition: int32(r % partitions), Value: fmt.Appendf(nil, "v%d", r)}
		acked.produce(ctx, t, cl, rec)
	}
	adm := kadm.NewClient(client(t, a.Addr))
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "trim", Partition: 1, At: 7, LeaderEpoch: -1, Metadata: "here"})
	if resp, err := adm.CommitOffsets(ctx, "g", os); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	ends := endOffsets(t, a.Addr, "trim")
	before := consumeAll(t, a.Addr, "trim", ends)
	acked.check(t, "before the trim", ends, before)

	// What stays: entries younger than --meta-retention (each 200 ms pass
	// takes and releases the collect and meta-compaction leases, about 20
	// entries a second) and those after the second-newest snapshot.
	harness.Eventually(t, 2*time.Minute, func() bool {
		n := len(b.List(t, "meta/log/"))
		return n < rounds/3 && len(b.List(t, "meta/snap/")) <= 3
	}, "metadata log not trimmed")
	t.Logf("after trim: %d meta/log/ entries, %d snapshots", len(b.List(t, "meta/log/")), len(b.List(t, "meta/snap/")))
	// The entries below the first left are the ones this agent (the only
	// one) deleted.
	logKeys := b.List(t, "meta/log/")
	first, err := strconv.ParseUint(strings.TrimPrefix(logKeys[0], "meta/log/"), 10, 64)
	if err != nil {
		t.Fatalf("log key %s: %v", logKeys[0], err)
	}
	var trimmed float64
	harness.Eventually(t, 10*time.Second, func() bool {
		trimmed = scrape(t, a.HTTPAddr)["barge_meta_trimmed_entries_total"]
		return trimmed >= float64(first-1)
	}, "barge_meta_trimmed_entries_total %v, but entries 1 to %d are gone", lazy(func() string { return fmt.Sprint(trimmed) }), first-1)

	a.Restart(t)
	if got := endOffsets(t, a.Addr, "trim"); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("end offsets %v after restart, want %v", got, ends)
	}
	after := consumeAll(t, a.Addr, "trim", ends)
	acked.check(t, "after the trim and a restart", ends, after)
	for p, recs := range before {
		for i, r := range recs {
			if string(after[p][i].Value) != string(r.Value) {
				t.Fatalf("%d/%d: %q after restart, %q before", p, i, after[p][i].Value, r.Value)
			}
		}
	}
	adm = kadm.NewClient(client(t, a.Addr))
	offs, err := adm.FetchOffsets(ctx, "g")
	if o, ok := offs.Lookup("trim", 1); err != nil || !ok || o.At != 7 || o.Metadata != "here" {
		t.Fatalf("group offset after restart %+v %v", o, err)
	}
}

// ackedRecords is what a test produced: partition → offset acknowledged →
// value.
type ackedRecords map[int32]map[int64]string

// produce produces r alone and keeps the offset its acknowledgement names.
func (a ackedRecords) produce(ctx context.Context, t *testing.T, cl *kgo.Client, r *kgo.Record) {
	t.Helper()
	res, err := cl.ProduceSync(ctx, r).First()
	if err != nil {
		t.Fatalf("produce %q: %v", r.Value, err)
	}
	if a[res.Partition] == nil {
		a[res.Partition] = map[int64]string{}
	}
	if prev, ok := a[res.Partition][res.Offset]; ok {
		t.Fatalf("%q acknowledged at %d/%d, where %q was before", res.Value, res.Partition, res.Offset, prev)
	}
	a[res.Partition][res.Offset] = string(res.Value)
}

// check fails the test unless the records read (by partition, indexed by
// offset, as consumeAll returns them) are exactly those acknowledged, each
// at the offset its acknowledgement named.
func (a ackedRecords) check(t *testing.T, when string, ends map[int32]int64, read map[int32][]*kgo.Record) {
	t.Helper()
	for p, end := range ends {
		if int64(len(a[p])) != end {
			t.Fatalf("%s: partition %d ends at %d, %d records acknowledged", when, p, end, len(a[p]))
		}
	}
	for p, offs := range a {
		for off, v := range offs {
			if off < 0 || off >= int64(len(read[p])) {
				t.Fatalf("%s: %q acknowledged at %d/%d, not read back", when, v, p, off)
			}
			if got := string(read[p][off].Value); got != v {
				t.Fatalf("%s: %d/%d holds %q, %q was acknowledged there", when, p, off, got, v)
			}
		}
	}
}

// TestOrphanSweep: a seg/ object named long ago that no commit refers to
// (an agent died between its PUT and its commit) and cmp/ and cln/ objects
// whose replace or clean never applied are deleted by the collection pass;
// the committed segments and cleaned objects stay and read back.
func TestOrphanSweep(t *testing.T) {
	b := harness.MinIOBackend(t)
	store := b.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orphan := fmt.Sprintf("seg/%013d-dead-000001", time.Now().Add(-time.Hour).UnixMilli())
	orphanCmp := fmt.Sprintf("cmp/%013d-dead-000002", time.Now().Add(-time.Hour).UnixMilli())
	orphanCln := fmt.Sprintf("cln/%013d-dead-000004", time.Now().Add(-time.Hour).UnixMilli())
	for _, k := range []string{orphan, orphanCmp, orphanCln} {
		if err := store.Put(ctx, k, []byte("never committed")); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgent(t, b, 5*time.Millisecond, "--orphan-grace=3s", "--write-timeout=2s", "--retention-check-interval=200ms",
		"--compaction-interval=0", "--cleaner-backoff=200ms")
	createTopic(t, a.Addr, "orph", 2, nil)
	createTopic(t, a.Addr, "orphc", 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "min.cleanable.dirty.ratio": kadm.StringPtr("0.01")})
	cl := client(t, a.Addr)
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orph", Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orphc", Key: fmt.Append(nil, i%4), Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, time.Minute, func() bool {
		return !slices.Contains(b.List(t, "seg/"), orphan) && len(b.List(t, "cmp/")) == 0 &&
			!slices.Contains(b.List(t, "cln/"), orphanCln)
	}, "orphan objects not deleted")
	// Key compaction commits cln/ objects of its own.
	harness.Eventually(t, time.Minute, func() bool {
		hw, cleaned, all := cleanerState(t, b, "orphc")
		return cleaned[0] == hw[0] && all
	}, "the compacted topic was never cleaned into cln/ objects")
	cleaned := b.List(t, "cln/")
	// Once the real segments are older than the grace period, plant a
	// second orphan; its deletion proves a sweep ran after they passed the
	// grace, and they must have survived it.
	segs := b.List(t, "seg/")
	if len(segs) == 0 {
		t.Fatal("no committed segments")
	}
	var ms int64
	for _, newest := range []string{segs[len(segs)-1], cleaned[len(cleaned)-1]} { // keys sort by their leading timestamp
		at, err := strconv.ParseInt(newest[4:17], 10, 64)
		if err != nil {
			t.Fatalf("object key %s: %v", newest, err)
		}
		ms = max(ms, at)
	}
	harness.Eventually(t, time.Minute, func() bool { return time.Since(time.UnixMilli(ms)) > 3*time.Second },
		"the segments never became older than the grace period")
	late := fmt.Sprintf("seg/%013d-dead-000003", time.Now().Add(-time.Hour).UnixMilli())
	if err := store.Put(ctx, late, []byte("never committed")); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, func() bool { return !slices.Contains(b.List(t, "seg/"), late) },
		"the second orphan was not deleted")
	for _, k := range segs {
		if !slices.Contains(b.List(t, "seg/"), k) {
			t.Fatalf("committed segment %s was deleted", k)
		}
	}
	for _, k := range cleaned {
		if !slices.Contains(b.List(t, "cln/"), k) {
			t.Fatalf("committed cleaned object %s was deleted", k)
		}
	}
	ends := endOffsets(t, a.Addr, "orph")
	got := consumeAll(t, a.Addr, "orph", ends)
	if n := len(got[0]) + len(got[1]); n != 20 {
		t.Fatalf("read %d records, want 20", n)
	}
	// The newest value of each of the four keys, read from the cln/ objects.
	var produced []*kgo.Record
	for i := range 20 {
		produced = append(produced, &kgo.Record{Partition: 0, Offset: int64(i), Key: fmt.Append(nil, i%4), Value: fmt.Appendf(nil, "v%d", i)})
	}
	ref := newestPerKey(produced)
	if d := ref.diff(readCompactedFranz(t, a.Addr, "orphc", ref)); d != "" {
		t.Fatalf("the compacted topic after the sweeps:\n%s", d)
	}
}

// TestMetaTrimStaleAgent: agent B is frozen (SIGSTOP) while agent A
// appends and trims the metadata log past B's view. Thawed, B's view is
// older than half of --meta-retention, so it re-reads (reloading from a
// snapshot) before it appends instead of re-creating a trimmed slot: every
// record B acknowledges afterwards is readable through A at its offset.
func TestMetaTrimStaleAgent(t *testing.T) {
	b := harness.MinIOBackend(t)
	// Without the sequencer: B must append directly to meet the trim
	// rule (through a sequencer its entries land at the sequencer's tail,
	// and the slots pushed to it before the freeze may carry it past the
	// gap without a snapshot, which is as safe and tests nothing here).
	args := []string{"--meta-retention=1s", "--meta-snapshot-entries=10", "--retention-check-interval=100ms", "--compaction-interval=0",
		"--meta-sequencer=false"}
	a := startAgent(t, b, 5*time.Millisecond, args...)
	stale := startAgent(t, b, 5*time.Millisecond, append(args, "--jobs=false")...)
	createTopic(t, a.Addr, "stale", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	acked := ackedRecords{}
	produce := func(cl *kgo.Client, prefix string, n int) {
		for i := range n {
			acked.produce(ctx, t, cl, &kgo.Record{Topic: "stale", Value: fmt.Appendf(nil, "%s%d", prefix, i)})
		}
	}
	clB := client(t, stale.Addr)
	produce(clB, "b", 5)
	logKeys := b.List(t, "meta/log/")
	last := logKeys[len(logKeys)-1]
	if err := syscall.Kill(stale.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(stale.Pid(), syscall.SIGCONT)
	clA := client(t, a.Addr)
	produce(clA, "a", 50)
	// Wait until the slot after B's view is trimmed (the trim job may
	// first wait for B to drop out of the live set to own it).
	xs := 0
	harness.Eventually(t, 2*time.Minute, func() bool {
		produce(clA, fmt.Sprint("x", xs, "-"), 1)
		xs++
		ks := b.List(t, "meta/log/")
		return len(ks) > 0 && ks[0] > last
	}, "log not trimmed past the frozen agent's view")
	if err := syscall.Kill(stale.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	produce(clB, "c", 20)
	if log, err := os.ReadFile(stale.LogPath); err != nil || !strings.Contains(string(log), "reloading from snapshot") {
		t.Fatalf("the thawed agent did not reload from a snapshot (%v)", err)
	}

	// Both agents reach the same end (each within a poll of the other).
	var ends map[int32]int64
	harness.Eventually(t, 30*time.Second, func() bool {
		ends = endOffsets(t, a.Addr, "stale")
		other := endOffsets(t, stale.Addr, "stale")
		return fmt.Sprint(other) == fmt.Sprint(ends) && ends[0] == int64(5+50+xs+20)
	}, "agents disagree on the end offset")
	all := consumeAll(t, a.Addr, "stale", ends)
	acked.check(t, "through the other agent", ends, all)
	recs := all[0]
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
	}
	for _, p := range []string{"b", "c"} {
		for i := range map[string]int{"b": 5, "c": 20}[p] {
			if v := fmt.Sprint(p, i); seen[v] != 1 {
				t.Fatalf("record %s read %d times through the other agent", v, seen[v])
			}
		}
	}
}
