package protocol

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// Fetch, versions 4-16.
//
// Offsets are looked up in the partition index (offset → object range),
// read through the cache (the newest objects are held whole, so tail reads
// never reach the bucket), and returned as whole batches: a fetch from the
// middle of a batch returns the whole batch, and the first batch is returned
// even above MaxBytes (KIP-74). At the high watermark the request waits for
// new commits up to MaxWaitMillis or until MinBytes are available. v7:
// incremental fetch sessions (fetch_sessions.go); v12: flexible; v13: topic
// ids. v11: a client that names its rack (client.rack) and reaches an
// agent outside that zone is told the agent in its zone to read each
// partition from (PreferredReadReplica, KIP-392), with no records.
func init() { register(1, 4, 16, deferred(handleFetch)) }

func handleFetch(ctx context.Context, s *Server, req *kmsg.FetchRequest) kmsg.Response {
	full, sess, errResp := s.beginSession(req)
	if errResp != nil {
		return errResp
	}
	answer := func(resp *fetchAnswer) kmsg.Response {
		if sess != nil {
			resp.SessionID = sess.id
			sess.trim(req.Version, resp.FetchResponse)
		}
		return resp
	}
	if sess != nil {
		defer sess.mu.Unlock() // beginSession locked it
	}
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	synced := false
	for {
		changed := s.log.Changed() // before reading, so no commit is missed
		resp, n, stop, ahead := s.fetchOnce(ctx, full)
		if len(ahead) > 0 && !synced {
			// Past this view's high watermark: the data may be in the
			// log already (lag.go).
			synced = true
			if s.syncTail(ctx) {
				continue
			}
			for _, p := range ahead {
				p.ErrorCode = kerr.KafkaStorageError.Code
			}
		}
		if stop || n >= int64(req.MinBytes) || !time.Now().Before(deadline) {
			s.metrics.fetchBytes.Add(float64(n))
			return answer(resp)
		}
		select {
		case <-changed:
		case <-timer.C:
			deadline = time.Now()
		case <-ctx.Done():
			return answer(resp)
		}
	}
}

// firstZstd returns the position of the first zstd batch in b, or -1.
// readReplicas returns the placement of a fetch's partitions over the
// agents in the client's rack (Fetch v11+, KIP-392's client.rack) when this
// agent is not in it and some live agent is: every agent serves every
// partition, so a client is sent to read where its zone's agents would
// lead, as it is given leaders there when it names its zone in client.id.
// Only to an agent at another advertised address: agents that share one
// (a load balancer's) are one broker to clients, who cannot pick among
// them.
func (s *Server) readReplicas(req *kmsg.FetchRequest) (bool, fleet.Placement) {
	if req.Version < 11 || req.Rack == "" || req.Rack == s.fleet.Self().Zone {
		return false, fleet.Placement{}
	}
	in, ok := s.fleet.Placement().Zone(req.Rack)
	return ok, in
}

func firstZstd(b []byte) int {
	for pos := 0; pos+batch.HeaderSize <= len(b); {
		h, err := batch.ParseHeader(b[pos:])
		if err != nil || h.Size() < batch.HeaderSize {
			return -1
		}
		if h.Codec() == batch.Zstd {
			return pos
		}
		pos += h.Size()
	}
	return -1
}

type fetchPlan struct {
	p        *kmsg.FetchResponseTopicPartition
	offset   int64
	maxBytes int64
	chunks   []meta.Chunk
	// end is the offset the answer stops before: the high watermark, or
	// the last stable offset for read_committed, whose answer lists the
	// aborted transactions from aborted that it meets.
	end           int64
	readCommitted bool
	aborted       []meta.AbortedTxn
}

// plannedBytes is what the plans' chunks hold, the most they can answer.
func plannedBytes(plans []fetchPlan) (n int64) {
	for _, pl := range plans {
		for _, c := range pl.chunks {
			n += c.Len
		}
	}
	return n
}

// segmentKey is the ingestion segment of the plan's first chunk, whose key
// sorts by time (meta.DataKey), or "" for any other object.
func (pl *fetchPlan) segmentKey() string {
	if len(pl.chunks) == 0 || !strings.HasPrefix(pl.chunks[0].Object, meta.SegmentPrefix) {
		return ""
	}
	return pl.chunks[0].Object
}

// readOldestSegments trims the plans of an answer that max bytes cut (a
// consumer far behind) to the oldest ingestion segments whose chunks fill
// it, and reads ahead the segments after them. Each fetch then reads
// whole segments, for every partition at once, and the next fetch starts
// where it ended: without the trim, each partition would take its max
// bytes from several segments ahead of the partitions cut, and the cut
// ones, served first next time, would need the older segments again, so
// that the segments in use spanned twice what one answer holds.
func (s *Server) readOldestSegments(plans []fetchPlan, remaining int64, next []string) {
	share := map[string]int64{} // what the answer would take from each segment
	keys := next
	for _, pl := range plans {
		for _, c := range pl.chunks {
			if strings.HasPrefix(c.Object, meta.SegmentPrefix) {
				if _, ok := share[c.Object]; !ok {
					keys = append(keys, c.Object)
				}
				share[c.Object] += c.Len
			}
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	last, sum := "", int64(0)
	for _, k := range keys {
		if sum >= remaining {
			break
		}
		last, sum = k, sum+share[k]
	}
	for i := range plans {
		pl := &plans[i]
		for j, c := range pl.chunks {
			if strings.HasPrefix(c.Object, meta.SegmentPrefix) && c.Object > last {
				pl.chunks = pl.chunks[:j]
				break
			}
		}
	}
	s.reader.ReadAhead(keys)
}

// answerSegments is the ingestion segments the plans' chunks are in, in
// the order the answer reads them, as far as remaining bytes take it.
func answerSegments(plans []fetchPlan, remaining int64) []string {
	var keys []string // few: an answer spans a handful of segments
	for _, pl := range plans {
		for _, c := range pl.chunks {
			if remaining <= 0 {
				return keys
			}
			remaining -= c.Len
			if strings.HasPrefix(c.Object, meta.SegmentPrefix) && !slices.Contains(keys, c.Object) {
				keys = append(keys, c.Object)
			}
		}
	}
	return keys
}

// fetchOnce builds one answer. It returns the bytes it holds, whether
// the request should be answered now regardless (an error to report), and
// the partitions whose answer the log's tail may change: unknown ones and
// those answered OFFSET_OUT_OF_RANGE for an offset past the view's high
// watermark.
func (s *Server) fetchOnce(ctx context.Context, req *kmsg.FetchRequest) (*fetchAnswer, int64, bool, []*kmsg.FetchResponseTopicPartition) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	answer := &fetchAnswer{FetchResponse: resp}
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	var plans []fetchPlan
	var next []string // the objects past the plans' chunks, to read ahead
	var ahead []*kmsg.FetchResponseTopicPartition
	stop := false
	zoned, inZone := s.readReplicas(req)
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		epoch := s.fleet.Epoch(st)
		for i := range req.Topics {
			rt := &req.Topics[i]
			t := &resp.Topics[i]
			*t = kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			var topic *meta.Topic
			if req.Version >= 13 {
				topic = st.TopicByID(meta.TopicID(rt.TopicID))
			} else {
				topic = st.Topic(rt.Topic)
			}
			name := rt.Topic
			if topic != nil {
				name = topic.Name
			}
			denied := (topic != nil || req.Version < 13) && !z.topic(meta.OpRead, name)
			t.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
			for j := range rt.Partitions {
				rp := &rt.Partitions[j]
				p := &t.Partitions[j]
				*p = kmsg.NewFetchResponseTopicPartition()
				p.Partition = rp.Partition
				if denied {
					p.ErrorCode, p.RecordBatches = errTopicAuth.Code, []byte{}
					p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
					stop = true
					continue
				}
				// No data is an empty record set, as Kafka sends it, not a
				// null one: kmsg writes nil as length -1, which librdkafka
				// rejects ("invalid MessageSetSize -1") and then backs off
				// instead of reporting the end of the partition.
				p.RecordBatches = []byte{}
				var part *meta.Partition
				if topic != nil {
					part = topic.Partition(rp.Partition)
				}
				if part == nil {
					p.ErrorCode = kerr.UnknownTopicOrPartition.Code
					if req.Version >= 13 && topic == nil {
						p.ErrorCode = kerr.UnknownTopicID.Code
					}
					stop = true
					ahead = append(ahead, p) // created after this view, perhaps
					continue
				}
				if p.ErrorCode = checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch); p.ErrorCode != 0 {
					stop = true // answer now: the client must refresh, or retry
					continue
				}
				lso := part.LastStable()
				p.HighWatermark, p.LastStableOffset, p.LogStartOffset = part.HighWatermark, lso, part.LogStart
				if rp.FetchOffset < part.LogStart || rp.FetchOffset > part.HighWatermark {
					p.ErrorCode = kerr.OffsetOutOfRange.Code
					stop = true
					if rp.FetchOffset > part.HighWatermark {
						ahead = append(ahead, p)
					}
					continue
				}
				if zoned {
					if m := inZone.Leader(topic.ID, rp.Partition); m.Addr() != s.fleet.Self().Addr() {
						// KIP-392: read there; no records from here.
						p.PreferredReadReplica = m.NodeID
						stop = true
						continue
					}
				}
				plan := fetchPlan{p: p, offset: rp.FetchOffset, maxBytes: int64(rp.PartitionMaxBytes), end: part.HighWatermark}
				if req.IsolationLevel == 1 {
					// read_committed: up to the last stable offset, and the
					// aborted transactions there, for the client to drop.
					plan.end, plan.readCommitted = lso, true
					p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				}
				if rp.FetchOffset >= plan.end {
					continue
				}
				if plan.readCommitted {
					plan.aborted = part.Aborted(rp.FetchOffset, plan.end)
				}
				var sum int64
				k := part.Find(rp.FetchOffset)
				for ; k >= 0 && k < len(part.Chunks) && part.Chunks[k].BaseOffset < plan.end && (sum == 0 || sum < plan.maxBytes); k++ {
					plan.chunks = append(plan.chunks, part.Chunks[k])
					sum += part.Chunks[k].Len
				}
				// What the partition's next fetch would read, to read ahead.
				for sum = 0; k >= 0 && k < len(part.Chunks) && part.Chunks[k].BaseOffset < plan.end && sum < plan.maxBytes; k++ {
					next = append(next, part.Chunks[k].Object)
					sum += part.Chunks[k].Len
				}
				plans = append(plans, plan)
			}
		}
	})

	// The answer's bytes go to the partitions whose next chunk is in the
	// oldest ingestion segment first. A consumer far behind on many
	// partitions then reads each segment for all of its partitions at
	// about the same time, so one GET of it serves them all from the cache
	// of segments read whole; in request order, the partitions past the
	// fetch.max.bytes cut would fall behind the others on every fetch
	// until their segments had left that cache. The laggards served first,
	// none starves: the partitions cut become the oldest. An answer that
	// is not cut (a consumer at the tail) keeps the request's order,
	// unsorted.
	remaining := int64(s.cfg.FetchMaxBytes) // fetch.max.bytes caps what a client asks
	if req.MaxBytes > 0 {
		remaining = min(remaining, int64(req.MaxBytes))
	}
	if plannedBytes(plans) > remaining {
		slices.SortStableFunc(plans, func(a, b fetchPlan) int { return strings.Compare(a.segmentKey(), b.segmentKey()) })
		s.readOldestSegments(plans, remaining, next)
	} else if len(next) > 0 {
		// Consumers of a few partitions each, behind: what their next
		// fetches read, while the cache has room beside what is unread.
		slices.Sort(next)
		s.reader.ReadAhead(slices.Compact(next))
	}
	// The segments this answer needs, at once, and held by it until it is
	// built.
	pins := s.reader.Load(ctx, answerSegments(plans, remaining))
	var total int64
	for _, pl := range plans {
		if remaining <= 0 {
			break
		}
		limit := min(pl.maxBytes, remaining)
		var out [][]byte // the records, a slice of a cached chunk each
		size := 0
		offset := pl.offset
		for i := 0; i < len(pl.chunks); {
			// A long compacted chunk comes a window at a time (ChunkAt):
			// end is where this piece of c ends, c.NextOffset at its last.
			c := pl.chunks[i]
			data, end, err := s.reader.ChunkAt(ctx, c, offset, pins)
			if err != nil {
				if out == nil {
					pl.p.ErrorCode = kerr.KafkaStorageError.Code
					s.cfg.Logger.Warn("fetch read failed", "object", c.Object, "err", err)
					stop = true
				}
				break
			}
			got, next := tiered.FromOffset(data, offset, limit-int64(size), total == 0 && out == nil)
			if c.NextOffset > pl.end && len(got) > 0 {
				got, next = tiered.Before(got, pl.end) // an open transaction's batches stay unread
				if len(got) == 0 {
					break
				}
			}
			if len(got) == 0 {
				if next < 0 {
					// Key compaction dropped every batch from offset to the
					// chunk's end: go on with the next chunk, as Kafka reads
					// on into the next segment.
					offset = max(offset, end)
					if end == c.NextOffset {
						i++
					}
					continue
				}
				break
			}
			if req.Version < 10 {
				// zstd came with Fetch v10 (KIP-110): an older client gets
				// what comes before the first zstd batch, or Kafka's error.
				if i := firstZstd(got); i >= 0 {
					got = got[:i:i]
					if out == nil && len(got) == 0 {
						pl.p.ErrorCode = kerr.UnsupportedCompressionType.Code
						stop = true
					}
					if len(got) > 0 {
						out, size = append(out, got), size+len(got)
					}
					break
				}
			}
			out, size = append(out, got), size+len(got)
			offset = next
			if next < end {
				break // the limit cut this chunk short
			}
			if end == c.NextOffset {
				i++
			}
		}
		answer.setRecords(pl.p, out)
		for _, a := range pl.aborted {
			if a.FirstOffset < offset {
				pl.p.AbortedTransactions = append(pl.p.AbortedTransactions,
					kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
			}
		}
		total += int64(size)
		remaining -= int64(size)
	}
	return answer, total, stop, ahead
}
