package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The Log's side of sequencing (sequencer.go): sending this agent's
// entries to the sequencer, appending other agents' entries when this agent
// is the sequencer, and applying the slots the sequencer pushes.

// Relay carries entries between agents; pkg/protocol implements it over
// the agents' peer connections.
type Relay interface {
	// Contribute hands the encoded entry to the sequencer at addr, which
	// must not begin writing it after budget has passed, and returns the
	// slot it landed at and that slot's bytes.
	Contribute(ctx context.Context, addr string, entry []byte, budget time.Duration) (uint64, []byte, error)
	// Slots returns the slots after the given one that the agent at addr
	// has applied, waiting up to wait for one.
	Slots(ctx context.Context, addr string, after uint64, wait time.Duration) ([]Slot, error)
}

// Slot is one applied slot of the log: its number and stored bytes.
type Slot struct {
	Seq  uint64
	Data []byte
}

// Relay timing. An agent waits relayBudget for the sequencer to land its
// entry before it appends the entry itself (the append number keeps it
// from landing twice), and then appends directly for relayPause, doubled
// with each failure in a row up to maxRelayPause (pauseRelay), so that a
// dead or slow sequencer costs one budget per pause rather than one per
// append.
const (
	relayBudget   = time.Second
	relayPause    = time.Second
	maxRelayPause = 30 * time.Second
	// followWait is how long a Slots call waits for a new slot.
	followWait = 5 * time.Second
	// pushWait is how long an agent whose entry landed waits for the
	// slots before it to be pushed before it reads them.
	pushWait = 50 * time.Millisecond
)

// Sequencing errors, as a contributor sees them.
var (
	ErrNotSequencer = errors.New("meta: this agent is not the sequencer")
	errRelayLost    = errors.New("meta: the sequencer's slot does not hold this entry")
)

// recentSlots bounds the slots a Log keeps to answer Slots: as many, and
// as many bytes.
const (
	recentSlots     = 256
	recentSlotBytes = 16 << 20
)

// recent is the ring of the newest slots applied, for Slots.
type recent struct {
	mu    sync.Mutex
	slots []Slot // ascending, contiguous
	bytes int
}

func (r *recent) add(seq uint64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.slots); n > 0 && r.slots[n-1].Seq+1 != seq {
		r.slots, r.bytes = r.slots[:0], 0 // reloaded from a snapshot: start again
	}
	r.slots = append(r.slots, Slot{Seq: seq, Data: data})
	r.bytes += len(data)
	drop := 0
	for len(r.slots)-drop > recentSlots || r.bytes > recentSlotBytes && len(r.slots)-drop > 1 {
		r.bytes -= len(r.slots[drop].Data)
		drop++
	}
	// Dropped from the front; append moves what is left when it grows
	// the array, so a full ring costs no copy per slot.
	clear(r.slots[:drop])
	r.slots = r.slots[drop:]
}

// after returns the slots after seq, up to max bytes (at least one), or
// ErrBehind if the ring no longer reaches back to seq+1.
func (r *recent) after(seq uint64, maxBytes int) ([]Slot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.slots) == 0 || r.slots[len(r.slots)-1].Seq <= seq {
		return nil, nil
	}
	if r.slots[0].Seq > seq+1 {
		return nil, ErrBehind
	}
	i := int(seq + 1 - r.slots[0].Seq)
	out, n := []Slot(nil), 0
	for ; i < len(r.slots) && (len(out) == 0 || n+len(r.slots[i].Data) <= maxBytes); i++ {
		out = append(out, r.slots[i])
		n += len(r.slots[i].Data)
	}
	return out, nil
}

// ErrBehind answers Slots for a slot older than the agent keeps: the
// caller reads the bucket instead.
var ErrBehind = errors.New("meta: slot no longer kept; read the bucket")

// Slots returns the slots after seq this log has applied, waiting up to
// wait for one (nil after that), at most maxBytes of them (but one at
// least). It serves other agents' Relay.Slots.
func (l *Log) Slots(ctx context.Context, seq uint64, wait time.Duration, maxBytes int) ([]Slot, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		changed := l.Changed()
		if slots, err := l.recent.after(seq, maxBytes); len(slots) > 0 || err != nil {
			return slots, err
		}
		select {
		case <-changed:
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Sequence appends another agent's encoded entry in this agent's next
// entry, if this agent is the sequencer, and returns the slot it landed
// at and the slot's bytes. It does not begin a write holding it after
// budget has passed.
func (l *Log) Sequence(ctx context.Context, data []byte, budget time.Duration) (uint64, []byte, error) {
	en, err := decodeEntry(data, l.opts.MaxFormat)
	if err != nil {
		return 0, nil, err
	}
	if en.Writer == "" || en.Num == 0 || en.Writer == l.opts.WriterID {
		return 0, nil, fmt.Errorf("%w: an entry to sequence needs a writer of its own and an append number", ErrCorrupt)
	}
	for _, op := range en.Ops {
		if _, ok := op.(Contribute); ok || isFormatOp(op) {
			return 0, nil, fmt.Errorf("%w: %s cannot be sequenced", ErrCorrupt, OpName(op))
		}
	}
	p := l.pending(time.Now().Add(min(budget, l.opts.MaxQueueWait)), nil)
	c := contribution(en)
	p.foreign = &c
	select {
	case l.reqs <- p:
	default:
		return 0, nil, ErrBusy
	}
	if _, err := p.Wait(ctx); err != nil {
		return 0, nil, err
	}
	return p.slot, p.data, nil
}

// sequencing reports whether this agent may append others' entries now:
// it holds the sequencer lease, with time to spare by its own clock.
func (l *Log) sequencing() bool {
	now := time.Now()
	seq, ok := l.state.Sequencer(now.UnixMilli())
	if !ok || seq.ID != l.opts.WriterID || l.opts.Relay == nil || l.resigned.Load() {
		return false
	}
	lease, _ := l.state.Lease(SequencerJob)
	return time.UnixMilli(lease.UntilMs).Sub(now) > sequencerStopBefore
}

// relayTarget returns the sequencer's address if the batch should go to
// it rather than to the bucket.
func (l *Log) relayTarget(batch []*Pending) (string, bool) {
	if l.opts.Relay == nil || l.state.format < Format5 {
		return "", false
	}
	for _, p := range batch {
		if p.alone || p.foreign != nil {
			return "", false
		}
	}
	seq, ok := l.state.Sequencer(time.Now().UnixMilli())
	if !ok || seq.ID == l.opts.WriterID {
		return "", false
	}
	if seq.ID != l.relayPausedFor {
		l.relayPausedFor, l.relayPaused, l.relayFailures = "", time.Time{}, 0 // a new sequencer: no pause
	} else if time.Now().Before(l.relayPaused) {
		return "", false
	}
	l.relayingTo = seq.ID
	return seq.Key(), true
}

type relayAnswer struct {
	seq  uint64
	data []byte
	err  error
}

// relayed has the sequencer at addr append this agent's entry (data, the
// one l.own describes) and reports whether it landed; if not, the caller
// appends it directly. Meanwhile pushed slots are applied, since the entry
// may be found in one of them first.
func (l *Log) relayed(ctx context.Context, addr string, data []byte) bool {
	// The sequencer must not begin writing the entry after its deadline,
	// which bounds how late it can land as a direct append's does.
	budget := relayBudget
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl))
	}
	// The call's own context ends with the budget, not when this returns:
	// an entry found in a pushed slot first leaves its answer to arrive
	// (a call given up on closes its connection).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	answer := make(chan relayAnswer, 1)
	go func() {
		defer cancel()
		seq, b, err := l.opts.Relay.Contribute(rctx, addr, data, budget)
		answer <- relayAnswer{seq, b, err}
	}()
	for l.own.seq == 0 {
		select {
		case a := <-answer:
			if a.err == nil {
				l.relayFailures = 0
				l.awaitPushes(ctx, a.seq-1)
				l.applyPushed(ctx, Slot{Seq: a.seq, Data: a.data})
				if l.own.seq != 0 {
					return true
				}
				a.err = errRelayLost
			}
			l.pauseRelay(addr, a.err)
			return false
		case s := <-l.pushes:
			l.applyPushed(ctx, s)
		case <-rctx.Done():
			l.pauseRelay(addr, fmt.Errorf("no answer within %v", budget.Round(time.Millisecond)))
			return false
		case <-ctx.Done():
			l.pauseRelay(addr, ctx.Err())
			return false
		}
	}
	return true
}

// awaitPushes applies pushed slots until seq is applied or a moment has
// passed: the slots before an answer's are on their way from the
// sequencer, which beats reading them from the bucket (applyPushed then
// does that for what is still missing).
func (l *Log) awaitPushes(ctx context.Context, seq uint64) {
	if l.state.Seq >= seq {
		return
	}
	t := time.NewTimer(pushWait)
	defer t.Stop()
	for l.state.Seq < seq {
		select {
		case s := <-l.pushes:
			l.applyPushed(ctx, s)
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// pauseRelay makes the next appends go to the bucket for relayPause,
// doubled with each failure in a row (up to maxRelayPause), so that a
// sequencer the bucket hears but this agent cannot reach costs one relay
// budget now and then, not every other append. The entry handed over may
// still land through the sequencer, so it counts as maybe landed: the
// direct attempts look for it in every slot read.
func (l *Log) pauseRelay(addr string, err error) {
	l.own.maybeLanded = true
	pause := relayPause << min(l.relayFailures, 5)
	pause = min(pause, maxRelayPause)
	l.relayFailures++
	l.relayPaused, l.relayPausedFor = time.Now().Add(pause), l.relayingTo
	l.opts.Logger.Info("appending to the metadata log directly for a while", "sequencer", addr, "err", err, "for", pause)
}

// applyPushed applies a slot another agent sent, if it is the next one;
// one further ahead means slots were missed, which the bucket has.
func (l *Log) applyPushed(ctx context.Context, s Slot) {
	if len(s.Data) == 0 {
		return
	}
	l.lastPush = time.Now()
	if s.Seq > l.state.Seq+1 {
		if err := l.catchUp(ctx); err != nil {
			l.opts.Logger.Warn("tailing the metadata log", "err", err)
		}
	}
	if s.Seq == l.state.Seq+1 && l.Stalled() == nil && l.applySlot(s.Seq, s.Data) == nil {
		// The slot was the sequencer's newest a moment ago: this view is
		// as fresh as a read of the tail (the trim rule, trim.go).
		l.lastSync = l.lastPush
	}
}

// Resign stops this agent from sequencing for good and gives up the
// sequencer lease if it holds it, so that another takes over at once: a
// draining agent calls it first, since it will soon serve no one.
//
// The release is written whether or not the state shows the lease held:
// an ask of tendSequencer's may be on its way, and this release, queued
// after it (seqMu orders the two), lands after it. A release by an agent
// that does not hold the lease is ignored.
func (l *Log) Resign(ctx context.Context) error {
	l.seqMu.Lock()
	l.resigned.Store(true)
	deadline, _ := ctx.Deadline()
	p := l.pending(deadline, []Op{ReleaseLease{Job: SequencerJob}})
	select {
	case l.reqs <- p:
	case <-ctx.Done():
		l.seqMu.Unlock()
		return ctx.Err()
	}
	l.seqMu.Unlock()
	_, err := p.Wait(ctx)
	return err
}

// follow keeps asking the sequencer for the slots after this log's, and
// hands them to Run, so that other agents' entries are applied within a
// round trip of landing instead of at the next poll.
func (l *Log) follow(ctx context.Context) {
	for ctx.Err() == nil {
		var addr string
		l.View(func(st *State) {
			if seq, ok := st.Sequencer(time.Now().UnixMilli()); ok && seq.ID != l.opts.WriterID {
				addr = seq.Key()
			}
		})
		if addr == "" || l.Stalled() != nil {
			select {
			case <-l.Changed():
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		slots, err := l.opts.Relay.Slots(ctx, addr, l.Seq(), followWait)
		if err != nil {
			// Behind what it keeps, or unreachable: the poll reads the
			// bucket meanwhile.
			select {
			case <-time.After(l.opts.PollInterval):
			case <-ctx.Done():
			}
			continue
		}
		for _, s := range slots {
			select {
			case l.pushes <- s:
			case <-ctx.Done():
				return
			}
		}
	}
}

// tendSequencer takes the sequencer lease when nobody holds it and this
// agent is the candidate, and renews it once a third of it has passed. It
// asks by TrySubmit, so Run (which calls it) never waits on its own queue.
func (l *Log) tendSequencer() {
	if l.opts.Relay == nil || !l.opts.Sequence || l.state.format < Format5 || l.resigned.Load() {
		return
	}
	if p := l.leaseAsk; p != nil {
		select {
		case <-p.done:
			l.leaseAsk = nil
		default:
			return // the last ask is still on its way
		}
	}
	now := time.Now().UnixMilli()
	if seq, ok := l.state.Sequencer(now); ok {
		lease, _ := l.state.Lease(SequencerJob)
		if seq.ID != l.opts.WriterID || lease.UntilMs-now > 2*SequencerLease.Milliseconds()/3 {
			return
		}
	} else if cand, ok := l.state.SequencerCandidate(now); !ok || cand != l.opts.WriterID {
		return
	}
	l.seqMu.Lock()
	defer l.seqMu.Unlock()
	if l.resigned.Load() {
		return // Resign's release must be the last word
	}
	if p, err := l.TrySubmit(AcquireLease{Job: SequencerJob, DurationMs: SequencerLease.Milliseconds()}); err == nil {
		l.leaseAsk = p
	}
}
