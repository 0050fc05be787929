package protocol

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/groups"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// Config is what the protocol layer needs to know about this agent.
type Config struct {
	NodeID         int32
	AdvertisedHost string
	AdvertisedPort int32
	// PeerAddr is where other agents reach this one (--peer-advertise;
	// "": the advertised address). Agents that share an advertised
	// address forward group requests to each other here (forward.go).
	PeerAddr string
	// PeerToken is the secret a peer's connection greets with
	// (forward.go): the cluster's, read from the bucket, so that only
	// agents can forward to this one or reach its sequencer.
	PeerToken         string
	ClusterID         string
	AutoCreateTopics  bool
	DefaultPartitions int32 // num.partitions
	DefaultReplicas   int16 // default.replication.factor
	// MaxPartitionsPerTopic and MaxPartitions bound what CreateTopics,
	// CreatePartitions and auto-creation may make (limits.go).
	MaxPartitionsPerTopic int32
	MaxPartitions         int
	MaxRequestBytes       int32 // socket.request.max.bytes
	MaxInflight           int   // pipelined requests per connection
	Logger                *slog.Logger

	// The limits of client_limits.go, by their Kafka names. Zero takes the
	// default: 55 MiB, 256 MiB, 10 minutes, 4096, 1024 and 10 s.
	FetchMaxBytes         int32         // fetch.max.bytes
	QueuedMaxRequestBytes int64         // queued.max.request.bytes
	ConnectionsMaxIdle    time.Duration // connections.max.idle.ms
	MaxConnections        int           // max.connections
	MaxConnectionsPerIP   int           // max.connections.per.ip
	RequestBodyTimeout    time.Duration // Kafka has none (readBody)
	// OrderWait is how long a request waits for its connection's earlier
	// state change to be applied before the connection is closed (0: 30 s;
	// order.go).
	OrderWait time.Duration

	// GroupInitialRebalanceDelay is group.initial.rebalance.delay.ms: how
	// long the first rebalance of an empty group waits for more members
	// (0: none; the agent's default is Kafka's 3 s).
	GroupInitialRebalanceDelay time.Duration
	// Zone is this agent's availability zone (--zone), reported as its
	// broker.rack.
	Zone string
	// AgentTTL is how long an agent counts as live after its last
	// metadata-log entry (0: fleet.TTL).
	AgentTTL               time.Duration
	GroupMinSessionTimeout time.Duration // group.min.session.timeout.ms; 0: 6 s
	GroupMaxSessionTimeout time.Duration // group.max.session.timeout.ms; 0: 30 min

	// Security is the listener's TLS, SASL and authorizer (auth.go).
	Security Security

	// Transactions (txn.go), by Kafka's names; zero takes Kafka's
	// defaults: 15 minutes, 7 days and 10 s.
	TxnMaxTimeout    time.Duration // transaction.max.timeout.ms
	TxnIDExpiration  time.Duration // transactional.id.expiration.ms
	TxnAbortInterval time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms
}

// Server serves Kafka clients.
type Server struct {
	cfg       Config
	log       *meta.Log
	fleet     *fleet.Fleet
	ingest    *tiered.Ingest
	reader    *tiered.Reader
	producers producerIDs
	groups    *groups.Coordinator
	metrics   metrics
	sessions  fetchSessions // their own lock
	budget    *requestBudget
	bootstrap bootstrapCreds // the bootstrap user's (auth.go)

	mu       sync.Mutex
	conns    map[*conn]struct{}
	perIP    map[string]int // connections by client address
	slotFree *sync.Cond     // on mu: a connection was forgotten, or draining began
	draining bool
	wg       sync.WaitGroup
}

// New returns a Server over the agent's parts.
func New(cfg Config, log *meta.Log, ingest *tiered.Ingest, reader *tiered.Reader, reg prometheus.Registerer) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	orDefault(&cfg.MaxRequestBytes, 100<<20)
	orDefault(&cfg.MaxInflight, 64)
	orDefault(&cfg.DefaultPartitions, 1)
	orDefault(&cfg.DefaultReplicas, 1)
	orDefault(&cfg.MaxPartitionsPerTopic, DefaultMaxPartitionsPerTopic)
	orDefault(&cfg.MaxPartitions, DefaultMaxPartitions)
	orDefault(&cfg.FetchMaxBytes, 55<<20)
	orDefault(&cfg.QueuedMaxRequestBytes, 256<<20)
	orDefault(&cfg.ConnectionsMaxIdle, 10*time.Minute)
	orDefault(&cfg.MaxConnections, 4096)
	orDefault(&cfg.MaxConnectionsPerIP, 1024)
	orDefault(&cfg.RequestBodyTimeout, 10*time.Second)
	orDefault(&cfg.OrderWait, 30*time.Second)
	s := &Server{cfg: cfg, log: log, ingest: ingest, reader: reader, conns: map[*conn]struct{}{}, perIP: map[string]int{}}
	s.fleet = fleet.New(log, fleet.Member{NodeID: cfg.NodeID, Host: cfg.AdvertisedHost, Port: cfg.AdvertisedPort, Zone: cfg.Zone, Peer: cfg.PeerAddr}, cfg.AgentTTL)
	s.slotFree = sync.NewCond(&s.mu)
	s.producers.log = log
	s.groups = groups.New(log, groups.Config{Logger: cfg.Logger, InitialRebalanceDelay: cfg.GroupInitialRebalanceDelay,
		MinSessionTimeout: cfg.GroupMinSessionTimeout, MaxSessionTimeout: cfg.GroupMaxSessionTimeout})
	s.metrics = newMetrics(reg)
	connShare, addrShare := budgetShares(cfg.QueuedMaxRequestBytes, int64(cfg.MaxRequestBytes), cfg.MaxConnectionsPerIP, cfg.MaxConnections)
	s.budget = newRequestBudget(cfg.QueuedMaxRequestBytes, connShare, addrShare, s.metrics)
	s.initSecurity()
	return s
}

// orDefault sets *v to def unless it is positive.
func orDefault[T ~int | ~int16 | ~int32 | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	var backoff time.Duration
	for {
		s.awaitSlot()
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off and keep
			// serving the connections we have, as net/http does.
			s.cfg.Logger.Warn("accept failed; retrying", "err", err)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if s.cfg.Security.TLS != nil {
			nc = tls.Server(nc, s.cfg.Security.TLS) // the handshake runs on the connection's goroutine
		}
		c := &conn{s: s, nc: nc, queue: make(chan *inflight, s.cfg.MaxInflight)}
		if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
			c.ip, c.client.Host = host, "/"+host
		}
		c.budget.addr = c.ip
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), connKey{}, c))
		readCtx, stopReading := context.WithCancel(ctx)
		c.stopReading, c.cancel = stopReading, cancel
		if limit := s.admit(c); limit != "" {
			nc.Close()
			cancel()
			if limit != "draining" {
				s.metrics.refused.WithLabelValues(limit).Inc()
				s.cfg.Logger.Debug("connection refused", "remote", nc.RemoteAddr().String(), "limit", limit)
			}
			continue
		}
		c.beginAuth()
		go c.serve(ctx, cancel, readCtx)
	}
}

// Drain stops reading new requests, waits until every request already
// started is answered (or ctx ends, which ends the requests' own waits,
// such as a produce's for its commit), and closes all connections. The caller
// closes the listener first and flushes the ingest buffer meanwhile.
func (s *Server) Drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	s.slotFree.Broadcast() // Serve: accept, and find the listener closed
	for c := range s.conns {
		c.stopReading()                  // ends the read loop's waits
		c.nc.SetReadDeadline(time.Now()) // and its read
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.cancel() // ends the handlers' waits (a produce for its commit)
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
}

type conn struct {
	s     *Server
	nc    net.Conn
	ip    string
	queue chan *inflight // answers in request order
	// budget is what the connection holds of queued.max.request.bytes.
	budget budgetAccount

	stopReading context.CancelFunc // ends the read loop's waits for Drain
	cancel      context.CancelFunc // ends every wait of the connection, at Drain's deadline
	active      atomic.Int64       // unix nanos of the last request read or answer written
	inflight    atomic.Int32       // requests read and not yet answered

	// client is the client id of the connection's first request and the
	// peer's host, for group members. Written once before any handler runs.
	client     groups.Client
	sawRequest bool

	// change is the log append of the newest state-changing request read
	// on this connection that may not be applied yet, and commitsOnly says
	// whether every such request since the last wait was an OffsetCommit
	// (order.go). Read loop only.
	change      *meta.Pending
	commitsOnly bool

	// peer says the connection is another agent's relay (forward.go):
	// its requests are answered here, never forwarded. relays are this
	// connection's own relays, by coordinator. Read loop only.
	peer   bool
	relays map[string]*relay

	auth authState // read loop only (auth.go)

	// producer is the connection's produce requests as the ingest sees
	// them, to seal a segment that no more records can reach (tiered.Hold).
	producer tiered.Producer
}

type connKey struct{}

// clientOf returns who is on the other end of a handler's connection.
func clientOf(ctx context.Context) groups.Client {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		return c.client
	}
	return groups.Client{}
}

type inflight struct {
	key, version  int16
	correlationID int32
	flexible      bool
	raw           []byte // a pre-encoded body (errors for undecodable requests)
	start         time.Time
	size, held    int64 // the frame's size and what it holds of queued.max.request.bytes
	done          chan struct{}
	resp          kmsg.Response
}

// serve runs the connection: ctx lives as long as it, readCtx as long as
// its read loop may wait.
func (c *conn) serve(ctx context.Context, cancel context.CancelFunc, readCtx context.Context) {
	writerDone := make(chan struct{})
	go func() { c.writeLoop(); close(writerDone) }()
	err := c.readLoop(ctx, readCtx)
	if !errors.Is(err, errDraining) {
		cancel() // the client is gone: stop long polls early
	}
	switch {
	case errors.Is(err, errIdle):
		c.s.metrics.idleClosed.Inc()
		c.s.cfg.Logger.Debug("closing idle connection", "remote", c.nc.RemoteAddr().String())
	case errors.Is(err, errSlowBody):
		c.s.metrics.slowClosed.Inc()
		c.s.cfg.Logger.Info("closing connection", "remote", c.nc.RemoteAddr().String(), "err", err)
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errDraining):
		c.s.cfg.Logger.Info("closing connection", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
	if c.auth.deadline != nil {
		c.auth.deadline.Stop() // gone before its deadline: not a timeout
	}
	close(c.queue)
	<-writerDone
	// Only now: a draining agent still answers the requests it relayed.
	c.closeRelays()
	cancel()
	c.nc.Close()
	c.s.forget(c)
	c.s.wg.Done()
}

var errDraining = errors.New("draining")

// readLoop reads frames, decodes them and starts their handlers. A frame
// that cannot be decoded ends this connection only.
func (c *conn) readLoop(ctx, readCtx context.Context) error {
	if err := c.handshake(readCtx); err != nil {
		return err
	}
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if err := c.read(r, sizeBuf[:]); err != nil {
			return err
		}
		if st := c.s.log.Stalled(); st != nil {
			// The agent's log stopped at an entry it cannot read (a newer
			// build wrote it): its view is stale for good, so it serves
			// no one, and clients go to another agent.
			return fmt.Errorf("not serving: %w", st.Err)
		}
		size := int64(int32(binary.BigEndian.Uint32(sizeBuf[:])))
		if size < 8 || size > int64(c.s.cfg.MaxRequestBytes) {
			return fmt.Errorf("request size %d out of bounds", size)
		}
		if !c.auth.authed && size > maxUnauthenticatedRequest {
			return fmt.Errorf("request of %d bytes before authentication", size)
		}
		held, err := c.s.budget.acquire(readCtx, &c.budget, size)
		if err != nil {
			return c.stopped(err)
		}
		in, err := c.start(ctx, readCtx, r, size, time.Now())
		if err != nil {
			c.s.budget.release(&c.budget, held, size)
			return err
		}
		in.size, in.held = size, held
		c.inflight.Add(1)
		c.queue <- in
		if err := c.auth.closeNext; err != nil {
			return err // a failed authentication: closed once answered
		}
	}
}

// start reads a request's body, whose budget was granted at granted,
// decodes it, and runs its first phase once the connection's earlier state
// changes are applied (order.go).
func (c *conn) start(ctx, readCtx context.Context, r *bufio.Reader, size int64, granted time.Time) (*inflight, error) {
	// From here the body's pace, not idleness, bounds the wait for it: a
	// frame begun just before connections.max.idle.ms runs out may finish.
	c.active.Store(granted.UnixNano())
	frame, err := c.readBody(r, size, granted)
	if err != nil {
		return nil, fmt.Errorf("truncated request: %w", err)
	}
	c.active.Store(time.Now().UnixNano())
	in, req, handle, err := c.decode(frame)
	if err != nil {
		return nil, err
	}
	in.start = time.Now()
	if req == nil {
		close(in.done) // answered with a pre-encoded error
		return in, nil
	}
	if err := c.awaitChange(readCtx, in.key); err != nil {
		return nil, c.stopped(err)
	}
	finish := c.phaseOne(ctx, in.key, handle, req)
	go func() {
		in.resp = finish()
		close(in.done)
	}()
	return in, nil
}

// read fills buf from r, keeping the connection past its read deadline
// unless it has been idle for connections.max.idle.ms or is draining.
func (c *conn) read(r io.Reader, buf []byte) error {
	for n := 0; ; {
		k, err := io.ReadFull(r, buf[n:])
		if n += k; err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if err := c.keepReading(); err != nil {
			return err
		}
	}
}

// stopped names why a wait of the read loop ended early.
func (c *conn) stopped(err error) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.draining {
		return errDraining
	}
	return err
}

// decode parses the request header and body. For an unknown API or an
// unsupported version it returns a nil request and a pre-encoded
// UNSUPPORTED_VERSION answer, keeping the connection.
func (c *conn) decode(frame []byte) (*inflight, kmsg.Request, handler, error) {
	key := int16(binary.BigEndian.Uint16(frame[0:]))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	in := &inflight{key: key, version: version, correlationID: int32(binary.BigEndian.Uint32(frame[4:])), done: make(chan struct{})}
	// Before anything else of the frame is read: an unauthenticated
	// client's body is never decoded (auth.go).
	if err := c.gate(key); err != nil {
		return nil, nil, nil, err
	}
	a, ok := apis[key]
	if !ok && c.peer {
		a, ok = peerAPIs[key] // sequencer.go
	}
	if !ok || version < a.minV || version > a.maxV {
		c.s.metrics.unsupported.Inc()
		if key == kmsg.ApiVersions.Int16() {
			// Kafka answers an unknown ApiVersions version in v0 form,
			// listing what it supports, so the client can downgrade.
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			resp.ApiKeys = advertisedAPIs()
			in.raw = resp.AppendTo(nil)
		} else {
			in.raw = binary.BigEndian.AppendUint16(nil, uint16(kerr.UnsupportedVersion.Code))
		}
		return in, nil, nil, nil
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		req = &peerRequest{key: key}
	}
	req.SetVersion(version)
	in.flexible = req.IsFlexible()
	first := !c.sawRequest
	body := frame[8:]
	// Client id: a nullable int16-length string.
	if len(body) < 2 {
		return nil, nil, nil, errors.New("truncated request header")
	}
	idLen := int(int16(binary.BigEndian.Uint16(body)))
	body = body[2:]
	if idLen > 0 {
		if idLen > len(body) {
			return nil, nil, nil, errors.New("truncated client id")
		}
		if !c.sawRequest {
			c.client.ID = string(body[:idLen])
		}
		body = body[idLen:]
	}
	c.sawRequest = true
	if in.flexible {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, nil, nil, fmt.Errorf("decoding %s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	if av, ok := req.(*kmsg.ApiVersionsRequest); ok && first && av.ClientSoftwareName == peerSoftware {
		if token, host, principal, ok := parsePeerHello(av.ClientSoftwareVersion); ok && c.s.isPeerToken(token) {
			c.peer = true
			c.auth.principal, c.auth.host, c.auth.agent = peerPrincipal, c.ip, true
			if principal != "" {
				c.auth.principal, c.auth.host, c.auth.agent = principal, host, false
			}
			c.authenticated()
		}
	}
	return in, req, a.handle, nil
}

// isPeerToken reports whether a connection's greeting carries the
// cluster's peer token (forward.go); with none configured, nobody is a
// peer.
func (s *Server) isPeerToken(v string) bool {
	return s.cfg.PeerToken != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.cfg.PeerToken)) == 1
}

// skipTags skips a tagged-field section (KIP-482) of a request header.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tagged fields")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tagged field")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errors.New("bad tagged field")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// writeLoop writes answers in request order, flushing when none is ready,
// and gives back each request's share of queued.max.request.bytes once its
// answer is written. A client that takes no answer for
// connections.max.idle.ms loses the connection.
func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	buf := make([]byte, 0, 64<<10)
	var out net.Buffers
	broken := false
	for in := range c.queue {
		<-in.done
		c.s.metrics.observe(in.key, in.start)
		if !broken && in.resp == closeConnection {
			c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ConnectionsMaxIdle))
			w.Flush()
			broken = true
			c.nc.Close()
			c.s.cfg.Logger.Debug("closing connection after a failed acks=0 produce", "remote", c.nc.RemoteAddr().String())
		}
		if !broken && (in.resp != nil || in.raw != nil) { // acks=0 produce: no answer
			buf, out = in.encode(buf, out[:0])
			c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ConnectionsMaxIdle))
			err := writeAnswer(w, c.nc, out)
			clear(out) // let the records go
			if err == nil && len(c.queue) == 0 {
				err = w.Flush()
			}
			if err != nil {
				broken = true
				c.nc.Close()
			}
			if cap(buf) > 1<<20 {
				buf = make([]byte, 0, 64<<10) // do not pin one huge fetch's buffer
			}
		}
		c.s.budget.release(&c.budget, in.held, in.size)
		c.active.Store(time.Now().UnixNano())
		c.inflight.Add(-1)
	}
	w.Flush()
}

// writeAnswer writes one encoded answer (inflight.encode) after what w
// holds. A small answer goes through w, to be flushed with the answers
// after it; a Fetch answer of at least writevBytes, its records in cached
// chunks, goes to a TCP connection in one writev per 1,024 pieces, after
// w's bytes: through w, each chunk cost a copy of up to 64 KiB and two
// writes (BenchmarkWriteAnswer). Over TLS, which has no writev, w gathers
// the pieces into records.
func writeAnswer(w *bufio.Writer, nc net.Conn, out net.Buffers) error {
	size := 0
	for _, b := range out {
		size += len(b)
	}
	if _, tcp := nc.(*net.TCPConn); !tcp || len(out) == 1 || size < writevBytes {
		for _, b := range out {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// WriteTo empties or reslices out's entries as it writes them; the
	// caller clears out and encodes the next answer afresh.
	_, err := out.WriteTo(nc)
	return err
}

// writevBytes is the size from which a Fetch answer in pieces is written
// with writev rather than through the connection's 64 KiB buffer: below
// it, a tail consumer's answer is gathered with the answers queued after
// it into one write.
const writevBytes = 64 << 10

// closeConnection, returned by a handler, answers nothing and closes the
// connection once the answers before it are written: Kafka's only way of
// telling an acks=0 producer that its records were refused.
var closeConnection kmsg.Response = new(kmsg.ProduceResponse)

// encode appends the framed answer to buf[:0] and returns it as out's
// entries, to be written in order: one, buf, but for a Fetch answer, whose
// records stay where they lie, each between the parts of buf around it
// (fetchAnswer).
func (in *inflight) encode(buf []byte, out net.Buffers) ([]byte, net.Buffers) {
	buf = append(buf[:0], 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(in.correlationID))
	// ApiVersions answers always use header v0, so that a client
	// can read them before it knows our versions.
	if in.flexible && in.key != kmsg.ApiVersions.Int16() && in.raw == nil {
		buf = append(buf, 0)
	}
	fa, _ := in.resp.(*fetchAnswer)
	switch {
	case in.raw != nil:
		buf = append(buf, in.raw...)
	case fa != nil && !hasUnknownTags(fa.FetchResponse):
		fa.SetVersion(in.version)
		var recs net.Buffers
		var at []int
		buf, recs, at = fa.appendFetchWire(buf, nil, nil)
		size := len(buf) - 4
		for _, r := range recs {
			size += len(r)
		}
		binary.BigEndian.PutUint32(buf, uint32(size))
		prev := 0
		for i, r := range recs {
			if at[i] > prev {
				out, prev = append(out, buf[prev:at[i]]), at[i]
			}
			out = append(out, r)
		}
		return buf, append(out, buf[prev:])
	default:
		if fa != nil {
			fa.flatten()
		}
		in.resp.SetVersion(in.version)
		buf = in.resp.AppendTo(buf)
	}
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf, append(out, buf)
}
