package protocol

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
)

// ListOffsets, versions 1-8.
//
// Timestamp -2: the log start offset; -1: the high watermark; -3 (v7,
// KIP-734): the record with the largest timestamp; -4 (v8, KIP-405): the
// local log start, which is the log start here. A timestamp >= 0: the first
// offset whose record timestamp is at least that, found through the index's
// per-chunk max timestamps and then the records themselves; none gives -1.
// v6: flexible.
func init() { register(2, 1, 8, deferred(handleListOffsets)) }

const (
	listLatest      = -1
	listEarliest    = -2
	listMaxTime     = -3
	listLocalStart  = -4
	maxDecompressed = 64 << 20
)

func handleListOffsets(ctx context.Context, s *Server, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	epoch := s.leaderEpoch()
	z := s.authzOf(ctx)
	for _, rt := range req.Topics {
		t := kmsg.NewListOffsetsResponseTopic()
		t.Topic = rt.Topic
		denied := !z.topic(meta.OpDescribe, rt.Topic)
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			p.LeaderEpoch = 0 // the epoch of the batch at the offset: all are 0 (23_offset_for_leader_epoch.go)
			if denied {
				p.Offset, p.Timestamp, p.ErrorCode = -1, -1, errTopicAuth.Code
			} else if p.ErrorCode = checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch); p.ErrorCode != 0 {
				p.Offset, p.Timestamp = -1, -1
			} else {
				p.Offset, p.Timestamp, p.ErrorCode = s.listOffset(ctx, rt.Topic, rp.Partition, rp.Timestamp, req.IsolationLevel == 1)
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

func (s *Server) listOffset(ctx context.Context, topic string, partition int32, ts int64, readCommitted bool) (offset, timestamp int64, code int16) {
	if ts < listLocalStart {
		return -1, -1, kerr.UnsupportedVersion.Code // e.g. -5, tiered storage's, which v9 brought
	}
	var chunks []meta.Chunk
	var logStart int64
	end := int64(math.MaxInt64) // offsets from here on are not answered: read_committed's last stable offset
	found := false
	s.log.View(func(st *meta.State) {
		t := st.Topic(topic)
		if t == nil || t.Partition(partition) == nil {
			return
		}
		found = true
		p := t.Partition(partition)
		logStart = p.LogStart
		if readCommitted {
			end = p.LastStable()
		}
		switch ts {
		case listEarliest, listLocalStart:
			offset, timestamp = p.LogStart, -1
		case listLatest:
			offset, timestamp = p.HighWatermark, -1
			if readCommitted {
				offset = p.LastStable() // v2+'s isolation level, as Kafka answers it
			}
		case listMaxTime:
			best := -1
			for i, c := range p.Chunks {
				if best < 0 || c.MaxTimestamp > p.Chunks[best].MaxTimestamp {
					best = i
				}
			}
			if best >= 0 {
				chunks = []meta.Chunk{p.Chunks[best]}
			}
			offset, timestamp = -1, -1
		default:
			offset, timestamp = -1, -1
			// Usually the first candidate holds the answer, but it may
			// straddle the log start and hold the only match below it,
			// so the candidates are read in order until one matches.
			for _, c := range p.Chunks {
				if c.MaxTimestamp >= ts {
					chunks = append(chunks, c)
				}
			}
		}
	})
	if !found {
		return -1, -1, kerr.UnknownTopicOrPartition.Code
	}
	if ts < 0 && ts != listMaxTime || len(chunks) == 0 {
		return offset, timestamp, 0
	}
	for _, c := range chunks {
		data, err := s.reader.Chunk(ctx, c)
		if err != nil {
			return -1, -1, kerr.KafkaStorageError.Code
		}
		off, at, err := searchTimestamp(data, ts, logStart)
		if err != nil {
			return -1, -1, errorCode(err)
		}
		if off >= end {
			return -1, -1, 0 // as Kafka: nothing past the last stable offset under read_committed
		}
		if off >= 0 {
			return off, at, 0
		}
	}
	return -1, -1, 0
}

// searchTimestamp finds, in a chunk of patched batches, the first record
// at or after offset from with timestamp >= ts, or for listMaxTime the
// first such record with the largest timestamp. Records below from (the
// log start, inside a chunk that straddles it) are not considered, as in
// Kafka.
func searchTimestamp(chunk []byte, ts, from int64) (int64, int64, error) {
	bestOff, bestTs := int64(-1), int64(-1)
	for len(chunk) >= batch.HeaderSize {
		h, err := batch.ParseHeader(chunk)
		if err != nil || h.Size() > len(chunk) {
			return -1, -1, batch.ErrCorrupt
		}
		b := chunk[:h.Size()]
		chunk = chunk[h.Size():]
		if ts == listMaxTime && h.MaxTimestamp <= bestTs || ts != listMaxTime && h.MaxTimestamp < ts ||
			h.BaseOffset+int64(h.LastOffsetDelta) < from || h.NumRecords == 0 { // emptied by key compaction
			continue
		}
		if h.TimestampType() == 1 { // LogAppendTime: every record has the batch time
			if ts == listMaxTime {
				bestOff, bestTs = max(h.BaseOffset, from), h.MaxTimestamp
				continue
			}
			return max(h.BaseOffset, from), h.MaxTimestamp, nil
		}
		recs, err := batch.Records(b, maxDecompressed)
		if err != nil {
			return -1, -1, err
		}
		for _, r := range recs {
			if h.BaseOffset+int64(r.OffsetDelta) < from {
				continue
			}
			rts := h.FirstTimestamp + r.TimestampDelta
			if ts == listMaxTime {
				if rts > bestTs {
					bestOff, bestTs = h.BaseOffset+int64(r.OffsetDelta), rts
				}
			} else if rts >= ts {
				return h.BaseOffset + int64(r.OffsetDelta), rts, nil
			}
		}
	}
	return bestOff, bestTs, nil
}
