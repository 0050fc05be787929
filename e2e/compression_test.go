package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/bargehq/barge/internal/harness"
)

// TestTopicCompressionType: a topic's compression.type other than
// "producer" makes the agent store every batch with that codec, whatever
// the producer sent, as Kafka does; franz-go and kcat (checking CRCs) read
// the same records back.
func TestTopicCompressionType(t *testing.T) {
	const n = 2000
	b := harness.FileBackend(t)
	a := startAgent(t, b, 10*time.Millisecond)
	for _, tc := range []struct {
		topic, compressionType string
		sent                   kgo.CompressionCodec
		want                   uint8 // the codec id stored
	}{
		{"to-zstd", "zstd", kgo.NoCompression(), 4},
		{"to-gzip", "gzip", kgo.Lz4Compression(), 1},
		{"to-none", "uncompressed", kgo.SnappyCompression(), 0},
		{"as-sent", "producer", kgo.Lz4Compression(), 3},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			createTopic(t, a.Addr, tc.topic, 1, map[string]*string{"compression.type": kadm.StringPtr(tc.compressionType)})
			cl := client(t, a.Addr, kgo.ProducerBatchCompression(tc.sent), kgo.DefaultProduceTopic(tc.topic))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat(fmt.Appendf(nil, "v%d-", i), 20)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			got := consumeAll(t, a.Addr, tc.topic, map[int32]int64{0: n})[0]
			for i, r := range got {
				if !bytes.Equal(r.Value, recs[i].Value) || !bytes.Equal(r.Key, recs[i].Key) {
					t.Fatalf("offset %d: %q=%q, want %q=%q", i, r.Key, r.Value, recs[i].Key, recs[i].Value)
				}
				if c := r.Attrs.CompressionType(); c != tc.want {
					t.Fatalf("offset %d stored with codec %d, want %d", i, c, tc.want)
				}
			}
			// A client too old for zstd (Fetch below v10, Kafka 2.0's v8
			// here) gets Kafka's error for zstd batches, the rest as usual.
			old := client(t, a.Addr, kgo.MaxVersions(kversion.V2_0_0()), kgo.ConsumeTopics(tc.topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			for seen := 0; seen == 0; {
				fs := old.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatal("the old client got neither records nor an error")
				}
				fs.EachError(func(_ string, _ int32, err error) {
					if tc.want != 4 || !errors.Is(err, kerr.UnsupportedCompressionType) {
						t.Fatalf("old client: %v", err)
					}
					seen++
				})
				if n := fs.NumRecords(); n > 0 && tc.want == 4 {
					t.Fatalf("old client got %d zstd records", n)
				}
				seen += fs.NumRecords()
			}
			out := kcat(t, time.Minute, nil, "-b", a.Addr, "-C", "-t", tc.topic, "-e", "-o", "beginning", "-q",
				"-X", "check.crcs=true", "-f", `%k=%s\n`)
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(lines) != n || lines[n-1] != fmt.Sprintf("%s=%s", recs[n-1].Key, recs[n-1].Value) {
				t.Fatalf("kcat read %d records, last %q", len(lines), lines[len(lines)-1])
			}
		})
	}
}
