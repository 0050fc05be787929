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
// and only the ops that format has; a new format's ops are written only
// after the cluster has moved to it, and it moves only once every live
// agent has announced that it understands it:
//
//  1. An agent whose MaxFormat is above the cluster's announces it
//     (AnnounceFormat, alone in its entry: an agent built before formats
//     existed applies an entry it cannot decode as empty, and this one
//     changes nothing such an agent keeps).
//  2. When every live agent has announced at least F, any of them appends
//     SetFormat{F}; applying it raises the cluster's format.
//  3. From the next entry on, writers use F's encoding and ops.
//
// So a rolling upgrade never strands an old agent: the cluster stays at
// the old format while any agent of the old build is live. An agent that
// meets an entry it cannot decode (a newer version, an unknown op kind, a
// SetFormat above its MaxFormat) never applies past it: the log stalls
// there (Log.Stalled), the agent stops serving and says which format it
// needs, and an upgraded build resumes from the same slot.
//
// Snapshots follow the cluster's format too: while it is Format1 they are
// written in the layout older builds read.

// Format is a cluster format version.
type Format uint16

// The formats, oldest first.
const (
	// Format1 is the log as it was before formats: ops 1 to 17.
	Format1 Format = 1
	// Format2 adds CondemnObjects, ExpireProducers and the Since field
	// of Commit, ReplaceChunks and CleanChunks (condemn.go).
	Format2 Format = 2
)

// maxFormatOverride lowers MaxFormat in a build made to act as an older
// one, for version-skew tests:
//
//	go build -ldflags "-X github.com/bargehq/barge/pkg/meta.maxFormatOverride=1" ./cmd/agent
var maxFormatOverride string

// MaxFormat is the newest format this build understands.
var MaxFormat = func() Format {
	f := Format2
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

func (AnnounceFormat) kind() uint8 { return kindAnnounceFormat }
func (SetFormat) kind() uint8      { return kindSetFormat }

func (op AnnounceFormat) encode(e *encoder) { e.uvar(uint64(op.Max)) }
func (op SetFormat) encode(e *encoder)      { e.uvar(uint64(op.Version)) }

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

func (s *State) announceFormat(writer string, op AnnounceFormat) {
	if a := s.agents[writer]; a != nil {
		a.MaxFormat = op.Max
	}
}

func (s *State) setFormat(op SetFormat) {
	s.format = max(s.format, op.Version) // a ratchet: never down
}

// FormatTarget returns the format that agent self and every agent live
// at nowMs (heard from within ttlMs) have announced they understand, never
// below the cluster's: the format SetFormat may raise the cluster to.
func (s *State) FormatTarget(self string, nowMs, ttlMs int64) Format {
	target := Format(0)
	for id, a := range s.agents {
		if id != self && nowMs-a.LastMs > ttlMs {
			continue
		}
		f := max(a.MaxFormat, Format1) // an agent that never announced is of Format1
		if target == 0 || f < target {
			target = f
		}
	}
	return max(target, s.format)
}

// Snapshot format section (version 7): the cluster format, the agents'
// announced formats (agent id, format, sorted by id, only those that
// announced), then the condemned objects and the commit floor (condemn.go).
func (s *State) encodeFormat(e *encoder) {
	e.uvar(uint64(s.format))
	var ids []string
	for id, a := range s.agents {
		if a.MaxFormat > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
		e.uvar(uint64(s.agents[id].MaxFormat))
	}
	s.encodeCondemned(e)
}

func (s *State) decodeFormat(d *decoder) {
	s.format = d.format16()
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		id, f := d.str(), d.format16()
		a := s.agents[id]
		if a == nil {
			d.fail("announced format of an unknown agent")
			return
		}
		a.MaxFormat = f
	}
	s.decodeCondemned(d)
}

// MaxFormat returns the newest format this log understands.
func (l *Log) MaxFormat() Format { return l.opts.MaxFormat }

// StepFormat moves the cluster toward this log's MaxFormat, one step per
// call: it announces this agent's MaxFormat if the state does not show it
// yet (the agent must be registered), or, when every agent live at now
// (heard from within ttl) has announced more than the cluster's format,
// raises the cluster's format. It writes nothing when there is nothing to
// do, and is safe to call from every agent: SetFormat only ever ratchets.
func (l *Log) StepFormat(ctx context.Context, now time.Time, ttl time.Duration) error {
	var op Op
	l.View(func(st *State) {
		if st.format >= l.opts.MaxFormat {
			return
		}
		a, ok := st.agents[l.opts.WriterID]
		switch {
		case !ok:
		case a.MaxFormat < l.opts.MaxFormat:
			op = AnnounceFormat{Max: l.opts.MaxFormat}
		default:
			if t := min(st.FormatTarget(l.opts.WriterID, now.UnixMilli(), ttl.Milliseconds()), l.opts.MaxFormat); t > st.format {
				op = SetFormat{Version: t}
			}
		}
	})
	if op == nil {
		return nil
	}
	if sf, ok := op.(SetFormat); ok {
		l.opts.Logger.Info("raising the cluster format: every live agent understands it", "format", sf.Version)
	}
	p := l.pending(time.Time{}, []Op{op})
	p.alone = true
	select {
	case l.reqs <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := p.Wait(ctx)
	return err
}
