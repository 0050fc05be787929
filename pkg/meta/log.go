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
	// MaxQueueWait bounds the time from Submit until an op's entry is
	// written, whatever the cause (a failing bucket, slots lost to other
	// writers): an op not written by then fails instead of landing late.
	// A caller may set an earlier deadline (SubmitBy, Append's context).
	// It is the agent's write timeout, which --orphan-grace must exceed
	// so that live produces are not condemned as orphans (condemn.go).
	MaxQueueWait time.Duration
	// Retention is how long entries a snapshot covers stay in the bucket
	// (trim.go). A writer whose view of the tail is older than half of it
	// re-reads the log before it appends; 0 means entries are never
	// deleted and no re-read is needed.
	Retention time.Duration
	// MaxFormat is the newest cluster format this log understands,
	// announces and writes (format.go); 0 means the build's MaxFormat. A
	// lower value makes the log act as an older build, for tests.
	MaxFormat Format
	// FormatGrace is how long a member of the cluster must have been
	// silent before the cluster format may move without it (format.go);
	// 0 means an hour.
	FormatGrace time.Duration
	// Relay, if set, carries entries to and from the sequencer
	// (sequencer.go, relay.go); without it the log appends directly.
	Relay Relay
	// Sequence says this agent may be the sequencer (it runs jobs).
	Sequence bool
	Logger   *slog.Logger
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
	if o.MaxFormat == 0 || o.MaxFormat > MaxFormat {
		o.MaxFormat = MaxFormat
	}
	if o.FormatGrace <= 0 {
		o.FormatGrace = agentForgetMs * time.Millisecond
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
	seq       atomic.Uint64
	stall     atomic.Pointer[Stall]
	resigned  atomic.Bool // Resign was called: never sequence again
	seqMu     sync.Mutex  // orders tendSequencer's asks and Resign's release

	pushes chan Slot // slots from the sequencer (relay.go)
	recent recent    // the newest slots applied, for Slots

	// Run's goroutine only.
	lastSync       time.Time  // when the tail was last known (read or appended)
	own            *ownAppend // the entry being appended, if any
	carry          *Pending   // a Pending that must start the next entry
	num            uint64     // this writer's last append number (sequencer.go)
	relayPaused    time.Time  // until then, append directly (relay.go)
	relayFailures  int        // relay calls to relayPausedFor failed in a row
	relayPausedFor string     // the sequencer (writer id) relayPaused is for
	relayingTo     string     // the sequencer of the relay call in progress
	lastPush       time.Time  // when a pushed slot was last applied
	leaseAsk       *Pending   // the sequencer lease asked for, if on its way
}

// ownAppend is the entry Run is appending. Its earlier attempts may have
// landed although their answers were lost, so every slot read meanwhile is
// checked for it (Writer and Tag), wherever it is read.
type ownAppend struct {
	writer      string
	tag         uint64
	seq         uint64   // the slot it was found at, once applied
	results     []Result // its ops' results there
	data        []byte   // the slot's bytes there
	maybeLanded bool     // an attempt failed in a way that may have written it
	lost        bool     // the state was reloaded past slots that may hold it
}

// Stall says why the log stopped applying entries: the entry at Seq does
// not decode (a *FormatError when a newer build wrote it). The agent must
// not apply past it, nor append, until it can read it.
type Stall struct {
	Seq uint64
	Err error
	// snapshot: the newest snapshot is of a newer format, so no slot can
	// be read in its place; only an upgraded build goes on.
	snapshot bool
}

// ErrStalled fails appends while the log is stalled.
var ErrStalled = errors.New("meta: metadata log stalled")

// Pending is a submitted append.
type Pending struct {
	queued   time.Time
	deadline time.Time // not written by then: fail
	ops      []Op
	alone    bool // written in an entry of its own (format ops)
	// foreign is another agent's entry, when this agent sequences it
	// (relay.go): it is written as one Contribute op, and answered with
	// the slot and its bytes.
	foreign *Contribute
	slot    uint64
	data    []byte
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

// HasLog reports whether store holds a metadata log (entries or
// snapshots): a bucket that does is a cluster's own, whatever else names it.
func HasLog(ctx context.Context, store objstore.Store) (bool, error) {
	for _, prefix := range []string{logPrefix, snapPrefix} {
		found, err := store.List(ctx, prefix, "", 1)
		if err != nil || len(found) > 0 {
			return len(found) > 0, err
		}
	}
	return false, nil
}

// Open loads the newest snapshot and replays the entries after it.
func Open(ctx context.Context, store objstore.Store, opts Options) (*Log, error) {
	opts.defaults()
	if err := checkSequencerTiming(); err != nil {
		return nil, err
	}
	l := &Log{store: objstore.WithCallTimeout(store, opts.CallTimeout), opts: opts, state: NewState(), changed: make(chan struct{}),
		reqs: make(chan *Pending, 1024), syncs: make(chan chan error, 64), pushes: make(chan Slot, 64)}
	for attempt := 1; ; attempt++ {
		if err := l.loadSnapshot(ctx); err != nil {
			return nil, err
		}
		if l.Stalled() != nil {
			return l, nil // the agent starts, and says why it does not serve
		}
		err := l.replay(ctx)
		if err == nil {
			// Numbers above any this writer id had, even if a process
			// before this one used it.
			l.num = max(l.state.LastNum(l.opts.WriterID), uint64(time.Now().UnixMicro()))
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
		if l.newerSnapshot(snaps[i].Key, st, err) {
			// The entries it covers may be gone, and an older snapshot
			// would only lead to them: wait for an upgrade.
			return nil
		}
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
			if l.applySlot(seq, bodies[i]) != nil {
				return nil // stalled: the agent starts, and says why it does not serve
			}
		}
	}
	if err := l.catchUp(ctx); err != nil && l.Stalled() == nil {
		return err
	}
	return nil
}

// Run appends submitted entries and tails the log until ctx ends.
func (l *Log) Run(ctx context.Context) {
	tick := time.NewTicker(l.opts.PollInterval)
	defer tick.Stop()
	if l.opts.Relay != nil {
		fctx, stop := context.WithCancel(ctx)
		defer stop()
		go l.follow(fctx)
	}
	for {
		select {
		case <-ctx.Done():
			l.failQueued(ctx.Err())
			l.snapshots.Wait()
			return
		case p := <-l.reqs:
			l.write(ctx, l.batchFrom(p))
			for l.carry != nil {
				p, l.carry = l.carry, nil
				l.write(ctx, l.batchFrom(p))
			}
		case s := <-l.pushes:
			l.applyPushed(ctx, s)
		case <-tick.C:
			// While the sequencer pushes slots, it reads the bucket for
			// this agent (what it applies, it pushes): only the agent
			// that hears nothing polls.
			if time.Since(l.lastPush) >= l.opts.PollInterval {
				if err := l.catchUp(ctx); err != nil && ctx.Err() == nil {
					l.opts.Logger.Warn("tailing the metadata log", "err", err)
				}
			}
			l.tendSequencer()
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

// batchFrom group-commits whatever else is waiting after p into one entry,
// except ops that must be alone: those start an entry of their own.
func (l *Log) batchFrom(p *Pending) []*Pending {
	batch := []*Pending{p}
	for !p.alone && len(batch) < 256 {
		select {
		case q := <-l.reqs:
			if q.alone {
				l.carry = q
				return batch
			}
			batch = append(batch, q)
			continue
		default:
		}
		break
	}
	return batch
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

// Submit queues ops for the next entry without waiting. They fail unless
// written within MaxQueueWait.
func (l *Log) Submit(ops ...Op) *Pending { return l.SubmitBy(time.Time{}, ops...) }

// SubmitBy is Submit with a deadline of the caller's (the zero time: none),
// which wins when it is earlier than MaxQueueWait from now: a segment's
// commit must land within the agent's write timeout of its seal.
func (l *Log) SubmitBy(deadline time.Time, ops ...Op) *Pending {
	p := l.pending(deadline, ops)
	l.reqs <- p
	return p
}

func (l *Log) pending(deadline time.Time, ops []Op) *Pending {
	now := time.Now()
	p := &Pending{queued: now, deadline: now.Add(l.opts.MaxQueueWait), ops: ops, done: make(chan struct{})}
	if !deadline.IsZero() && deadline.Before(p.deadline) {
		p.deadline = deadline
	}
	return p
}

// ErrBusy is TrySubmit's answer when the append queue is full.
var ErrBusy = errors.New("meta: log append queue full")

// TrySubmit is Submit for callers that must not block (they hold a lock
// that orders their ops): it fails with ErrBusy instead of waiting for room
// in the queue.
func (l *Log) TrySubmit(ops ...Op) (*Pending, error) {
	p := l.pending(time.Time{}, ops)
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
// ctx's deadline, if any, is the ops' deadline too.
func (l *Log) Append(ctx context.Context, ops ...Op) ([]Result, error) {
	deadline, _ := ctx.Deadline()
	p := l.pending(deadline, ops)
	select {
	case l.reqs <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.Wait(ctx)
}

// ErrUnavailable wraps bucket failures that exhausted the retries.
var ErrUnavailable = errors.New("meta: log unavailable")

// write appends the batch's ops as one entry at the tail and applies it.
// It gives up once the oldest op has waited MaxQueueWait, whatever kept it
// (bucket errors, slots lost to other writers), so that no op lands later
// than CommitBound after its Submit. A batch of this agent's own ops goes
// to the sequencer if another agent is it (relay.go), and to the bucket if
// that fails; other agents' entries in the batch (this agent being the
// sequencer) are each one Contribute op of the entry.
func (l *Log) write(ctx context.Context, batch []*Pending) {
	if batch = l.writable(batch); len(batch) == 0 {
		return
	}
	wctx, cancel := context.WithDeadline(ctx, batchDeadline(batch))
	defer cancel()
	l.num++
	en := &Entry{Writer: l.opts.WriterID, Tag: rand.Uint64(), TimeMs: time.Now().UnixMilli(), Num: l.num}
	format := l.state.format
	en.Ops = entryOps(batch)
	data := en.EncodeAt(format)
	if len(data) > MaxEntryBytes {
		if len(batch) == 1 {
			l.fail(batch, fmt.Errorf("meta: ops of %d bytes do not fit in one log entry (%d)", len(data), MaxEntryBytes))
			return
		}
		half := len(batch) / 2 // in order: the first half's entry first
		l.write(ctx, batch[:half])
		l.write(ctx, batch[half:])
		return
	}
	l.own = &ownAppend{writer: en.Writer, tag: en.Tag}
	defer func() { l.own = nil }()
	if addr, ok := l.relayTarget(batch); ok && l.relayed(wctx, addr, data) {
		l.finish(batch, l.own.seq, en.TimeMs, l.own.results, data)
		return
	}
	backoff := 20 * time.Millisecond
	for attempt := 1; ; {
		if o := l.own; o.seq != 0 {
			l.finish(batch, o.seq, en.TimeMs, o.results, o.data) // an earlier attempt landed
			return
		} else if o.lost {
			l.fail(batch, fmt.Errorf("%w: the log was reloaded from a snapshot while this append's outcome was unknown", ErrUnavailable))
			return
		}
		if st := l.Stalled(); st != nil {
			l.fail(batch, fmt.Errorf("%w at slot %d: %v", ErrStalled, st.Seq, st.Err))
			return
		}
		err := wctx.Err()
		if err == nil && l.stale() {
			// The Delta Lake rule: the slot after our view may be one a
			// trim deleted, so find the tail before writing there. The
			// tail may hold this very entry.
			if err = l.catchUp(wctx); err == nil && (l.own.seq != 0 || l.own.lost || l.Stalled() != nil) {
				continue
			}
		}
		if err == nil {
			// Other agents' entries go only while this agent sequences,
			// and only those not applied meanwhile nor past their
			// deadlines. Not once an attempt may have landed: the entry
			// must stay the one it may be, for its results to be read
			// right wherever it is found (a copy of a dropped entry is
			// applied once, by its append number).
			if l.own.maybeLanded && foreignExpired(batch) {
				// The entry may be in the log as it is, holding another
				// agent's entry whose writer has given up on this one:
				// no attempt begins past its deadline, so the outcome
				// stays unknown, for this agent's ops too.
				l.fail(batch, fmt.Errorf("%w: an attempt may have landed, and an entry sequenced in it is past its deadline", ErrUnavailable))
				return
			}
			if kept := l.sequencable(batch); !l.own.maybeLanded && len(kept) != len(batch) {
				if batch = kept; len(batch) == 0 {
					return
				}
				en.Ops = entryOps(batch)
				data = en.EncodeAt(format)
			}
			if l.state.format != format { // raised by an entry read meanwhile
				format = l.state.format
				data = en.EncodeAt(format)
			}
			seq := l.state.Seq + 1
			began := time.Now()
			err = l.store.PutIfAbsent(wctx, EntryKey(seq), data)
			switch {
			case err == nil:
				l.lastSync = began
				// Apply what the others will read, not the ops in memory.
				stored, derr := decodeEntry(data, l.opts.MaxFormat)
				if derr != nil {
					panic(fmt.Sprintf("meta: own entry does not decode: %v", derr))
				}
				l.recent.add(seq, data)
				l.finish(batch, seq, en.TimeMs, l.apply(seq, stored), data)
				return
			case errors.Is(err, objstore.ErrExists):
				// Someone took the slot; it may be our own earlier attempt
				// whose answer was lost. Either way it is applied, and the
				// next slot tried: no attempt is spent, but the deadline
				// holds.
				var b []byte
				if b, err = l.store.Get(wctx, EntryKey(seq)); err == nil {
					l.applySlot(seq, b)
					continue
				}
			default:
				l.own.maybeLanded = true
			}
		}
		if attempt >= l.opts.MaxAttempts || wctx.Err() != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("not written by its deadline (last: %v)", err)
			}
			l.fail(batch, fmt.Errorf("%w: %v", ErrUnavailable, err))
			return
		}
		attempt++
		l.opts.Logger.Warn("metadata log append failed, retrying", "slot", l.state.Seq+1, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, time.Second)
	}
}

// batchDeadline is when the batch's write gives up: the earliest deadline
// of this agent's own ops, or, for other agents' entries only, the latest
// of theirs. Another agent's entry shortens nothing: it is dropped from
// the batch before an attempt begins past its deadline (sequencable).
func batchDeadline(batch []*Pending) time.Time {
	var own, foreign time.Time
	for _, p := range batch {
		if p.foreign == nil && (own.IsZero() || p.deadline.Before(own)) {
			own = p.deadline
		}
		if p.foreign != nil && p.deadline.After(foreign) {
			foreign = p.deadline
		}
	}
	if own.IsZero() {
		return foreign
	}
	return own
}

// foreignExpired reports whether another agent's entry in the batch is
// past its deadline.
func foreignExpired(batch []*Pending) bool {
	now := time.Now()
	for _, p := range batch {
		if p.foreign != nil && now.After(p.deadline) {
			return true
		}
	}
	return false
}

// entryOps lists the batch's ops in order: this agent's own as they are,
// each other agent's entry as one Contribute.
func entryOps(batch []*Pending) []Op {
	var ops []Op
	for _, p := range batch {
		if p.foreign != nil {
			ops = append(ops, *p.foreign)
		} else {
			ops = append(ops, p.ops...)
		}
	}
	return ops
}

// sequencable answers and drops the other agents' entries in the batch
// that this agent must not write now: all of them once it is not the
// sequencer (their writers append them themselves), and any whose append
// number the state has applied (it landed through another slot).
func (l *Log) sequencable(batch []*Pending) []*Pending {
	kept, checked, ok := batch[:0:0], false, false
	for _, p := range batch {
		if p.foreign == nil {
			kept = append(kept, p)
			continue
		}
		if !checked {
			checked, ok = true, l.sequencing()
		}
		switch err := l.checkFormat(p.foreign.Ops); {
		case l.own.maybeLanded:
			kept = append(kept, p) // the entry may be in the log as it is: see write
		case !ok:
			l.fail([]*Pending{p}, ErrNotSequencer)
		case time.Now().After(p.deadline):
			l.fail([]*Pending{p}, fmt.Errorf("%w: not written within its budget", ErrUnavailable))
		case p.foreign.Num <= l.state.LastNum(p.foreign.Writer):
			l.fail([]*Pending{p}, ErrDuplicate)
		case err != nil:
			l.fail([]*Pending{p}, err)
		default:
			kept = append(kept, p)
		}
	}
	if len(kept) == len(batch) {
		return batch
	}
	return kept
}

// writable fails the Pendings that cannot be written now: queued too long,
// or holding ops of a format the cluster has not reached.
func (l *Log) writable(batch []*Pending) []*Pending {
	fresh := batch[:0]
	for _, p := range batch {
		if time.Now().After(p.deadline) {
			l.fail([]*Pending{p}, fmt.Errorf("%w: waited %v for the bucket", ErrUnavailable, time.Since(p.queued).Round(time.Millisecond)))
			continue
		}
		if err := l.checkFormat(p.ops); err != nil && p.foreign == nil {
			l.fail([]*Pending{p}, err)
			continue
		}
		fresh = append(fresh, p)
	}
	return fresh
}

// ErrFormat refuses an op that the cluster's format does not have yet.
var ErrFormat = errors.New("meta: op needs a newer cluster format")

func (l *Log) checkFormat(ops []Op) error {
	for _, op := range ops {
		if f := OpFormat(op); f > l.state.format {
			return fmt.Errorf("%w: %s needs format %d, the cluster is at %d", ErrFormat, OpName(op), f, l.state.format)
		}
	}
	return nil
}

func (l *Log) fail(batch []*Pending, err error) {
	for _, p := range batch {
		p.err = err
		close(p.done)
	}
}

func (l *Log) finish(batch []*Pending, seq uint64, timeMs int64, results []Result, data []byte) {
	l.lastOwnMs.Store(timeMs)
	i := 0
	for _, p := range batch {
		if p.foreign != nil {
			p.slot, p.data = seq, data
			i++
		} else {
			j := i + len(p.ops)
			p.results = results[i:j:j] // capped: an append by one caller must not overwrite the next's
			i = j
		}
		close(p.done)
	}
	if seq%l.opts.SnapshotEvery == 0 {
		l.snapshot()
	}
}

// snapshot writes the state as of now in the background: a copy is
// taken here (only this goroutine mutates the state) and encoded there, so
// a large state does not hold up appends.
func (l *Log) snapshot() {
	st := l.state.Clone()
	l.snapshots.Add(1)
	go func() {
		defer l.snapshots.Done()
		seq, data := st.Seq, st.EncodeSnapshot()
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

// maxReadAhead bounds how many slots catchUp reads at once while it is
// behind.
const maxReadAhead = 32

// catchUp applies every entry other agents appended since the last look.
// A missing next slot is the tail, unless this view is stale: then the
// slot may have been trimmed, which a newer snapshot than our state shows,
// and the state is reloaded from it.
//
// An agent at the tail pays one GET per look. One that finds an entry is
// behind, perhaps far (it was paused, or the fleet writes faster than one
// GET a round trip): it reads the next slots in parallel, 4 and then up to
// maxReadAhead at a time, so it catches up at the bucket's concurrency, not
// its latency. Slot n+1 is only ever written by a writer that has read slot
// n, so the slots found form a prefix of each window; the misses past the
// tail cost one GET each, once.
func (l *Log) catchUp(ctx context.Context) error {
	if st := l.Stalled(); st != nil && st.snapshot {
		return st.Err
	}
	ahead := 1
	for {
		seq := l.state.Seq + 1
		began := time.Now()
		bodies, errs := l.readSlots(ctx, seq, ahead)
		if errors.Is(errs[0], objstore.ErrNotFound) {
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
		if errs[0] != nil {
			return errs[0]
		}
		for i, b := range bodies {
			if errs[i] != nil {
				if errors.Is(errs[i], objstore.ErrNotFound) {
					l.lastSync = began // the tail, as of this read
					return nil
				}
				break // read it again, first of the next window
			}
			if err := l.applySlot(seq+uint64(i), b); err != nil {
				return err
			}
		}
		ahead = min(max(ahead*4, 4), maxReadAhead)
	}
}

// readSlots reads n slots from seq on, at once.
func (l *Log) readSlots(ctx context.Context, seq uint64, n int) ([][]byte, []error) {
	bodies, errs := make([][]byte, n), make([]error, n)
	if n == 1 {
		bodies[0], errs[0] = l.store.Get(ctx, EntryKey(seq))
		return bodies, errs
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { bodies[i], errs[i] = l.store.Get(ctx, EntryKey(seq+uint64(i))) })
	}
	wg.Wait()
	return bodies, errs
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
		if l.newerSnapshot(snaps[i].Key, st, err) {
			return false, l.Stalled().Err
		}
		if err != nil || st.Seq <= l.state.Seq {
			continue
		}
		l.opts.Logger.Info("metadata log trimmed past this agent's view; reloading from snapshot", "from", l.state.Seq, "to", st.Seq)
		if l.own != nil && l.own.maybeLanded {
			l.own.lost = true // the slots skipped may hold it
		}
		l.mu.Lock()
		l.state = st
		l.seq.Store(st.Seq)
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		return true, nil
	}
	return false, nil
}

// applySlot applies the stored entry of slot seq. An entry this log cannot
// decode is never applied, nor anything after it: the log stalls there
// (and tries the slot again at every poll, which heals a bad read).
func (l *Log) applySlot(seq uint64, b []byte) error {
	en, err := decodeEntry(b, l.opts.MaxFormat)
	if err != nil {
		l.setStall(seq, err)
		return err
	}
	l.recent.add(seq, b)
	res := l.apply(seq, en)
	if o := l.own; o != nil && o.seq == 0 && o.find(seq, en, res) {
		o.data = b
	}
	if l.stall.Load() != nil {
		l.stall.Store(nil)
		l.opts.Logger.Info("metadata log resumed", "slot", seq)
	}
	return nil
}

// find notes the append if the slot holds it, as the entry itself or as
// a contribution in the sequencer's, and reports whether it does; a copy
// applied as a duplicate (or inside a sequencer's entry that was) is not
// it.
func (o *ownAppend) find(seq uint64, en *Entry, res []Result) bool {
	applied := func(r []Result) bool { return len(r) == 0 || !errors.Is(r[0].Err, ErrDuplicate) }
	if en.Writer == o.writer && en.Tag == o.tag && applied(res) {
		o.seq, o.results = seq, res
		return true
	}
	for i, op := range en.Ops {
		if c, ok := op.(Contribute); ok && c.Writer == o.writer && c.Tag == o.tag &&
			!errors.Is(res[i].Err, ErrDuplicate) && applied(res[i].Contributed) {
			o.seq, o.results = seq, res[i].Contributed
			return true
		}
	}
	return false
}

func (l *Log) setStall(seq uint64, err error) { l.stallAt(&Stall{Seq: seq, Err: err}) }

func (l *Log) stallAt(st *Stall) {
	if old := l.stall.Load(); old != nil && old.Seq == st.Seq && old.Err.Error() == st.Err.Error() {
		return // said already
	}
	l.stall.Store(st)
	l.opts.Logger.Error("metadata log stalled: not applying this entry or any after it, not appending, not serving",
		"slot", st.Seq, "err", st.Err, "understands_formats_up_to", l.opts.MaxFormat)
}

// newerSnapshot reports whether a snapshot read (st or err) is of a format
// this log does not understand, and stalls the log if so.
func (l *Log) newerSnapshot(key string, st *State, err error) bool {
	var fe *FormatError
	need := Format(0)
	switch {
	case errors.As(err, &fe):
	case err == nil && st.format > l.opts.MaxFormat:
		need = st.format
	default:
		return false
	}
	l.stallAt(&Stall{Seq: l.state.Seq + 1, Err: &FormatError{Need: need, What: "the snapshot " + key, Max: l.opts.MaxFormat}, snapshot: true})
	return true
}

// Stalled returns why the log stopped applying entries, or nil.
func (l *Log) Stalled() *Stall { return l.stall.Load() }

func (l *Log) apply(seq uint64, en *Entry) []Result {
	l.mu.Lock()
	results := l.state.Apply(seq, en)
	l.seq.Store(seq)
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

// Seq returns the last slot applied.
func (l *Log) Seq() uint64 { return l.seq.Load() }

// WriterID returns the id this agent signs its entries with.
func (l *Log) WriterID() string { return l.opts.WriterID }
