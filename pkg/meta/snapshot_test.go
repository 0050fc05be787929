package meta

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// historyEntries builds a varied history: topics with and without configs,
// commits across partitions and objects, idempotent producers with more
// than recentBatches batches, a grown and a deleted topic.
func historyEntries() []*Entry {
	orders, events, gone := testID(1), testID(2), testID(3)
	ens := []*Entry{
		{Writer: "a", TimeMs: 1000, Ops: []Op{
			CreateTopic{Name: "orders", ID: orders, Partitions: 3, ReplicationFactor: 3,
				Configs: map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
			CreateTopic{Name: "events", ID: events, Partitions: 1},
			CreateTopic{Name: "gone", ID: gone, Partitions: 2, Configs: map[string]string{}},
			ReserveProducers{Count: 10},
		}},
	}
	t := int64(2000)
	for i := range int32(8) {
		obj := "data/seg-" + string(rune('a'+i))
		ens = append(ens, &Entry{Writer: "b", TimeMs: t, Ops: []Op{
			commitOf(obj,
				part(orders, i%3,
					CommitBatch{Pos: 0, Len: 100, Records: 3, MaxTimestamp: t, ProducerID: 1000, ProducerEpoch: 1, BaseSequence: i / 3 * 3},
					CommitBatch{Pos: 100, Len: 50, Records: 1, MaxTimestamp: t + 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}),
				part(events, 0,
					CommitBatch{Pos: 150, Len: 10, Records: 2, MaxTimestamp: t, ProducerID: 1001, BaseSequence: 2 * i},
					CommitBatch{Pos: 160, Len: 10, Records: 1, MaxTimestamp: t, ProducerID: 1002, ProducerEpoch: int16(i)}),
				part(gone, 1, plain(170, 5, 5)),
			),
		}})
		t += 1000
	}
	ens = append(ens,
		&Entry{Writer: "a", TimeMs: t, Ops: []Op{CreatePartitions{ID: events, Count: 3}, DeleteTopic{ID: gone}}},
		&Entry{Writer: "a", TimeMs: t, Ops: []Op{commitOf("data/seg-z", part(events, 2, plain(0, 1, 1)), part(events, 1, plain(1, 1, 1)))}},
		&Entry{Writer: "a", TimeMs: t, Ops: []Op{
			GroupGeneration{Group: "g1", Generation: 1, ProtocolType: "consumer", Protocol: "range", Leader: "m1", Members: []string{"m1", "m2"}},
			CommitOffsets{Group: "g1", Generation: 1, Member: "m1", Offsets: []GroupOffset{
				{Topic: orders, Partition: 2, Offset: 7, LeaderEpoch: 0, Metadata: strp("x"), CommitMs: t},
				{Topic: orders, Partition: 0, Offset: 3, LeaderEpoch: -1, CommitMs: t},
				{Topic: events, Partition: 1, Offset: 1, Metadata: strp("")},
			}},
			CommitOffsets{Group: "simple", Generation: -1, Offsets: []GroupOffset{{Topic: events, Partition: 0, Offset: 9}}},
			GroupGeneration{Group: "empty", Generation: 4},
			CommitOffsets{Group: "drained", Generation: -1, Offsets: []GroupOffset{{Topic: events, Partition: 0, Offset: 1}}},
			DeleteOffsets{Group: "drained", Partitions: []GroupPartition{{events, 0}}},
		}},
		&Entry{Writer: "a", TimeMs: t, Ops: []Op{AcquireLease{Job: "compact/orders", DurationMs: 120000},
			AcquireLease{Job: "collect", DurationMs: 1000}, ReleaseLease{Job: "collect"}}},
		&Entry{Writer: "b", TimeMs: t, Ops: []Op{AcquireLease{Job: "retention/events", DurationMs: 60000}}},
		&Entry{Writer: "b", TimeMs: t, Ops: []Op{CleanChunks{Topic: events, Partition: 2, Boundary: true, CleanedTo: 1, DeleteHorizon: t + 5}}},
	)
	return ens
}

// moreEntries exercise the producer state a snapshot must carry: a
// duplicate, the next sequence, a stale epoch, a new epoch, and expiry.
func moreEntries(t0 int64) []*Entry {
	orders, events := testID(1), testID(2)
	return []*Entry{
		{TimeMs: t0, Ops: []Op{commitOf("m1",
			part(events, 0,
				CommitBatch{Pos: 0, Len: 10, Records: 2, ProducerID: 1001, BaseSequence: 14}, // duplicate of the last
				CommitBatch{Pos: 10, Len: 10, Records: 2, ProducerID: 1001, BaseSequence: 16},
				CommitBatch{Pos: 20, Len: 10, Records: 1, ProducerID: 1002, ProducerEpoch: 6}, // stale epoch
				CommitBatch{Pos: 30, Len: 10, Records: 1, ProducerID: 1002, ProducerEpoch: 8, BaseSequence: 0},
				CommitBatch{Pos: 40, Len: 10, Records: 2, ProducerID: 1001, BaseSequence: 0}, // too old: out of order
			),
			part(orders, 1, CommitBatch{Pos: 50, Len: 10, Records: 3, ProducerID: 1000, ProducerEpoch: 1, BaseSequence: 3}),
		)}},
		{TimeMs: t0 + 48*60*60*1000, Ops: []Op{ // producers expired
			ReserveProducers{Count: 3},
			commitOf("m2", part(events, 0, CommitBatch{Pos: 0, Len: 10, Records: 2, ProducerID: 1001, BaseSequence: 14})),
			CreateTopic{Name: "late", ID: testID(4), Partitions: 1},
		}},
	}
}

// sameAsSnapshot reports whether dec, decoded from a snapshot of s, is s.
// A Format1 snapshot does not hold the members (format.go), so they are
// compared only at Format2.
func sameAsSnapshot(s, dec *State) bool {
	if s.format < Format2 {
		c := *s
		c.members, c.membersSince = dec.members, dec.membersSince
		return reflect.DeepEqual(&c, dec)
	}
	return reflect.DeepEqual(s, dec)
}

func historyState(t testing.TB) *State {
	t.Helper()
	s := NewState()
	for _, en := range historyEntries() {
		for i, r := range s.Apply(s.Seq+1, en) {
			if r.Err != nil {
				t.Fatalf("history op %d: %v", i, r.Err)
			}
			for _, p := range r.Parts {
				for _, b := range p {
					if b.Err != nil {
						t.Fatalf("history batch: %v", b.Err)
					}
				}
			}
		}
	}
	return s
}

func TestSnapshotRoundTrip(t *testing.T) {
	orig := historyState(t)
	b := orig.EncodeSnapshot()
	dec, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatalf("DecodeSnapshot: %v", err)
	}
	if b2 := dec.EncodeSnapshot(); !bytes.Equal(b, b2) {
		t.Fatalf("snapshot of decoded state differs:\n%x\n%x", b, b2)
	}
	if !sameAsSnapshot(orig, dec) {
		t.Fatal("decoded state differs from the original")
	}
	if dec.Seq != orig.Seq || dec.Topic("orders").Configs["cleanup.policy"] != "compact" || dec.Topic("gone") != nil {
		t.Fatalf("decoded state: seq %d, topics %v", dec.Seq, dec.TopicNames())
	}

	// The same further entries give the same results and states.
	for i, en := range moreEntries(100_000) {
		r1, r2 := orig.Apply(orig.Seq+1, en), dec.Apply(dec.Seq+1, en)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("entry %d: results differ:\n%+v\n%+v", i, r1, r2)
		}
		if !bytes.Equal(orig.EncodeSnapshot(), dec.EncodeSnapshot()) {
			t.Fatalf("entry %d: snapshots differ", i)
		}
	}
	// And the further entries did hit the producer state.
	orig2, _ := DecodeSnapshot(b)
	r := orig2.Apply(orig2.Seq+1, moreEntries(100_000)[0])[0].Parts[0]
	wantErrs := []error{nil, nil, ErrInvalidProducerEpoch, nil, ErrOutOfOrderSequence}
	for i, w := range wantErrs {
		if !errors.Is(r[i].Err, w) {
			t.Fatalf("batch %d: err %v, want %v", i, r[i].Err, w)
		}
	}
	// events/0 took 3 offsets per history commit; the last pid 1001 batch
	// (seq 14) went to offset 21.
	if r[0].BaseOffset != 21 {
		t.Fatalf("duplicate got offset %d, want 21", r[0].BaseOffset)
	}
}

// A version 1 snapshot (no groups section) is still read.
func TestDecodeSnapshotVersion1(t *testing.T) {
	s := NewState()
	for _, en := range historyEntries() {
		en.Ops = slices.DeleteFunc(slices.Clone(en.Ops), func(op Op) bool { return op.kind() >= kindGroupGeneration })
		s.Apply(s.Seq+1, en)
	}
	b := s.EncodeSnapshot()
	body := b[:len(b)-4]
	// The empty groups section is one zero count; the empty agents
	// section three zeros (next node id, addresses, agents); the empty
	// released-objects, leases and cleaner sections one each.
	if !bytes.Equal(body[len(body)-7:], []byte{0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("snapshot without groups, agents, released objects, leases and cleaner boundaries ends in %x", body[len(body)-7:])
	}
	v1 := bytes.Clone(body[:len(body)-7])
	v1[4] = 1
	dec, err := DecodeSnapshot(reseal(v1))
	if err != nil {
		t.Fatalf("DecodeSnapshot(v1): %v", err)
	}
	if !sameAsSnapshot(s, dec) {
		t.Fatal("version 1 snapshot decodes to a different state")
	}
	if !bytes.Equal(dec.EncodeSnapshot(), b) {
		t.Fatal("re-encoding a version 1 snapshot does not give the current version")
	}
}

func TestSnapshotGroups(t *testing.T) {
	s := historyState(t)
	dec, err := DecodeSnapshot(s.EncodeSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dec.GroupNames(), []string{"drained", "empty", "g1", "simple"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	g, ok := dec.Group("g1")
	if !ok || g.Generation != 1 || g.Leader != "m1" || !reflect.DeepEqual(g.Members, []string{"m1", "m2"}) || g.Protocol != "range" {
		t.Fatalf("g1 = %+v", g)
	}
	if o, ok := dec.CommittedOffset("g1", testID(1), 2); !ok || o.Offset != 7 || *o.Metadata != "x" {
		t.Fatalf("g1 orders/2 = %+v %v", o, ok)
	}
	if o, _ := dec.CommittedOffset("g1", testID(1), 0); o.Metadata != nil || o.LeaderEpoch != -1 {
		t.Fatalf("g1 orders/0 = %+v, want null metadata", o)
	}
	if n := len(dec.CommittedOffsets("drained")); n != 0 {
		t.Fatalf("drained has %d offsets", n)
	}
}

func TestSnapshotEmptyState(t *testing.T) {
	b := NewState().EncodeSnapshot()
	s, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsSnapshot(NewState(), s) {
		t.Fatalf("decoded empty state = %+v", s)
	}
}

func TestSnapshotDeterministic(t *testing.T) {
	a, b := historyState(t), historyState(t)
	if !bytes.Equal(a.EncodeSnapshot(), b.EncodeSnapshot()) {
		t.Fatal("same history, different snapshots")
	}
}

func TestDecodeSnapshotCorrupt(t *testing.T) {
	b := historyState(t).EncodeSnapshot()
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := DecodeSnapshot(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: err = %v, want ErrCorrupt", i, err)
		}
	}
	body := b[:len(b)-4]
	for n := range body {
		if _, err := DecodeSnapshot(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err = %v, want ErrCorrupt", n, err)
		}
		if _, err := DecodeSnapshot(reseal(body[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("body truncated to %d and resealed: err = %v, want ErrCorrupt", n, err)
		}
	}
	for _, bad := range [][]byte{
		reseal(append(bytes.Clone(body), 0)),                          // trailing byte
		reseal(append([]byte("BRGN\x07"), body[5:]...)),               // version 7
		reseal(append([]byte("BRGE\x01"), body[5:]...)),               // entry magic
		(&Entry{Writer: "w"}).Encode(),                                // an entry is no snapshot
		reseal(append([]byte("BRGN\x01\x00\x00\x01\x01x\x01"), 0x7f)), // topic count beyond input
	} {
		if _, err := DecodeSnapshot(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%x: err = %v, want ErrCorrupt", bad, err)
		}
	}
}

// A producer remembers at most recentBatches batches; a snapshot that
// claims more is not one this version wrote.
func TestDecodeSnapshotTooManyRecentBatches(t *testing.T) {
	// A version 6 snapshot of one topic of one partition whose producer
	// claims recentBatches+1 batches, written field by field.
	e := encoder{}
	e.b = append(e.b, snapMagic...)
	e.u8(6)
	e.uvar(1)    // seq
	e.svar(1000) // next producer id
	e.uvar(0)    // objects
	e.uvar(1)    // topics
	e.str("t")
	e.id(testID(1))
	e.svar(1) // replication factor
	e.uvar(0) // configs
	e.uvar(1) // partitions
	e.svar(0) // log start
	e.svar(0) // high watermark
	e.uvar(0) // chunks
	e.uvar(1) // producers
	e.svar(7) // id
	e.svar(1) // epoch
	e.svar(5) // last ms
	e.uvar(recentBatches + 1)
	for i := range int64(recentBatches + 1) {
		e.svar(i)
		e.svar(i)
		e.svar(i)
	}
	e.uvar(0) // groups
	e.svar(0) // next node id
	e.uvar(0) // addresses
	e.uvar(0) // agents
	e.uvar(0) // released
	e.uvar(0) // leases
	e.uvar(0) // cleaner
	if _, err := DecodeSnapshot(e.seal()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(NewState().EncodeSnapshot())
	f.Add(historyState(f).EncodeSnapshot())
	s := stateWith(f, 2)
	applyAt(s, 5, commitOf("o", part(testID(1), 1, idem(3, 2, 1, 4), plain(10, 3, 1))))
	f.Add(s.EncodeSnapshot())
	f.Add([]byte("BRGN\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSnapshotBytes(t, b)
		if len(b) >= 4 {
			checkSnapshotBytes(t, reseal(b[:len(b)-4]))
		}
	})
}

// checkSnapshotBytes decodes b, which is corrupt, too new, or a state that
// must encode to a snapshot that decodes to the same encoding, and take
// further entries without panicking.
func checkSnapshotBytes(t *testing.T, b []byte) {
	t.Helper()
	s, err := DecodeSnapshot(b)
	if err != nil {
		// A snapshot version above ours is a newer build's, which this
		// agent must wait for an upgrade to read, not damage.
		var fe *FormatError
		if !(errors.Is(err, ErrCorrupt) || errors.As(err, &fe)) || s != nil {
			t.Fatalf("DecodeSnapshot = %v, %v; want nil, ErrCorrupt or a FormatError", s, err)
		}
		return
	}
	b2 := s.EncodeSnapshot()
	s2, err := DecodeSnapshot(b2)
	if err != nil {
		t.Fatalf("re-encoded snapshot does not decode: %v", err)
	}
	if b3 := s2.EncodeSnapshot(); !bytes.Equal(b2, b3) {
		t.Fatalf("snapshot encoding is not a fixed point:\n%x\n%x", b2, b3)
	}
	// Apply a commit to every partition, with producers the state knows.
	var parts []CommitPart
	for _, name := range s.TopicNames() {
		tp := s.Topic(name)
		for i, p := range tp.Partitions {
			batches := []CommitBatch{plain(0, 1, 1)}
			for id, ps := range p.producers {
				batches = append(batches,
					CommitBatch{Pos: 1, Len: 1, Records: 1, ProducerID: id, ProducerEpoch: ps.epoch, BaseSequence: ps.recent[0].first},
					CommitBatch{Pos: 2, Len: 1, Records: 1, ProducerID: id, ProducerEpoch: ps.epoch, BaseSequence: ps.recent[ps.n-1].last + 1})
			}
			parts = append(parts, CommitPart{Topic: tp.ID, Partition: int32(i), Batches: batches})
		}
	}
	ops := []Op{Commit{Object: "f", Parts: parts}, ReserveProducers{Count: 1}}
	for job, l := range s.leases { // renewed by the holder, released by another
		ops = append(ops, AcquireLease{Job: job, DurationMs: 1}, ReleaseLease{Job: job})
		s.Apply(s.Seq+1, &Entry{Writer: l.Holder, TimeMs: 1, Ops: []Op{AcquireLease{Job: job, DurationMs: 1}}})
	}
	s.Apply(s.Seq+1, &Entry{TimeMs: 1, Ops: ops})
	s.EncodeSnapshot()
}
