package meta

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Sequencing (Format5): one agent appends for all.
//
// Every slot goes to the first conditional PUT to land, so agents that
// append on their own race for each slot: a loser pays a PUT and a GET to
// learn one slot, and on a bucket whose conditional PUT takes tens of
// milliseconds a few dozen agents saturate the log. So one agent, the
// sequencer, holds the lease SequencerJob (leases.go) and appends on behalf
// of the others: each sends it its encoded entry (relay.go), the sequencer
// puts every entry that arrived during one PUT into the next one, each as
// a Contribute op, and answers each sender with the slot. Other agents'
// ops then cost a fraction of a PUT each, and nobody loses a slot.
//
// Correctness rests on the conditional write alone, as before: a sequencer
// that lost its lease without knowing it (paused, partitioned) writes at a
// slot after its stale view of the tail, which is taken, so its PUT fails
// with 412 and it reads the slot and learns of its successor.
//
// What the lease cannot prevent is an agent's entry landing twice: its
// sender gives up waiting on a slow sequencer and appends the same entry
// itself, while the sequencer's PUT was still in flight, or a sequencer
// receives an entry late, after its sender appended it. Hence the append
// number: every entry of Format5 carries its writer's Num, one more than the
// writer's last, and Contribute carries the contributor's. The state keeps
// each writer's newest Num applied and applies an entry or contribution
// only if its Num is higher, so the second copy (whichever way it came) is
// applied as nothing, with ErrDuplicate in its results. A writer has one
// append in flight at a time, so nothing it wrote later can overtake it.
//
// A contribution is applied as its writer's own entry would be: with its
// writer (for membership, fencing and leases) and its writer's time.

// SequencerJob is the lease the sequencer holds.
const SequencerJob = "sequencer"

// ErrDuplicate marks the results of an append applied already.
var ErrDuplicate = errors.New("meta: append applied already")

// Contribute is another agent's entry, appended for it by the sequencer.
type Contribute struct {
	Writer string
	Tag    uint64
	TimeMs int64
	Num    uint64
	Ops    []Op
}

func (Contribute) kind() uint8 { return kindContribute }

func init() {
	s := opSpecs[kindContribute]
	s.decode = decodeContribute
	opSpecs[kindContribute] = s
}

func (op Contribute) encode(e *encoder) {
	e.str(op.Writer)
	e.i64(int64(op.Tag))
	e.i64(op.TimeMs)
	e.uvar(op.Num)
	encodeOps(e, op.Ops)
}

func decodeContribute(d *decoder) Op {
	if d.nested {
		d.fail("a contribution inside a contribution")
		return Contribute{}
	}
	op := Contribute{Writer: d.str(), Tag: uint64(d.i64()), TimeMs: d.i64(), Num: d.uvar()}
	d.nested = true
	ops, err := decodeOps(d)
	d.nested = false
	if err != nil && d.err == nil {
		d.err = err
	}
	op.Ops = ops
	return op
}

// contribution wraps an entry for a sequencer to append.
func contribution(en *Entry) Contribute {
	return Contribute{Writer: en.Writer, Tag: en.Tag, TimeMs: en.TimeMs, Num: en.Num, Ops: en.Ops}
}

// advanceNum records writer's append num and reports whether it is new:
// an append is applied only if its number is above the writer's last.
// Number 0 (no number) is always new.
//
// The numbers are kept apart from the members (format.go), which a
// LeaveCluster deletes, because a copy may arrive after its writer left:
// they are forgotten only when the writer has been silent for as long as
// agents are (agentForgetMs), far longer than any append can be late.
func (s *State) advanceNum(writer string, num uint64, timeMs int64) bool {
	if num == 0 || s.format < Format5 {
		return true
	}
	n := s.nums[writer]
	if num <= n.num {
		return false
	}
	s.nums[writer] = appendNum{num: num, lastMs: max(n.lastMs, timeMs)}
	return true
}

// appendNum is a writer's newest append number applied, and when (the
// writer's time of that append).
type appendNum struct {
	num    uint64
	lastMs int64
}

// LastNum returns the newest append number applied for writer.
func (s *State) LastNum(writer string) uint64 { return s.nums[writer].num }

// SequencerLease is how long the sequencer's lease lasts from the entry
// that took or renewed it. The holder renews it once a third has passed and
// stops sequencing a second before it ends by its own clock
// (sequencerStopBefore), so a holder that is paused or partitioned is
// replaced within one lease of its last renewal (plus the clock skew
// between agents). checkSequencerTiming, which Open calls, holds the
// constants to their invariant.
const (
	SequencerLease      = 6 * time.Second
	sequencerStopBefore = time.Second
)

// checkSequencerTiming: a renewal is asked for once a third of the lease
// has passed and may wait up to a relay budget on a sequencer of its own
// (the holder appends directly, but its queue may hold a contribution
// that waits that long), so it must land before the holder would stop.
func checkSequencerTiming() error {
	if SequencerLease*2/3 <= sequencerStopBefore+relayBudget {
		return fmt.Errorf("meta: sequencer lease %v leaves no time to renew before stopping (%v) plus a relay budget (%v)",
			SequencerLease, sequencerStopBefore, relayBudget)
	}
	return nil
}

// Sequencer returns the agent holding the sequencer lease at nowMs.
func (s *State) Sequencer(nowMs int64) (Agent, bool) {
	if s.format < Format5 {
		return Agent{}, false
	}
	l, ok := s.leases[SequencerJob]
	if !ok || !l.Held(nowMs) {
		return Agent{}, false
	}
	a := s.agents[l.Holder]
	if a == nil || !a.member() {
		return Agent{}, false
	}
	return *a, true
}

// sequences reports whether the agent may be the sequencer: it runs jobs
// and sequencing (AgentHeartbeat's NoJobs and NoSequence).
func (a *Agent) sequences() bool { return !a.NoJobs && !a.NoSequence }

// SequencerCandidate returns the member that should take the sequencer
// lease when nobody holds it at nowMs: the one rendezvous hashing picks
// among the members that may sequence, leaving out the last holder (whose
// lease lapsed: it is gone, paused or cut off). Every agent that has read
// the same slots picks the same one; the lease decides if they differ.
func (s *State) SequencerCandidate(nowMs int64) (string, bool) {
	if s.format < Format5 {
		return "", false
	}
	if _, held := s.Sequencer(nowMs); held {
		return "", false
	}
	lapsed := s.leases[SequencerJob].Holder
	var ids []string
	for id, a := range s.agents {
		if a.member() && a.sequences() && id != lapsed {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if a := s.agents[lapsed]; lapsed != "" && a.member() && a.sequences() {
			return lapsed, true // the only one there is
		}
		return "", false
	}
	return Rendezvous(SequencerJob, ids), true
}

// Snapshot sequencing section (version 10, Format5): the writers' append
// numbers (count, then writer, number and its time, sorted by writer),
// then the agents that do not sequence (count, ids sorted).
func (s *State) encodeNums(e *encoder) {
	ws := make([]string, 0, len(s.nums))
	for w := range s.nums {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	e.uvar(uint64(len(ws)))
	for _, w := range ws {
		e.str(w)
		e.uvar(s.nums[w].num)
		e.svar(s.nums[w].lastMs)
	}
	ids := make([]string, 0, len(s.agents))
	for id, a := range s.agents {
		if a.NoSequence {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
	}
}

func (s *State) decodeNums(d *decoder) {
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		w := d.str()
		s.nums[w] = appendNum{num: d.uvar(), lastMs: d.svar()}
	}
	n = d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		if a := s.agents[d.str()]; a != nil {
			a.NoSequence = true
		} else if d.err == nil {
			d.fail("sequencing of an unknown agent")
		}
	}
}

// Append is one writer's append as a slot holds it: the entry's own ops,
// or a contribution in it (with their results once applied).
type Append struct {
	Writer  string
	TimeMs  int64
	Num     uint64
	Ops     []Op
	Results []Result // nil unless the entry's results were given
}

// Appends splits an entry into its writers' appends: the entry's own ops
// (all but its contributions) first, then each contribution, in order.
// results, if not nil, are the entry's from State.Apply. For tools and
// tests that read the log by writer.
func Appends(en *Entry, results []Result) []Append {
	own := Append{Writer: en.Writer, TimeMs: en.TimeMs, Num: en.Num}
	var contributed []Append
	for i, op := range en.Ops {
		var r Result
		if results != nil {
			r = results[i]
		}
		if c, ok := op.(Contribute); ok {
			contributed = append(contributed, Append{Writer: c.Writer, TimeMs: c.TimeMs, Num: c.Num, Ops: c.Ops, Results: r.Contributed})
			continue
		}
		own.Ops = append(own.Ops, op)
		if results != nil {
			own.Results = append(own.Results, r)
		}
	}
	return append([]Append{own}, contributed...)
}
