package protocol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// Produce, versions 3-11 (record batches, magic 2, only).
//
// Phase one (in connection order): validate every batch (framing, CRC,
// magic, counts, max.message.bytes, and every record, as Kafka's
// LogValidator does) and append the partition's batches to the shared
// ingest buffer. Phase two: wait until the segment holding them
// is in the bucket and committed to the metadata log, which assigns the
// offsets. acks=1 and acks=-1 both answer only then, since the bucket is the
// only replica; acks=0 gets no answer, and if any partition failed the
// connection is closed, as Kafka does, so that the producer notices. Idempotent sequences are checked
// when the commit is applied, so two agents cannot both accept a sequence;
// so is a transactional batch's transaction (meta/txn.go: open, at the
// batch's epoch, with the partition added; INVALID_TXN_STATE otherwise).
// v8: per-record errors; v9: flexible; v10-11: leader hints (unused).
func init() { register(0, 3, 11, handleProduce) }

type producePart struct {
	resp   *kmsg.ProduceResponseTopicPartition
	ticket *tiered.Ticket
}

func handleProduce(ctx context.Context, s *Server, r kmsg.Request) func() kmsg.Response {
	start := time.Now()
	req := r.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var parts []producePart
	z := s.authzOf(ctx)
	txnDenied := req.TransactionID != nil && !z.txn(meta.OpWrite, *req.TransactionID)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		t := &resp.Topics[i]
		*t = kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			p := &t.Partitions[j]
			*p = kmsg.NewProduceResponseTopicPartition()
			p.Partition = rt.Partitions[j].Partition
			p.LogAppendTime = -1
			if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
				p.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
			}
			if txnDenied {
				p.ErrorCode = errTxnAuth.Code
				continue
			}
			if !z.topic(meta.OpWrite, rt.Topic) {
				p.ErrorCode = errTopicAuth.Code
				continue
			}
			if meta.IsInternalTopic(rt.Topic) {
				p.ErrorCode = kerr.InvalidTopicException.Code // Kafka's answer to an append to an internal topic
				p.ErrorMessage = strp("Cannot append to internal topic " + rt.Topic)
				continue
			}
			if req.TransactionID != nil && !s.txnFormat() {
				p.ErrorCode = kerr.NotLeaderForPartition.Code // retried once the cluster has transactions
				p.ErrorMessage = strp("not every agent of the cluster understands transactions yet")
				continue
			}
			tk, err := s.appendPartition(ctx, rt.Topic, &rt.Partitions[j], req.TransactionID)
			if err != nil {
				p.ErrorCode = errorCode(err)
				p.ErrorMessage = strp(err.Error())
				continue
			}
			parts = append(parts, producePart{resp: p, ticket: tk})
		}
	}
	if len(parts) > 0 && req.Acks != 0 {
		if c, ok := ctx.Value(connKey{}).(*conn); ok {
			s.ingest.Hold(&c.producer, parts[len(parts)-1].ticket)
		}
	}
	// The answer needs nothing more of the request: unreferenced, its
	// body (the records) is freed once the segment has copied them out,
	// not held until they are committed.
	acks := req.Acks
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return func() kmsg.Response {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var res tiered.Result
		for _, pp := range parts {
			res = pp.ticket.Wait(wctx)
			switch {
			case errors.Is(res.Err, context.DeadlineExceeded):
				pp.resp.ErrorCode = kerr.RequestTimedOut.Code
			case res.Err != nil:
				pp.resp.ErrorCode = errorCode(res.Err)
				pp.resp.ErrorMessage = strp(res.Err.Error())
			default:
				pp.resp.BaseOffset = res.BaseOffset
				pp.resp.LogAppendTime = res.LogAppendTime
			}
		}
		if n := len(parts); n > 0 && !errors.Is(res.Err, context.DeadlineExceeded) && !errors.Is(res.Err, context.Canceled) {
			s.metrics.observeProduceStages(start, parts[n-1].ticket)
		}
		if acks == 0 {
			for i := range resp.Topics {
				for _, p := range resp.Topics[i].Partitions {
					if p.ErrorCode != 0 {
						return closeConnection
					}
				}
			}
			return nil
		}
		s.fillLogStart(resp)
		return resp
	}
}

// appendPartition validates one partition's records and appends them.
func (s *Server) appendPartition(ctx context.Context, topic string, rp *kmsg.ProduceRequestTopicPartition, txnID *string) (*tiered.Ticket, error) {
	transactional := txnID != nil
	var (
		id        meta.TopicID
		maxBytes  int64
		logAppend bool
		found     bool
		compacted bool
		recodeTo  = batch.Codec(-1) // compression.type, if not "producer"
		tsBounds  timestampBounds
	)
	s.log.View(func(st *meta.State) {
		t := st.Topic(topic)
		if t == nil || t.Partition(rp.Partition) == nil {
			return
		}
		found, id = true, t.ID
		maxBytes = t.ConfigInt("max.message.bytes")
		ts, _ := t.Config("message.timestamp.type")
		logAppend = ts == "LogAppendTime"
		compacted = t.Compacts()
		ct, _ := t.Config("compression.type")
		recodeTo = topicCodec(ct)
		tsBounds = topicTimestampBounds(t)
	})
	if !found {
		return nil, meta.ErrUnknownTopic
	}
	if len(rp.Records) == 0 {
		return nil, fmt.Errorf("%w: no record batch", batch.ErrInvalidRecord)
	}
	var batches []tiered.Batch
	records := 0
	err := batch.Split(rp.Records, func(b []byte, _ batch.Header) error {
		if len(batches) == 1 {
			// Kafka's rule for magic 2: one batch per partition per
			// request, so that a request's outcome is one batch's.
			return fmt.Errorf("%w: more than one record batch for a partition in one produce request", batch.ErrInvalidRecord)
		}
		if int64(len(b)) > maxBytes {
			return errTooLarge{size: len(b), max: maxBytes}
		}
		sum, err := batch.ValidateRecords(ctx, b, maxDecodeBytes, decodeBudget)
		if err != nil {
			return err
		}
		h := sum.Header
		switch {
		case h.IsControl():
			return fmt.Errorf("%w: a client may not produce control batches", batch.ErrInvalidRecord)
		case h.IsTransactional() != transactional:
			// Kafka: a transactional batch comes with the request's
			// transactional id, and only such batches do.
			return fmt.Errorf("%w: a transactional batch needs the request's transactional id, and only it", batch.ErrInvalidRecord)
		case h.IsTransactional() && h.ProducerID < 0:
			return fmt.Errorf("%w: a transactional batch without a producer id", batch.ErrInvalidRecord)
		case h.IsTransactional() && !s.holdsTxn(ctx, h.ProducerID, *txnID):
			// The request's transactional id is what was authorized:
			// its batches may not join another id's transaction.
			return fmt.Errorf("%w: producer id %d does not hold transactional id %q", meta.ErrInvalidProducerIDMapping, h.ProducerID, *txnID)
		}
		if err := checkTimestamps(sum, logAppend, tsBounds, time.Now().UnixMilli()); err != nil {
			return err
		}
		if compacted && !sum.Keyed {
			return fmt.Errorf("%w: compacted topic cannot accept message without key", batch.ErrInvalidRecord)
		}
		if !logAppend && (h.MaxTimestamp != sum.MaxTimestamp || h.TimestampType() != 0) {
			// Kafka sets a CreateTime topic's batch to CreateTime and its
			// maxTimestamp to its newest record's (setMaxTimestamp),
			// recomputing the CRC; so do we, rather than store a header
			// that retention, key compaction and timestamp lookups would
			// trust. Well-behaved producers' headers already agree.
			batch.SetCreateTime(b, sum.MaxTimestamp)
			h, _ = batch.ParseHeader(b)
		}
		if recodeTo >= 0 && h.Codec() != recodeTo {
			if b, h, err = recode(ctx, b, h, recodeTo, sum.RecodeMemory()); err != nil {
				return err
			}
		}
		batches = append(batches, tiered.Batch{Data: b, Header: h})
		records += int(h.NumRecords)
		return nil
	})
	if err != nil {
		return nil, err
	}
	tk, err := s.ingest.Append(tiered.TopicPartition{Topic: id, Partition: rp.Partition}, batches, logAppend)
	if err != nil {
		return nil, err
	}
	s.metrics.produceBytes.Add(float64(len(rp.Records)))
	s.metrics.produceRecs.Add(float64(records))
	return tk, nil
}

// holdsTxn reports whether producer id pid holds transactional id id,
// reading the log's tail before saying no: the id's InitProducerId may
// have gone to another agent a poll ago.
func (s *Server) holdsTxn(ctx context.Context, pid int64, id string) bool {
	holds := func() (ok bool) {
		s.log.View(func(st *meta.State) {
			held, found := st.TxnOfProducer(pid)
			ok = found && held == id
		})
		return ok
	}
	return holds() || s.syncTail(ctx) && holds()
}

// errInvalidTimestamp is INVALID_TIMESTAMP.
var errInvalidTimestamp = errors.New("timestamp out of range")

// timestampBounds are a CreateTime topic's message.timestamp.before.max.ms
// and message.timestamp.after.max.ms (each also bounded by the older
// message.timestamp.difference.max.ms); -1: none.
type timestampBounds struct{ before, after int64 }

func topicTimestampBounds(t *meta.Topic) timestampBounds {
	if ts, _ := t.Config("message.timestamp.type"); ts == "LogAppendTime" {
		return timestampBounds{-1, -1} // the agent's clock replaces them
	}
	diff := t.ConfigInt("message.timestamp.difference.max.ms")
	b := timestampBounds{min(t.ConfigInt("message.timestamp.before.max.ms"), diff), min(t.ConfigInt("message.timestamp.after.max.ms"), diff)}
	if b.before == math.MaxInt64 {
		b.before = -1
	}
	if b.after == math.MaxInt64 {
		b.after = -1
	}
	return b
}

// checkTimestamps applies Kafka's per-record timestamp rules to a batch's
// records (LogValidator.validateTimestamp): on a CreateTime topic, records
// with a timestamp (not -1) within the topic's bounds of nowMs; a producer
// may not send a LogAppendTime batch, except to a CreateTime topic with
// record timestamps, which Kafka lets through.
func checkTimestamps(s batch.Summary, logAppend bool, b timestampBounds, nowMs int64) error {
	if s.Header.TimestampType() == 1 && (logAppend || s.MaxTimestamp == -1) {
		return fmt.Errorf("%w: producers should not set the timestamp type to LogAppendTime", errInvalidTimestamp)
	}
	return b.check(s.MinTimestamp, s.MaxTimestamp, nowMs)
}

// check refuses records whose newest timestamp is further ahead of nowMs
// than after allows, or whose oldest is further behind than before allows.
// oldest leaves out records without a timestamp, as Kafka does; the
// comparisons are arranged not to overflow for any int64.
func (b timestampBounds) check(oldest, newest, nowMs int64) error {
	if b.after >= 0 && newest > nowMs && newest-nowMs > b.after {
		return fmt.Errorf("%w: timestamp %d is more than message.timestamp.after.max.ms %d ahead of the broker's clock", errInvalidTimestamp, newest, b.after)
	}
	if b.before >= 0 && oldest < nowMs-b.before {
		return fmt.Errorf("%w: timestamp %d is more than message.timestamp.before.max.ms %d behind the broker's clock", errInvalidTimestamp, oldest, b.before)
	}
	return nil
}

// maxDecodeBytes bounds the records of a batch the produce path
// decompresses: to validate them or to recompress them.
const maxDecodeBytes = 64 << 20

// decodeBudget bounds the memory that all produces hold at once for
// decompression and recompression, whatever the number of connections
// (batch.Budget); past it, validations wait, and their connections stop
// being read. 256 MiB is four batches at maxDecodeBytes, or hundreds of
// ordinary ones; beside queued.max.request.bytes (256 MiB of requests by
// default), it makes the produce path's memory a sum of two bounds. It is
// the process's, not a Server's, as the memory it stands for is, and fixed,
// as maxDecodeBytes is.
var decodeBudget = batch.NewBudget(4 * maxDecodeBytes)

// topicCodec returns the codec a topic's compression.type asks batches to
// be stored with, or -1 for "producer": as sent.
func topicCodec(compressionType string) batch.Codec {
	switch compressionType {
	case "uncompressed":
		return batch.None
	case "gzip":
		return batch.Gzip
	case "snappy":
		return batch.Snappy
	case "lz4":
		return batch.LZ4
	case "zstd":
		return batch.Zstd
	}
	return -1
}

// recode rewrites a batch with codec, as Kafka does for a topic whose
// compression.type is not the producer's: the same records, header fields
// and sequence numbers, a new CRC. It costs a decode and an encode, which
// is why "producer" (the default) is the fast path, and about memory bytes
// (batch.Summary.RecodeMemory), which it holds of decodeBudget meanwhile.
func recode(ctx context.Context, b []byte, h batch.Header, codec batch.Codec, memory int64) ([]byte, batch.Header, error) {
	held, err := decodeBudget.Acquire(ctx, memory)
	if err != nil {
		return nil, h, err
	}
	defer decodeBudget.Release(held)
	recs, err := batch.Records(b, maxDecodeBytes)
	if err != nil {
		return nil, h, err
	}
	nb, err := batch.Build(h, codec, recs)
	if err != nil {
		return nil, h, err
	}
	nh, err := batch.Validate(nb)
	return nb, nh, err
}

type errTooLarge struct {
	size int
	max  int64
}

func (e errTooLarge) Error() string {
	return fmt.Sprintf("record batch of %d bytes exceeds max.message.bytes %d", e.size, e.max)
}

// fillLogStart sets v5+'s LogStartOffset of every answered partition.
func (s *Server) fillLogStart(resp *kmsg.ProduceResponse) {
	s.log.View(func(st *meta.State) {
		for i := range resp.Topics {
			t := st.Topic(resp.Topics[i].Topic)
			for j := range resp.Topics[i].Partitions {
				p := &resp.Topics[i].Partitions[j]
				if t == nil {
					continue
				}
				if part := t.Partition(p.Partition); part != nil {
					p.LogStartOffset = part.LogStart
				}
			}
		}
	})
}
