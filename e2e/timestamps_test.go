package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// stampedBatch builds a batch under codec of one record per timestamp
// delta from firstTs; the header's MaxTimestamp is firstTs, as if the
// producer had looked only at the first record.
func stampedBatch(t *testing.T, codec batch.Codec, firstTs int64, deltas ...int64) []byte {
	t.Helper()
	recs := make([]batch.Record, len(deltas))
	for i, d := range deltas {
		recs[i] = batch.Record{OffsetDelta: int32(i), TimestampDelta: d, Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}
	}
	b, err := batch.Build(batch.Header{FirstTimestamp: firstTs, MaxTimestamp: firstTs, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, codec, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTimestampBoundsPerRecord: the README's timestamps row. On a CreateTime
// topic every record of a batch is judged by its own timestamp against
// message.timestamp.before.max.ms and message.timestamp.after.max.ms (and
// the older message.timestamp.difference.max.ms, which bounds both), not
// just the first record or the header: one record out of bounds anywhere in
// the batch, compressed or not, gets the whole batch INVALID_TIMESTAMP and
// stores none of it. Records without a timestamp (-1) are exempt, and a
// batch wholly within bounds is stored.
func TestTimestampBoundsPerRecord(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	minute := time.Minute.Milliseconds()
	createTopic(t, a.Addr, "bounds", 1, map[string]*string{
		"message.timestamp.before.max.ms": kmsg.StringPtr(fmt.Sprint(5 * minute)),
		"message.timestamp.after.max.ms":  kmsg.StringPtr(fmt.Sprint(5 * minute)),
	})
	createTopic(t, a.Addr, "diff", 1, map[string]*string{
		"message.timestamp.difference.max.ms": kmsg.StringPtr(fmt.Sprint(5 * minute)),
	})
	cl := client(t, a.Addr)
	now := time.Now().UnixMilli()
	stored := map[string]int64{}
	for _, codec := range []batch.Codec{batch.None, batch.Gzip} {
		for _, tc := range []struct {
			topic  string
			name   string
			first  int64
			deltas []int64
			want   *kerr.Error
		}{
			{"bounds", "all within a minute", now, []int64{0, -minute, minute, 0, 30_000}, nil},
			{"bounds", "third record 10 minutes behind", now, []int64{0, 1, -10 * minute, 2, 3}, kerr.InvalidTimestamp},
			{"bounds", "last record 10 minutes ahead", now, []int64{0, 1, 2, 3, 10 * minute}, kerr.InvalidTimestamp},
			{"bounds", "second record 6 minutes ahead, fourth 6 behind", now, []int64{0, 6 * minute, 0, -6 * minute, 0}, kerr.InvalidTimestamp},
			// The first record is -1 (no timestamp): exempt; the rest are now.
			{"bounds", "first record without a timestamp", -1, []int64{0, now + 1, now + 1, now + 1, now + 1}, nil},
			{"diff", "second record 10 minutes behind", now, []int64{0, -10 * minute, 0, 0, 0}, kerr.InvalidTimestamp},
			{"diff", "fourth record 10 minutes ahead", now, []int64{0, 0, 0, 10 * minute, 0}, kerr.InvalidTimestamp},
			{"diff", "all within a minute", now, []int64{0, minute, -minute, 0, 0}, nil},
		} {
			code := produceRaw(ctx, t, cl, tc.topic, stampedBatch(t, codec, tc.first, tc.deltas...))
			want := int16(0)
			if tc.want != nil {
				want = tc.want.Code
			} else {
				stored[tc.topic] += int64(len(tc.deltas))
			}
			if code != want {
				t.Errorf("%s, %s (codec %d): %v, want %v", tc.topic, tc.name, codec, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
			}
		}
	}
	for topic, want := range stored {
		if ends := endOffsets(t, a.Addr, topic); ends[0] != want {
			t.Errorf("%s: high watermark %d, want %d (only the batches within bounds)", topic, ends[0], want)
		}
	}
}
