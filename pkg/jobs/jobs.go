package jobs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// Log is what the jobs need of the metadata log.
type Log interface {
	View(fn func(*meta.State))
	Append(ctx context.Context, ops ...meta.Op) ([]meta.Result, error)
}

// Store is what the jobs need of the bucket.
type Store interface {
	Put(ctx context.Context, key string, data []byte) error
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error)
}

// Trimmer is the metadata log's trim pass (meta.Log.Trim).
type Trimmer interface {
	Trim(ctx context.Context, now time.Time, retention time.Duration, every uint64) (meta.TrimStats, error)
}

// Config configures a Runner.
type Config struct {
	Interval time.Duration // between passes (log.retention.check.interval.ms)
	Grace    time.Duration // how long a released object stays in the bucket
	// OrphanGrace is how old (by the timestamp in its key) an object no
	// chunk refers to must be before it is swept as an orphan; it must
	// exceed the longest time from a segment's first record to its
	// commit. 0: no sweep.
	OrphanGrace time.Duration
	Owns        func(job string) bool // whether this agent should run the job (a hint; leases decide); never called inside Log.View, which it may take itself
	Logger      *slog.Logger
	// LeaseDuration is how long a job lease lasts unless renewed (lease.go);
	// a killed agent's jobs wait this long for another agent.
	LeaseDuration time.Duration

	CompactionInterval time.Duration // between compaction passes; 0: no compaction
	CompactionTarget   int64         // size a compacted object grows to (compact.go)
	WriterID           string        // names the compacted objects

	// CleanerBackoff is the time between key-compaction passes
	// (log.cleaner.backoff.ms); 0: no key compaction.
	CleanerBackoff time.Duration
	CleanerKeys    int // keys one key-compaction pass maps (clean.go)

	MetaRetention     time.Duration // how long trimmed-away log entries stay; 0: no trimming
	MetaSnapshotEvery uint64        // entries between the trim job's snapshots (0: the log's own)

	// WriteTimeout bounds the time from starting to write a job's output
	// object to its op landing in the log (the agent's --write-timeout,
	// which OrphanGrace exceeds).
	WriteTimeout time.Duration
	// ProducerExpiry is producer.id.expiration.ms: idempotent producers
	// silent for this long are dropped from the state (ExpireProducers);
	// 0: never.
	ProducerExpiry time.Duration
}

// DefaultWriteTimeout is the agent's default --write-timeout.
const DefaultWriteTimeout = 2 * time.Minute

// maxOpsPerEntry bounds one log entry of a pass.
const maxOpsPerEntry = 1000

// Runner runs retention and collection.
type Runner struct {
	cfg       Config
	log       Log
	store     Store
	advanced  prometheus.Counter
	collected prometheus.Counter
	compacted prometheus.Counter
	trimmed   prometheus.Counter
	leases    *prometheus.CounterVec
	cleaned   prometheus.Counter
	condemned prometheus.Counter
	expired   prometheus.Counter
	objects   atomic.Int64 // names compacted objects
}

// New returns a Runner; reg may be nil.
func New(cfg Config, log Log, store Store, reg prometheus.Registerer) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CompactionTarget <= 0 {
		cfg.CompactionTarget = DefaultCompactionTarget
	}
	if cfg.CleanerKeys <= 0 {
		cfg.CleanerKeys = DefaultCleanerKeys
	}
	if cfg.Owns == nil {
		cfg.Owns = func(string) bool { return true }
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	cfg.LeaseDuration = max(cfg.LeaseDuration, 3*time.Millisecond) // leases are whole ms, renewed every third
	r := &Runner{cfg: cfg, log: log, store: store,
		advanced: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_retention_log_start_moves_total",
			Help: "Partition log starts this agent advanced for retention.ms or retention.bytes."}),
		collected: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_collected_objects_total",
			Help: "Segment objects this agent deleted because no partition referred to them any more."}),
		compacted: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_compacted_chunks_total",
			Help: "Small chunks this agent replaced by compacted objects (file compaction)."}),
		trimmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_meta_trimmed_entries_total",
			Help: "Metadata log entries this agent deleted because a snapshot covered them."}),
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_job_leases_total",
			Help: "Job leases this agent asked for before running a job, by outcome: granted, or held by another agent."}, []string{"outcome"}),
		cleaned: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cleaned_partitions_total",
			Help: "Key-compaction passes over a partition of a compacted topic this agent committed."}),
		condemned: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_condemned_objects_total",
			Help: "Orphan objects the metadata log condemned at this agent's request, to be deleted."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_expired_producers_total",
			Help: "Idempotent producer states (per partition) dropped at this agent's request after producer.id.expiration.ms."}),
	}
	if reg != nil {
		released := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "barge_released_objects",
			Help: "Segment objects no partition refers to that are not yet deleted (all agents)."}, func() float64 {
			var n int
			log.View(func(st *meta.State) { n = st.ReleasedCount() })
			return float64(n)
		})
		reg.MustRegister(r.advanced, r.collected, r.compacted, r.trimmed, r.cleaned, r.leases, r.condemned, r.expired, released)
	}
	return r
}

// Run makes a pass every Interval, a compaction pass every
// CompactionInterval and a key-compaction pass every CleanerBackoff, until
// ctx ends.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.cfg.CompactionInterval > 0 {
		wg.Go(func() { r.runCompaction(ctx) })
	}
	if r.cfg.CleanerBackoff > 0 {
		wg.Go(func() { r.runCleaner(ctx) })
	}
	Every(ctx, r.cfg.Interval, func(ctx context.Context) {
		now := time.Now()
		if n, err := r.Retention(ctx, now); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("retention", "err", err)
		} else if n > 0 {
			r.cfg.Logger.Debug("retention advanced log starts", "partitions", n)
		}
		if n, err := r.Collect(ctx, now); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("collection", "err", err)
		} else if n > 0 {
			r.cfg.Logger.Info("collected objects", "objects", n)
		}
		if n, err := r.ExpireProducers(ctx, now); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("expiring producers", "err", err)
		} else if n > 0 {
			r.cfg.Logger.Info("expired idempotent producers", "states", n)
		}
		if st, err := r.TrimMeta(ctx, now); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("metadata log trim", "err", err)
		} else if st.Entries > 0 {
			r.cfg.Logger.Info("trimmed metadata log", "entries", st.Entries, "snapshots", st.Snapshots, "cover", st.Cover)
		}
	})
}

// TrimMeta snapshots the metadata log and deletes the entries the
// snapshots cover once they are older than MetaRetention (meta/trim.go),
// if this agent owns "meta-compaction" and gets its lease.
func (r *Runner) TrimMeta(ctx context.Context, now time.Time) (meta.TrimStats, error) {
	t, ok := r.log.(Trimmer)
	if !ok || r.cfg.MetaRetention <= 0 || !r.cfg.Owns("meta-compaction") {
		return meta.TrimStats{}, nil
	}
	var st meta.TrimStats
	// Whether a trim has work takes a listing, so the lease is asked for
	// on every pass.
	err := r.leased(ctx, []string{"meta-compaction"}, func(ctx context.Context, _ string) error {
		var err error
		st, err = t.Trim(ctx, now, r.cfg.MetaRetention, r.cfg.MetaSnapshotEvery)
		r.trimmed.Add(float64(st.Entries))
		return err
	})
	return st, err
}

// ownedTopics returns the topics whose job prefix+topic this agent owns.
// Owns reads the log's state itself, so it must not be called inside
// View: a read lock taken twice deadlocks once a writer waits between.
func (r *Runner) ownedTopics(prefix string) []string {
	var names []string
	r.log.View(func(st *meta.State) { names = st.TopicNames() })
	owned := names[:0]
	for _, n := range names {
		if r.cfg.Owns(prefix + n) {
			owned = append(owned, n)
		}
	}
	return owned
}

// Retention advances the log start of the partitions of the topics this
// agent owns as their retention configs require at now, for the topics
// whose "retention/<topic>" lease it gets. It returns how many partitions
// moved.
func (r *Runner) Retention(ctx context.Context, now time.Time) (int, error) {
	var jobs []string
	for _, n := range r.retentionTopics(r.ownedTopics("retention/"), now) {
		jobs = append(jobs, "retention/"+n)
	}
	// The ops of all granted topics share entries, so a pass writes the
	// lease entries and as few others as before.
	h, err := r.acquire(ctx, jobs)
	if err != nil {
		return 0, err
	}
	defer h.release(ctx)
	granted := make([]string, len(h.granted))
	for i, j := range h.granted {
		granted[i] = strings.TrimPrefix(j, "retention/")
	}
	// Computed again under the leases: the previous holder's moves are in
	// the state now.
	ops := r.retentionOps(granted, now)
	moved := 0
	for len(ops) > 0 {
		n := min(len(ops), maxOpsPerEntry)
		if _, err := r.log.Append(ctx, ops[:n]...); err != nil {
			return moved, err
		}
		moved += n
		r.advanced.Add(float64(n))
		ops = ops[n:]
	}
	return moved, nil
}

// retentionTopics returns the topics of names with a log start to move.
func (r *Runner) retentionTopics(names []string, now time.Time) []string {
	var due []string
	r.log.View(func(st *meta.State) {
		for _, n := range names {
			if t := st.Topic(n); t != nil {
				for _, p := range t.Partitions {
					if t.RetentionStart(p, now.UnixMilli()) > p.LogStart {
						due = append(due, n)
						break
					}
				}
			}
		}
	})
	return due
}

// retentionOps returns the moves of the log starts of the topics names.
func (r *Runner) retentionOps(names []string, now time.Time) []meta.Op {
	var ops []meta.Op
	r.log.View(func(st *meta.State) {
		for _, n := range names {
			t := st.Topic(n)
			if t == nil {
				continue
			}
			for i, p := range t.Partitions {
				if start := t.RetentionStart(p, now.UnixMilli()); start > p.LogStart {
					ops = append(ops, meta.AdvanceLogStart{Topic: t.ID, Partition: int32(i), Offset: start})
				}
			}
		}
	})
	return ops
}

// Collect deletes the objects released at least Grace before now, if this
// agent owns collection and gets its lease, and forgets them. It returns
// how many it deleted.
func (r *Runner) Collect(ctx context.Context, now time.Time) (int, error) {
	if !r.cfg.Owns("collect") {
		return 0, nil
	}
	var due bool
	r.log.View(func(st *meta.State) { due = len(st.Released(now.Add(-r.cfg.Grace).UnixMilli())) > 0 })
	// Finding orphans takes a listing: with the sweep on, every pass
	// leases.
	if !due && r.cfg.OrphanGrace <= 0 {
		return 0, nil
	}
	n := 0
	err := r.leased(ctx, []string{"collect"}, func(ctx context.Context, _ string) error {
		var err error
		n, err = r.collect(ctx, now)
		return err
	})
	return n, err
}

// collect is Collect's pass under its lease.
func (r *Runner) collect(ctx context.Context, now time.Time) (int, error) {
	var due []meta.ReleasedObject
	r.log.View(func(st *meta.State) { due = st.Released(now.Add(-r.cfg.Grace).UnixMilli()) })
	if len(due) > maxOpsPerEntry {
		due = due[:maxOpsPerEntry]
	}
	var done []string
	var err error
	orphans, err := r.sweepOrphans(ctx, now)
	if err != nil {
		return orphans, err
	}
	for _, o := range due {
		if err = r.store.Delete(ctx, o.Key); err != nil {
			break
		}
		done = append(done, o.Key)
		r.collected.Inc()
	}
	if len(done) > 0 {
		if _, aerr := r.log.Append(ctx, meta.ForgetObjects{Keys: done}); aerr != nil {
			return orphans + len(done), aerr
		}
	}
	return orphans + len(done), err
}

// sweepOrphans deletes the seg/, cmp/ and cln/ objects that no chunk
// refers to and the released list does not hold, once they are older than
// OrphanGrace: segments whose commit never landed (an agent died between
// PUT and commit) and compaction outputs whose op never applied. It
// returns how many it deleted.
//
// The view it reads may lag, and a commit may be about to land, so it
// never deletes on its own judgement: the metadata log decides
// (meta/condemn.go). Candidates are condemned by one entry, and only the
// objects that entry's result lists are deleted; from then on the state
// refuses any op that would make them referenced. An object condemned
// longer ago than the write timeout and a minute (at least a pass) is
// deleted once more (deletes are idempotent, so a failed one is retried)
// and then forgotten. Age is the later of the time in the
// key (the writer's clock) and the bucket's LastModified (the bucket's),
// so neither clock alone can make a young object look old.
func (r *Runner) sweepOrphans(ctx context.Context, now time.Time) (int, error) {
	if r.cfg.OrphanGrace <= 0 {
		return 0, nil
	}
	var format meta.Format
	var condemned []meta.CondemnedObject
	r.log.View(func(st *meta.State) { format, condemned = st.Format(), st.Condemned() })
	if format < meta.Format2 {
		return 0, nil // condemning needs Format2; older clusters keep their orphans until then
	}
	// Forgetting raises the commit floor past the condemnation, refusing
	// every op whose writer began before it: wait until any such op has
	// landed or given up (the write timeout), and a minute more for the
	// writer's view to have lagged behind the condemnation.
	forgetBefore := now.Add(-max(r.cfg.Interval, r.cfg.WriteTimeout+time.Minute)).UnixMilli()
	n := 0
	var forget []string
	for _, c := range condemned {
		if len(forget) == maxOpsPerEntry || c.CondemnMs > forgetBefore {
			break // the rest were condemned since, or wait for the next entry
		}
		if err := r.store.Delete(ctx, c.Key); err != nil {
			return n, err
		}
		forget = append(forget, c.Key)
	}
	if len(forget) > 0 {
		if _, err := r.log.Append(ctx, meta.ForgetObjects{Keys: forget}); err != nil {
			return n, err
		}
	}

	cutoff := now.Add(-r.cfg.OrphanGrace)
	var old []string
	for _, prefix := range meta.DataPrefixes {
		infos, err := r.store.List(ctx, prefix, "", 0)
		if err != nil {
			return n, err
		}
		for _, o := range infos {
			written, ok := meta.DataKeyTime(prefix, o.Key)
			if !ok {
				continue // not ours to judge
			}
			if o.Modified.After(written) {
				written = o.Modified
			}
			if written.Before(cutoff) {
				old = append(old, o.Key)
			}
		}
	}
	var candidates []string
	r.log.View(func(st *meta.State) {
		for _, k := range old {
			if st.ObjectRefs(k) == 0 && !st.IsReleased(k) && !st.IsCondemned(k) {
				candidates = append(candidates, k)
			}
		}
	})
	for len(candidates) > 0 {
		batch := candidates[:min(len(candidates), maxOpsPerEntry)]
		candidates = candidates[len(batch):]
		res, err := r.log.Append(ctx, meta.CondemnObjects{Keys: batch})
		if err != nil {
			return n, err
		}
		r.condemned.Add(float64(len(res[0].Keys)))
		for _, k := range res[0].Keys { // condemned: no op can refer to them now
			if err := r.store.Delete(ctx, k); err != nil {
				return n, err // deleted, and forgotten, next pass
			}
			n++
			r.collected.Inc()
			r.cfg.Logger.Info("deleted orphan object", "key", k)
		}
	}
	return n, nil
}

// ExpireProducers drops the state of idempotent producers not heard from
// for ProducerExpiry (Kafka's producer.id.expiration.ms), if this agent
// owns "expire-producers" and gets its lease. The cutoff is in the op, so
// every agent drops the same ones. It returns how many states went.
func (r *Runner) ExpireProducers(ctx context.Context, now time.Time) (int, error) {
	if r.cfg.ProducerExpiry <= 0 || !r.cfg.Owns("expire-producers") {
		return 0, nil
	}
	cutoff := now.Add(-r.cfg.ProducerExpiry).UnixMilli()
	due := false
	r.log.View(func(st *meta.State) {
		oldest := st.OldestProducerMs()
		due = st.Format() >= meta.Format2 && oldest >= 0 && oldest < cutoff
	})
	if !due {
		return 0, nil
	}
	n := 0
	err := r.leased(ctx, []string{"expire-producers"}, func(ctx context.Context, _ string) error {
		res, err := r.log.Append(ctx, meta.ExpireProducers{BeforeMs: cutoff})
		if err == nil {
			n = res[0].Expired
			r.expired.Add(float64(n))
		}
		return err
	})
	return n, err
}

// writing returns the context to write a job's output object and append
// the op that refers to it under, bounded by WriteTimeout so that the op
// lands within OrphanGrace of the write or not at all, and the slot the
// log had applied before the write, which the op carries as Since
// (meta/condemn.go).
func (r *Runner) writing(ctx context.Context) (context.Context, context.CancelFunc, uint64) {
	var since uint64
	r.log.View(func(st *meta.State) { since = st.Seq })
	wctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	return wctx, cancel, since
}
