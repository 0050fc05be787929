package meta

import (
	"errors"
	"sort"
)

// Condemning orphans (Format2). An orphan is a segment or compaction object
// in the bucket that no chunk refers to and that was never released: its
// commit (or ReplaceChunks, CleanChunks) has not landed, and may never.
// Deciding that from a listing and a view of the state races with a commit
// that is about to land, so the state decides, in log order:
//
//   - The sweeper appends CondemnObjects naming old unreferenced objects.
//     Applying it condemns each that no chunk refers to, is not released
//     and is not condemned already; the result lists them, and only
//     those, once applied, may be deleted.
//   - An op that would make a condemned object referenced (a Commit, the
//     output of ReplaceChunks or CleanChunks) is refused (ErrCondemned,
//     retriable: the producer sends its records again).
//   - Once deleted, condemned objects are forgotten (ForgetObjects) so the
//     set stays small. A forgotten object's commit could in principle still
//     be in flight (a writer paused for longer than every bound), and
//     nothing in the state names the object any more. So each such op
//     carries Since, the slot its writer had applied before it started
//     writing the object: the object then existed only after that slot,
//     it was condemned at a later one, and the state keeps the highest
//     slot at which an object it has forgotten was condemned (the commit
//     floor). An op with Since below the floor is refused like one naming
//     a condemned object. Normal commits land within seconds of their
//     upload and the sweeper forgets an object a pass after condemning it,
//     so only writers stalled for minutes ever meet the floor.
//
// Correctness rests on this order alone: the sweeper's clock and grace
// only decide which objects are worth condemning.

// ErrCondemned refuses an op whose object was condemned as an orphan (or
// that started before a forgotten condemnation): nothing of it was applied.
var ErrCondemned = errors.New("meta: object was condemned as an orphan before its commit landed")

// CondemnObjects asks to condemn orphan objects.
type CondemnObjects struct{ Keys []string }

func (CondemnObjects) kind() uint8 { return kindCondemnObjects }

func (op CondemnObjects) encode(e *encoder) { e.strs(op.Keys) }

func decodeCondemnObjects(d *decoder) Op { return CondemnObjects{Keys: d.strs()} }

// condemnation is when an object was condemned: its slot and entry time.
type condemnation struct {
	seq uint64
	ms  int64
}

// CondemnedObject is an object condemned and not yet forgotten.
type CondemnedObject struct {
	Key       string
	Seq       uint64 // slot of the CondemnObjects that condemned it
	CondemnMs int64  // that entry's time
}

func (s *State) condemnObjects(seq uint64, nowMs int64, op CondemnObjects) []string {
	var out []string
	for _, k := range op.Keys {
		if k == "" || s.objRefs[k] > 0 || s.IsReleased(k) {
			continue
		}
		if _, ok := s.condemned[k]; ok {
			continue
		}
		s.condemned[k] = condemnation{seq: seq, ms: nowMs}
		out = append(out, k)
	}
	return out
}

// refused reports whether an op writing object, whose writer had applied
// slot since before writing it, must be refused as condemned.
func (s *State) refused(object string, since uint64) bool {
	if _, ok := s.condemned[object]; ok {
		return true
	}
	return since < s.commitFloor
}

// forgetCondemned drops a deleted condemned object, raising the floor.
func (s *State) forgetCondemned(k string) {
	if c, ok := s.condemned[k]; ok {
		s.commitFloor = max(s.commitFloor, c.seq)
		delete(s.condemned, k)
	}
}

// IsCondemned reports whether object is condemned and not yet forgotten.
func (s *State) IsCondemned(object string) bool {
	_, ok := s.condemned[object]
	return ok
}

// Condemned returns the condemned objects, oldest first.
func (s *State) Condemned() []CondemnedObject {
	out := make([]CondemnedObject, 0, len(s.condemned))
	for k, c := range s.condemned {
		out = append(out, CondemnedObject{Key: k, Seq: c.seq, CondemnMs: c.ms})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seq != out[j].Seq {
			return out[i].Seq < out[j].Seq
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// CommitFloor returns the slot below which ops' Since is refused.
func (s *State) CommitFloor() uint64 { return s.commitFloor }

// Snapshot condemned section (version 7, inside the format section): the
// condemned objects sorted by key (key, slot, time), then the floor.
func (s *State) encodeCondemned(e *encoder) {
	keys := make([]string, 0, len(s.condemned))
	for k := range s.condemned {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uvar(uint64(len(keys)))
	for _, k := range keys {
		c := s.condemned[k]
		e.str(k)
		e.uvar(c.seq)
		e.svar(c.ms)
	}
	e.uvar(s.commitFloor)
}

func (s *State) decodeCondemned(d *decoder) {
	n := d.count(3)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		s.condemned[k] = condemnation{seq: d.uvar(), ms: d.svar()}
	}
	s.commitFloor = d.uvar()
}
