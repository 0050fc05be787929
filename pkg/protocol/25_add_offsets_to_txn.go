package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// AddOffsetsToTxn, versions 0-4 (txn.go): the group joins the producer's
// open transaction (opening one if none is), so that its TxnOffsetCommits
// commit with it. Kafka adds the group's __consumer_offsets partition;
// Barge keeps the group itself. v3: flexible.
func init() { register(25, 0, 4, twoPhase(handleAddOffsetsToTxn)) }

func handleAddOffsetsToTxn(ctx context.Context, s *Server, req *kmsg.AddOffsetsToTxnRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	z := s.authzOf(ctx)
	switch {
	case !z.txn(meta.OpWrite, req.TransactionalID):
		resp.ErrorCode = errTxnAuth.Code
	case !z.group(meta.OpRead, req.Group):
		resp.ErrorCode = errGroupAuth.Code
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case !s.txnFormat():
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	if resp.ErrorCode != 0 {
		return func() kmsg.Response { return resp }
	}
	p := s.submit(ctx, meta.AddToTxn{TxnID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.ProducerEpoch, Groups: []string{req.Group}})
	return func() kmsg.Response {
		settle(ctx, p, 1, func(_ int, _ meta.Result, err error) { resp.ErrorCode = txnErrorCode(err, req.Version, 2) })
		return resp
	}
}
