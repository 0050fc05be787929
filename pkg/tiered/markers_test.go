package tiered

import (
	"testing"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
)

// A marker object is a segment like any other: its footer lists a part per
// partition, and each part's range is one control batch of the producer.
func TestEncodeMarkers(t *testing.T) {
	parts := []meta.GroupPartition{{Topic: meta.TopicID{1}, Partition: 0}, {Topic: meta.TopicID{2}, Partition: 5}}
	obj, c := EncodeMarkers(parts, 9, 4, true, 1000)
	got, err := DecodeSegment(obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(c.Parts) != 2 || c.Size != int64(len(obj)) {
		t.Fatalf("footer %+v, commit %+v", got, c)
	}
	for i, p := range got {
		b := c.Parts[i].Batches[0]
		if p.Topic != parts[i].Topic || p.Partition != parts[i].Partition || p.Pos != b.Pos || p.Len != b.Len || !b.Control || !b.Transactional {
			t.Fatalf("part %d: footer %+v, commit %+v", i, p, c.Parts[i])
		}
		typ, err := batch.ControlType(obj[b.Pos : b.Pos+b.Len])
		if err != nil || typ != batch.ControlCommit {
			t.Fatalf("part %d: control type %d, %v", i, typ, err)
		}
		h, _ := batch.ParseHeader(obj[b.Pos:])
		if h.ProducerID != 9 || h.ProducerEpoch != 4 {
			t.Fatalf("marker producer %d/%d", h.ProducerID, h.ProducerEpoch)
		}
	}
}
