package protocol

import (
	"context"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// The transaction admin APIs (KIP-664), answered from the log like the
// rest (txn.go): DescribeTransactions and ListTransactions (DESCRIBE on
// the transactional id; ids the principal may not describe are left out
// of a list; each broker lists the ids it coordinates), DescribeProducers
// (READ on the topic). ListTransactions v1: duration filter; v2: id
// pattern (a Go regexp, Kafka's is Java's).
func init() {
	register(61, 0, 0, deferred(handleDescribeProducers))
	register(65, 0, 0, deferred(handleDescribeTransactions))
	register(66, 0, 2, deferred(handleListTransactions))
}

func handleDescribeTransactions(ctx context.Context, s *Server, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for _, id := range req.TransactionalIDs {
			ts := kmsg.NewDescribeTransactionsResponseTransactionState()
			ts.TransactionalID, ts.ProducerID, ts.ProducerEpoch, ts.StartTimestamp = id, -1, -1, -1
			txn, ok := st.Txn(id)
			switch {
			case !z.txn(meta.OpDescribe, id):
				ts.ErrorCode = errTxnAuth.Code
			case !ok:
				ts.ErrorCode = kerr.TransactionalIDNotFound.Code
			default:
				ts.State, ts.TimeoutMillis, ts.StartTimestamp = txn.Status.String(), txn.TimeoutMs, txn.StartMs
				ts.ProducerID, ts.ProducerEpoch = txn.ProducerID, txn.Epoch
				for _, gp := range txn.Partitions {
					t := st.TopicByID(gp.Topic)
					if t == nil || !z.topic(meta.OpDescribe, t.Name) {
						continue
					}
					if n := len(ts.Topics); n == 0 || ts.Topics[n-1].Topic != t.Name {
						ts.Topics = append(ts.Topics, kmsg.DescribeTransactionsResponseTransactionStateTopic{Topic: t.Name})
					}
					last := &ts.Topics[len(ts.Topics)-1]
					last.Partitions = append(last.Partitions, gp.Partition)
				}
			}
			resp.TransactionStates = append(resp.TransactionStates, ts)
		}
	})
	return resp
}

func handleListTransactions(ctx context.Context, s *Server, req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	states := map[string]bool{}
	for _, f := range req.StateFilters {
		switch f {
		case "Empty", "Ongoing", "CompleteCommit", "CompleteAbort":
			states[f] = true
		case "PrepareCommit", "PrepareAbort", "Dead", "PrepareEpochFence":
			states[f] = true // Kafka's, which Barge never holds a transaction in
		default:
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
		}
	}
	pids := map[int64]bool{}
	for _, p := range req.ProducerIDFilters {
		pids[p] = true
	}
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if pattern, err = regexp.Compile(*req.TransactionalIDPattern); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
	}
	z := s.authzOf(ctx)
	now := time.Now().UnixMilli()
	placement, self := s.fleet.Placement(), s.fleet.Self()
	s.log.View(func(st *meta.State) {
		for _, id := range st.TxnIDs() {
			txn, _ := st.Txn(id)
			switch {
			case placement.Owner(id).Addr() != self.Addr():
				// Each broker lists the ids it coordinates, as Kafka's do;
				// agents sharing an address are one broker to clients, and
				// the log holds every id, so each lists all of theirs.
				continue
			case len(states) > 0 && !states[txn.Status.String()],
				len(pids) > 0 && !pids[txn.ProducerID],
				req.Version >= 1 && req.DurationFilterMillis >= 0 && (txn.StartMs < 0 || now-txn.StartMs < req.DurationFilterMillis),
				pattern != nil && !pattern.MatchString(id),
				!z.txn(meta.OpDescribe, id):
				continue
			}
			resp.TransactionStates = append(resp.TransactionStates, kmsg.ListTransactionsResponseTransactionState{
				TransactionalID: id, ProducerID: txn.ProducerID, TransactionState: txn.Status.String()})
		}
	})
	return resp
}

func handleDescribeProducers(ctx context.Context, s *Server, req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for _, rt := range req.Topics {
			t := kmsg.NewDescribeProducersResponseTopic()
			t.Topic = rt.Topic
			topic := st.Topic(rt.Topic)
			for _, p := range rt.Partitions {
				rp := kmsg.NewDescribeProducersResponseTopicPartition()
				rp.Partition = p
				var part *meta.Partition
				if topic != nil {
					part = topic.Partition(p)
				}
				switch {
				case !z.topic(meta.OpRead, rt.Topic):
					rp.ErrorCode = errTopicAuth.Code
				case part == nil:
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				default:
					for _, pv := range part.Producers() {
						rp.ActiveProducers = append(rp.ActiveProducers, kmsg.DescribeProducersResponseTopicPartitionActiveProducer{
							ProducerID: pv.ID, ProducerEpoch: int32(pv.Epoch), LastSequence: pv.LastSequence, LastTimestamp: pv.LastMs,
							CoordinatorEpoch: 0, CurrentTxnStartOffset: pv.TxnStart})
					}
				}
				t.Partitions = append(t.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	return resp
}
