package protocol

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// Transactions (meta/txn.go holds their state and rules). The transaction
// coordinator's state is all in the metadata log, checked when each op is
// applied, so any agent answers any transactional request, and nothing is
// forwarded in shared-address mode: FindCoordinator names one agent per
// transactional id (rendezvous, as for groups) only so that one agent
// aborts the id's timed-out transactions (abortTimedOut). Ending a
// transaction writes its markers to the bucket (tiered.Ingest.WriteMarkers)
// on the read loop, then submits the op that gives them offsets, in the
// connection's order (order.go).

// Kafka's transaction defaults.
const (
	defaultTxnMaxTimeout      = 15 * time.Minute   // transaction.max.timeout.ms
	defaultTxnIDExpiration    = 7 * 24 * time.Hour // transactional.id.expiration.ms
	defaultTxnAbortInterval   = 10 * time.Second   // transaction.abort.timed.out.transaction.cleanup.interval.ms
	defaultTxnRemoveIDsPeriod = time.Hour          // transaction.remove.expired.transaction.cleanup.interval.ms
)

// txnErrorCode maps a transactional op's error to Kafka's code for an API
// of version v that answers PRODUCER_FENCED from version fencedSince on
// (KIP-588; INVALID_PRODUCER_EPOCH before).
func txnErrorCode(err error, v, fencedSince int16) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, meta.ErrProducerFenced):
		if v < fencedSince {
			return kerr.InvalidProducerEpoch.Code
		}
		return kerr.ProducerFenced.Code
	case errors.Is(err, meta.ErrIllegalGeneration):
		return kerr.IllegalGeneration.Code
	case errors.Is(err, meta.ErrCondemned), errors.Is(err, meta.ErrFenced), errors.Is(err, meta.ErrUnavailable),
		errors.Is(err, meta.ErrStalled), errors.Is(err, meta.ErrBusy), errors.Is(err, meta.ErrFormat):
		// Nothing happened; the client finds the coordinator again and
		// retries.
		return kerr.CoordinatorNotAvailable.Code
	}
	code := errorCode(err)
	if code == kerr.KafkaStorageError.Code || code == kerr.NotLeaderForPartition.Code {
		return kerr.CoordinatorNotAvailable.Code
	}
	return code
}

// txnFormat reports whether the cluster has transactions (Format7): until
// every agent of a rolling upgrade understands them, transactional
// requests get COORDINATOR_NOT_AVAILABLE, which clients retry.
func (s *Server) txnFormat() bool { return s.clusterFormat() >= meta.Format7 }

// txnMaxTimeout is transaction.max.timeout.ms.
func (s *Server) txnMaxTimeout() time.Duration {
	if s.cfg.TxnMaxTimeout > 0 {
		return s.cfg.TxnMaxTimeout
	}
	return defaultTxnMaxTimeout
}

// markersFor writes the markers that end transaction id's open
// transaction as the state shows it now; none (a zero Commit) when
// nothing is open or it added no partitions.
func (s *Server) markersFor(ctx context.Context, id string, commit bool) (tiered.Markers, error) {
	var txn meta.Txn
	s.log.View(func(st *meta.State) { txn, _ = st.Txn(id) })
	return s.writeMarkers(ctx, txn, commit)
}

// writeMarkers writes the markers that end txn as given (a copy of the
// state's), if it is open.
func (s *Server) writeMarkers(ctx context.Context, txn meta.Txn, commit bool) (tiered.Markers, error) {
	if txn.Status != meta.TxnOngoing {
		return tiered.Markers{}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.ingest.WriteMarkers(wctx, txn.Partitions, txn.ProducerID, txn.Epoch, commit)
}

// abortTimedOut aborts the open transactions past their timeout of the
// transactional ids this agent coordinates, bumping their epochs (their
// producers are fenced, as Kafka's coordinator fences them).
func (s *Server) abortTimedOut(ctx context.Context) {
	if !s.txnFormat() {
		return
	}
	var ids []string
	s.log.View(func(st *meta.State) { ids = st.TimedOutTxns(time.Now().UnixMilli()) })
	for _, id := range ids {
		if !s.coordinates(id) || ctx.Err() != nil {
			continue
		}
		// One copy of the transaction for the markers and the op, which
		// names its start: if the client ended it and began another
		// meanwhile, the op aborts nothing (meta.EndTxn's Timeout).
		var txn meta.Txn
		s.log.View(func(st *meta.State) { txn, _ = st.Txn(id) })
		m, err := s.writeMarkers(ctx, txn, false)
		if err != nil {
			s.cfg.Logger.Warn("aborting a timed-out transaction", "transactional_id", id, "err", err)
			continue
		}
		res, err := s.log.Append(ctx, meta.EndTxn{TxnID: id, ProducerID: txn.ProducerID, Epoch: txn.Epoch, Timeout: true,
			StartMs: txn.StartMs, Markers: m.Commit})
		if err == nil {
			err = res[0].Err
		}
		s.publishMarkers(m, err == nil)
		if errors.Is(err, meta.ErrConcurrentTransactions) {
			continue // it ended, or another began, since the view
		}
		if err != nil {
			s.cfg.Logger.Warn("aborting a timed-out transaction", "transactional_id", id, "err", err)
			continue
		}
		s.metrics.txnEnded.WithLabelValues("timeout").Inc()
		s.cfg.Logger.Info("aborted a transaction past its timeout", "transactional_id", id, "producer_id", txn.ProducerID,
			"epoch", txn.Epoch, "timeout_ms", txn.TimeoutMs)
	}
}

// expireTxnIDs forgets transactional ids idle past
// transactional.id.expiration.ms; any agent may, the cutoff is in the op.
func (s *Server) expireTxnIDs(ctx context.Context) {
	if !s.txnFormat() {
		return
	}
	exp := s.cfg.TxnIDExpiration
	if exp <= 0 {
		exp = defaultTxnIDExpiration
	}
	cutoff := time.Now().Add(-exp).UnixMilli()
	var oldest int64
	s.log.View(func(st *meta.State) { oldest = st.OldestIdleTxnMs() })
	if oldest < 0 || oldest >= cutoff {
		return
	}
	if _, err := s.log.Append(ctx, meta.ExpireTxns{BeforeMs: cutoff}); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("expiring transactional ids", "err", err)
	}
}

// RunTransactions aborts timed-out transactions every abort interval and
// expires idle transactional ids, until ctx ends.
func (s *Server) RunTransactions(ctx context.Context) {
	interval := s.cfg.TxnAbortInterval
	if interval <= 0 {
		interval = defaultTxnAbortInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	lastExpire := time.Time{}
	for {
		s.ensureInternalTopics(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.abortTimedOut(ctx)
		if time.Since(lastExpire) >= defaultTxnRemoveIDsPeriod {
			s.expireTxnIDs(ctx)
			lastExpire = time.Now()
		}
	}
}

// checkedTxn returns transaction id's state and the producer check of pid
// and epoch against it (meta.CheckTxnProducer). A view may lag the log by a poll, and
// the client's last request may have gone to another agent, so a failed
// check is made again after reading the log's tail before it is believed.
func (s *Server) checkedTxn(ctx context.Context, id string, pid int64, epoch int16) (meta.Txn, error) {
	var txn meta.Txn
	var known bool
	view := func() error {
		s.log.View(func(st *meta.State) { txn, known = st.Txn(id) })
		if !known {
			return meta.CheckTxnProducer(nil, pid, epoch)
		}
		return meta.CheckTxnProducer(&txn, pid, epoch)
	}
	err := view()
	if err != nil && s.syncTail(ctx) {
		err = view()
	}
	return txn, err
}

// ensureInternalTopics creates Kafka's internal topics (meta's
// internal_topics.go) once the cluster has transactions, if they are
// missing; agents racing to create them lose to the first, harmlessly.
func (s *Server) ensureInternalTopics(ctx context.Context) {
	if !s.txnFormat() {
		return
	}
	var ops []meta.Op
	s.log.View(func(st *meta.State) {
		for _, name := range meta.InternalTopics {
			if st.Topic(name) == nil {
				ops = append(ops, meta.CreateTopic{Name: name, ID: meta.TopicID(uuid.New()), Partitions: 1, ReplicationFactor: 1,
					Configs: map[string]string{"cleanup.policy": "compact"}})
			}
		}
	})
	if len(ops) == 0 {
		return
	}
	if _, err := s.log.Append(ctx, ops...); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("creating the internal topics", "err", err)
	}
}

// publishMarkers hands markers whose op landed (took) to the cache, with
// the offsets the op gave them (tiered.Ingest.Publish).
func (s *Server) publishMarkers(m tiered.Markers, took bool) {
	s.log.View(func(st *meta.State) { s.ingest.Publish(m, took, st) })
}
