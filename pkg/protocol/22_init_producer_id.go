package protocol

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// InitProducerId, versions 0-4.
//
// Without a transactional id, each call gets a fresh id with epoch 0 (for
// such a producer Kafka does the same, even when v3+ passes the current id
// to bump its epoch). Ids come from blocks reserved in the metadata log; a
// reservation is submitted in phase one, in the connection's order
// (order.go).
//
// With one (txn.go), the log gives the id its producer id and next epoch
// (meta.InitTxn), fencing older producers of it; an open transaction is
// aborted first, its markers written on the read loop. The timeout must
// be within (0, transaction.max.timeout.ms] (INVALID_TRANSACTION_TIMEOUT).
// v3: KIP-360's current id and epoch (PRODUCER_FENCED from v4, KIP-588).
func init() { register(22, 0, 4, twoPhase(handleInitProducerID)) }

func handleInitProducerID(ctx context.Context, s *Server, req *kmsg.InitProducerIDRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	answer := func(code int16) func() kmsg.Response {
		resp.ErrorCode = code
		return func() kmsg.Response { return resp }
	}
	z := s.authzOf(ctx)
	if req.TransactionalID != nil {
		return initTxnProducer(ctx, s, z, req, resp)
	}
	// An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or
	// WRITE on some topic (Kafka 2.8+, KIP-679).
	if !z.cluster(meta.OpIdempotentWrite) && !z.anyTopic(meta.OpWrite) {
		return answer(errClusterAuth.Code)
	}
	id := s.producers.take(ctx)
	return func() kmsg.Response {
		id, err := id()
		if err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return resp
	}
}

func initTxnProducer(ctx context.Context, s *Server, z authz, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) func() kmsg.Response {
	answer := func(code int16) func() kmsg.Response {
		resp.ErrorCode = code
		return func() kmsg.Response { return resp }
	}
	id := *req.TransactionalID
	timeout := time.Duration(req.TransactionTimeoutMillis) * time.Millisecond
	switch {
	case !z.txn(meta.OpWrite, id):
		return answer(errTxnAuth.Code)
	case id == "":
		return answer(kerr.InvalidRequest.Code)
	case !s.txnFormat():
		return answer(kerr.CoordinatorNotAvailable.Code)
	case req.TransactionTimeoutMillis <= 0 || timeout > s.txnMaxTimeout():
		return answer(kerr.InvalidTransactionTimeout.Code)
	}
	op := meta.InitTxn{TxnID: id, TimeoutMs: req.TransactionTimeoutMillis, ProducerID: -1, Epoch: -1}
	if req.Version >= 3 && req.ProducerID >= 0 {
		op.ProducerID, op.Epoch = req.ProducerID, req.ProducerEpoch
	}
	// Rare (once per producer start), and a lagging view would write
	// markers for a transaction that has moved on: read the tail first.
	s.syncTail(ctx)
	m, err := s.markersFor(ctx, id, false)
	if err != nil {
		return answer(kerr.CoordinatorNotAvailable.Code)
	}
	op.Markers = m.Commit
	p := s.submit(ctx, op)
	return func() kmsg.Response {
		settle(ctx, p, 1, func(_ int, res meta.Result, err error) {
			if resp.ErrorCode = txnErrorCode(err, req.Version, 4); err == nil {
				resp.ProducerID, resp.ProducerEpoch = res.FirstProducerID, res.ProducerEpoch
			}
			s.publishMarkers(m, err == nil)
			if err == nil && m.Commit.Object != "" {
				s.metrics.txnEnded.WithLabelValues("abort").Inc()
			}
		})
		return resp
	}
}
