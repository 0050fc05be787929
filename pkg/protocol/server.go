package protocol

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// Config is what the protocol layer needs to know about this agent.
type Config struct {
	NodeID            int32
	AdvertisedHost    string
	AdvertisedPort    int32
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

	// GroupInitialRebalanceDelay is group.initial.rebalance.delay.ms: how
	// long the first rebalance of an empty group waits for more members
	// (0: none; the agent's default is Kafka's 3 s).
	GroupInitialRebalanceDelay time.Duration
	// AgentTTL is how long an agent counts as live after its last
	// metadata-log entry.
	AgentTTL               time.Duration
	GroupMinSessionTimeout time.Duration // group.min.session.timeout.ms; 0: 6 s
	GroupMaxSessionTimeout time.Duration // group.max.session.timeout.ms; 0: 30 min
}

// Server serves Kafka clients.
type Server struct {
	cfg       Config
	log       *meta.Log
	ingest    *tiered.Ingest
	reader    *tiered.Reader
	producers producerIDs
	groups    *coordinator
	metrics   metrics
	sessions  fetchSessions // their own lock

	mu       sync.Mutex
	conns    map[*conn]struct{}
	draining bool
	wg       sync.WaitGroup
}

// New returns a Server over the agent's parts.
func New(cfg Config, log *meta.Log, ingest *tiered.Ingest, reader *tiered.Reader, reg prometheus.Registerer) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.AgentTTL <= 0 {
		cfg.AgentTTL = 10 * time.Second
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 64
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultReplicas <= 0 {
		cfg.DefaultReplicas = 1
	}
	if cfg.MaxPartitionsPerTopic <= 0 {
		cfg.MaxPartitionsPerTopic = DefaultMaxPartitionsPerTopic
	}
	if cfg.MaxPartitions <= 0 {
		cfg.MaxPartitions = DefaultMaxPartitions
	}
	s := &Server{cfg: cfg, log: log, ingest: ingest, reader: reader, conns: map[*conn]struct{}{}}
	s.producers.log = log
	s.groups = newCoordinator(s)
	s.metrics = newMetrics(reg)
	return s
}

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	var backoff time.Duration
	for {
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
		c := &conn{s: s, nc: nc, queue: make(chan *inflight, s.cfg.MaxInflight)}
		if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
			c.client.host = "/" + host
		}
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Drain stops reading new requests, waits until every request already read
// is answered (or ctx ends), and closes all connections. The caller closes
// the listener first and flushes the ingest buffer meanwhile.
func (s *Server) Drain(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Now()) // unblocks the read loop
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
}

type conn struct {
	s     *Server
	nc    net.Conn
	queue chan *inflight // answers in request order

	// client is the client id of the connection's first request and the
	// peer's host, for group members. Written once before any handler runs.
	client     clientInfo
	sawRequest bool

	// change is the log append of the newest state-changing request read
	// on this connection that may not be applied yet, and commitsOnly says
	// whether every such request since the last wait was an OffsetCommit
	// (order.go). Read loop only.
	change      *meta.Pending
	commitsOnly bool
}

type connKey struct{}

// clientOf returns who is on the other end of a handler's connection.
func clientOf(ctx context.Context) clientInfo {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		return c.client
	}
	return clientInfo{}
}

type inflight struct {
	key, version  int16
	correlationID int32
	flexible      bool
	raw           []byte // a pre-encoded body (errors for undecodable requests)
	start         time.Time
	done          chan struct{}
	resp          kmsg.Response
}

func (c *conn) serve() {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), connKey{}, c))
	writerDone := make(chan struct{})
	go func() { c.writeLoop(); close(writerDone) }()
	err := c.readLoop(ctx)
	if !errors.Is(err, errDraining) {
		cancel() // the client is gone: stop long polls early
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errDraining) {
		c.s.cfg.Logger.Info("closing connection", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
	close(c.queue)
	<-writerDone
	cancel()
	c.nc.Close()
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	c.s.wg.Done()
}

var errDraining = errors.New("draining")

// readLoop reads frames, decodes them and starts their handlers. A frame
// that cannot be decoded ends this connection only.
func (c *conn) readLoop(ctx context.Context) error {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			if c.isDraining() {
				return errDraining
			}
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 8 || size > c.s.cfg.MaxRequestBytes {
			return fmt.Errorf("request size %d out of bounds", size)
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(r, frame); err != nil {
			return fmt.Errorf("truncated request: %w", err)
		}
		in, req, handle, err := c.decode(frame)
		if err != nil {
			return err
		}
		in.start = time.Now()
		if req == nil {
			close(in.done) // answered with a pre-encoded error
		} else {
			if err := c.awaitChange(ctx, in.key); err != nil {
				return err
			}
			finish := c.phaseOne(ctx, in.key, handle, req)
			go func() {
				in.resp = finish()
				close(in.done)
			}()
		}
		c.queue <- in
	}
}

func (c *conn) isDraining() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.draining
}

// decode parses the request header and body. For an unknown API or an
// unsupported version it returns a nil request and a pre-encoded
// UNSUPPORTED_VERSION answer, keeping the connection.
func (c *conn) decode(frame []byte) (*inflight, kmsg.Request, handler, error) {
	key := int16(binary.BigEndian.Uint16(frame[0:]))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	in := &inflight{key: key, version: version, correlationID: int32(binary.BigEndian.Uint32(frame[4:])), done: make(chan struct{})}
	a, ok := apis[key]
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
	req.SetVersion(version)
	in.flexible = req.IsFlexible()
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
			c.client.id = string(body[:idLen])
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
	return in, req, a.handle, nil
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

// writeLoop writes answers in request order, flushing when none is ready.
func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	buf := make([]byte, 0, 64<<10)
	broken := false
	for in := range c.queue {
		<-in.done
		c.s.metrics.observe(in.key, in.start)
		if broken || (in.resp == nil && in.raw == nil) {
			continue // acks=0 produce: no answer
		}
		buf = append(buf[:0], 0, 0, 0, 0)
		buf = binary.BigEndian.AppendUint32(buf, uint32(in.correlationID))
		// ApiVersions answers always use header v0, so that a client
		// can read them before it knows our versions.
		if in.flexible && in.key != kmsg.ApiVersions.Int16() && in.raw == nil {
			buf = append(buf, 0)
		}
		if in.raw != nil {
			buf = append(buf, in.raw...)
		} else {
			in.resp.SetVersion(in.version)
			if fr, ok := in.resp.(*kmsg.FetchResponse); ok {
				// Size the buffer once: growing it by appending a
				// many-MiB answer copies it over and over.
				n := 64
				for i := range fr.Topics {
					n += len(fr.Topics[i].Topic) + 32
					for j := range fr.Topics[i].Partitions {
						n += len(fr.Topics[i].Partitions[j].RecordBatches) + 64
					}
				}
				buf = slices.Grow(buf, n)
			}
			buf = in.resp.AppendTo(buf)
		}
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
		if _, err := w.Write(buf); err != nil {
			broken = true
			c.nc.Close()
			continue
		}
		if len(c.queue) == 0 {
			if err := w.Flush(); err != nil {
				broken = true
				c.nc.Close()
			}
		}
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 64<<10) // do not pin one huge fetch's buffer
		}
	}
	w.Flush()
}
