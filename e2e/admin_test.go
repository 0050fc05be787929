package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// timedBatch builds a batch whose records carry the given timestamps.
func timedBatch(t *testing.T, codec batch.Codec, pid int64, seq int32, ts ...int64) []byte {
	t.Helper()
	first, maxTs := ts[0], ts[0]
	recs := make([]batch.Record, len(ts))
	for _, x := range ts {
		first, maxTs = min(first, x), max(maxTs, x)
	}
	for i, x := range ts {
		recs[i] = batch.Record{OffsetDelta: int32(i), TimestampDelta: x - first, Value: []byte("v")}
	}
	h := batch.Header{FirstTimestamp: first, MaxTimestamp: maxTs, ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq}
	if pid < 0 {
		h.ProducerEpoch, h.BaseSequence = -1, -1
	}
	b, err := batch.Build(h, codec, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAdminAndOffsets covers the remaining APIs of the foundation:
// ListOffsets in every mode, idempotent de-duplication and sequence checks,
// leader epochs (OffsetForLeaderEpoch, Fetch, ListOffsets), CreateTopics' answers, DescribeConfigs,
// DescribeCluster, DeleteTopics and LogAppendTime.
func TestAdminAndOffsets(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cl := client(t, a.Addr)

			t.Run("list offsets", func(t *testing.T) {
				createTopic(t, a.Addr, "times", 1, nil)
				// Offsets 0-2 at 1000,3000,2000 (gzip); 3-4 at 5000,4000.
				for _, bt := range [][]byte{timedBatch(t, batch.Gzip, -1, 0, 1000, 3000, 2000), timedBatch(t, batch.None, -1, 0, 5000, 4000)} {
					if code := produceRaw(ctx, t, cl, "times", bt); code != 0 {
						t.Fatalf("produce: %v", kerr.ErrorForCode(code))
					}
				}
				for _, c := range []struct{ ts, offset, at int64 }{
					{-2, 0, -1}, {-1, 5, -1}, {-3, 3, 5000}, {-4, 0, -1},
					{0, 0, 1000}, {1000, 0, 1000}, {1500, 1, 3000}, {2500, 1, 3000}, {3500, 3, 5000}, {4500, 3, 5000}, {5001, -1, -1},
				} {
					req := kmsg.NewPtrListOffsetsRequest()
					rt := kmsg.NewListOffsetsRequestTopic()
					rt.Topic = "times"
					rp := kmsg.NewListOffsetsRequestTopicPartition()
					rp.Timestamp = c.ts
					rt.Partitions = append(rt.Partitions, rp)
					req.Topics = append(req.Topics, rt)
					resp, err := req.RequestWith(ctx, cl)
					if err != nil {
						t.Fatal(err)
					}
					p := resp.Topics[0].Partitions[0]
					if p.ErrorCode != 0 || p.Offset != c.offset || p.Timestamp != c.at {
						t.Errorf("ListOffsets %d: offset %d at %d (%v), want %d at %d", c.ts, p.Offset, p.Timestamp, kerr.ErrorForCode(p.ErrorCode), c.offset, c.at)
					}
				}
			})

			t.Run("idempotence", func(t *testing.T) {
				createTopic(t, a.Addr, "idem", 1, nil)
				init, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
				if err != nil || init.ErrorCode != 0 || init.ProducerID < 0 {
					t.Fatalf("InitProducerId: %v %v", err, kerr.ErrorForCode(init.ErrorCode))
				}
				pid := init.ProducerID
				first := timedBatch(t, batch.None, pid, 0, 1, 2, 3)
				for i := 0; i < 2; i++ { // the retry is a duplicate: same offset, nothing appended
					req := kmsg.NewPtrProduceRequest()
					req.Acks, req.TimeoutMillis = -1, 30000
					rt := kmsg.NewProduceRequestTopic()
					rt.Topic = "idem"
					rp := kmsg.NewProduceRequestTopicPartition()
					rp.Records = first
					rt.Partitions = append(rt.Partitions, rp)
					req.Topics = append(req.Topics, rt)
					resp, err := req.RequestWith(ctx, cl)
					if p := resp.Topics[0].Partitions[0]; err != nil || p.ErrorCode != 0 || p.BaseOffset != 0 {
						t.Fatalf("produce #%d: %v %v base %d", i, err, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
					}
				}
				if code := produceRaw(ctx, t, cl, "idem", timedBatch(t, batch.None, pid, 5, 4)); code != kerr.OutOfOrderSequenceNumber.Code {
					t.Errorf("sequence gap: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(code))
				}
				if code := produceRaw(ctx, t, cl, "idem", timedBatch(t, batch.None, pid, 3, 4)); code != 0 {
					t.Errorf("next sequence: %v", kerr.ErrorForCode(code))
				}
				if ends := endOffsets(t, a.Addr, "idem"); ends[0] != 4 {
					t.Errorf("high watermark %d, want 4", ends[0])
				}
			})

			t.Run("leader epochs", func(t *testing.T) {
				// The partition's epoch is the fleet's membership epoch:
				// one agent joined a fresh cluster, so it is above 0.
				mreq := kmsg.NewPtrMetadataRequest()
				mt := kmsg.NewMetadataRequestTopic()
				mt.Topic = kmsg.StringPtr("times")
				mreq.Topics = append(mreq.Topics, mt)
				mresp, err := mreq.RequestWith(ctx, cl)
				if err != nil {
					t.Fatal(err)
				}
				epoch := mresp.Topics[0].Partitions[0].LeaderEpoch
				if epoch < 1 {
					t.Fatalf("leader epoch %d, want the membership epoch (at least 1)", epoch)
				}

				// OffsetForLeaderEpoch: every batch is of epoch 0, which
				// ends at the high watermark, for any epoch asked about
				// (nothing is ever truncated).
				req := kmsg.NewPtrOffsetForLeaderEpochRequest()
				rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
				rt.Topic = "times"
				for _, c := range [][2]int32{{0, epoch}, {epoch, epoch}, {epoch + 1, epoch}, {0, -1}, {0, epoch - 1}, {0, epoch + 1}} {
					rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
					rp.LeaderEpoch, rp.CurrentLeaderEpoch = c[0], c[1]
					rt.Partitions = append(rt.Partitions, rp)
				}
				req.Topics = append(req.Topics, rt)
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					t.Fatal(err)
				}
				ps := resp.Topics[0].Partitions
				for i, want := range []struct {
					code          int16
					epoch, offset int64
				}{{0, 0, 5}, {0, 0, 5}, {0, 0, 5}, {0, 0, 5}, {kerr.FencedLeaderEpoch.Code, -1, -1}, {kerr.UnknownLeaderEpoch.Code, -1, -1}} {
					if p := ps[i]; p.ErrorCode != want.code || int64(p.LeaderEpoch) != want.epoch || p.EndOffset != want.offset {
						t.Errorf("OffsetForLeaderEpoch case %d: %v epoch %d end %d, want %v %d %d", i,
							kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset, kerr.ErrorForCode(want.code), want.epoch, want.offset)
					}
				}

				// Fetch and ListOffsets fence an older epoch (the client
				// refreshes and finds the new leader) and hold off a newer
				// one, and answer the current one and -1; ListOffsets
				// names the epoch of the batch at the offset, 0.
				for _, c := range []struct {
					current int32
					code    int16
				}{{epoch, 0}, {-1, 0}, {epoch - 1, kerr.FencedLeaderEpoch.Code}, {epoch + 1, kerr.UnknownLeaderEpoch.Code}} {
					freq := kmsg.NewPtrFetchRequest()
					freq.MaxWaitMillis, freq.MaxBytes = 0, 1<<20
					ft := kmsg.NewFetchRequestTopic()
					ft.Topic, ft.TopicID = "times", mresp.Topics[0].TopicID // whichever version the client picks
					fp := kmsg.NewFetchRequestTopicPartition()
					fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 1<<20, c.current
					ft.Partitions = append(ft.Partitions, fp)
					freq.Topics = append(freq.Topics, ft)
					fresp, err := freq.RequestWith(ctx, cl)
					if err != nil {
						t.Fatal(err)
					}
					fpr := fresp.Topics[0].Partitions[0]
					if fpr.ErrorCode != c.code || (c.code == 0) != (len(fpr.RecordBatches) > 0) {
						t.Errorf("Fetch at epoch %d of %d: %v with %d bytes, want %v", c.current, epoch,
							kerr.ErrorForCode(fpr.ErrorCode), len(fpr.RecordBatches), kerr.ErrorForCode(c.code))
					}

					lreq := kmsg.NewPtrListOffsetsRequest()
					lt := kmsg.NewListOffsetsRequestTopic()
					lt.Topic = "times"
					lp := kmsg.NewListOffsetsRequestTopicPartition()
					lp.Timestamp, lp.CurrentLeaderEpoch = -1, c.current
					lt.Partitions = append(lt.Partitions, lp)
					lreq.Topics = append(lreq.Topics, lt)
					lresp, err := lreq.RequestWith(ctx, cl)
					if err != nil {
						t.Fatal(err)
					}
					lpr := lresp.Topics[0].Partitions[0]
					if lpr.ErrorCode != c.code || lpr.LeaderEpoch != 0 || (c.code == 0) != (lpr.Offset == 5) {
						t.Errorf("ListOffsets at epoch %d of %d: %v offset %d epoch %d, want %v", c.current, epoch,
							kerr.ErrorForCode(lpr.ErrorCode), lpr.Offset, lpr.LeaderEpoch, kerr.ErrorForCode(c.code))
					}
				}
			})

			t.Run("create topics", func(t *testing.T) {
				req := kmsg.NewPtrCreateTopicsRequest()
				for _, c := range []struct {
					name   string
					parts  int32
					rf     int16
					config string
				}{{"rf3", 2, 3, ""}, {"defaults", -1, -1, ""}, {"rf0", 1, 0, ""}, {"badconf", 1, 1, "no.such.config"}, {"badval", 1, 1, "retention.ms"}} {
					rt := kmsg.NewCreateTopicsRequestTopic()
					rt.Topic, rt.NumPartitions, rt.ReplicationFactor = c.name, c.parts, c.rf
					if c.config != "" {
						rc := kmsg.NewCreateTopicsRequestTopicConfig()
						rc.Name, rc.Value = c.config, kmsg.StringPtr("not-a-number")
						rt.Configs = append(rt.Configs, rc)
					}
					req.Topics = append(req.Topics, rt)
				}
				resp, err := req.RequestWith(ctx, cl)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]kmsg.CreateTopicsResponseTopic{}
				for _, rt := range resp.Topics {
					got[rt.Topic] = rt
				}
				if r := got["rf3"]; r.ErrorCode != 0 || r.NumPartitions != 2 || r.ReplicationFactor != 3 {
					t.Errorf("rf3: %v partitions %d rf %d", kerr.ErrorForCode(r.ErrorCode), r.NumPartitions, r.ReplicationFactor)
				}
				if r := got["defaults"]; r.ErrorCode != 0 || r.NumPartitions != 1 || r.ReplicationFactor != 1 {
					t.Errorf("defaults: %v partitions %d rf %d", kerr.ErrorForCode(r.ErrorCode), r.NumPartitions, r.ReplicationFactor)
				}
				if r := got["rf0"]; r.ErrorCode != kerr.InvalidReplicationFactor.Code {
					t.Errorf("rf0: %v, want INVALID_REPLICATION_FACTOR", kerr.ErrorForCode(r.ErrorCode))
				}
				for _, n := range []string{"badconf", "badval"} {
					if r := got[n]; r.ErrorCode != kerr.InvalidConfig.Code {
						t.Errorf("%s: %v, want INVALID_CONFIG", n, kerr.ErrorForCode(r.ErrorCode))
					}
				}
				if r, err := req.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != kerr.TopicAlreadyExists.Code {
					t.Errorf("creating rf3 again: %v, want TOPIC_ALREADY_EXISTS", err)
				}
			})

			t.Run("describe configs and cluster", func(t *testing.T) {
				createTopic(t, a.Addr, "configured", 1, map[string]*string{"retention.ms": kmsg.StringPtr("1234")})
				req := kmsg.NewPtrDescribeConfigsRequest()
				rr := kmsg.NewDescribeConfigsRequestResource()
				rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "configured"
				req.Resources = append(req.Resources, rr)
				resp, err := req.RequestWith(ctx, cl)
				if err != nil || resp.Resources[0].ErrorCode != 0 {
					t.Fatalf("DescribeConfigs: %v", err)
				}
				found := 0
				for _, c := range resp.Resources[0].Configs {
					switch c.Name {
					case "retention.ms":
						found++
						if *c.Value != "1234" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
							t.Errorf("retention.ms = %s from %v", *c.Value, c.Source)
						}
					case "max.message.bytes":
						found++
						if *c.Value != "1048588" || c.Source != kmsg.ConfigSourceDefaultConfig {
							t.Errorf("max.message.bytes = %s from %v", *c.Value, c.Source)
						}
					}
				}
				if found != 2 {
					t.Errorf("DescribeConfigs lacks retention.ms or max.message.bytes")
				}
				dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
				if err != nil || dc.ErrorCode != 0 || len(dc.Brokers) != 1 || dc.ClusterID == "" || dc.ControllerID != dc.Brokers[0].NodeID {
					t.Errorf("DescribeCluster: %v %+v", err, dc)
				}
			})

			t.Run("delete topics", func(t *testing.T) {
				createTopic(t, a.Addr, "doomed", 1, nil)
				req := kmsg.NewPtrDeleteTopicsRequest()
				for _, n := range []string{"doomed", "never-was"} {
					rt := kmsg.NewDeleteTopicsRequestTopic()
					rt.Topic = kmsg.StringPtr(n)
					req.Topics = append(req.Topics, rt)
					req.TopicNames = append(req.TopicNames, n)
				}
				resp, err := req.RequestWith(ctx, cl)
				if err != nil || resp.Topics[0].ErrorCode != 0 || resp.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
					t.Fatalf("DeleteTopics: %v %+v", err, resp.Topics)
				}
				if code := produceRaw(ctx, t, cl, "doomed", buildBatch(t, 1)); code != kerr.UnknownTopicOrPartition.Code {
					t.Errorf("produce to a deleted topic: %v", kerr.ErrorForCode(code))
				}
			})

			t.Run("log append time", func(t *testing.T) {
				createTopic(t, a.Addr, "appended", 1, map[string]*string{"message.timestamp.type": kmsg.StringPtr("LogAppendTime")})
				before := time.Now().UnixMilli()
				pcl := client(t, a.Addr, kgo.DefaultProduceTopic("appended"))
				r := &kgo.Record{Value: []byte("x"), Timestamp: time.UnixMilli(42)}
				if err := pcl.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatal(err)
				}
				ccl := client(t, a.Addr, kgo.ConsumeTopics("appended"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				fs := ccl.PollFetches(ctx)
				if fs.NumRecords() != 1 {
					t.Fatalf("fetched %d records", fs.NumRecords())
				}
				got := fs.Records()[0]
				if ts := got.Timestamp.UnixMilli(); ts < before || got.Attrs.TimestampType() != 1 {
					t.Errorf("timestamp %d (type %d), want the append time >= %d", ts, got.Attrs.TimestampType(), before)
				}
			})
		})
	}
}
