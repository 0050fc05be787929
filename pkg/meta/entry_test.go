package meta

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

// testID returns a recognisable topic id.
func testID(b byte) TopicID {
	var id TopicID
	for i := range id {
		id[i] = b ^ byte(i*17)
	}
	return id
}

// reseal returns body followed by its CRC, so that a test can build an
// entry the checksum does not reject and reach the decoder proper.
func reseal(body []byte) []byte {
	e := encoder{b: append([]byte(nil), body...)}
	return e.seal()
}

// entryCases covers every op kind, alone and mixed, with edge values.
// Optional collections are either nil or non-empty, except where the
// decoder always builds a non-nil slice (Commit.Parts, CommitPart.Batches).
func entryCases() []struct {
	name string
	en   *Entry
} {
	return []struct {
		name string
		en   *Entry
	}{
		{"no ops", &Entry{Writer: "agent-1", Tag: 1, TimeMs: 1700000000000}},
		{"create topic", &Entry{Writer: "a", Tag: 2, TimeMs: 5, Ops: []Op{
			CreateTopic{Name: "orders", ID: testID(1), Partitions: 12, ReplicationFactor: 3,
				Configs: map[string]string{"retention.ms": "1000", "cleanup.policy": "compact", "empty": ""}},
		}}},
		{"create topic without configs", &Entry{Writer: "a", Tag: 3, Ops: []Op{
			CreateTopic{Name: "t", ID: testID(2), Partitions: 1, ReplicationFactor: -1},
		}}},
		{"delete topic", &Entry{Writer: "a", Tag: 4, Ops: []Op{DeleteTopic{ID: testID(3)}}}},
		{"create partitions", &Entry{Writer: "a", Tag: 5, Ops: []Op{CreatePartitions{ID: testID(4), Count: math.MaxInt32}}}},
		{"commit", &Entry{Writer: "a", Tag: 6, TimeMs: 99, Ops: []Op{
			Commit{Object: "data/0001/abc.seg", Size: 1 << 40, Parts: []CommitPart{
				{Topic: testID(5), Partition: 0, Batches: []CommitBatch{
					{Pos: 0, Len: 100, Records: 10, MaxTimestamp: 1700000000001, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
					{Pos: 100, Len: 61, Records: 1, MaxTimestamp: -1, ProducerID: 1000, ProducerEpoch: 7, BaseSequence: math.MaxInt32},
				}},
				{Topic: testID(6), Partition: math.MaxInt32, Batches: []CommitBatch{
					{Pos: math.MaxInt64, Len: math.MinInt64, Records: math.MinInt32, MaxTimestamp: math.MinInt64,
						ProducerID: math.MaxInt64, ProducerEpoch: math.MaxInt16, BaseSequence: math.MinInt32},
				}},
				{Topic: testID(7), Partition: 3, Batches: []CommitBatch{}},
			}},
		}}},
		{"commit without parts", &Entry{Writer: "a", Tag: 7, Ops: []Op{Commit{Object: "o", Parts: []CommitPart{}}}}},
		{"reserve producers", &Entry{Writer: "a", Tag: 8, Ops: []Op{ReserveProducers{Count: 100}, ReserveProducers{Count: -5}}}},
		{"group generation", &Entry{Writer: "a", Tag: 9, Ops: []Op{
			GroupGeneration{Group: "g", Generation: 3, ProtocolType: "consumer", Protocol: "cooperative-sticky", Leader: "m1", Members: []string{"m1", "m2"}},
			GroupGeneration{Group: "empty", Generation: math.MaxInt32},
		}}},
		{"commit offsets", &Entry{Writer: "a", Tag: 10, Ops: []Op{
			CommitOffsets{Group: "g", Generation: 3, Member: "m1", Offsets: []GroupOffset{
				{Topic: testID(1), Partition: 0, Offset: 42, LeaderEpoch: -1, Metadata: strp(""), CommitMs: 1700000000000},
				{Topic: testID(2), Partition: math.MaxInt32, Offset: math.MaxInt64, LeaderEpoch: math.MaxInt32, CommitMs: -1},
				{Topic: testID(2), Partition: 1, Offset: -1, Metadata: strp("meta-ü")},
			}},
			CommitOffsets{Group: "simple", Generation: -1},
		}}},
		{"delete groups and offsets", &Entry{Writer: "a", Tag: 11, Ops: []Op{
			DeleteGroups{Groups: []string{"a", ""}},
			DeleteGroups{},
			DeleteOffsets{Group: "g", Partitions: []GroupPartition{{testID(1), 0}, {testID(2), math.MaxInt32}}},
			DeleteOffsets{Group: "h"},
		}}},
		{"configs, log start and released objects", &Entry{Writer: "a", Tag: 12, TimeMs: 7, Ops: []Op{
			SetTopicConfigs{Topic: testID(1), Configs: map[string]string{"retention.ms": "1000", "empty": ""}},
			SetTopicConfigs{Topic: testID(2)},
			AdvanceLogStart{Topic: testID(1), Partition: math.MaxInt32, Offset: math.MaxInt64},
			AdvanceLogStart{Topic: testID(1), Partition: 0, Offset: -1},
			ForgetObjects{Keys: []string{"seg/a", ""}},
			ForgetObjects{Keys: []string{}},
		}}},
		{"replace chunks", &Entry{Writer: "a", Tag: 13, Ops: []Op{
			ReplaceChunks{Topic: testID(1), Partition: 3, Inputs: []ChunkRef{{"seg/a", 8, 100, 0, 5}, {"seg/b", 8, 50, 5, math.MaxInt64}},
				Output: Chunk{Object: "cmp/x", Pos: 8, Len: 150, BaseOffset: 0, NextOffset: math.MaxInt64, MaxTimestamp: -1}},
			ReplaceChunks{Inputs: []ChunkRef{}},
		}}},
		{"clean chunks", &Entry{Writer: "a", Tag: 15, Ops: []Op{
			CleanChunks{Topic: testID(1), Partition: 3, Boundary: true, CleanedTo: 9, DeleteHorizon: 1700000000000, Runs: []CleanRun{
				{Inputs: []ChunkRef{{"seg/a", 8, 100, 0, 5}}, Output: Chunk{Object: "cln/x", Pos: 8, Len: 60, BaseOffset: 0, NextOffset: 5, MaxTimestamp: 3}},
				{Inputs: []ChunkRef{{"cmp/b", 8, 50, 5, 7}, {"seg/c", 0, 1, 7, 9}}, Output: Chunk{Object: "cln/y", Pos: 8, Len: 20, BaseOffset: 5, NextOffset: 9}},
			}},
			CleanChunks{Runs: []CleanRun{}},
		}}},
		{"leases", &Entry{Writer: "a", Tag: 14, TimeMs: 1700000000000, Ops: []Op{
			AcquireLease{Job: "compact/orders", DurationMs: 120000},
			AcquireLease{Job: "", DurationMs: math.MinInt64},
			AcquireLease{Job: "collect-ü", DurationMs: math.MaxInt64},
			ReleaseLease{Job: "compact/orders"},
			ReleaseLease{},
		}}},
		{"every kind", &Entry{Writer: "agent-ü-\x00-\xff", Tag: math.MaxUint64, TimeMs: math.MinInt64, Ops: []Op{
			CreateTopic{Name: "x", ID: testID(8), Partitions: 2, ReplicationFactor: 1, Configs: map[string]string{"k": "v"}},
			CreatePartitions{ID: testID(8), Count: 4},
			Commit{Object: "o2", Size: 7, Parts: []CommitPart{{Topic: testID(8), Partition: 1, Batches: []CommitBatch{
				{Pos: 0, Len: 7, Records: 1, ProducerID: 5, ProducerEpoch: 0, BaseSequence: 0}}}}},
			ReserveProducers{Count: 1},
			DeleteTopic{ID: testID(8)},
			GroupGeneration{Group: "g", Generation: 1, Members: []string{"m"}},
			CommitOffsets{Group: "g", Generation: 1, Offsets: []GroupOffset{{Topic: testID(8), Partition: 1, Offset: 5}}},
			DeleteOffsets{Group: "g", Partitions: []GroupPartition{{testID(8), 1}}},
			DeleteGroups{Groups: []string{"g"}},
			AcquireLease{Job: "retention/x", DurationMs: 1},
			ReleaseLease{Job: "retention/x"},
		}}},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, tc := range entryCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.en.Encode()
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !reflect.DeepEqual(got, tc.en) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tc.en)
			}
			if b2 := got.Encode(); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, b2)
			}
		})
	}
}

func TestEntryEncodeDeterministic(t *testing.T) {
	cfg := map[string]string{}
	for _, c := range TopicConfigs {
		cfg[c.Name] = c.Default
	}
	en := &Entry{Writer: "w", Ops: []Op{CreateTopic{Name: "t", ID: testID(1), Partitions: 1, Configs: cfg}}}
	want := en.Encode()
	for range 20 { // map iteration order differs from run to run
		if got := en.Encode(); !bytes.Equal(got, want) {
			t.Fatal("Encode is not deterministic")
		}
	}
}

func TestDecodeEntryCorrupt(t *testing.T) {
	for _, tc := range entryCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.en.Encode()
			for i := range b {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					c := bytes.Clone(b)
					c[i] ^= mask
					if _, err := DecodeEntry(c); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("byte %d ^ %#x: err = %v, want ErrCorrupt", i, mask, err)
					}
				}
			}
			for n := range b { // every truncation
				if _, err := DecodeEntry(b[:n]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d: err = %v, want ErrCorrupt", n, err)
				}
			}
			if _, err := DecodeEntry(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("extra byte: err = %v, want ErrCorrupt", err)
			}
			// Trailing bytes the checksum covers are rejected too.
			body := b[:len(b)-4]
			if _, err := DecodeEntry(reseal(append(bytes.Clone(body), 0))); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("sealed trailing byte: err = %v, want ErrCorrupt", err)
			}
			// A body cut anywhere and resealed fails on structure, not CRC.
			for n := range body {
				if _, err := DecodeEntry(reseal(body[:n])); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("body truncated to %d and resealed: err = %v, want ErrCorrupt", n, err)
				}
			}
		})
	}
}

// header encodes an entry header by hand with the given version.
func header(version uint8) *encoder {
	e := &encoder{}
	e.b = append(e.b, entryMagic...)
	e.u8(version)
	e.str("w")
	e.i64(1)
	e.i64(2)
	if Format(version) >= Format5 {
		e.uvar(3) // the append number
	}
	return e
}

func TestDecodeEntryRejects(t *testing.T) {
	sealed := func(build func(e *encoder)) []byte {
		e := header(uint8(MaxFormat))
		build(e)
		return e.seal()
	}
	valid := sealed(func(e *encoder) { e.uvar(1); e.u8(kindReserveProducers); e.svar(3) })
	if _, err := DecodeEntry(valid); err != nil {
		t.Fatalf("hand-built entry: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"only a checksum", reseal(nil)},
		{"version 0", func() []byte { e := header(0); e.uvar(0); return e.seal() }()},
		{"bad magic", reseal(append([]byte("BRGN\x01"), valid[5:len(valid)-4]...))},
		{"snapshot magic", NewState().EncodeSnapshot()},
		{"op kind 10 truncated", sealed(func(e *encoder) { e.uvar(1); e.u8(10); e.svar(3) })},
		{"a Format2 op in a Format1 entry", func() []byte {
			e := header(uint8(Format1))
			e.uvar(1)
			e.u8(kindCondemnObjects)
			e.strs([]string{"seg/x"})
			return e.seal()
		}()},
		{"commit offsets count too large", sealed(func(e *encoder) {
			e.uvar(1)
			e.u8(kindCommitOffsets)
			e.str("g")
			e.svar(1)
			e.str("m")
			e.uvar(1 << 30)
		})},
		{"group generation truncated", sealed(func(e *encoder) { e.uvar(1); e.u8(kindGroupGeneration); e.str("g"); e.svar(1) })},
		{"lease truncated", sealed(func(e *encoder) { e.uvar(1); e.u8(kindAcquireLease); e.str("job") })},
		{"lease job longer than input", sealed(func(e *encoder) { e.uvar(1); e.u8(kindReleaseLease); e.uvar(1 << 20) })},
		{"op count too large", sealed(func(e *encoder) { e.uvar(1 << 40); e.u8(kindReserveProducers); e.svar(3) })},
		{"op count larger than ops", sealed(func(e *encoder) { e.uvar(2); e.u8(kindReserveProducers); e.svar(3) })},
		{"int32 out of range", sealed(func(e *encoder) { e.uvar(1); e.u8(kindReserveProducers); e.svar(math.MaxInt32 + 1) })},
		{"string longer than input", sealed(func(e *encoder) { e.uvar(1); e.u8(kindDeleteTopic); e.uvar(1 << 20) })},
		{"short topic id", sealed(func(e *encoder) { e.uvar(1); e.u8(kindDeleteTopic); e.b = append(e.b, 1, 2, 3) })},
		{"commit part count too large", sealed(func(e *encoder) {
			e.uvar(1)
			e.u8(kindCommit)
			e.str("o")
			e.svar(1)
			e.uvar(1 << 30)
		})},
		{"commit batch count too large", sealed(func(e *encoder) {
			e.uvar(1)
			e.u8(kindCommit)
			e.str("o")
			e.svar(1)
			e.uvar(1)
			e.id(testID(1))
			e.svar(0)
			e.uvar(1 << 30)
		})},
		{"overlong uvarint", sealed(func(e *encoder) { e.b = append(e.b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01) })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			en, err := DecodeEntry(tc.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v (entry %#v), want ErrCorrupt", err, en)
			}
			if en != nil {
				t.Fatalf("entry %#v returned with an error", en)
			}
		})
	}
	// Bytes a newer build wrote are not corrupt: they need an upgrade.
	newer := []struct {
		name string
		b    []byte
		need Format
	}{
		{"a newer version", func() []byte { e := header(uint8(MaxFormat) + 1); e.uvar(0); return e.seal() }(), MaxFormat + 1},
		{"version 255", func() []byte { e := header(255); e.uvar(0); return e.seal() }(), 255},
		{"op kind 0", sealed(func(e *encoder) { e.uvar(1); e.u8(0) }), 0},
		{"op kind 255", sealed(func(e *encoder) { e.uvar(1); e.u8(255) }), 0},
		{"unknown kind after a good op", sealed(func(e *encoder) {
			e.uvar(2)
			e.u8(kindReserveProducers)
			e.svar(3)
			e.u8(42)
		}), 0},
		{"SetFormat above this build", sealed(func(e *encoder) { e.uvar(1); e.u8(kindSetFormat); e.uvar(uint64(MaxFormat) + 1) }), MaxFormat + 1},
	}
	for _, tc := range newer {
		t.Run(tc.name, func(t *testing.T) {
			en, err := DecodeEntry(tc.b)
			var fe *FormatError
			if !errors.As(err, &fe) || en != nil {
				t.Fatalf("DecodeEntry = %#v, %v; want a FormatError", en, err)
			}
			if tc.need != 0 && fe.Need != tc.need || fe.Max != MaxFormat {
				t.Fatalf("FormatError %+v, want need %d, max %d", fe, tc.need, MaxFormat)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, tc := range entryCases() {
		f.Add(tc.en.Encode())
	}
	f.Add([]byte{})
	f.Add([]byte("BRGE\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkEntryBytes(t, b)
		// Most mutations break the checksum; fix it up so the fuzzer
		// also explores the decoder behind it.
		if len(b) >= 4 {
			checkEntryBytes(t, reseal(b[:len(b)-4]))
		}
	})
}

func checkEntryBytes(t *testing.T, b []byte) {
	t.Helper()
	en, err := DecodeEntry(b)
	if err != nil {
		var fe *FormatError
		if !errors.Is(err, ErrCorrupt) && !errors.As(err, &fe) || en != nil {
			t.Fatalf("DecodeEntry = %v, %v; want nil, ErrCorrupt or a FormatError", en, err)
		}
		return
	}
	b2 := en.Encode()
	en2, err := DecodeEntry(b2)
	if err != nil {
		t.Fatalf("re-encoded entry does not decode: %v\n%x", err, b2)
	}
	if !reflect.DeepEqual(en, en2) {
		t.Fatalf("re-encoded entry differs:\n got %#v\nwant %#v", en2, en)
	}
	if b3 := en2.Encode(); !bytes.Equal(b2, b3) {
		t.Fatalf("encoding is not a fixed point:\n%x\n%x", b2, b3)
	}
}

func strp(s string) *string { return &s }
