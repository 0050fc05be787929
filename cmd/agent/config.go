package main

import (
	"flag"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/jobs"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/protocol"
)

// config is every setting of the agent, with its defaults in one place.
type config struct {
	Listen            string
	Advertise         string
	PeerAdvertise     string
	Zone              string
	Store             string
	MetaStore         string
	HTTP              string
	FlushInterval     time.Duration
	FlushBytes        int64
	CacheBytes        int64
	MemoryLimit       int64
	AutoCreateTopics  bool
	DefaultPartitions int
	MetaPoll          time.Duration
	LogLevel          string
	GroupInitialDelay time.Duration
	TxnMaxTimeout     time.Duration
	TxnIDExpiration   time.Duration
	TxnAbortInterval  time.Duration
	OffsetsRetention  time.Duration
	OffsetsCheck      time.Duration
	Jobs              bool
	Sequencer         bool
	RetentionCheck    time.Duration
	CollectGrace      time.Duration
	CompactionEvery   time.Duration
	CompactionTarget  int64
	CleanerBackoff    time.Duration
	CleanerKeys       int
	OrphanGrace       time.Duration
	MetaRetention     time.Duration
	MetaSnapEvery     uint64
	JobLease          time.Duration
	WriteTimeout      time.Duration
	MaxTopicParts     int
	MaxParts          int
	ProducerExpiry    time.Duration
	FetchMaxBytes     int
	QueuedMaxBytes    int64
	ConnMaxIdle       time.Duration
	MaxConns          int
	MaxConnsPerIP     int
	BodyTimeout       time.Duration
	Pprof             bool
	FormatGrace       time.Duration
	DrainTimeout      time.Duration
	Security          securityFlags
}

// parseConfig fills the config from flags, then from BARGE_* variables
// for every flag not given on the command line.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", ":9092", "Kafka listener address")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port clients should connect to (default: the listener, with localhost for an empty host); \"auto\" is this instance's private IPv4 address from EC2 instance metadata (IMDSv2, local-ipv4) with the port of --listen")
	fs.StringVar(&c.PeerAdvertise, "peer-advertise", "", "host:port other agents reach this one at (default: --advertise); set it to this agent's own address when --advertise is shared with other agents (a load balancer's), which tells the agents apart and lets them forward group requests to the one that coordinates the group; \"auto\" is this instance's private IPv4 address from EC2 instance metadata with the port of --listen")
	fs.StringVar(&c.Zone, "zone", "", "this agent's availability zone, recorded in the metadata log and reported as its broker.rack; \"auto\" reads it from EC2 instance metadata (IMDSv2) at start-up")
	fs.StringVar(&c.Store, "store", "file://./data", "bucket URL: file://DIR, s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path_style=true, or mem://")
	fs.StringVar(&c.MetaStore, "meta-store", "", "bucket URL for the metadata log and its snapshots, if not --store's (for example an S3 Express One Zone directory bucket, whose conditional writes are faster); segments stay in --store. Fixed for a cluster's life: the two buckets are bound to each other by the cluster id at first start")
	fs.StringVar(&c.HTTP, "http", ":9644", "address for /metrics, /healthz and /readyz (empty: off)")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 0, "seal the ingest buffer this long after its first record (default 250ms for s3, 5ms for file and mem)")
	fs.Int64Var(&c.FlushBytes, "flush-bytes", 8<<20, "seal the ingest buffer at this many bytes")
	fs.Int64Var(&c.CacheBytes, "cache-bytes", 512<<20, "memory for cached segment bytes")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", 0, "the Go runtime's soft memory limit, toward which it collects garbage harder (0: cache-bytes plus 224 MiB; negative: none; the GOMEMLIMIT environment variable wins)")
	fs.BoolVar(&c.AutoCreateTopics, "auto-create-topics", true, "create unknown topics named in Metadata requests (auto.create.topics.enable)")
	fs.IntVar(&c.DefaultPartitions, "default-partitions", 1, "partitions of auto-created topics (num.partitions)")
	fs.DurationVar(&c.MetaPoll, "meta-poll-interval", 100*time.Millisecond, "how often to look for other agents' metadata-log entries")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&c.GroupInitialDelay, "group-initial-rebalance-delay", 3*time.Second, "how long the first rebalance of an empty consumer group waits for more members (group.initial.rebalance.delay.ms)")
	fs.DurationVar(&c.TxnMaxTimeout, "transaction-max-timeout", 15*time.Minute, "the longest transaction timeout a producer may ask for (transaction.max.timeout.ms)")
	fs.DurationVar(&c.TxnIDExpiration, "transactional-id-expiration", 7*24*time.Hour, "how long a transactional id with no open transaction is kept after its last use (transactional.id.expiration.ms)")
	fs.DurationVar(&c.TxnAbortInterval, "transaction-abort-interval", 10*time.Second, "how often a coordinator aborts its transactions open past their timeout (transaction.abort.timed.out.transaction.cleanup.interval.ms)")
	fs.DurationVar(&c.OffsetsRetention, "offsets-retention", 7*24*time.Hour, "delete the offsets of a group that has had no members and no commits for this long (offsets.retention.minutes)")
	fs.DurationVar(&c.OffsetsCheck, "offsets-retention-check-interval", 10*time.Minute, "how often to look for expired group offsets (offsets.retention.check.interval.ms)")
	fs.BoolVar(&c.Jobs, "jobs", true, "run background jobs (retention and collection) on this agent")
	fs.BoolVar(&c.Sequencer, "meta-sequencer", true, "append metadata-log entries through the fleet's sequencing agent, and be it if chosen (only agents that run jobs are); false: always append directly")
	fs.DurationVar(&c.RetentionCheck, "retention-check-interval", 5*time.Minute, "how often to apply retention.ms and retention.bytes and collect released objects (log.retention.check.interval.ms)")
	fs.DurationVar(&c.CollectGrace, "collect-grace", 10*time.Minute, "how long an object no partition refers to stays in the bucket before it is deleted, so reads in flight finish")
	fs.DurationVar(&c.CompactionEvery, "compaction-interval", 5*time.Minute, "how often to merge small ingestion objects' chunks into per-partition objects (0: never)")
	fs.DurationVar(&c.OrphanGrace, "orphan-grace", 10*time.Minute, "how old a seg/, cmp/ or cln/ object no partition refers to and not released must be before the metadata log condemns it as an orphan and it is deleted; must exceed --write-timeout (0: never)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", jobs.DefaultWriteTimeout, "how long a segment may take from its seal to its commit, and a job's output from its write to its log entry, before the agent gives up (producers get a retriable error); no commit is attempted later")
	fs.IntVar(&c.MaxTopicParts, "max-partitions-per-topic", protocol.DefaultMaxPartitionsPerTopic, "the most partitions one topic may have (CreateTopics, CreatePartitions and auto-creation get INVALID_PARTITIONS past it)")
	fs.IntVar(&c.MaxParts, "max-partitions", protocol.DefaultMaxPartitions, "the most partitions all topics may have together (KIP-578's max.partitions; POLICY_VIOLATION past it)")
	fs.DurationVar(&c.FormatGrace, "cluster-format-grace", time.Hour, "how long a member of the cluster (any agent that wrote to the metadata log and did not leave cleanly) must have been silent before the cluster format may move without it")
	fs.DurationVar(&c.ProducerExpiry, "producer-id-expiration", 24*time.Hour, "drop the state of an idempotent producer silent this long (producer.id.expiration.ms); at most 24h")
	fs.DurationVar(&c.MetaRetention, "meta-retention", time.Hour, "how long metadata log entries a snapshot covers stay in the bucket before the trim job deletes them; a writer that has not read the log for half of it re-reads before appending (0: never delete)")
	fs.Uint64Var(&c.MetaSnapEvery, "meta-snapshot-entries", 1000, "metadata log entries between snapshots")
	fs.DurationVar(&c.CleanerBackoff, "cleaner-backoff", 15*time.Second, "how often key compaction looks for compacted topics' partitions due for cleaning (log.cleaner.backoff.ms; 0: never)")
	fs.IntVar(&c.CleanerKeys, "cleaner-keys", 1<<20, "distinct keys one key-compaction pass maps, about 40 bytes each (log.cleaner.dedupe.buffer.size)")
	fs.Int64Var(&c.CompactionTarget, "compaction-target-bytes", 64<<20, "size compacted objects grow to; chunks under an eighth of it are merged")
	fs.DurationVar(&c.JobLease, "job-lease", 2*time.Minute, "how long a background job's lease in the metadata log lasts unless its agent renews it (every third of it while the job runs); a killed agent's jobs wait this long for another agent")
	fs.IntVar(&c.FetchMaxBytes, "fetch-max-bytes", 55<<20, "the most record bytes one Fetch answer holds, whatever the client asks; the first batch is returned even if larger (fetch.max.bytes)")
	fs.Int64Var(&c.QueuedMaxBytes, "queued-max-request-bytes", 256<<20, "bytes of requests read but not yet answered, over all connections; past it the agent stops reading until answers are written (queued.max.request.bytes)")
	fs.DurationVar(&c.ConnMaxIdle, "connections-max-idle", 10*time.Minute, "close a connection that has had no request and no answer due for this long (connections.max.idle.ms)")
	fs.IntVar(&c.MaxConns, "max-connections", 4096, "client connections the agent holds open; at this many it stops accepting until one closes (max.connections)")
	fs.IntVar(&c.MaxConnsPerIP, "max-connections-per-ip", 1024, "client connections from one address; more are closed at once (max.connections.per.ip)")
	fs.DurationVar(&c.BodyTimeout, "request-body-timeout", 10*time.Second, "how far a request's body may fall behind 1 MiB/s once the agent starts reading it before the connection is closed and its share of queued-max-request-bytes given back (Kafka has none)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 30*time.Second, "how long the drain on SIGTERM may take in all (stop accepting, flush and answer what is buffered, record the departure); past it the agent exits with what is left unanswered, and producers retry elsewhere. Keep it inside the load balancer's deregistration delay and the autoscaling lifecycle hook's timeout")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go profiles at /debug/pprof/ on the --http listener")
	c.Security.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "BARGE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !set[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	if err != nil {
		return c, err
	}
	return c, c.finish()
}

// finish derives defaults that depend on other settings and validates.
func (c *config) finish() error {
	if c.FlushInterval == 0 {
		c.FlushInterval = 5 * time.Millisecond
		if strings.HasPrefix(c.Store, "s3://") {
			c.FlushInterval = 250 * time.Millisecond
		}
	}
	if c.OffsetsRetention <= 0 || c.OffsetsCheck <= 0 {
		return fmt.Errorf("offsets-retention and offsets-retention-check-interval must be positive")
	}
	if c.RetentionCheck <= 0 || c.CollectGrace < 0 {
		return fmt.Errorf("retention-check-interval must be positive and collect-grace not negative")
	}
	if c.CleanerBackoff < 0 || c.CleanerKeys <= 0 {
		return fmt.Errorf("cleaner-backoff must not be negative and cleaner-keys must be positive")
	}
	if c.CompactionEvery < 0 || c.CompactionTarget <= 0 {
		return fmt.Errorf("compaction-interval must not be negative and compaction-target-bytes must be positive")
	}
	if c.MetaRetention < 0 || c.MetaSnapEvery == 0 || c.OrphanGrace < 0 {
		return fmt.Errorf("meta-retention and orphan-grace must not be negative and meta-snapshot-entries must be positive")
	}
	if c.JobLease < time.Millisecond {
		return fmt.Errorf("job-lease must be at least 1ms")
	}
	if c.WriteTimeout <= 0 {
		return fmt.Errorf("write-timeout must be positive")
	}
	if c.OrphanGrace > 0 && c.OrphanGrace <= c.WriteTimeout {
		// Correctness does not rest on it (the log condemns orphans
		// before they go), but a shorter grace would condemn segments
		// whose commits are still within their time and fail their
		// produces.
		return fmt.Errorf("orphan-grace (%v) must exceed write-timeout (%v), the longest a segment may take to commit", c.OrphanGrace, c.WriteTimeout)
	}
	if c.MaxTopicParts < 1 || c.MaxTopicParts > meta.HardMaxPartitionsPerTopic || c.MaxParts < 1 || c.MaxParts > meta.HardMaxPartitions {
		return fmt.Errorf("max-partitions-per-topic must be in [1, %d] and max-partitions in [1, %d]", meta.HardMaxPartitionsPerTopic, meta.HardMaxPartitions)
	}
	if c.DefaultPartitions > c.MaxTopicParts {
		return fmt.Errorf("default-partitions (%d) exceeds max-partitions-per-topic (%d)", c.DefaultPartitions, c.MaxTopicParts)
	}
	if c.DrainTimeout <= 0 {
		return fmt.Errorf("drain-timeout must be positive")
	}
	if err := c.Security.check(); err != nil {
		return err
	}
	if c.FormatGrace <= 0 {
		return fmt.Errorf("cluster-format-grace must be positive")
	}
	if err := fleet.Check(fleet.TTL, fleet.HeartbeatInterval); err != nil {
		return err
	}
	if c.ProducerExpiry <= 0 || c.ProducerExpiry > 24*time.Hour {
		// The state machine treats a producer silent for a day as
		// unknown, whatever this says.
		return fmt.Errorf("producer-id-expiration must be in (0, 24h]")
	}
	if c.FetchMaxBytes < 1024 || c.FetchMaxBytes > math.MaxInt32 || c.QueuedMaxBytes <= 0 || c.ConnMaxIdle <= 0 || c.BodyTimeout <= 0 || c.MaxConns <= 0 || c.MaxConnsPerIP <= 0 {
		return fmt.Errorf("fetch-max-bytes must be from 1024 to 2^31-1, and queued-max-request-bytes, connections-max-idle, request-body-timeout, max-connections and max-connections-per-ip positive")
	}
	if c.TxnMaxTimeout <= 0 || c.TxnIDExpiration <= 0 || c.TxnAbortInterval <= 0 {
		return fmt.Errorf("--transaction-max-timeout, --transactional-id-expiration and --transaction-abort-interval must be positive")
	}
	if c.GroupInitialDelay < 0 {
		return fmt.Errorf("group-initial-rebalance-delay must not be negative")
	}
	if c.FlushInterval < 0 || c.FlushBytes <= 0 || c.CacheBytes <= 0 || c.DefaultPartitions <= 0 {
		return fmt.Errorf("flush-interval, flush-bytes, cache-bytes and default-partitions must be positive")
	}
	if c.Advertise == "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("listen %q: %w", c.Listen, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.Advertise = net.JoinHostPort(host, port)
	}
	if c.PeerAdvertise == "" {
		c.PeerAdvertise = c.Advertise
	}
	if c.Advertise == auto || c.PeerAdvertise == auto {
		// Resolved at start-up (resolveAddrs), with the listener's port.
		if _, port, err := net.SplitHostPort(c.Listen); err != nil || !validPort(port) {
			return fmt.Errorf("advertise auto and peer-advertise auto take the port of --listen %q, which has none", c.Listen)
		}
	}
	if c.Advertise != auto {
		if _, _, err := c.advertised(); err != nil {
			return err
		}
	}
	if c.PeerAdvertise != auto {
		if _, p, err := net.SplitHostPort(c.PeerAdvertise); err != nil || !validPort(p) {
			return fmt.Errorf("peer-advertise %q: want host:port", c.PeerAdvertise)
		}
	}
	return nil
}

func validPort(port string) bool {
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p <= 65535
}

// sharedAddress reports whether this agent's advertised address is meant
// to be shared with others: its peer address differs from it.
func (c *config) sharedAddress() bool { return c.PeerAdvertise != c.Advertise }

func (c *config) advertised() (string, int32, error) {
	host, port, err := net.SplitHostPort(c.Advertise)
	if err != nil {
		return "", 0, fmt.Errorf("advertise %q: %w", c.Advertise, err)
	}
	if !validPort(port) {
		return "", 0, fmt.Errorf("advertise %q: bad port", c.Advertise)
	}
	p, _ := strconv.Atoi(port)
	return host, int32(p), nil
}
