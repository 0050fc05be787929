package meta

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// The cluster format version, ratcheted like pebble's format major version.
//
// Every entry carries the format it was encoded in (its version byte), and
// the state carries the cluster's format, which only goes up. A build knows
// the formats up to MaxFormat. Agents write entries in the cluster's format
// and only the ops that format has (Apply refuses the others, whoever wrote
// them); a new format's ops are written only after the cluster has moved
// to it, and it moves only once every member of the cluster has announced
// that it understands it:
//
//  1. Every writer of an entry is a member (the state keeps each writer's
//     last entry time). An agent whose MaxFormat is above the cluster's
//     announces it (AnnounceFormat). A member leaves by LeaveCluster, on a
//     clean shutdown, or by silence: one not heard from for the format
//     grace (an hour by default) no longer holds the format back.
//  2. When every member has announced at least F, any of them appends
//     SetFormat{F}; applying it raises the cluster's format.
//  3. From the next entry on, writers use F's encoding and ops.
//
// Membership, not liveness, because an agent built before formats existed
// cannot stall: it applies an entry it cannot decode as empty and goes on
// with a forked state (and its old orphan sweep would delete what it no
// longer sees). So the format must not move while such an agent might
// still run: not while it is paused, partitioned, or sharing an address
// with another. It never announces, so it holds the format at Format1
// until it has been silent for the grace. The format ops (AnnounceFormat,
// SetFormat, LeaveCluster) are each alone in their entry and change only
// what such an agent does not keep (LeaveCluster also marks the agent as
// gone for liveness, a hint no snapshot holds), so applying them as empty
// forks nothing. Once a cluster is at Format2, a build from before formats must
// never be started on it again.
//
// An agent that meets an entry it cannot decode (a newer version, an
// unknown op kind, a SetFormat above its MaxFormat) never applies past it:
// the log stalls there (Log.Stalled), the agent stops serving and says
// which format it needs, and an upgraded build resumes from the same slot.
//
// Snapshots follow the cluster's format too: while it is Format1 they are
// written in the layout older builds read, which has no membership; a state
// loaded from one does not know who wrote before it, so it raises the
// format only after it has itself watched the log for the grace.

// Format is a cluster format version.
type Format uint16

// The formats, oldest first.
const (
	// Format1 is the log as it was before formats: ops 1 to 17.
	Format1 Format = 1
	// Format2 adds CondemnObjects, ExpireProducers and the Since field
	// of Commit, ReplaceChunks and CleanChunks (condemn.go), and tighter
	// partition bounds (bounds.go).
	Format2 Format = 2
	// Format3 adds the PeerAddr of AgentHeartbeat (agents.go): agents
	// that share one advertised address are told apart by it.
	Format3 Format = 3
	// Format4 adds membership (membership.go): ExpireAgent, leader
	// epochs, and the fencing of commits by agents that are not members.
	Format4 Format = 4
	// Format5 adds sequencing (sequencer.go): the writer's append
	// number in every entry, and Contribute, by which one agent appends
	// other agents' ops on their behalf.
	Format5 Format = 5
	// Format6 adds security (security.go): SCRAM credentials and ACL
	// bindings.
	Format6 Format = 6
	// Format7 adds transactions (txn.go): the transactional ops, and the
	// transactional and control flags of a Commit's batches.
	Format7 Format = 7
)

// maxFormatOverride lowers MaxFormat in a build made to act as an older
// one, for version-skew tests:
//
//	go build -ldflags "-X github.com/bargehq/barge/pkg/meta.maxFormatOverride=1" ./cmd/agent
var maxFormatOverride string

// MaxFormat is the newest format this build understands.
var MaxFormat = func() Format {
	f := Format7
	if n, err := strconv.Atoi(maxFormatOverride); err == nil && n >= int(Format1) && n < int(f) {
		f = Format(n)
	}
	return f
}()

// FormatError reports bytes of a format this build does not understand.
type FormatError struct {
	Need Format // the format the bytes need; 0 if unknown (newer than MaxFormat)
	What string
	Max  Format // the newest format the reader understands
}

func (e *FormatError) Error() string {
	need := "a newer cluster format"
	if e.Need > 0 {
		need = fmt.Sprintf("cluster format %d", e.Need)
	}
	return fmt.Sprintf("meta: %s needs %s; this agent understands formats up to %d: upgrade it", e.What, need, e.Max)
}

// AnnounceFormat records that the writing agent understands formats up to
// Max.
type AnnounceFormat struct{ Max Format }

// SetFormat raises the cluster format to Version.
type SetFormat struct{ Version Format }

// LeaveCluster says the writing agent is going away for good: it no longer
// holds the cluster format back.
type LeaveCluster struct{}

func (AnnounceFormat) kind() uint8 { return kindAnnounceFormat }
func (SetFormat) kind() uint8      { return kindSetFormat }
func (LeaveCluster) kind() uint8   { return kindLeaveCluster }

func (op AnnounceFormat) encode(e *encoder) { e.uvar(uint64(op.Max)) }
func (op SetFormat) encode(e *encoder)      { e.uvar(uint64(op.Version)) }
func (LeaveCluster) encode(*encoder)        {}

func decodeLeaveCluster(*decoder) Op { return LeaveCluster{} }

func decodeAnnounceFormat(d *decoder) Op { return AnnounceFormat{Max: d.format16()} }

func decodeSetFormat(d *decoder) Op {
	op := SetFormat{Version: d.format16()}
	if d.err == nil && op.Version > d.max {
		d.err = &FormatError{Need: op.Version, What: "the log's SetFormat", Max: d.max}
	}
	return op
}

// Format returns the cluster's format.
func (s *State) Format() Format { return s.format }

// member is what the state knows of one writer for the format's sake.
type member struct {
	lastMs int64  // its newest entry's time
	max    Format // what it announced; 0: nothing (it is of Format1)
}

// heardMember notes an entry by writer at timeMs.
func (s *State) heardMember(writer string, timeMs int64) {
	if writer == "" {
		return
	}
	m := s.members[writer]
	m.lastMs = max(m.lastMs, timeMs)
	s.members[writer] = m
	if s.membersSince < 0 { // loaded from a snapshot without membership
		s.membersSince = timeMs
	}
}

func (s *State) announceFormat(writer string, op AnnounceFormat) {
	if m, ok := s.members[writer]; ok {
		m.max = op.Max
		s.members[writer] = m
	}
}

// forgetMembers drops the members silent for agentForgetMs at nowMs, and
// their append numbers (sequencer.go).
func (s *State) forgetMembers(nowMs int64) {
	for w, m := range s.members {
		if nowMs-m.lastMs > agentForgetMs {
			delete(s.members, w)
		}
	}
	for w, n := range s.nums {
		if nowMs-n.lastMs > agentForgetMs {
			delete(s.nums, w)
		}
	}
}

func (s *State) setFormat(timeMs int64, op SetFormat) {
	if s.format < Format4 && op.Version >= Format4 {
		s.startMembership(timeMs)
	}
	s.format = max(s.format, op.Version) // a ratchet: never down
}

// FormatTarget returns the format that agent self, of format selfMax, and
// every other member heard from within graceMs of nowMs have announced
// they understand, never below the cluster's: the format SetFormat may
// raise the cluster to. A state that does not know who wrote before it
// (loaded from a Format1 snapshot) answers the cluster's format until it
// has watched the log for graceMs.
func (s *State) FormatTarget(self string, selfMax Format, nowMs, graceMs int64) Format {
	if s.membersSince < 0 || s.membersSince > 0 && nowMs-s.membersSince < graceMs {
		return s.format
	}
	target := selfMax
	for w, m := range s.members {
		if w == self || nowMs-m.lastMs > graceMs {
			continue
		}
		target = min(target, max(m.max, Format1)) // one that never announced is of Format1
	}
	return max(target, s.format)
}

// Snapshot format section (version 7): the cluster format, the members
// (writer, last entry time, announced format; sorted by writer) and when
// membership is known from (-1: unknown), then the condemned objects and
// the commit floor (condemn.go).
func (s *State) encodeFormat(e *encoder) {
	e.uvar(uint64(s.format))
	ws := make([]string, 0, len(s.members))
	for w := range s.members {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	e.uvar(uint64(len(ws)))
	for _, w := range ws {
		m := s.members[w]
		e.str(w)
		e.svar(m.lastMs)
		e.uvar(uint64(m.max))
	}
	e.svar(s.membersSince)
	s.encodeCondemned(e)
}

func (s *State) decodeFormat(d *decoder) {
	s.format = d.format16()
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		w := d.str()
		s.members[w] = member{lastMs: d.svar(), max: d.format16()}
	}
	s.membersSince = d.svar()
	s.decodeCondemned(d)
}

// MaxFormat returns the newest format this log understands.
func (l *Log) MaxFormat() Format { return l.opts.MaxFormat }

// StepFormat moves the cluster toward this log's MaxFormat, one step per
// call: it announces this agent's MaxFormat if the state does not show it
// yet (the agent must have written an entry), or, when every member has
// announced more than the cluster's format (FormatTarget, with
// Options.FormatGrace), raises the cluster's format. It writes nothing
// when there is nothing to do, and is safe to call from every agent:
// SetFormat only ever ratchets.
func (l *Log) StepFormat(ctx context.Context, now time.Time) error {
	_, err := l.stepFormat(ctx, now)
	return err
}

// stepFormat is StepFormat, saying whether it wrote.
func (l *Log) stepFormat(ctx context.Context, now time.Time) (bool, error) {
	var op Op
	l.View(func(st *State) {
		if st.format >= l.opts.MaxFormat {
			return
		}
		m, ok := st.members[l.opts.WriterID]
		switch {
		case !ok:
		case m.max < l.opts.MaxFormat:
			op = AnnounceFormat{Max: l.opts.MaxFormat}
		default:
			if t := st.FormatTarget(l.opts.WriterID, l.opts.MaxFormat, now.UnixMilli(), l.opts.FormatGrace.Milliseconds()); t > st.format {
				op = SetFormat{Version: t}
			}
		}
	})
	if op == nil {
		return false, nil
	}
	if sf, ok := op.(SetFormat); ok {
		l.opts.Logger.Info("raising the cluster format: every member understands it", "format", sf.Version)
	}
	return true, l.appendAlone(ctx, op)
}

// Leave records that this agent is going away for good (a clean
// shutdown), so that it no longer holds the cluster format back.
// A sequencer gives up its lease first (Resign), so that another takes
// it at once rather than when it lapses.
func (l *Log) Leave(ctx context.Context) error {
	if err := l.Resign(ctx); err != nil {
		return err
	}
	return l.appendAlone(ctx, LeaveCluster{})
}

// appendAlone appends a format op in an entry of its own.
func (l *Log) appendAlone(ctx context.Context, op Op) error {
	deadline, _ := ctx.Deadline()
	p := l.pending(deadline, []Op{op})
	p.alone = true
	select {
	case l.reqs <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := p.Wait(ctx)
	return err
}

// AwaitFormat steps the cluster's format (StepFormat) until it reaches
// need, or until this agent has nothing left to write and within has
// passed, and returns the format it is at. Agents of one build started
// together each register before the others announce; a member that
// never announced counts as Format1 until it does, so the format an agent
// sees right after registering says little: the others of its build
// announce within an append or two. A member of an older build never
// announces, and the wait ends at within.
func (l *Log) AwaitFormat(ctx context.Context, need Format, within time.Duration) (Format, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		changed := l.Changed()
		wrote, err := l.stepFormat(ctx, time.Now())
		if err != nil {
			return 0, err
		}
		var f Format
		l.View(func(st *State) { f = st.Format() })
		if f >= need {
			return f, nil
		}
		if wrote { // its own entry is applied: step again at once
			continue
		}
		select {
		case <-changed:
		case <-deadline.C:
			return f, nil
		case <-ctx.Done():
			return f, ctx.Err()
		}
	}
}
