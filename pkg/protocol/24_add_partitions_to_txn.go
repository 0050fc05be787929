package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// AddPartitionsToTxn, versions 0-4 (txn.go).
//
// The partitions join the producer's open transaction, opening one if
// none is (meta.AddToTxn). A partition the principal may not WRITE, or of
// an unknown topic, gets its error and the others OPERATION_NOT_ATTEMPTED,
// as Kafka answers. v3: flexible; v4: batched by transactional id, as
// brokers send it to verify a transactional produce (KIP-890): VerifyOnly
// adds nothing and answers INVALID_TXN_STATE for a partition not in the
// transaction (Barge verifies every transactional batch when its commit
// is applied anyway).
func init() { register(24, 0, 4, twoPhase(handleAddPartitionsToTxn)) }

type txnAdd struct {
	id         string
	pid        int64
	epoch      int16
	verifyOnly bool
	topics     []kmsg.AddPartitionsToTxnRequestTopic
}

func handleAddPartitionsToTxn(ctx context.Context, s *Server, req *kmsg.AddPartitionsToTxnRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version < 4 {
		finish := addPartitionsToTxn(ctx, s, req.Version, txnAdd{req.TransactionalID, req.ProducerID, req.ProducerEpoch, false, req.Topics})
		return func() kmsg.Response {
			resp.Topics = finish()
			return resp
		}
	}
	if !s.authzOf(ctx).cluster(meta.OpClusterAction) {
		resp.ErrorCode = errClusterAuth.Code
		return func() kmsg.Response { return resp }
	}
	finishes := make([]func() []kmsg.AddPartitionsToTxnResponseTopic, len(req.Transactions))
	for i, tx := range req.Transactions {
		topics := make([]kmsg.AddPartitionsToTxnRequestTopic, len(tx.Topics))
		for j, t := range tx.Topics {
			topics[j] = kmsg.AddPartitionsToTxnRequestTopic{Topic: t.Topic, Partitions: t.Partitions}
		}
		finishes[i] = addPartitionsToTxn(ctx, s, req.Version, txnAdd{tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly, topics})
	}
	return func() kmsg.Response {
		for i, tx := range req.Transactions {
			rt := kmsg.NewAddPartitionsToTxnResponseTransaction()
			rt.TransactionalID = tx.TransactionalID
			for _, t := range finishes[i]() {
				tt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
				tt.Topic = t.Topic
				for _, p := range t.Partitions {
					tt.Partitions = append(tt.Partitions, kmsg.AddPartitionsToTxnResponseTransactionTopicPartition{Partition: p.Partition, ErrorCode: p.ErrorCode})
				}
				rt.Topics = append(rt.Topics, tt)
			}
			resp.Transactions = append(resp.Transactions, rt)
		}
		return resp
	}
}

// addPartitionsToTxn checks and submits one transaction's partitions in
// phase one and returns the per-partition answers in phase two.
func addPartitionsToTxn(ctx context.Context, s *Server, version int16, a txnAdd) func() []kmsg.AddPartitionsToTxnResponseTopic {
	out := make([]kmsg.AddPartitionsToTxnResponseTopic, len(a.topics))
	for i, t := range a.topics {
		out[i] = kmsg.NewAddPartitionsToTxnResponseTopic()
		out[i].Topic = t.Topic
		for _, p := range t.Partitions {
			out[i].Partitions = append(out[i].Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p})
		}
	}
	setAll := func(code int16) {
		for i := range out {
			for j := range out[i].Partitions {
				if out[i].Partitions[j].ErrorCode == 0 {
					out[i].Partitions[j].ErrorCode = code
				}
			}
		}
	}
	done := func() []kmsg.AddPartitionsToTxnResponseTopic { return out }
	z := s.authzOf(ctx)
	switch {
	case !z.txn(meta.OpWrite, a.id):
		setAll(errTxnAuth.Code)
		return done
	case !s.txnFormat():
		setAll(kerr.CoordinatorNotAvailable.Code)
		return done
	}
	op := meta.AddToTxn{TxnID: a.id, ProducerID: a.pid, Epoch: a.epoch}
	seen := map[meta.GroupPartition]bool{} // a partition named twice goes into the entry once
	named := make([][]meta.GroupPartition, len(a.topics))
	failed := false
	s.log.View(func(st *meta.State) {
		for i, t := range a.topics {
			topic := st.Topic(t.Topic)
			named[i] = make([]meta.GroupPartition, len(t.Partitions))
			for j, p := range t.Partitions {
				code := int16(0)
				switch {
				case !z.topic(meta.OpWrite, t.Topic):
					code = errTopicAuth.Code
				case topic == nil || topic.Partition(p) == nil:
					code = kerr.UnknownTopicOrPartition.Code
				case topic.Internal():
					code = kerr.InvalidTopicException.Code // no markers in a topic Barge keeps empty
				default:
					gp := meta.GroupPartition{Topic: topic.ID, Partition: p}
					named[i][j] = gp
					if !seen[gp] {
						seen[gp] = true
						op.Partitions = append(op.Partitions, gp)
					}
				}
				if code != 0 {
					out[i].Partitions[j].ErrorCode, failed = code, true
				}
			}
		}
	})
	if failed {
		setAll(kerr.OperationNotAttempted.Code)
		return done
	}
	if a.verifyOnly {
		txn, err := s.checkedTxn(ctx, a.id, a.pid, a.epoch)
		for i, t := range a.topics {
			for j := range t.Partitions {
				code := txnErrorCode(err, version, 2)
				if err == nil && (txn.Status != meta.TxnOngoing || !txn.HasPartition(named[i][j])) {
					code = kerr.InvalidTxnState.Code
				}
				out[i].Partitions[j].ErrorCode = code
			}
		}
		return done
	}
	p := s.submit(ctx, op)
	return func() []kmsg.AddPartitionsToTxnResponseTopic {
		settle(ctx, p, 1, func(_ int, _ meta.Result, err error) {
			if err != nil {
				setAll(txnErrorCode(err, version, 2))
			}
		})
		return out
	}
}
