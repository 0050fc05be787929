package meta

import (
	"errors"
	"math"
	"sort"
)

// Job leases. Any agent may run a background job (retention of a topic,
// its compaction, collection, trimming the log); the agents spread them by
// hashing, but two agents whose views of the live set differ would both run
// one. A lease in the log is what keeps them apart: AcquireLease is granted
// to the entry's writer when the job has no lease, when its lease has
// expired by the entry's time, or when the writer holds it already (a
// renewal); the lease then runs until the entry's time plus DurationMs.
// Otherwise the op fails with ErrLeaseHeld and the writer leaves the job
// alone. ReleaseLease ends a lease early; from anyone but the holder it is
// ignored, so a holder whose lease expired and went to another agent cannot
// free the new holder's.
//
// Expiry is judged by entry times, which are the writers' clocks: a holder
// must stop before its lease ends by its own clock, and leases are only as
// exclusive as the agents' clocks agree, to well within a lease. The jobs
// do not rest their correctness on leases (every op they append is checked
// against the state); a lease only keeps two agents from doing the same
// work and writing two outputs for it.
//
// An expired lease stays in the state until someone acquires or releases
// the job again: only jobs whose holder died mid-run, and that nobody runs
// afterwards (a deleted topic's), linger, a few bytes each.

// Lease errors recorded in results.
var (
	ErrLeaseHeld    = errors.New("meta: job lease held by another agent")
	ErrInvalidLease = errors.New("meta: lease needs a job name and a positive duration")
)

// AcquireLease asks for the lease of Job for DurationMs, for the entry's
// writer.
type AcquireLease struct {
	Job        string
	DurationMs int64
}

// ReleaseLease gives up the writer's lease of Job.
type ReleaseLease struct{ Job string }

func (AcquireLease) kind() uint8 { return kindAcquireLease }
func (ReleaseLease) kind() uint8 { return kindReleaseLease }

// Lease is who holds a job and until when (entry time, unix ms).
type Lease struct {
	Holder  string // writer id
	UntilMs int64
}

// Held reports whether the lease is still in force at nowMs.
func (l Lease) Held(nowMs int64) bool { return nowMs < l.UntilMs }

func (s *State) acquireLease(writer string, nowMs int64, op AcquireLease) error {
	if op.Job == "" || op.DurationMs <= 0 {
		return ErrInvalidLease
	}
	if l, ok := s.leases[op.Job]; ok && l.Holder != writer && l.Held(nowMs) {
		return ErrLeaseHeld
	}
	until := int64(math.MaxInt64)
	if nowMs <= math.MaxInt64-op.DurationMs {
		until = nowMs + op.DurationMs
	}
	s.leases[op.Job] = Lease{Holder: writer, UntilMs: until}
	return nil
}

func (s *State) releaseLease(writer string, nowMs int64, op ReleaseLease) {
	if l, ok := s.leases[op.Job]; ok && l.Holder == writer {
		if op.Job == SequencerJob && s.format >= Format5 {
			// Lapsed rather than gone: the candidate for the next lease
			// leaves out the last holder (sequencer.go), which resigned
			// and must not be picked again while it drains.
			s.leases[op.Job] = Lease{Holder: writer, UntilMs: min(l.UntilMs, nowMs)}
			return
		}
		delete(s.leases, op.Job)
	}
}

// Lease returns the lease of job, which may have expired.
func (s *State) Lease(job string) (Lease, bool) {
	l, ok := s.leases[job]
	return l, ok
}

func (op AcquireLease) encode(e *encoder) {
	e.str(op.Job)
	e.svar(op.DurationMs)
}

func (op ReleaseLease) encode(e *encoder) { e.str(op.Job) }

func decodeAcquireLease(d *decoder) Op { return AcquireLease{Job: d.str(), DurationMs: d.svar()} }

func decodeReleaseLease(d *decoder) Op { return ReleaseLease{Job: d.str()} }

// Snapshot leases section (version 5): the leases sorted by job, each with
// its holder and end.
func (s *State) encodeLeases(e *encoder) {
	jobs := make([]string, 0, len(s.leases))
	for j := range s.leases {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	e.uvar(uint64(len(jobs)))
	for _, j := range jobs {
		l := s.leases[j]
		e.str(j)
		e.str(l.Holder)
		e.svar(l.UntilMs)
	}
}

func (s *State) decodeLeases(d *decoder) {
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		j := d.str()
		s.leases[j] = Lease{Holder: d.str(), UntilMs: d.svar()}
	}
}
