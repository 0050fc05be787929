package batch

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A marker as Kafka's clients read it: kmsg decodes the batch, its
// attributes say transactional and control, and its record's key holds
// the type.
func TestControlBatch(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b := ControlBatch(77, 3, commit, 0, 1234)
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		if rb.Attributes&0x30 != 0x30 || rb.ProducerID != 77 || rb.ProducerEpoch != 3 || rb.NumRecords != 1 || rb.FirstSequence != -1 {
			t.Fatalf("control batch header %+v", rb)
		}
		h, err := Validate(b)
		if err != nil || !h.IsControl() || !h.IsTransactional() {
			t.Fatalf("Validate: %+v %v", h, err)
		}
		typ, err := ControlType(b)
		want := ControlAbort
		if commit {
			want = ControlCommit
		}
		if err != nil || typ != want {
			t.Fatalf("type %d %v, want %d", typ, err, want)
		}
		recs, _ := Records(b, 1<<10)
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(recs[0].Key); err != nil || int16(key.Type) != want {
			t.Fatalf("kmsg reads the key as %+v: %v", key, err)
		}
		var value kmsg.EndTxnMarker
		if err := value.ReadFrom(recs[0].Value); err != nil || value.CoordinatorEpoch != 0 {
			t.Fatalf("kmsg reads the value as %+v: %v", value, err)
		}
	}
}
