package protocol

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type metrics struct {
	requests     *prometheus.CounterVec
	seconds      *prometheus.HistogramVec
	unsupported  prometheus.Counter
	produceBytes prometheus.Counter
	fetchBytes   prometheus.Counter
	produceRecs  prometheus.Counter
	incremental  prometheus.Counter
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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.seconds, m.unsupported, m.produceBytes, m.produceRecs, m.fetchBytes, m.incremental)
	}
	return m
}

func (m metrics) observe(key int16, start time.Time) {
	name := kmsg.NameForKey(key)
	m.requests.WithLabelValues(name).Inc()
	m.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
}
