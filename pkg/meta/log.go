package meta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bargehq/barge/pkg/objstore"
)

const (
	logPrefix  = "meta/log/"
	snapPrefix = "meta/snap/"
)

// EntryKey is the object key of log slot seq.
func EntryKey(seq uint64) string { return fmt.Sprintf("%s%020d", logPrefix, seq) }

// SnapshotKey is the object key of the snapshot taken after slot seq.
func SnapshotKey(seq uint64) string { return fmt.Sprintf("%s%020d", snapPrefix, seq) }

// Options configure a Log.
type Options struct {
	WriterID      string        // unique per agent process
	PollInterval  time.Duration // how often to look for other agents' entries
	SnapshotEvery uint64        // take a snapshot after every N-th slot this agent writes
	MaxAttempts   int           // conditional-write attempts per entry on bucket errors
	// CallTimeout bounds each bucket call, so that a hung connection
	// fails an attempt (which is retried, then reported) instead of
	// stalling every append and the tailing behind it for good. It also
	// bounds how late a commit can land after its segment was written,
	// which the orphan sweep's grace relies on.
	CallTimeout time.Duration
	// MaxQueueWait fails ops that waited this long for their entry to be
	// written (the bucket was failing meanwhile) instead of writing them
	// late. With CallTimeout and MaxAttempts it bounds how long after
	// Submit an op can land: an ingest commit must land well within
	// --orphan-grace of its segment, or the sweep may have deleted it.
	MaxQueueWait time.Duration
	// Retention is how long entries a snapshot covers stay in the bucket
	// (trim.go). A writer whose view of the tail is older than half of it
	// re-reads the log before it appends; 0 means entries are never
	// deleted and no re-read is needed.
	Retention time.Duration
	Logger    *slog.Logger
}

func (o *Options) defaults() {
	if o.WriterID == "" {
		o.WriterID = strconv.FormatUint(rand.Uint64(), 36)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = 1000
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.MaxQueueWait <= 0 {
		o.MaxQueueWait = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Log is this agent's view of the metadata log. One goroutine (Run) owns
// every append and every apply, so the state advances in slot order and an
// agent's own entries are appended in the order they were submitted.
type Log struct {
	store objstore.Store
	opts  Options

	mu      sync.RWMutex
	state   *State
	changed chan struct{}

	reqs      chan *Pending
	syncs     chan chan error // SyncTail's requests
	snapshots sync.WaitGroup
	lastOwnMs atomic.Int64 // when this agent's last entry was applied
	lastSync  time.Time    // Run's goroutine: when the tail was last known (read or appended)
}

// Pending is a submitted append.
type Pending struct {
	queued  time.Time
	ops     []Op
	done    chan struct{}
	results []Result
	err     error
}

// Wait blocks until the ops are applied (or failed) and returns their results.
func (p *Pending) Wait(ctx context.Context) ([]Result, error) {
	select {
	case <-p.done:
		return p.results, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Open loads the newest snapshot and replays the entries after it.
func Open(ctx context.Context, store objstore.Store, opts Options) (*Log, error) {
	opts.defaults()
	l := &Log{store: objstore.WithCallTimeout(store, opts.CallTimeout), opts: opts, state: NewState(), changed: make(chan struct{}),
		reqs: make(chan *Pending, 1024), syncs: make(chan chan error, 64)}
	for attempt := 1; ; attempt++ {
		if err := l.loadSnapshot(ctx); err != nil {
			return nil, err
		}
		err := l.replay(ctx)
		if err == nil {
			return l, nil
		}
		// A trim may have deleted entries after the snapshot we read
		// once newer snapshots covered them: start again from those.
		if !errors.Is(err, errGap) || attempt == 3 {
			return nil, err
		}
		l.state = NewState()
	}
}

var errGap = errors.New("meta: log has a gap")

func (l *Log) loadSnapshot(ctx context.Context) error {
	snaps, err := l.store.List(ctx, snapPrefix, "", 0)
	if err != nil {
		return fmt.Errorf("meta: list snapshots: %w", err)
	}
	for i := len(snaps) - 1; i >= 0; i-- { // newest first; fall back past a bad one
		b, err := l.store.Get(ctx, snaps[i].Key)
		if err != nil {
			return fmt.Errorf("meta: read %s: %w", snaps[i].Key, err)
		}
		st, err := DecodeSnapshot(b)
		if err != nil {
			l.opts.Logger.Error("skipping unreadable snapshot", "key", snaps[i].Key, "err", err)
			continue
		}
		l.state = st
		return nil
	}
	return nil
}

// replay lists the entries after the current state and applies them,
// fetching several at once since start-up time is bucket round trips.
func (l *Log) replay(ctx context.Context) error {
	keys, err := l.store.List(ctx, logPrefix, EntryKey(l.state.Seq), 0)
	if err != nil {
		return fmt.Errorf("meta: list log: %w", err)
	}
	const window = 64
	for start := 0; start < len(keys); start += window {
		chunk := keys[start:min(start+window, len(keys))]
		bodies := make([][]byte, len(chunk))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i, k := range chunk {
			g.Go(func() error {
				b, err := l.store.Get(gctx, k.Key)
				bodies[i] = b
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("meta: replay: %w", err)
		}
		for i, k := range chunk {
			seq, err := strconv.ParseUint(strings.TrimPrefix(k.Key, logPrefix), 10, 64)
			if err != nil || seq != l.state.Seq+1 {
				return fmt.Errorf("%w or stray key at %s (state at %d)", errGap, k.Key, l.state.Seq)
			}
			l.applyBytes(seq, bodies[i])
		}
	}
	return l.catchUp(ctx)
}

// Run appends submitted entries and tails the log until ctx ends.
func (l *Log) Run(ctx context.Context) {
	tick := time.NewTicker(l.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.failQueued(ctx.Err())
			l.snapshots.Wait()
			return
		case p := <-l.reqs:
			batch := []*Pending{p}
			for len(batch) < 256 { // group commit whatever else is waiting
				select {
				case q := <-l.reqs:
					batch = append(batch, q)
					continue
				default:
				}
				break
			}
			l.write(ctx, batch)
		case <-tick.C:
			if err := l.catchUp(ctx); err != nil && ctx.Err() == nil {
				l.opts.Logger.Warn("tailing the metadata log", "err", err)
			}
		case w := <-l.syncs:
			// Every waiter queued now is answered by one read of the
			// tail that starts after it asked.
			waiters := []chan error{w}
			for len(waiters) < cap(l.syncs) {
				select {
				case w := <-l.syncs:
					waiters = append(waiters, w)
					continue
				default:
				}
				break
			}
			err := l.catchUp(ctx)
			for _, w := range waiters {
				w <- err
			}
		}
	}
}

func (l *Log) failQueued(err error) {
	for {
		select {
		case p := <-l.reqs:
			p.err = err
			close(p.done)
		default:
			return
		}
	}
}

// Submit queues ops for the next entry without waiting.
func (l *Log) Submit(ops ...Op) *Pending {
	p := &Pending{queued: time.Now(), ops: ops, done: make(chan struct{})}
	l.reqs <- p
	return p
}

// ErrBusy is TrySubmit's answer when the append queue is full.
var ErrBusy = errors.New("meta: log append queue full")

// TrySubmit is Submit for callers that must not block (they hold a lock
// that orders their ops): it fails with ErrBusy instead of waiting for room
// in the queue.
func (l *Log) TrySubmit(ops ...Op) (*Pending, error) {
	p := &Pending{queued: time.Now(), ops: ops, done: make(chan struct{})}
	select {
	case l.reqs <- p:
		return p, nil
	default:
		return nil, ErrBusy
	}
}

// SyncTail reads the log's tail now and returns once every entry that
// existed when it was called is applied (or reading failed, or ctx ended).
// An agent calls it before answering from a view that may lag: before
// saying an offset does not exist, or serving a group it just came to
// coordinate. Concurrent calls share one read.
func (l *Log) SyncTail(ctx context.Context) error {
	w := make(chan error, 1)
	select {
	case l.syncs <- w:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append writes ops to the log and returns their results once applied.
func (l *Log) Append(ctx context.Context, ops ...Op) ([]Result, error) {
	return l.Submit(ops...).Wait(ctx)
}

// ErrUnavailable wraps bucket failures that exhausted the retries.
var ErrUnavailable = errors.New("meta: log unavailable")

func (l *Log) write(ctx context.Context, batch []*Pending) {
	fresh := batch[:0]
	for _, p := range batch {
		if time.Since(p.queued) > l.opts.MaxQueueWait {
			p.err = fmt.Errorf("%w: waited %v for the bucket", ErrUnavailable, time.Since(p.queued).Round(time.Millisecond))
			close(p.done)
			continue
		}
		fresh = append(fresh, p)
	}
	if batch = fresh; len(batch) == 0 {
		return
	}
	en := &Entry{Writer: l.opts.WriterID, Tag: rand.Uint64(), TimeMs: time.Now().UnixMilli()}
	for _, p := range batch {
		en.Ops = append(en.Ops, p.ops...)
	}
	data := en.Encode()
	backoff := 20 * time.Millisecond
	for attempt := 1; ; {
		var err error
		if l.stale() {
			// The Delta Lake rule: the slot after our view may be one a
			// trim deleted, so find the tail before writing there.
			err = l.catchUp(ctx)
		}
		seq := l.state.Seq + 1
		began := time.Now()
		if err == nil {
			err = l.store.PutIfAbsent(ctx, EntryKey(seq), data)
		}
		if errors.Is(err, objstore.ErrExists) {
			// Someone took the slot; it may be our own earlier attempt
			// whose answer was lost.
			var b []byte
			b, err = l.store.Get(ctx, EntryKey(seq))
			if err == nil {
				if other, derr := DecodeEntry(b); derr == nil && other.Writer == en.Writer && other.Tag == en.Tag {
					l.finish(batch, seq, en)
					return
				}
				l.applyBytes(seq, b)
				continue
			}
		}
		if err == nil {
			l.lastSync = began
			l.finish(batch, seq, en)
			return
		}
		if attempt >= l.opts.MaxAttempts || ctx.Err() != nil {
			for _, p := range batch {
				p.err = fmt.Errorf("%w: %v", ErrUnavailable, err)
				close(p.done)
			}
			return
		}
		attempt++
		l.opts.Logger.Warn("metadata log append failed, retrying", "slot", seq, "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (l *Log) finish(batch []*Pending, seq uint64, en *Entry) {
	results := l.apply(seq, en)
	l.lastOwnMs.Store(en.TimeMs)
	i := 0
	for _, p := range batch {
		j := i + len(p.ops)
		p.results = results[i:j:j] // capped: an append by one caller must not overwrite the next's
		i = j
		close(p.done)
	}
	if seq%l.opts.SnapshotEvery == 0 {
		l.snapshot()
	}
}

// snapshot writes the state as of now in the background. Only this
// goroutine mutates the state, so encoding it here needs no lock.
func (l *Log) snapshot() {
	seq, data := l.state.Seq, l.state.EncodeSnapshot()
	l.snapshots.Add(1)
	go func() {
		defer l.snapshots.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.store.Put(ctx, SnapshotKey(seq), data); err != nil {
			l.opts.Logger.Warn("writing metadata snapshot", "seq", seq, "err", err)
		}
	}()
}

// stale reports whether this agent's view of the tail is older than half
// the retention window, so that the next slot may have been trimmed.
func (l *Log) stale() bool {
	return l.opts.Retention > 0 && time.Since(l.lastSync) > l.opts.Retention/2
}

// catchUp applies every entry other agents appended since the last look.
// A missing next slot is the tail, unless this view is stale: then the
// slot may have been trimmed, which a newer snapshot than our state shows,
// and the state is reloaded from it.
func (l *Log) catchUp(ctx context.Context) error {
	for {
		seq := l.state.Seq + 1
		began := time.Now()
		b, err := l.store.Get(ctx, EntryKey(seq))
		if errors.Is(err, objstore.ErrNotFound) {
			if l.stale() {
				moved, err := l.reloadIfTrimmed(ctx)
				if err != nil {
					return err
				}
				if moved {
					continue
				}
			}
			l.lastSync = began
			return nil
		}
		if err != nil {
			return err
		}
		l.applyBytes(seq, b)
	}
}

// reloadIfTrimmed replaces the state by the newest snapshot if that is
// ahead of it, and reports whether it did.
func (l *Log) reloadIfTrimmed(ctx context.Context) (bool, error) {
	snaps, err := l.store.List(ctx, snapPrefix, SnapshotKey(l.state.Seq), 0)
	if err != nil {
		return false, fmt.Errorf("meta: list snapshots: %w", err)
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		b, err := l.store.Get(ctx, snaps[i].Key)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // trimmed meanwhile; an older one will do
		}
		if err != nil {
			return false, fmt.Errorf("meta: read %s: %w", snaps[i].Key, err)
		}
		st, err := DecodeSnapshot(b)
		if err != nil || st.Seq <= l.state.Seq {
			continue
		}
		l.opts.Logger.Info("metadata log trimmed past this agent's view; reloading from snapshot", "from", l.state.Seq, "to", st.Seq)
		l.mu.Lock()
		l.state = st
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		return true, nil
	}
	return false, nil
}

// applyBytes applies a stored entry. An entry that does not decode is
// applied as empty by every agent alike, so the log never wedges on it.
func (l *Log) applyBytes(seq uint64, b []byte) {
	en, err := DecodeEntry(b)
	if err != nil {
		l.opts.Logger.Error("metadata log entry unreadable; applying as empty", "seq", seq, "err", err)
		en = &Entry{}
	}
	l.apply(seq, en)
}

func (l *Log) apply(seq uint64, en *Entry) []Result {
	l.mu.Lock()
	results := l.state.Apply(seq, en)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return results
}

// View calls fn with the state under a read lock; fn must not keep
// references to mutable parts (slices of chunks may be copied out).
func (l *Log) View(fn func(*State)) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	fn(l.state)
}

// Changed returns a channel closed at the next state change.
func (l *Log) Changed() <-chan struct{} {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.changed
}

// LastOwnAppend returns when this agent last appended an entry: other
// agents count any entry as hearing from it.
func (l *Log) LastOwnAppend() time.Time { return time.UnixMilli(l.lastOwnMs.Load()) }

// WriterID returns the id this agent signs its entries with.
func (l *Log) WriterID() string { return l.opts.WriterID }
