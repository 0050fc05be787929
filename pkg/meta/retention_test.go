package meta

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func timed(pos, length int64, records int32, ts int64) CommitBatch {
	b := plain(pos, length, records)
	b.MaxTimestamp = ts
	return b
}

func TestAdvanceLogStartAndRelease(t *testing.T) {
	s := stateWith(t, 2)
	id := testID(1)
	// o1: p0 offsets 0-2, p1 offsets 0-1; o2: p0 offsets 3-4.
	applyAt(s, 100, commitOf("o1", part(id, 0, timed(0, 10, 3, 1)), part(id, 1, timed(10, 10, 2, 1))))
	applyAt(s, 200, commitOf("o2", part(id, 0, timed(0, 10, 2, 2))))
	if s.ObjectRefs("o1") != 2 || s.ObjectRefs("o2") != 1 {
		t.Fatalf("refs o1 %d o2 %d", s.ObjectRefs("o1"), s.ObjectRefs("o2"))
	}
	p0 := partition(t, s, "t", 0)

	// Into the middle of the first chunk: it stays, and Find still finds it.
	if r := applyAt(s, 300, AdvanceLogStart{Topic: id, Partition: 0, Offset: 1}); r[0].Err != nil || r[0].LogStart != 1 {
		t.Fatalf("advance to 1: %+v", r[0])
	}
	if len(p0.Chunks) != 2 || p0.Find(1) != 0 || s.ObjectRefs("o1") != 2 {
		t.Fatalf("straddling chunk: %+v find %d", p0.Chunks, p0.Find(1))
	}
	// Never backwards; never past the high watermark; unknown partitions.
	if r := applyAt(s, 300, AdvanceLogStart{Topic: id, Partition: 0, Offset: 0}); r[0].Err != nil || r[0].LogStart != 1 || p0.LogStart != 1 {
		t.Fatalf("advance backwards: %+v, log start %d", r[0], p0.LogStart)
	}
	if r := applyAt(s, 300, AdvanceLogStart{Topic: id, Partition: 0, Offset: 6}); !errors.Is(r[0].Err, ErrOffsetOutOfRange) || p0.LogStart != 1 {
		t.Fatalf("advance past HW: %+v", r[0])
	}
	if r := applyAt(s, 300, AdvanceLogStart{Topic: id, Partition: 9, Offset: 0}); !errors.Is(r[0].Err, ErrUnknownTopic) {
		t.Fatalf("unknown partition: %+v", r[0])
	}
	// Past the first chunk: dropped; o1 is still referred to by p1.
	applyAt(s, 400, AdvanceLogStart{Topic: id, Partition: 0, Offset: 3})
	if len(p0.Chunks) != 1 || p0.Chunks[0].Object != "o2" || s.ObjectRefs("o1") != 1 || len(s.Released(1<<62)) != 0 {
		t.Fatalf("after 3: chunks %+v refs %d released %v", p0.Chunks, s.ObjectRefs("o1"), s.Released(1<<62))
	}
	applyAt(s, 500, AdvanceLogStart{Topic: id, Partition: 1, Offset: 2})
	if got := s.Released(1 << 62); !reflect.DeepEqual(got, []ReleasedObject{{Key: "o1", ReleasedMs: 500}}) {
		t.Fatalf("released %v", got)
	}
	if got := s.Released(499); len(got) != 0 {
		t.Fatalf("released before 499: %v", got)
	}
	// Up to the high watermark: the partition is empty and o2 released.
	applyAt(s, 600, AdvanceLogStart{Topic: id, Partition: 0, Offset: 5})
	if len(p0.Chunks) != 0 || p0.LogStart != 5 || p0.HighWatermark != 5 || p0.Find(5) != -1 {
		t.Fatalf("at HW: %+v", p0)
	}
	// A commit none of whose batches are accepted releases its object.
	applyAt(s, 700, commitOf("o3", part(testID(9), 0, timed(0, 10, 1, 1))))
	// Deleting a topic releases what its chunks referred to.
	applyAt(s, 800, commitOf("o4", part(id, 1, timed(0, 10, 1, 1))))
	applyAt(s, 900, DeleteTopic{ID: id})
	want := []ReleasedObject{{"o1", 500}, {"o2", 600}, {"o3", 700}, {"o4", 900}}
	if got := s.Released(1 << 62); !reflect.DeepEqual(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}

	snap := s.EncodeSnapshot()
	dec, err := DecodeSnapshot(snap)
	if err != nil || !sameAsSnapshot(s, dec) || !bytes.Equal(dec.EncodeSnapshot(), snap) {
		t.Fatalf("released objects do not survive a snapshot: %v", err)
	}
	applyAt(s, 1000, ForgetObjects{Keys: []string{"o1", "o3"}})
	if got := s.Released(1 << 62); !reflect.DeepEqual(got, []ReleasedObject{{"o2", 600}, {"o4", 900}}) {
		t.Fatalf("after forget: %v", got)
	}
}

func TestRefsRebuiltFromSnapshot(t *testing.T) {
	s := stateWith(t, 1)
	id := testID(1)
	applyAt(s, 1, commitOf("a", part(id, 0, timed(0, 10, 1, 1))))
	applyAt(s, 2, commitOf("b", part(id, 0, timed(0, 10, 1, 1), timed(20, 10, 1, 1))))
	dec, err := DecodeSnapshot(s.EncodeSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if dec.ObjectRefs("a") != 1 || dec.ObjectRefs("b") != 2 || !sameAsSnapshot(s, dec) {
		t.Fatalf("refs a %d b %d", dec.ObjectRefs("a"), dec.ObjectRefs("b"))
	}
	applyAt(dec, 3, AdvanceLogStart{Topic: id, Partition: 0, Offset: 2})
	if got := dec.Released(10); !reflect.DeepEqual(got, []ReleasedObject{{"a", 3}}) || dec.ObjectRefs("b") != 1 {
		t.Fatalf("released %v refs b %d", got, dec.ObjectRefs("b"))
	}
}

func TestSetTopicConfigs(t *testing.T) {
	s := stateWith(t, 1)
	cfg := map[string]string{"retention.ms": "1000"}
	if r := apply(s, SetTopicConfigs{Topic: testID(1), Configs: cfg}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	cfg["retention.ms"] = "5" // the op's map is the caller's
	if v, set := s.Topic("t").Config("retention.ms"); v != "1000" || !set {
		t.Fatalf("retention.ms = %q %v", v, set)
	}
	apply(s, SetTopicConfigs{Topic: testID(1)})
	if v, set := s.Topic("t").Config("retention.ms"); v != "604800000" || set {
		t.Fatalf("after reset retention.ms = %q %v", v, set)
	}
	if r := apply(s, SetTopicConfigs{Topic: testID(2)}); !errors.Is(r[0].Err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", r[0].Err)
	}
}

func TestJobOpsRoundTrip(t *testing.T) {
	en := &Entry{Writer: "w", Tag: 1, TimeMs: 2, Ops: []Op{
		SetTopicConfigs{Topic: testID(1), Configs: map[string]string{"a": "1", "b": ""}},
		SetTopicConfigs{Topic: testID(2)},
		AdvanceLogStart{Topic: testID(1), Partition: 3, Offset: 1 << 40},
		ForgetObjects{Keys: []string{"seg/a", "seg/b"}},
		ForgetObjects{Keys: []string{}},
	}}
	got, err := DecodeEntry(en.Encode())
	if err != nil || !reflect.DeepEqual(got, en) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, got, en)
	}
}

func TestRetentionStart(t *testing.T) {
	// Four chunks of 100 bytes, offsets 0-9, 10-19, 20-29, 30-39, newest
	// record at 1000, 2000, 3000, 4000.
	p := &Partition{LogStart: 0, HighWatermark: 40}
	for i := int64(0); i < 4; i++ {
		p.Chunks = append(p.Chunks, Chunk{Object: "o", Len: 100, BaseOffset: 10 * i, NextOffset: 10*i + 10, MaxTimestamp: 1000 * (i + 1)})
	}
	for _, c := range []struct {
		name    string
		configs map[string]string
		now     int64
		start   int64
		want    int64
	}{
		{"default keeps a week", nil, 5000, 0, 0},
		{"nothing expired yet", map[string]string{"retention.ms": "1000"}, 2000, 0, 0},
		{"two expired", map[string]string{"retention.ms": "1000"}, 3001, 0, 20},
		{"all expired", map[string]string{"retention.ms": "1"}, 9000, 0, 40},
		{"infinite", map[string]string{"retention.ms": "-1"}, 1 << 50, 0, 0},
		{"bytes: stays at or above the limit", map[string]string{"retention.bytes": "250"}, 0, 0, 10},
		{"bytes: exactly the limit", map[string]string{"retention.bytes": "200"}, 0, 0, 20},
		{"bytes: zero drops every chunk", map[string]string{"retention.bytes": "0"}, 0, 0, 40},
		{"never backwards", map[string]string{"retention.bytes": "250"}, 0, 15, 15},
		{"compact only", map[string]string{"retention.ms": "1", "cleanup.policy": "compact"}, 9000, 0, 0},
		{"compact,delete", map[string]string{"retention.ms": "1", "cleanup.policy": "compact,delete"}, 9000, 0, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := *p
			q.LogStart = c.start
			tp := &Topic{Configs: c.configs}
			if got := tp.RetentionStart(&q, c.now); got != c.want {
				t.Fatalf("RetentionStart = %d, want %d", got, c.want)
			}
		})
	}
}
