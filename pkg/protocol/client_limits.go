package protocol

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// The limits below keep one careless or hostile client from taking more
// than its share of an agent. Each is Kafka's, under Kafka's name:
//
//   - max.connections and max.connections.per.ip: a connection over either
//     cap is closed as soon as it is accepted.
//   - queued.max.request.bytes: the bytes of requests read but not yet
//     answered, over every connection of the agent. A read loop takes a
//     frame's size from the budget before reading its body and the writer
//     gives it back once the answer is written; while the budget is spent,
//     read loops stop reading, so clients meet TCP back-pressure instead of
//     the agent's memory growing.
//   - connections.max.idle.ms: a connection that has had no request read and
//     none in flight, or whose answer could not be written, for that long is
//     closed.
//   - fetch.max.bytes bounds a Fetch answer (01_fetch.go).
//   - socket.request.max.bytes bounds one frame (readLoop).

// requestBudget is queued.max.request.bytes.
type requestBudget struct {
	sem     *semaphore.Weighted
	max     int64
	queued  prometheus.Gauge
	waiting prometheus.Gauge
}

func newRequestBudget(max int64, m metrics) *requestBudget {
	return &requestBudget{sem: semaphore.NewWeighted(max), max: max, queued: m.queuedBytes, waiting: m.queuedWaits}
}

// acquire waits until a frame of size bytes fits in what is left of the
// budget and returns what it took. A frame larger than the whole budget
// waits for all of it, so that any frame up to socket.request.max.bytes can
// still be read, one at a time.
func (b *requestBudget) acquire(ctx context.Context, size int64) (int64, error) {
	n := min(size, b.max)
	if !b.sem.TryAcquire(n) {
		b.waiting.Inc()
		err := b.sem.Acquire(ctx, n)
		b.waiting.Dec()
		if err != nil {
			return 0, err
		}
	}
	b.queued.Add(float64(size))
	return n, nil
}

// release gives back what acquire took for a frame of size bytes.
func (b *requestBudget) release(held, size int64) {
	if held == 0 {
		return
	}
	b.queued.Sub(float64(size))
	b.sem.Release(held)
}

// admit registers a new connection unless it is over a cap, and returns
// the cap's Kafka name if it is. It starts the connection's idle clock.
func (s *Server) admit(c *conn) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return "draining"
	case s.log.Stalled() != nil:
		return "stalled" // it cannot read the log: let clients find another agent
	case len(s.conns) >= s.cfg.MaxConnections:
		return "max.connections"
	case s.perIP[c.ip] >= s.cfg.MaxConnectionsPerIP:
		return "max.connections.per.ip"
	}
	s.conns[c] = struct{}{}
	s.perIP[c.ip]++
	s.metrics.connections.Inc()
	c.active.Store(time.Now().UnixNano())
	// Under s.mu, so that it cannot undo Drain's deadline.
	c.nc.SetReadDeadline(time.Now().Add(s.cfg.ConnectionsMaxIdle))
	s.wg.Add(1)
	return ""
}

// forget undoes admit once the connection is closed.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] == 0 {
		delete(s.perIP, c.ip)
	}
	s.metrics.connections.Dec()
}

var errIdle = errors.New("idle longer than connections.max.idle.ms")

// keepReading is called when the read deadline has passed. The deadline is
// not moved on every request (that would cost every read); instead it is
// moved here to connections.max.idle.ms after the connection's last
// activity, or from now while requests are in flight. It fails with
// errIdle once the connection has been idle that long, or with errDraining.
func (c *conn) keepReading() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.draining {
		return errDraining
	}
	last := time.Unix(0, c.active.Load())
	if c.inflight.Load() > 0 {
		last = time.Now()
	}
	deadline := last.Add(c.s.cfg.ConnectionsMaxIdle)
	if !time.Now().Before(deadline) {
		return errIdle
	}
	return c.nc.SetReadDeadline(deadline)
}
