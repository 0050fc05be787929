package protocol

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/tiered"
)

type metrics struct {
	requests     *prometheus.CounterVec
	seconds      *prometheus.HistogramVec
	unsupported  prometheus.Counter
	produceBytes prometheus.Counter
	fetchBytes   prometheus.Counter
	produceRecs  prometheus.Counter
	incremental  prometheus.Counter
	connections  prometheus.Gauge
	refused      *prometheus.CounterVec
	idleClosed   prometheus.Counter
	queuedBytes  prometheus.Gauge
	queuedWaits  prometheus.Gauge
	slowClosed   prometheus.Counter
	acceptPaused prometheus.Gauge
	forwarded    *prometheus.CounterVec
	authFailed   *prometheus.CounterVec
	txnEnded     *prometheus.CounterVec
	// produceStages resolved once: where an answered produce request's
	// time went.
	produceStage                                 *prometheus.HistogramVec
	stageQueue, stageSeal, stagePut, stageCommit prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_requests_total",
			Help: "Kafka requests answered, by API."}, []string{"api"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "barge_request_seconds",
			Help:    "Time from reading a request to its answer being ready, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"api"}),
		unsupported: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_unsupported_requests_total",
			Help: "Requests for an unknown API or version, answered UNSUPPORTED_VERSION."}),
		produceBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_produce_bytes_total",
			Help: "Record batch bytes accepted from producers."}),
		produceRecs: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_produce_records_total",
			Help: "Records accepted from producers."}),
		fetchBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_fetch_bytes_total",
			Help: "Record batch bytes sent to consumers."}),
		incremental: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_fetch_session_requests_total",
			Help: "Fetch requests answered incrementally, from a fetch session (KIP-227)."}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "barge_connections",
			Help: "Kafka client connections open."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_connections_refused_total",
			Help: "Connections closed on accept, by the cap they were over (max.connections.per.ip) or because the agent cannot serve (stalled)."}, []string{"limit"}),
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_connections_idle_closed_total",
			Help: "Connections closed after connections.max.idle.ms without a request or an answer."}),
		queuedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "barge_queued_request_bytes",
			Help: "Bytes of requests read and not yet answered (bounded by queued.max.request.bytes)."}),
		queuedWaits: prometheus.NewGauge(prometheus.GaugeOpts{Name: "barge_queued_request_waits",
			Help: "Connections that stopped reading until queued.max.request.bytes, or their own or their address's share of it, has room."}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_connections_slow_closed_total",
			Help: "Connections closed because a request's body fell behind the pace --request-body-timeout allows."}),
		acceptPaused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "barge_accept_paused",
			Help: "1 while the agent accepts no connections because max.connections are open."}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_forwarded_requests_total",
			Help: "Group requests forwarded to the coordinating agent at this agent's shared address, by outcome (ok, or failed: answered NOT_COORDINATOR)."}, []string{"outcome"}),
		authFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_authentication_failures_total",
			Help: "Connections closed by authentication, by reason: failed (wrong credentials or SASL state), tls (handshake), timeout (not authenticated within --authentication-timeout), unauthenticated (a request before authentication)."}, []string{"reason"}),
		txnEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_transactions_ended_total",
			Help: "Transactions this agent ended, by outcome: commit, abort (EndTxn, or InitProducerId fencing an open one) or timeout (aborted by this coordinator past transaction.timeout.ms)."}, []string{"outcome"}),
		produceStage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "barge_produce_stage_seconds",
			Help:    "Where an answered produce request's time went, by stage: queue (read to its last append: validation, back-pressure), seal (waiting in the open segment), put (seal to the object in the bucket), commit (to the metadata-log commit applied).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"stage"}),
	}
	m.stageQueue = m.produceStage.WithLabelValues("queue")
	m.stageSeal = m.produceStage.WithLabelValues("seal")
	m.stagePut = m.produceStage.WithLabelValues("put")
	m.stageCommit = m.produceStage.WithLabelValues("commit")
	if reg != nil {
		reg.MustRegister(m.requests, m.seconds, m.unsupported, m.produceBytes, m.produceRecs, m.fetchBytes, m.incremental,
			m.connections, m.refused, m.idleClosed, m.queuedBytes, m.queuedWaits,
			m.slowClosed, m.acceptPaused, m.forwarded, m.authFailed, m.txnEnded, m.produceStage)
	}
	return m
}

// observeProduceStages records where a produce request's time went, by the
// ticket it was answered with (its last).
func (m metrics) observeProduceStages(start time.Time, last *tiered.Ticket) {
	seal, put, commit := last.Stages()
	m.stageQueue.Observe(last.AppendedAt().Sub(start).Seconds())
	m.stageSeal.Observe(seal.Seconds())
	m.stagePut.Observe(put.Seconds())
	m.stageCommit.Observe(commit.Seconds())
}

func (m metrics) observe(key int16, start time.Time) {
	name := kmsg.NameForKey(key)
	if a, ok := peerAPIs[key]; ok {
		name = a.name
	}
	m.requests.WithLabelValues(name).Inc()
	m.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
}
