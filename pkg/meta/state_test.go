package meta

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

// applyAt applies ops as the next slot with the given entry time.
func applyAt(s *State, timeMs int64, ops ...Op) []Result {
	return s.Apply(s.Seq+1, &Entry{Writer: "test", TimeMs: timeMs, Ops: ops})
}

func apply(s *State, ops ...Op) []Result { return applyAt(s, 0, ops...) }

// stateWith returns a state holding topic "t" (testID(1)) with n partitions.
func stateWith(t testing.TB, n int32) *State {
	t.Helper()
	s := NewState()
	if r := apply(s, CreateTopic{Name: "t", ID: testID(1), Partitions: n}); r[0].Err != nil {
		t.Fatalf("create topic: %v", r[0].Err)
	}
	return s
}

func partition(t testing.TB, s *State, name string, p int32) *Partition {
	t.Helper()
	tp := s.Topic(name)
	if tp == nil {
		t.Fatalf("no topic %q", name)
	}
	pp := tp.Partition(p)
	if pp == nil {
		t.Fatalf("no partition %s/%d", name, p)
	}
	return pp
}

func TestApplySetsSeq(t *testing.T) {
	s := NewState()
	s.Apply(7, &Entry{})
	if s.Seq != 7 {
		t.Fatalf("Seq = %d, want 7", s.Seq)
	}
}

func TestCreateTopic(t *testing.T) {
	tests := []struct {
		name    string
		op      CreateTopic
		wantErr error
	}{
		{"new", CreateTopic{Name: "u", ID: testID(2), Partitions: 3, ReplicationFactor: 3, Configs: map[string]string{"retention.ms": "5"}}, nil},
		{"one partition", CreateTopic{Name: "u", ID: testID(2), Partitions: 1}, nil},
		{"duplicate name", CreateTopic{Name: "t", ID: testID(2), Partitions: 1}, ErrTopicExists},
		{"duplicate id", CreateTopic{Name: "u", ID: testID(1), Partitions: 1}, ErrTopicExists},
		{"duplicate with bad partitions", CreateTopic{Name: "t", ID: testID(2), Partitions: 0}, ErrTopicExists},
		{"zero partitions", CreateTopic{Name: "u", ID: testID(2), Partitions: 0}, ErrInvalidPartitions},
		{"negative partitions", CreateTopic{Name: "u", ID: testID(2), Partitions: -1}, ErrInvalidPartitions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stateWith(t, 2)
			r := apply(s, tc.op)
			if !errors.Is(r[0].Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", r[0].Err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if got := s.TopicNames(); !reflect.DeepEqual(got, []string{"t"}) {
					t.Fatalf("topics = %v after a failed create", got)
				}
				if len(s.Topic("t").Partitions) != 2 || s.TopicByID(testID(1)).Name != "t" {
					t.Fatal("failed create changed the existing topic")
				}
				return
			}
			tp := s.Topic(tc.op.Name)
			if tp == nil || s.TopicByID(tc.op.ID) != tp {
				t.Fatal("topic not found by name and id")
			}
			if tp.ReplicationFactor != tc.op.ReplicationFactor || !reflect.DeepEqual(tp.Configs, tc.op.Configs) {
				t.Fatalf("topic = %+v", tp)
			}
			if len(tp.Partitions) != int(tc.op.Partitions) {
				t.Fatalf("%d partitions, want %d", len(tp.Partitions), tc.op.Partitions)
			}
			for i, p := range tp.Partitions {
				if p.LogStart != 0 || p.HighWatermark != 0 || len(p.Chunks) != 0 {
					t.Fatalf("partition %d not empty: %+v", i, p)
				}
			}
		})
	}
}

func TestCreatePartitions(t *testing.T) {
	tests := []struct {
		name    string
		op      CreatePartitions
		wantErr error
		want    int
	}{
		{"fewer", CreatePartitions{ID: testID(1), Count: 2}, ErrInvalidPartitions, 3},
		{"equal", CreatePartitions{ID: testID(1), Count: 3}, ErrInvalidPartitions, 3},
		{"zero", CreatePartitions{ID: testID(1), Count: 0}, ErrInvalidPartitions, 3},
		{"negative", CreatePartitions{ID: testID(1), Count: -4}, ErrInvalidPartitions, 3},
		{"one more", CreatePartitions{ID: testID(1), Count: 4}, nil, 4},
		{"more", CreatePartitions{ID: testID(1), Count: 10}, nil, 10},
		{"unknown topic", CreatePartitions{ID: testID(9), Count: 10}, ErrUnknownTopic, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stateWith(t, 3)
			apply(s, commitOf("o1", part(testID(1), 1, plain(0, 10, 4))))
			r := apply(s, tc.op)
			if !errors.Is(r[0].Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", r[0].Err, tc.wantErr)
			}
			if got := len(s.Topic("t").Partitions); got != tc.want {
				t.Fatalf("%d partitions, want %d", got, tc.want)
			}
			if hw := partition(t, s, "t", 1).HighWatermark; hw != 4 {
				t.Fatalf("existing partition HW = %d, want 4", hw)
			}
			// New partitions start at offset 0.
			last := int32(tc.want - 1)
			r = apply(s, commitOf("o2", part(testID(1), last, plain(0, 10, 2))))
			if got := r[0].Parts[0][0]; got.Err != nil || (last != 1 && got.BaseOffset != 0) {
				t.Fatalf("commit to partition %d: %+v", last, got)
			}
		})
	}
}

func TestDeleteTopic(t *testing.T) {
	s := stateWith(t, 2)
	apply(s, commitOf("o", part(testID(1), 0, plain(0, 10, 5))))
	if r := apply(s, DeleteTopic{ID: testID(1)}); r[0].Err != nil {
		t.Fatalf("delete: %v", r[0].Err)
	}
	if s.Topic("t") != nil || s.TopicByID(testID(1)) != nil || len(s.TopicNames()) != 0 {
		t.Fatal("topic still visible after delete")
	}
	if r := apply(s, DeleteTopic{ID: testID(1)}); !errors.Is(r[0].Err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v, want ErrUnknownTopic", r[0].Err)
	}
	r := apply(s, commitOf("o", part(testID(1), 0, plain(0, 10, 5))), CreatePartitions{ID: testID(1), Count: 5})
	if !errors.Is(r[0].Parts[0][0].Err, ErrUnknownTopic) || !errors.Is(r[1].Err, ErrUnknownTopic) {
		t.Fatalf("ops on a deleted topic: %+v", r)
	}
	// The name is free again; the new topic starts from scratch.
	if r := apply(s, CreateTopic{Name: "t", ID: testID(2), Partitions: 1}); r[0].Err != nil {
		t.Fatalf("re-create: %v", r[0].Err)
	}
	r = apply(s, commitOf("o", part(testID(2), 0, plain(0, 10, 5))))
	if got := r[0].Parts[0][0]; got.Err != nil || got.BaseOffset != 0 {
		t.Fatalf("commit to re-created topic: %+v", got)
	}
}

// Helpers to build commits.

func plain(pos, length int64, records int32) CommitBatch {
	return CommitBatch{Pos: pos, Len: length, Records: records, MaxTimestamp: pos, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
}

func idem(pid int64, epoch int16, seq, records int32) CommitBatch {
	return CommitBatch{Pos: 0, Len: 10, Records: records, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
}

func part(id TopicID, p int32, batches ...CommitBatch) CommitPart {
	return CommitPart{Topic: id, Partition: p, Batches: batches}
}

func commitOf(object string, parts ...CommitPart) Commit {
	var size int64
	for _, p := range parts {
		for _, b := range p.Batches {
			size = max(size, b.Pos+b.Len)
		}
	}
	return Commit{Object: object, Size: size, Parts: parts}
}

func TestCommitAssignsContiguousOffsets(t *testing.T) {
	s := stateWith(t, 2)
	id := testID(1)
	// Two commits in one entry, then a third entry: offsets follow entry
	// order and op order within an entry, per partition.
	r := apply(s,
		commitOf("a", part(id, 0, plain(0, 10, 3), plain(10, 10, 2)), part(id, 1, plain(20, 5, 7))),
		commitOf("b", part(id, 0, plain(0, 4, 1)), part(id, 1, plain(4, 4, 1))),
	)
	want := [][][]BatchResult{
		{{{BaseOffset: 0}, {BaseOffset: 3}}, {{BaseOffset: 0}}},
		{{{BaseOffset: 5}}, {{BaseOffset: 7}}},
	}
	for i := range want {
		if !reflect.DeepEqual(r[i].Parts, want[i]) {
			t.Fatalf("commit %d results = %+v, want %+v", i, r[i].Parts, want[i])
		}
	}
	r = apply(s, commitOf("c", part(id, 0, plain(0, 100, 100))))
	if got := r[0].Parts[0][0]; got.BaseOffset != 6 || got.Err != nil {
		t.Fatalf("third commit = %+v, want base 6", got)
	}
	p0, p1 := partition(t, s, "t", 0), partition(t, s, "t", 1)
	if p0.HighWatermark != 106 || p1.HighWatermark != 8 {
		t.Fatalf("HW = %d, %d; want 106, 8", p0.HighWatermark, p1.HighWatermark)
	}
	wantChunks := []Chunk{
		{Object: "a", Pos: 0, Len: 20, BaseOffset: 0, NextOffset: 5, MaxTimestamp: 10},
		{Object: "b", Pos: 0, Len: 4, BaseOffset: 5, NextOffset: 6, MaxTimestamp: 0},
		{Object: "c", Pos: 0, Len: 100, BaseOffset: 6, NextOffset: 106, MaxTimestamp: 0},
	}
	if !reflect.DeepEqual(p0.Chunks, wantChunks) {
		t.Fatalf("chunks = %+v\nwant %+v", p0.Chunks, wantChunks)
	}
	checkChunks(t, p0)
	checkChunks(t, p1)
}

// checkChunks asserts the chunk invariant: ascending, contiguous, ending at
// the high watermark.
func checkChunks(t *testing.T, p *Partition) {
	t.Helper()
	next := p.LogStart
	if len(p.Chunks) > 0 {
		next = p.Chunks[0].BaseOffset
	}
	for i, c := range p.Chunks {
		if c.BaseOffset != next || c.NextOffset <= c.BaseOffset {
			t.Fatalf("chunk %d = %+v, want it to start at %d", i, c, next)
		}
		next = c.NextOffset
	}
	if next != p.HighWatermark {
		t.Fatalf("chunks end at %d, HW %d", next, p.HighWatermark)
	}
}

func TestCommitChunks(t *testing.T) {
	id := testID(1)
	tests := []struct {
		name    string
		prepare []CommitBatch // committed first, to partition 0
		batches []CommitBatch
		want    []Chunk
		errs    []error // per batch of batches
	}{
		{
			name:    "contiguous batches coalesce",
			batches: []CommitBatch{plain(0, 10, 1), plain(10, 20, 2), plain(30, 5, 3)},
			want:    []Chunk{{Object: "o", Pos: 0, Len: 35, BaseOffset: 0, NextOffset: 6, MaxTimestamp: 30}},
		},
		{
			name:    "gap in the object splits",
			batches: []CommitBatch{plain(0, 10, 1), plain(10, 10, 1), plain(50, 10, 1), plain(60, 10, 1)},
			want: []Chunk{
				{Object: "o", Pos: 0, Len: 20, BaseOffset: 0, NextOffset: 2, MaxTimestamp: 10},
				{Object: "o", Pos: 50, Len: 20, BaseOffset: 2, NextOffset: 4, MaxTimestamp: 60},
			},
		},
		{
			name:    "max timestamp is the chunk's maximum",
			batches: []CommitBatch{{Pos: 0, Len: 1, Records: 1, MaxTimestamp: 9, ProducerID: -1}, {Pos: 1, Len: 1, Records: 1, MaxTimestamp: 3, ProducerID: -1}},
			want:    []Chunk{{Object: "o", Pos: 0, Len: 2, BaseOffset: 0, NextOffset: 2, MaxTimestamp: 9}},
		},
		{
			name: "rejected batch splits",
			batches: []CommitBatch{
				{Pos: 0, Len: 10, Records: 2, ProducerID: 7, BaseSequence: 0},
				{Pos: 10, Len: 10, Records: 2, ProducerID: 7, BaseSequence: 5}, // gap: rejected
				{Pos: 20, Len: 10, Records: 2, ProducerID: 7, BaseSequence: 2},
				{Pos: 30, Len: 10, Records: 2, ProducerID: 7, BaseSequence: 4},
			},
			want: []Chunk{
				{Object: "o", Pos: 0, Len: 10, BaseOffset: 0, NextOffset: 2},
				{Object: "o", Pos: 20, Len: 20, BaseOffset: 2, NextOffset: 6},
			},
			errs: []error{nil, ErrOutOfOrderSequence, nil, nil},
		},
		{
			name:    "duplicate batch splits",
			prepare: []CommitBatch{{Pos: 0, Len: 10, Records: 2, ProducerID: 7, BaseSequence: 0}},
			batches: []CommitBatch{
				{Pos: 0, Len: 10, Records: 1, ProducerID: -1},
				{Pos: 10, Len: 10, Records: 2, ProducerID: 7, BaseSequence: 0}, // duplicate
				{Pos: 20, Len: 10, Records: 1, ProducerID: -1},
			},
			want: []Chunk{
				{Object: "p", Pos: 0, Len: 10, BaseOffset: 0, NextOffset: 2},
				{Object: "o", Pos: 0, Len: 10, BaseOffset: 2, NextOffset: 3},
				{Object: "o", Pos: 20, Len: 10, BaseOffset: 3, NextOffset: 4},
			},
		},
		{
			name:    "first batch of a commit never joins an earlier commit's chunk",
			prepare: []CommitBatch{plain(0, 10, 1)},
			batches: []CommitBatch{plain(10, 10, 1)},
			want: []Chunk{
				{Object: "p", Pos: 0, Len: 10, BaseOffset: 0, NextOffset: 1},
				{Object: "o", Pos: 10, Len: 10, BaseOffset: 1, NextOffset: 2, MaxTimestamp: 10},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stateWith(t, 2)
			if tc.prepare != nil {
				apply(s, commitOf("p", part(id, 0, tc.prepare...)))
			}
			// Another partition's batches in the same object interleave
			// and must not disturb partition 0's chunks.
			r := apply(s, commitOf("o", part(id, 1, plain(100, 1, 1)), part(id, 0, tc.batches...), part(id, 1, plain(101, 1, 1))))
			for j, br := range r[0].Parts[1] {
				var want error
				if tc.errs != nil {
					want = tc.errs[j]
				}
				if !errors.Is(br.Err, want) {
					t.Fatalf("batch %d err = %v, want %v", j, br.Err, want)
				}
			}
			p := partition(t, s, "t", 0)
			if !reflect.DeepEqual(p.Chunks, tc.want) {
				t.Fatalf("chunks:\n got %+v\nwant %+v", p.Chunks, tc.want)
			}
			checkChunks(t, p)
			p1 := partition(t, s, "t", 1)
			want1 := []Chunk{{Object: "o", Pos: 100, Len: 1, BaseOffset: 0, NextOffset: 1, MaxTimestamp: 100},
				{Object: "o", Pos: 101, Len: 1, BaseOffset: 1, NextOffset: 2, MaxTimestamp: 101}}
			if !reflect.DeepEqual(p1.Chunks, want1) {
				t.Fatalf("partition 1 chunks:\n got %+v\nwant %+v", p1.Chunks, want1)
			}
		})
	}
}

func TestPartitionFind(t *testing.T) {
	p := &Partition{LogStart: 100, HighWatermark: 130, Chunks: []Chunk{
		{BaseOffset: 100, NextOffset: 110},
		{BaseOffset: 110, NextOffset: 111},
		{BaseOffset: 111, NextOffset: 130},
	}}
	tests := []struct {
		offset int64
		want   int
	}{
		{math.MinInt64, -1}, {-1, -1}, {0, -1}, {99, -1},
		{100, 0}, {105, 0}, {109, 0},
		{110, 1},
		{111, 2}, {129, 2},
		{130, -1}, {131, -1}, {math.MaxInt64, -1},
	}
	for _, tc := range tests {
		if got := p.Find(tc.offset); got != tc.want {
			t.Errorf("Find(%d) = %d, want %d", tc.offset, got, tc.want)
		}
	}
	empty := &Partition{}
	for _, off := range []int64{-1, 0, 1} {
		if got := empty.Find(off); got != -1 {
			t.Errorf("empty Find(%d) = %d, want -1", off, got)
		}
	}
}

func TestCommitUnknownTopicPerBatch(t *testing.T) {
	s := stateWith(t, 2)
	id := testID(1)
	r := apply(s, commitOf("o",
		part(id, 0, plain(0, 1, 1), plain(1, 1, 1)),
		part(testID(9), 0, plain(2, 1, 1), plain(3, 1, 1), plain(4, 1, 1)),
		part(id, 2, plain(5, 1, 1)),
		part(id, -1, plain(6, 1, 1)),
		part(id, 1, plain(7, 1, 1)),
		part(id, 0, plain(8, 1, 1)),
	))
	got := r[0].Parts
	if len(got) != 6 {
		t.Fatalf("%d part results, want 6", len(got))
	}
	for _, i := range []int{1, 2, 3} {
		for j, br := range got[i] {
			if !errors.Is(br.Err, ErrUnknownTopic) {
				t.Fatalf("part %d batch %d: err = %v, want ErrUnknownTopic", i, j, br.Err)
			}
		}
	}
	if len(got[1]) != 3 {
		t.Fatalf("unknown topic part has %d results, want one per batch (3)", len(got[1]))
	}
	want := map[int][]BatchResult{0: {{BaseOffset: 0}, {BaseOffset: 1}}, 4: {{BaseOffset: 0}}, 5: {{BaseOffset: 2}}}
	for i, w := range want {
		if !reflect.DeepEqual(got[i], w) {
			t.Fatalf("part %d = %+v, want %+v", i, got[i], w)
		}
	}
	if hw := partition(t, s, "t", 0).HighWatermark; hw != 3 {
		t.Fatalf("HW = %d, want 3", hw)
	}
}

// TestIdempotence runs sequences of single-batch commits to t/0 (or t/1)
// and checks each outcome and the final high watermarks.
func TestIdempotence(t *testing.T) {
	const day = 24 * 60 * 60 * 1000
	type step struct {
		b       CommitBatch
		p       int32 // partition
		timeMs  int64
		want    int64 // base offset, when wantErr is nil
		wantErr error
	}
	// six batches of 2 records, seq 0..11, offsets 0..10
	six := []step{
		{b: idem(1, 0, 0, 2), want: 0}, {b: idem(1, 0, 2, 2), want: 2}, {b: idem(1, 0, 4, 2), want: 4},
		{b: idem(1, 0, 6, 2), want: 6}, {b: idem(1, 0, 8, 2), want: 8}, {b: idem(1, 0, 10, 2), want: 10},
	}
	with := func(prefix []step, more ...step) []step { return append(append([]step(nil), prefix...), more...) }
	tests := []struct {
		name   string
		steps  []step
		wantHW [2]int64
	}{
		{"in order", []step{
			{b: idem(1, 0, 0, 5), want: 0}, {b: idem(1, 0, 5, 3), want: 5}, {b: idem(1, 0, 8, 1), want: 8},
		}, [2]int64{9, 0}},
		{"duplicates of the last five", with(six,
			step{b: idem(1, 0, 2, 2), want: 2}, step{b: idem(1, 0, 4, 2), want: 4}, step{b: idem(1, 0, 6, 2), want: 6},
			step{b: idem(1, 0, 8, 2), want: 8}, step{b: idem(1, 0, 10, 2), want: 10},
			step{b: idem(1, 0, 12, 2), want: 12},
		), [2]int64{14, 0}},
		{"duplicate of the sixth most recent", with(six,
			step{b: idem(1, 0, 0, 2), wantErr: ErrOutOfOrderSequence},
		), [2]int64{12, 0}},
		{"partial overlap is not a duplicate", with(six[:2],
			step{b: idem(1, 0, 2, 1), wantErr: ErrOutOfOrderSequence},
			step{b: idem(1, 0, 3, 2), wantErr: ErrOutOfOrderSequence},
		), [2]int64{4, 0}},
		{"sequence gap", []step{
			{b: idem(1, 0, 0, 1), want: 0}, {b: idem(1, 0, 2, 1), wantErr: ErrOutOfOrderSequence},
			{b: idem(1, 0, 1, 1), want: 1},
		}, [2]int64{2, 0}},
		{"negative sequence", []step{
			{b: idem(1, 0, 0, 1), want: 0}, {b: idem(1, 0, -1, 1), wantErr: ErrOutOfOrderSequence},
		}, [2]int64{1, 0}},
		{"older epoch", []step{
			{b: idem(1, 3, 0, 1), want: 0},
			{b: idem(1, 2, 1, 1), wantErr: ErrInvalidProducerEpoch},
			{b: idem(1, 2, 0, 1), wantErr: ErrInvalidProducerEpoch},
			{b: idem(1, 3, 1, 1), want: 1},
		}, [2]int64{2, 0}},
		{"new epoch starts at zero", []step{
			{b: idem(1, 0, 0, 3), want: 0},
			{b: idem(1, 1, 3, 1), wantErr: ErrOutOfOrderSequence},
			{b: idem(1, 1, 1, 1), wantErr: ErrOutOfOrderSequence},
			{b: idem(1, 1, 0, 1), want: 3},
			{b: idem(1, 0, 3, 1), wantErr: ErrInvalidProducerEpoch},
			{b: idem(1, 0, 0, 3), wantErr: ErrInvalidProducerEpoch}, // old epoch's batch is no duplicate any more
			{b: idem(1, 1, 0, 1), want: 3},
			{b: idem(1, 1, 1, 1), want: 4},
		}, [2]int64{5, 0}},
		{"unknown producer may start anywhere", []step{
			{b: idem(1, 5, 1000, 10), want: 0}, {b: idem(1, 5, 1010, 1), want: 10},
			{b: idem(2, 0, 77, 1), want: 11}, {b: idem(1, 5, 1000, 10), want: 0},
		}, [2]int64{12, 0}},
		{"producers are per partition", []step{
			{b: idem(1, 0, 0, 2), want: 0}, {b: idem(1, 0, 5, 1), p: 1, want: 0},
			{b: idem(1, 0, 2, 1), want: 2}, {b: idem(1, 0, 0, 2), p: 1, wantErr: ErrOutOfOrderSequence},
			{b: idem(1, 0, 6, 1), p: 1, want: 1},
		}, [2]int64{3, 2}},
		{"sequence wraps at MaxInt32", []step{
			{b: idem(1, 0, math.MaxInt32-1, 2), want: 0},
			{b: idem(1, 0, 0, 1), want: 2},
			{b: idem(1, 0, math.MaxInt32-1, 2), want: 0}, // still a duplicate
			{b: idem(1, 0, 1, 1), want: 3},
		}, [2]int64{4, 0}},
		{"batch spanning the wrap", []step{
			{b: idem(1, 0, math.MaxInt32-1, 4), want: 0}, // seq MaxInt32-1 .. 1
			{b: idem(1, 0, math.MaxInt32-1, 4), want: 0},
			{b: idem(1, 0, 0, 1), wantErr: ErrOutOfOrderSequence},
			{b: idem(1, 0, 2, 1), want: 4},
		}, [2]int64{5, 0}},
		{"no wrap into negative sequences", []step{
			{b: idem(1, 0, math.MaxInt32, 1), want: 0},
			{b: idem(1, 0, math.MinInt32, 1), wantErr: ErrOutOfOrderSequence},
			{b: idem(1, 0, 0, 1), want: 1},
		}, [2]int64{2, 0}},
		{"expiry after 24h of entry time", []step{
			{b: idem(1, 3, 0, 1), timeMs: 1000, want: 0},
			{b: idem(1, 3, 1, 1), timeMs: 1000 + day - 1, want: 1},                          // refreshes the producer
			{b: idem(1, 3, 7, 1), timeMs: 1000 + 2*day - 1, wantErr: ErrOutOfOrderSequence}, // exactly 24h: kept
			{b: idem(1, 3, 7, 1), timeMs: 1000 + 2*day, want: 2},                            // > 24h: forgotten
			{b: idem(1, 3, 8, 1), timeMs: 1000 + 2*day, want: 3},
		}, [2]int64{4, 0}},
		{"expired producer forgets epoch and duplicates", []step{
			{b: idem(1, 5, 0, 1), timeMs: 0, want: 0},
			{b: idem(1, 5, 0, 1), timeMs: day, want: 0},
			{b: idem(1, 5, 0, 1), timeMs: day + 1, want: 1},
			{b: idem(1, 2, 0, 1), timeMs: 2*day + 2, want: 2},
			{b: idem(1, 1, 0, 1), timeMs: 2*day + 2, wantErr: ErrInvalidProducerEpoch},
		}, [2]int64{3, 0}},
		{"non-idempotent batches are never checked", []step{
			{b: idem(-1, 0, 5, 1), want: 0}, {b: idem(-1, 0, 5, 1), want: 1}, {b: idem(-1, -1, -1, 1), want: 2},
			{b: idem(-1, 9, 0, 1), want: 3}, {b: idem(-1, 0, 0, 1), want: 4}, {b: idem(-7, 0, 3, 1), want: 5},
		}, [2]int64{6, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stateWith(t, 2)
			for i, st := range tc.steps {
				r := applyAt(s, st.timeMs, commitOf("o", part(testID(1), st.p, st.b)))
				got := r[0].Parts[0][0]
				if !errors.Is(got.Err, st.wantErr) || (st.wantErr == nil && got.BaseOffset != st.want) {
					t.Fatalf("step %d (%+v at %d): got %+v, want offset %d err %v", i, st.b, st.timeMs, got, st.want, st.wantErr)
				}
			}
			for p, want := range tc.wantHW {
				pp := partition(t, s, "t", int32(p))
				if pp.HighWatermark != want {
					t.Fatalf("partition %d HW = %d, want %d", p, pp.HighWatermark, want)
				}
				checkChunks(t, pp)
			}
		})
	}
}

func TestIdempotenceWithinOneCommit(t *testing.T) {
	s := stateWith(t, 1)
	r := apply(s, commitOf("o", part(testID(1), 0,
		CommitBatch{Pos: 0, Len: 5, Records: 2, ProducerID: 1, BaseSequence: 0},
		CommitBatch{Pos: 5, Len: 5, Records: 2, ProducerID: 1, BaseSequence: 0}, // duplicate of the first
		CommitBatch{Pos: 10, Len: 5, Records: 2, ProducerID: 1, BaseSequence: 2},
		CommitBatch{Pos: 15, Len: 5, Records: 2, ProducerID: 1, BaseSequence: 9},
	)))
	want := []BatchResult{{BaseOffset: 0}, {BaseOffset: 0}, {BaseOffset: 2}, {Err: ErrOutOfOrderSequence}}
	got := r[0].Parts[0]
	for i := range want {
		if got[i].BaseOffset != want[i].BaseOffset || !errors.Is(got[i].Err, want[i].Err) {
			t.Fatalf("batch %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if hw := partition(t, s, "t", 0).HighWatermark; hw != 4 {
		t.Fatalf("HW = %d, want 4", hw)
	}
}

func TestReserveProducers(t *testing.T) {
	s := NewState()
	type rng struct{ first, count int64 }
	var got []rng
	counts := [][]int32{{10}, {1, 5, 0}, {-3}, {1000}, {1}}
	for _, cs := range counts {
		var ops []Op
		for _, c := range cs {
			ops = append(ops, ReserveProducers{Count: c})
		}
		for i, r := range apply(s, ops...) {
			if r.Err != nil {
				t.Fatalf("reserve: %v", r.Err)
			}
			got = append(got, rng{r.FirstProducerID, int64(max(cs[i], 0))})
		}
	}
	for i, a := range got {
		if a.first < 0 {
			t.Fatalf("range %d starts at negative id %d", i, a.first)
		}
		for j, b := range got[:i] {
			if a.count > 0 && b.count > 0 && a.first < b.first+b.count && b.first < a.first+a.count {
				t.Fatalf("ranges %d %+v and %d %+v overlap", j, b, i, a)
			}
			if a.first < b.first {
				t.Fatalf("range %d %+v starts before earlier range %d %+v", i, a, j, b)
			}
		}
	}
	// A fresh state hands out the same ids for the same entries: every
	// agent agrees on who owns which id.
	s2 := NewState()
	for _, cs := range counts {
		var ops []Op
		for _, c := range cs {
			ops = append(ops, ReserveProducers{Count: c})
		}
		apply(s2, ops...)
	}
	if a, b := s.EncodeSnapshot(), s2.EncodeSnapshot(); string(a) != string(b) {
		t.Fatal("same reservations, different states")
	}
}

func TestApplyResultsMatchOps(t *testing.T) {
	s := NewState()
	ops := []Op{
		CreateTopic{Name: "a", ID: testID(1), Partitions: 1},
		CreateTopic{Name: "a", ID: testID(2), Partitions: 1},
		ReserveProducers{Count: 3},
		CreatePartitions{ID: testID(1), Count: 2},
		commitOf("o", part(testID(1), 1, plain(0, 1, 1))),
		DeleteTopic{ID: testID(3)},
	}
	r := apply(s, ops...)
	if len(r) != len(ops) {
		t.Fatalf("%d results for %d ops", len(r), len(ops))
	}
	wantErrs := []error{nil, ErrTopicExists, nil, nil, nil, ErrUnknownTopic}
	for i, w := range wantErrs {
		if !errors.Is(r[i].Err, w) {
			t.Errorf("op %d (%T): err = %v, want %v", i, ops[i], r[i].Err, w)
		}
	}
	if r[2].FirstProducerID == 0 || len(r[4].Parts) != 1 || r[4].Parts[0][0].Err != nil {
		t.Fatalf("results = %s", fmt.Sprint(r))
	}
}

func TestCreateTopicCopiesConfigs(t *testing.T) {
	s := NewState()
	cfg := map[string]string{"retention.ms": "1"}
	apply(s, CreateTopic{Name: "t", ID: testID(1), Partitions: 1, Configs: cfg})
	cfg["retention.ms"] = "2" // the caller reuses its map
	if v, set := s.Topic("t").Config("retention.ms"); v != "1" || !set {
		t.Fatalf("retention.ms = %q (set %v) after the caller changed its map", v, set)
	}
}

// A batch without records or bytes (only a faulty writer sends one) is
// refused on its own and the rest of the commit applies.
func TestCommitRefusesEmptyBatches(t *testing.T) {
	s := stateWith(t, 1)
	id := testID(1)
	applyAt(s, 1, commitOf("o1", part(id, 0, plain(0, 10, 3))))
	r := applyAt(s, 2, commitOf("o2", part(id, 0, plain(0, 10, 0), plain(10, 0, 2), plain(-1, 10, 2), plain(20, 10, -5), plain(30, 10, 2))))
	res := r[0].Parts[0]
	for i, want := range []error{ErrInvalidBatch, ErrInvalidBatch, ErrInvalidBatch, ErrInvalidBatch, nil} {
		if !errors.Is(res[i].Err, want) {
			t.Errorf("batch %d: %v, want %v", i, res[i].Err, want)
		}
	}
	p := partition(t, s, "t", 0)
	if p.HighWatermark != 5 || res[4].BaseOffset != 3 || len(p.Chunks) != 2 || p.Chunks[1].Pos != 30 {
		t.Fatalf("high watermark %d, base %d, chunks %+v", p.HighWatermark, res[4].BaseOffset, p.Chunks)
	}
}
