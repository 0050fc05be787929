package protocol

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// The limits below keep one careless or hostile client from taking more
// than its share of an agent. Each is Kafka's, under Kafka's name, but the
// body's pace, which Kafka has not:
//
//   - max.connections: at that many connections the agent stops accepting
//     until one closes (awaitSlot). max.connections.per.ip: a connection
//     over it is closed as soon as it is accepted.
//   - queued.max.request.bytes: the bytes of requests read but not yet
//     answered, over every connection of the agent. A read loop takes a
//     frame's size from the budget before reading its body and the writer
//     gives it back once the answer is written; while the budget is spent,
//     read loops stop reading, so clients meet TCP back-pressure instead of
//     the agent's memory growing. One connection and one client address
//     may hold only a share of it (budgetShares), and a body must arrive at
//     a minimum pace once its budget is granted (readBody,
//     --request-body-timeout), so that size prefixes alone hold it briefly.
//   - connections.max.idle.ms: a connection that has had no request read and
//     none in flight, or whose answer could not be written, for that long is
//     closed; a size prefix left half sent counts as idle.
//   - fetch.max.bytes bounds a Fetch answer (01_fetch.go).
//   - socket.request.max.bytes bounds one frame (readLoop).

// requestBudget is queued.max.request.bytes, with a share of it for each
// connection and each client address.
//
// A frame takes its whole size (all of the budget, if larger) as soon as
// its size prefix is read, before its body. Taking bytes only as they
// arrive would leave a size prefix alone holding nothing, but it cannot
// also keep the bound without deadlock: partial frames that together hold
// the whole budget would each wait for bytes the others hold, and none
// would finish to give any back. Avoiding that means either letting
// started frames exceed the budget (Kafka's pool does, by up to one
// frame), or reserving what a started frame still needs, which is taking
// its whole size again. Taking it whole keeps the bound exact, and every
// started frame can finish, so the budget is never deadlocked; what
// limits a client that announces frames it does not send is time instead:
// the body's pace (readBody) closes it and gives its budget back. The
// shares limit how much of the budget one client holds meanwhile: a
// connection over its share, or one whose address is over the address's,
// waits for its own earlier frames to be answered without standing in
// line in front of the others.
type requestBudget struct {
	sem       *semaphore.Weighted
	max       int64
	connShare int64 // the most one connection may hold; max: no cap
	addrShare int64 // the most one client address may hold; max: no cap
	queued    prometheus.Gauge
	waiting   prometheus.Gauge

	mu    sync.Mutex
	addrs map[string]*addrHold // addresses holding any of the budget, when capped
}

// addrHold is what one client address holds of the budget.
type addrHold struct {
	held  int64
	freed chan struct{} // closed, and replaced, when some of held is given back
}

// budgetAccount is one connection's: its address and what it holds
// (guarded by requestBudget.mu).
type budgetAccount struct {
	addr string
	held int64
}

// budgetShares returns the most of a budget of total bytes that one
// connection and one client address may hold, for frames of at most
// maxFrame bytes. An address may hold the part of the budget that its
// connections may be of all (max.connections.per.ip / max.connections, a
// quarter by default), so that behind a proxy, where every client has one
// address and the per-address cap is raised to match, the proxy may have
// everything; one connection at most a quarter. Both are at least one
// largest frame (and so the whole budget when it is no larger), so that
// one frame never waits on a share while the budget has room for it.
func budgetShares(total, maxFrame int64, perIP, maxConns int) (conn, addr int64) {
	frame := min(maxFrame, total)
	addr = total
	if perIP < maxConns {
		addr = total / int64(maxConns) * int64(perIP)
	}
	addr = max(addr, frame)
	conn = min(max(total/4, frame), addr)
	return conn, addr
}

func newRequestBudget(total, connShare, addrShare int64, m metrics) *requestBudget {
	return &requestBudget{sem: semaphore.NewWeighted(total), max: total, connShare: connShare, addrShare: addrShare,
		queued: m.queuedBytes, waiting: m.queuedWaits, addrs: map[string]*addrHold{}}
}

// acquire waits until a frame of size bytes fits in what is left of the
// budget and of the shares of acct and its address, and returns what it
// took. A frame larger than the whole budget waits for all of it, so that
// any frame up to socket.request.max.bytes can still be read, one at a
// time.
func (b *requestBudget) acquire(ctx context.Context, acct *budgetAccount, size int64) (int64, error) {
	n := min(size, b.max)
	waited := false
	wait := func() {
		if !waited {
			waited = true
			b.waiting.Inc()
		}
	}
	defer func() {
		if waited {
			b.waiting.Dec()
		}
	}()
	for {
		freed := b.takeShare(acct, n)
		if freed == nil {
			break
		}
		wait()
		select {
		case <-freed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if !b.sem.TryAcquire(n) {
		wait()
		if err := b.sem.Acquire(ctx, n); err != nil {
			b.releaseShare(acct, n)
			return 0, err
		}
	}
	b.queued.Add(float64(size))
	return n, nil
}

// capped reports whether a share is smaller than the budget, so that
// holdings must be counted.
func (b *requestBudget) capped() bool { return b.connShare < b.max || b.addrShare < b.max }

// takeShare counts n more bytes against acct and its address, unless that
// would take either over its share; then it returns a channel closed when
// the address (and so the connection) gives some back. A connection or an
// address holding nothing may always take a frame.
func (b *requestBudget) takeShare(acct *budgetAccount, n int64) (freed <-chan struct{}) {
	if !b.capped() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.addrs[acct.addr]
	if a != nil && (acct.held > 0 && acct.held+n > b.connShare || a.held+n > b.addrShare) {
		return a.freed
	}
	if a == nil {
		a = &addrHold{freed: make(chan struct{})}
		b.addrs[acct.addr] = a
	}
	a.held += n
	acct.held += n
	return nil
}

// releaseShare undoes takeShare.
func (b *requestBudget) releaseShare(acct *budgetAccount, n int64) {
	if !b.capped() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.addrs[acct.addr]
	acct.held -= n
	a.held -= n
	close(a.freed)
	if a.held == 0 {
		delete(b.addrs, acct.addr)
	} else {
		a.freed = make(chan struct{})
	}
}

// release gives back what acquire took for a frame of size bytes.
func (b *requestBudget) release(acct *budgetAccount, held, size int64) {
	if held == 0 {
		return
	}
	b.queued.Sub(float64(size))
	b.releaseShare(acct, held)
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
	s.slotFree.Broadcast()
}

// awaitSlot returns once fewer than max.connections are open, or the
// server drains. Like Kafka's acceptor (KIP-402), Serve then stops calling
// Accept, so new connections wait in the listen backlog (their clients'
// connect timeouts apply) rather than being closed, which clients would
// meet with an immediate reconnect.
func (s *Server) awaitSlot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.conns) >= s.cfg.MaxConnections && !s.draining {
		s.metrics.acceptPaused.Set(1)
		s.slotFree.Wait()
	}
	s.metrics.acceptPaused.Set(0)
}

var errIdle = errors.New("idle longer than connections.max.idle.ms")

// keepReading is called when the read deadline has passed. The deadline is
// not moved on every request (that would cost every read); instead it is
// moved here to connections.max.idle.ms after the connection's last
// activity, or from now while requests are in flight. It fails with
// errIdle once the connection has been idle that long, or with errDraining.
func (c *conn) keepReading() error { return c.keepReadingUntil(time.Time{}) }

// keepReadingUntil is keepReading for a read that must also be done by due
// (unless zero), and fails with errSlowBody once due has passed.
func (c *conn) keepReadingUntil(due time.Time) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.draining {
		return errDraining
	}
	now := time.Now()
	last := time.Unix(0, c.active.Load())
	if c.inflight.Load() > 0 {
		last = now
	}
	deadline := last.Add(c.s.cfg.ConnectionsMaxIdle)
	if !now.Before(deadline) {
		return errIdle
	}
	if !due.IsZero() {
		if !now.Before(due) {
			return errSlowBody
		}
		if due.Before(deadline) {
			deadline = due
		}
	}
	return c.nc.SetReadDeadline(deadline)
}

// The pace a request's body must keep once its budget is granted. A client
// that has announced a frame by its size prefix holds that much of
// queued.max.request.bytes until the frame is read, so it must deliver it:
// byte n of the body by RequestBodyTimeout + n / minBodyRate after the
// grant, checked every bodyChunk. A body that has not started within the
// timeout (10 s by default) is closed then, however large it announced
// itself, so a size prefix alone holds the budget for 10 s, not
// connections.max.idle.ms; a client that keeps up may take as long as it
// needs (110 s for 100 MiB at exactly the pace).
//
// Why these: a client writes a frame in one go, so an honest body lags its
// prefix only by what TCP and the two ends add: retransmissions (200 ms,
// then doubling: four losses in a row take 3 s), a garbage-collection
// pause in the client or the agent, a loaded agent's scheduling. 10 s
// covers those. 1 MiB/s is 8 Mbit/s, far below any link a Kafka client
// uses; slower than that, a 30 MiB frame misses the Java client's own
// request.timeout.ms (30 s) anyway and it has already given up on the
// request, and librdkafka's (socket.timeout.ms, 60 s) at 60 MiB.
const (
	minBodyRate = 1 << 20 // bytes per second
	bodyChunk   = 1 << 20
)

var errSlowBody = errors.New("request body slower than the pace --request-body-timeout allows")

// readBody reads a frame body of size bytes, granted its budget at
// granted, at the pace above. A body already buffered costs no deadline
// (most requests are). The frame is allocated only once its first bytes
// have arrived, so a size prefix alone costs the agent no memory.
func (c *conn) readBody(r *bufio.Reader, size int64, granted time.Time) ([]byte, error) {
	due := func(n int64) time.Time {
		return granted.Add(c.s.cfg.RequestBodyTimeout + time.Duration(n)*time.Second/minBodyRate)
	}
	paced := func(n int64, read func() error) error {
		for {
			if err := c.keepReadingUntil(due(n)); err != nil {
				return err
			}
			if err := read(); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
		}
	}
	if int64(r.Buffered()) < size {
		first := min(size, int64(r.Size()))
		if err := paced(first, func() error { _, err := r.Peek(int(first)); return err }); err != nil {
			return nil, err
		}
	}
	frame := make([]byte, size)
	for n := int64(0); n < size; {
		end := min(size, n+bodyChunk)
		read := func() error {
			k, err := io.ReadFull(r, frame[n:end])
			n += int64(k)
			return err
		}
		var err error
		if int64(r.Buffered()) >= end-n {
			err = read() // it cannot wait: no deadline to move
		} else {
			err = paced(end, read)
		}
		if err != nil {
			return nil, err
		}
	}
	return frame, nil
}
