package meta

import (
	"errors"
	"fmt"
	"hash/fnv"
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
func (s *State) advanceNum(writer string, num uint64) bool {
	if num == 0 || s.format < Format5 {
		return true
	}
	m, ok := s.members[writer]
	if ok && num <= m.num {
		return false
	}
	m.num = num
	s.members[writer] = m
	return true
}

// LastNum returns the newest append number applied for writer.
func (s *State) LastNum(writer string) uint64 { return s.members[writer].num }

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

// SequencerCandidate returns the member that should take the sequencer
// lease when nobody holds it at nowMs: the one rendezvous hashing picks
// among the members that run jobs, leaving out the last holder (whose
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
		if a.member() && !a.NoJobs && id != lapsed {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if a := s.agents[lapsed]; lapsed != "" && a.member() && !a.NoJobs {
			return lapsed, true // the only one there is
		}
		return "", false
	}
	sort.Strings(ids)
	best, bestW := "", uint64(0)
	for _, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(SequencerJob))
		h.Write([]byte{0})
		h.Write([]byte(id))
		if w := h.Sum64(); best == "" || w > bestW {
			best, bestW = id, w
		}
	}
	return best, true
}

// Snapshot append-numbers section (version 10, Format5): the writers with
// a number (count, then writer and number, sorted by writer).
func (s *State) encodeNums(e *encoder) {
	ws := make([]string, 0, len(s.members))
	for w, m := range s.members {
		if m.num > 0 {
			ws = append(ws, w)
		}
	}
	sort.Strings(ws)
	e.uvar(uint64(len(ws)))
	for _, w := range ws {
		e.str(w)
		e.uvar(s.members[w].num)
	}
}

func (s *State) decodeNums(d *decoder) {
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		w := d.str()
		m, ok := s.members[w]
		if !ok {
			d.fail("append number of an unknown writer")
			return
		}
		m.num = d.uvar()
		s.members[w] = m
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
