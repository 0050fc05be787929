package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/jobs"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
	"github.com/bargehq/barge/pkg/protocol"
	"github.com/bargehq/barge/pkg/tiered"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "barge agent:", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "barge agent: log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("agent failed", "err", err)
		os.Exit(1)
	}
}

// run starts every part, serves until ctx ends, then drains: buffered
// records are flushed and answered before the process exits.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	writerID := newWriterID()
	logger = logger.With("agent", writerID)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Before the bucket: an agent off EC2 with an "auto" address says so
	// at once.
	if err := cfg.resolveAddrs(ctx); err != nil {
		return err
	}
	raw, err := objstore.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	store := objstore.Instrument(raw, reg)
	metaStore := objstore.Store(store)
	if cfg.MetaStore != "" && cfg.MetaStore != cfg.Store {
		rawMeta, err := objstore.Open(ctx, cfg.MetaStore)
		if err != nil {
			return err
		}
		metaStore = objstore.Instrument(rawMeta, reg) // counted with the data bucket's requests
	}
	clusterID, err := loadClusterID(ctx, metaStore)
	if err != nil {
		return err
	}
	if metaStore != objstore.Store(store) {
		if err := bindDataStore(ctx, store, clusterID); err != nil {
			return err
		}
	}

	start := time.Now()
	opts := meta.Options{WriterID: writerID, PollInterval: cfg.MetaPoll,
		SnapshotEvery: cfg.MetaSnapEvery, Retention: cfg.MetaRetention, MaxQueueWait: cfg.WriteTimeout,
		FormatGrace: cfg.FormatGrace, Logger: logger}
	peerToken, err := loadPeerToken(ctx, metaStore)
	if err != nil {
		return err
	}
	sec, err := cfg.Security.build(logger)
	if err != nil {
		return err
	}
	if cfg.Sequencer {
		seqClient := protocol.NewSequencerClient(peerToken, sec.PeerTLS)
		defer seqClient.Close()
		opts.Relay, opts.Sequence = seqClient, cfg.Jobs
	}
	mlog, err := meta.Open(ctx, metaStore, opts)
	if err != nil {
		return err
	}
	logCtx, stopLog := context.WithCancel(context.Background())
	logDone := make(chan struct{})
	go func() { mlog.Run(logCtx); close(logDone) }()
	defer func() { stopLog(); <-logDone }()
	logger.Info("metadata log loaded", "took", time.Since(start).Round(time.Millisecond))
	registerLogMetrics(reg, mlog)
	var ready atomic.Bool
	httpSrv, err := startHTTP(cfg.HTTP, cfg.Pprof, reg, func() bool { return ready.Load() && mlog.Stalled() == nil }, logger)
	if err != nil {
		return err
	}
	if err := waitUnstalled(ctx, mlog, logger); err != nil {
		return err
	}
	// Registering gives this agent its broker id (kept per advertised
	// address across restarts) and makes it live for the others.
	zone, err := resolveZone(ctx, cfg.Zone)
	if err != nil {
		return err
	}
	hb := meta.AgentHeartbeat{Addr: cfg.Advertise, Zone: zone, PeerAddr: cfg.PeerAdvertise, NoJobs: !cfg.Jobs, NoSequence: !cfg.Sequencer}
	reg0, err := mlog.Append(ctx, hb)
	if err != nil {
		return fmt.Errorf("registering in the metadata log: %w", err)
	}
	nodeID := reg0[0].NodeID
	var formatAtReg meta.Format
	mlog.View(func(st *meta.State) { formatAtReg = st.Format() })
	// Announce, then raise the format if every member has announced it.
	// A shared address needs Format3, so such an agent waits for the
	// others of its build started with it to announce theirs.
	need, within := mlog.MaxFormat(), time.Duration(0)
	if cfg.sharedAddress() {
		need, within = meta.Format3, formatWait
	}
	f, err := mlog.AwaitFormat(ctx, need, within)
	if err != nil {
		return fmt.Errorf("cluster format: %w", err)
	}
	if cfg.sharedAddress() && f < meta.Format3 {
		return fmt.Errorf("--peer-advertise %s differs from --advertise %s, which needs cluster format %d; the cluster is at %d while an agent of an older build is a member",
			cfg.PeerAdvertise, cfg.Advertise, meta.Format3, f)
	}
	if f > formatAtReg {
		// The newer format's heartbeat says more (the peer address from
		// Format3, --jobs=false from Format4): register again with it.
		if reg0, err = mlog.Append(ctx, hb); err != nil {
			return fmt.Errorf("registering in the metadata log: %w", err)
		}
		nodeID = reg0[0].NodeID
	}
	// Heartbeats stop before the departure is recorded, so that a
	// draining agent does not join again on its way out.
	hbCtx, stopHeartbeats := context.WithCancel(logCtx)
	defer stopHeartbeats()
	replaced := make(chan error, 1)
	go func() {
		if err := fleet.Heartbeat(hbCtx, mlog, hb, logger); err != nil {
			replaced <- err
		}
	}()
	go stepFormat(logCtx, mlog, logger)

	setMemoryLimit(cfg, logger)
	pageCache, err := cache.New(cfg.CacheBytes, reg)
	if err != nil {
		return err
	}
	defer pageCache.Close()
	ingest := tiered.NewIngest(tiered.IngestConfig{FlushInterval: cfg.FlushInterval, FlushBytes: cfg.FlushBytes,
		WriteTimeout: cfg.WriteTimeout, WriterID: writerID, Logger: logger}, store, mlog, pageCache, reg)
	reader := tiered.NewReader(store, pageCache).Register(reg)
	defer reader.Close() // before pageCache.Close: its workers read through the cache
	if cfg.CacheBytes/4/cfg.FlushBytes >= 4 {
		// A quarter of the cache holds at least four segments: reading a
		// segment whole then serves its other partitions from memory
		// instead of one GET each. Segments read whole get three eighths
		// of it; one fetch reads ahead at most all but two of those, and
		// never past the segments not yet read (cache.RoomAhead).
		pageCache.FavourWhole()
		reader.ReadWholeSegments(int(cfg.CacheBytes*3/8/cfg.FlushBytes) - 2)
	}
	host, port, _ := cfg.advertised()
	srv := protocol.New(protocol.Config{
		NodeID: nodeID, AdvertisedHost: host, AdvertisedPort: port, PeerAddr: cfg.PeerAdvertise, PeerToken: peerToken, Zone: zone, ClusterID: clusterID,
		AutoCreateTopics: cfg.AutoCreateTopics, DefaultPartitions: int32(cfg.DefaultPartitions), Logger: logger,
		MaxPartitionsPerTopic: int32(cfg.MaxTopicParts), MaxPartitions: cfg.MaxParts,
		GroupInitialRebalanceDelay: cfg.GroupInitialDelay, AgentTTL: fleet.TTL,
		FetchMaxBytes: int32(cfg.FetchMaxBytes), QueuedMaxRequestBytes: cfg.QueuedMaxBytes, ConnectionsMaxIdle: cfg.ConnMaxIdle,
		MaxConnections: cfg.MaxConns, MaxConnectionsPerIP: cfg.MaxConnsPerIP,
		RequestBodyTimeout: cfg.BodyTimeout, Security: sec,
		TxnMaxTimeout: cfg.TxnMaxTimeout, TxnIDExpiration: cfg.TxnIDExpiration, TxnAbortInterval: cfg.TxnAbortInterval,
	}, mlog, ingest, reader, reg)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		ingest.Close()
		return err
	}
	go expireOffsets(logCtx, srv, cfg.OffsetsRetention, cfg.OffsetsCheck, logger)
	go srv.RunTransactions(logCtx)
	stopJobs := func() {}
	if cfg.Jobs {
		runner := jobs.New(jobs.Config{Interval: cfg.RetentionCheck, Grace: cfg.CollectGrace, OrphanGrace: cfg.OrphanGrace, Owns: srv.Fleet().OwnsJob, Logger: logger,
			CompactionInterval: cfg.CompactionEvery, CompactionTarget: cfg.CompactionTarget, WriterID: writerID,
			CleanerBackoff: cfg.CleanerBackoff, CleanerKeys: cfg.CleanerKeys,
			MetaRetention: cfg.MetaRetention, MetaSnapshotEvery: cfg.MetaSnapEvery, LeaseDuration: cfg.JobLease,
			WriteTimeout: cfg.WriteTimeout, ProducerExpiry: cfg.ProducerExpiry}, mlog, store, reg)
		// Stopped before the departure is recorded (and before the log
		// on any other way out), so that the jobs' leases are released
		// in the log rather than left to run out.
		jobsCtx, cancelJobs := context.WithCancel(logCtx)
		jobsDone := make(chan struct{})
		go func() { runner.Run(jobsCtx); close(jobsDone) }()
		stopJobs = sync.OnceFunc(func() { cancelJobs(); <-jobsDone })
		defer stopJobs()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	ready.Store(true)
	logger.Info("serving Kafka", "listen", ln.Addr().String(), "advertise", cfg.Advertise, "peer_advertise", cfg.PeerAdvertise, "node", nodeID, "zone", zone, "store", cfg.Store,
		"flush_interval", cfg.FlushInterval, "http", cfg.HTTP)

	var stopErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		ingest.Close()
		return err
	case stopErr = <-replaced:
		// Its commits are refused from now on: stop, so that a newer
		// process at this address (or a restart) serves instead.
		logger.Error("stopping: this agent is no longer in the metadata log", "err", stopErr)
	}
	logger.Info("draining", "timeout", cfg.DrainTimeout)
	ready.Store(false)
	ln.Close()
	// A sequencer hands over now, not at the departure: it will soon
	// answer no one. Leave waits for it.
	resigned := make(chan struct{})
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), min(cfg.DrainTimeout/5, 5*time.Second))
		defer cancel()
		if err := mlog.Resign(rctx); err != nil {
			logger.Warn("giving up the sequencer lease", "err", err)
		}
		close(resigned)
	}()
	// --drain-timeout bounds everything from here to the exit. Answering
	// what is buffered gets all of it but a reserve, in which the
	// departure is recorded and the rest stops; at the end the process
	// exits whatever is left (the load balancer and the lifecycle hook
	// wait no longer, and a killed agent loses nothing acknowledged).
	drainStart := time.Now()
	reserve := min(cfg.DrainTimeout/5, 5*time.Second)
	watchdog := time.AfterFunc(cfg.DrainTimeout, func() {
		logger.Error("drain timeout: exiting before every part stopped", "timeout", cfg.DrainTimeout)
		os.Exit(1)
	})
	defer watchdog.Stop()
	answerCtx, cancelAnswer := context.WithDeadline(context.Background(), drainStart.Add(cfg.DrainTimeout-reserve))
	defer cancelAnswer()
	leaveCtx, cancelLeave := context.WithDeadline(context.Background(), drainStart.Add(cfg.DrainTimeout-reserve/2))
	defer cancelLeave()
	drained := make(chan struct{})
	go func() { srv.Drain(answerCtx); close(drained) }()
	flushed := make(chan struct{})
	go func() { ingest.Close(); close(flushed) }() // seals, uploads, commits and answers what is buffered
	select {
	case <-flushed:
	case <-answerCtx.Done():
		// Its producers are not answered and send again to another
		// agent; a commit landing after the departure is refused.
		logger.Error("drain timeout: buffered records not stored in time", "timeout", cfg.DrainTimeout)
		if stopErr == nil {
			stopErr = fmt.Errorf("drain timeout (%v): buffered records were not stored and answered in time", cfg.DrainTimeout)
		}
	}
	<-drained
	<-resigned
	stopHeartbeats()
	stopJobs()
	// Gone for good, as far as the cluster format is concerned: a restart
	// rejoins with its first entry.
	if err := mlog.Leave(leaveCtx); err != nil {
		logger.Warn("recording the departure in the metadata log", "err", err)
	}
	if httpSrv != nil {
		httpSrv.Shutdown(leaveCtx)
	}
	logger.Info("stopped")
	return stopErr
}

// stepFormat moves the cluster format toward this build's (meta/format.go):
// it announces what this agent understands, and raises the format once
// every member of the cluster has.
// formatWait bounds how long an agent on a shared address waits at
// start-up for the agents of its build started with it to announce their
// format (meta.Log.AwaitFormat): each announces right after it registers,
// an append or two, so only a member of an older build takes longer.
const formatWait = 10 * time.Second

func stepFormat(ctx context.Context, mlog *meta.Log, logger *slog.Logger) {
	jobs.Every(ctx, fleet.HeartbeatInterval, func(ctx context.Context) {
		if err := mlog.StepFormat(ctx, time.Now()); err != nil && ctx.Err() == nil {
			logger.Warn("cluster format", "err", err)
		}
	})
}

// waitUnstalled holds the start-up of an agent whose metadata log stopped
// at an entry it cannot read (a newer build wrote it): it serves nothing
// but /healthz (and /readyz, which says not ready) and says, every
// minute, which format it needs, until the entry reads (a bad read healed)
// or the agent is stopped to be upgraded.
func waitUnstalled(ctx context.Context, mlog *meta.Log, logger *slog.Logger) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var said time.Time
	for {
		st := mlog.Stalled()
		if st == nil {
			return nil
		}
		if time.Since(said) >= time.Minute {
			logger.Error("not serving: the metadata log holds an entry this agent cannot read; upgrade it", "slot", st.Seq, "err", st.Err)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// registerLogMetrics exports the metadata log's format and health.
func registerLogMetrics(reg prometheus.Registerer, mlog *meta.Log) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "barge_meta_format",
			Help: "The cluster format version of the metadata log, as this agent has applied it."}, func() float64 {
			var f meta.Format
			mlog.View(func(st *meta.State) { f = st.Format() })
			return float64(f)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "barge_meta_max_format",
			Help: "The newest cluster format version this agent understands."}, func() float64 { return float64(mlog.MaxFormat()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "barge_meta_stalled",
			Help: "1 while the metadata log is stopped at an entry this agent cannot read (it needs an upgrade)."}, func() float64 {
			if mlog.Stalled() != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "barge_meta_applied_slot",
			Help: "The last metadata-log slot this agent applied."}, func() float64 { return float64(mlog.Seq()) }),
	)
}

// expireOffsets deletes expired group offsets every interval.
func expireOffsets(ctx context.Context, srv *protocol.Server, retention, interval time.Duration, logger *slog.Logger) {
	jobs.Every(ctx, interval, func(ctx context.Context) {
		groups, err := srv.ExpireOffsets(ctx, retention)
		if err != nil && ctx.Err() == nil {
			logger.Warn("expiring group offsets", "err", err)
		} else if len(groups) > 0 {
			logger.Info("expired group offsets", "groups", groups)
		}
	})
}

func startHTTP(addr string, profiles bool, reg *prometheus.Registry, ready func() bool, logger *slog.Logger) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if profiles {
		// Only on request (make bench -profile passes --pprof): a
		// profile costs the agent CPU, and the heap's names and sizes
		// are nothing to show whoever reaches the metrics port.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", "err", err)
		}
	}()
	return srv, nil
}

// loadClusterID returns the bucket's cluster id, creating it on first use:
// every agent on one bucket reports the same id.
func loadClusterID(ctx context.Context, store objstore.Store) (string, error) {
	var raw [16]byte
	rand.Read(raw[:])
	// Kafka's form: a UUID in 22 characters.
	return loadOrCreate(ctx, store, meta.ClusterIDKey, "cluster id", base64.RawURLEncoding.EncodeToString(raw[:]))
}

// loadPeerToken returns the secret agents on the bucket greet each other
// with, creating it on first use. Clients see the cluster id (Metadata
// answers it), never this.
func loadPeerToken(ctx context.Context, store objstore.Store) (string, error) {
	var raw [32]byte
	rand.Read(raw[:])
	return loadOrCreate(ctx, store, meta.PeerTokenKey, "peer token", hex.EncodeToString(raw[:]))
}

// loadOrCreate returns the value at key, writing fresh there first unless
// another agent did.
func loadOrCreate(ctx context.Context, store objstore.Store, key, what, fresh string) (string, error) {
	err := store.PutIfAbsent(ctx, key, []byte(fresh))
	if err == nil {
		return fresh, nil
	}
	if !errors.Is(err, objstore.ErrExists) {
		return "", fmt.Errorf("creating %s: %w", what, err)
	}
	b, err := store.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	return string(b), nil
}

// bindDataStore ties the data bucket to the cluster whose metadata log is
// in another bucket (--meta-store): the data bucket carries the cluster id
// too, created with the first start. A data bucket that names another
// cluster, or whose own metadata log this one would not read, is refused:
// starting on it would leave its segments unreferenced, and the orphan
// sweep would delete them.
func bindDataStore(ctx context.Context, store objstore.Store, clusterID string) error {
	if has, err := meta.HasLog(ctx, store); err != nil || has {
		if err == nil {
			err = errors.New("--store holds a metadata log of its own: its cluster keeps its log there, and another --meta-store would start an empty cluster over its data")
		}
		return err
	}
	err := store.PutIfAbsent(ctx, meta.ClusterIDKey, []byte(clusterID))
	if errors.Is(err, objstore.ErrExists) {
		var b []byte
		if b, err = store.Get(ctx, meta.ClusterIDKey); err == nil && string(b) != clusterID {
			return fmt.Errorf("--store holds the data of cluster %s, but the metadata log in --meta-store is cluster %s's: they are not one cluster's buckets (a cluster's --meta-store cannot change)", b, clusterID)
		}
	}
	if err != nil {
		return fmt.Errorf("binding --store to the cluster: %w", err)
	}
	return nil
}

func newWriterID() string {
	var b [5]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
