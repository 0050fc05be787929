package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// EndTxn, versions 0-4 (txn.go): commit or abort the producer's open
// transaction. The markers are written on the read loop (one object, a
// control batch per partition), then meta.EndTxn gives them offsets and
// completes the transaction in one entry. A producer that is not the
// id's, or is of an older epoch, is refused before anything is written;
// a retry of an end that completed succeeds; an end with nothing open is
// INVALID_TXN_STATE. v3: flexible. (v5 is KIP-890's epoch bump per
// transaction, not served.)
func init() { register(26, 0, 4, twoPhase(handleEndTxn)) }

func handleEndTxn(ctx context.Context, s *Server, req *kmsg.EndTxnRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	answer := func(code int16) func() kmsg.Response {
		resp.ErrorCode = code
		return func() kmsg.Response { return resp }
	}
	switch {
	case !s.authzOf(ctx).txn(meta.OpWrite, req.TransactionalID):
		return answer(errTxnAuth.Code)
	case !s.txnFormat():
		return answer(kerr.CoordinatorNotAvailable.Code)
	}
	// The client's AddPartitionsToTxn may have gone to another agent (a
	// shared address, a coordinator's failover): read the tail, so that
	// the markers cover every partition it added rather than fail as
	// CONCURRENT_TRANSACTIONS and be written again. One GET per end.
	s.syncTail(ctx)
	if _, err := s.checkedTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch); err != nil {
		return answer(txnErrorCode(err, req.Version, 2))
	}
	m, err := s.markersFor(ctx, req.TransactionalID, req.Commit)
	if err != nil {
		s.cfg.Logger.Warn("writing transaction markers", "transactional_id", req.TransactionalID, "err", err)
		return answer(kerr.CoordinatorNotAvailable.Code)
	}
	p := s.submit(ctx, meta.EndTxn{TxnID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.ProducerEpoch, Commit: req.Commit, Markers: m.Commit})
	return func() kmsg.Response {
		settle(ctx, p, 1, func(_ int, _ meta.Result, err error) {
			resp.ErrorCode = txnErrorCode(err, req.Version, 2)
			s.publishMarkers(m, err == nil)
			if err == nil && m.Commit.Object != "" {
				s.metrics.txnEnded.WithLabelValues(map[bool]string{true: "commit", false: "abort"}[req.Commit]).Inc()
			}
		})
		return resp
	}
}
