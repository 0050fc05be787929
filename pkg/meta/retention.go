package meta

import (
	"errors"
	"maps"
	"sort"
	"strings"
)

// Topic configs, the log start offset and the lifetime of segment objects.
//
// SetTopicConfigs replaces a topic's explicitly set configs. AdvanceLogStart
// moves a partition's log start offset forward (DeleteRecords, retention):
// never backwards, never past the high watermark, and the chunks that end at
// or below the new start leave the index; a chunk that straddles it stays,
// and fetches return its whole batches from the one holding the start.
//
// The state counts, per segment object, the chunks that refer to it. When
// the count drops to zero (retention, DeleteRecords, DeleteTopic, or a
// commit none of whose batches were accepted) the object is released: it
// is listed with the entry time it was released at, until a collector has
// deleted it from the bucket after a grace period (so that readers in
// flight finish) and appended ForgetObjects. The counts are not in
// snapshots: they are rebuilt from the chunks.

// ErrOffsetOutOfRange is AdvanceLogStart's answer for an offset past the
// high watermark.
var ErrOffsetOutOfRange = errors.New("meta: offset out of range")

// SetTopicConfigs replaces the explicitly set configs of a topic.
type SetTopicConfigs struct {
	Topic   TopicID
	Configs map[string]string
}

// AdvanceLogStart moves a partition's log start offset up to Offset.
type AdvanceLogStart struct {
	Topic     TopicID
	Partition int32
	Offset    int64
}

// ForgetObjects removes collected objects from the released list.
type ForgetObjects struct{ Keys []string }

func (SetTopicConfigs) kind() uint8 { return kindSetTopicConfigs }
func (AdvanceLogStart) kind() uint8 { return kindAdvanceLogStart }
func (ForgetObjects) kind() uint8   { return kindForgetObjects }

// ReleasedObject is a segment object no chunk refers to any more.
type ReleasedObject struct {
	Key        string
	ReleasedMs int64 // entry time of the op that released it
}

func (s *State) setTopicConfigs(op SetTopicConfigs) error {
	t := s.byID[op.Topic]
	if t == nil {
		return ErrUnknownTopic
	}
	t.Configs = nil
	if len(op.Configs) > 0 {
		t.Configs = maps.Clone(op.Configs)
	}
	return nil
}

// advanceLogStart applies op at entry time nowMs and returns the
// partition's log start after it.
func (s *State) advanceLogStart(nowMs int64, op AdvanceLogStart) (int64, error) {
	var p *Partition
	if t := s.byID[op.Topic]; t != nil {
		p = t.Partition(op.Partition)
	}
	if p == nil {
		return -1, ErrUnknownTopic
	}
	if op.Offset > p.HighWatermark || op.Offset < 0 {
		return p.LogStart, ErrOffsetOutOfRange
	}
	if op.Offset <= p.LogStart {
		return p.LogStart, nil
	}
	p.LogStart = op.Offset
	p.trimAborted()
	n := 0
	for n < len(p.Chunks) && p.Chunks[n].NextOffset <= op.Offset {
		s.unref(nowMs, p.Chunks[n].Object)
		n++
	}
	p.Chunks = append([]Chunk(nil), p.Chunks[n:]...)
	return p.LogStart, nil
}

func (s *State) ref(object string) {
	s.objRefs[object]++
}

func (s *State) unref(nowMs int64, object string) {
	s.objRefs[object]--
	if s.objRefs[object] <= 0 {
		delete(s.objRefs, object)
		s.release(nowMs, object)
	}
}

// releaseUnused releases object if no chunk refers to it and it is not
// condemned (the orphan sweep deletes those).
func (s *State) releaseUnused(nowMs int64, object string) {
	if object != "" && s.objRefs[object] == 0 && !s.IsCondemned(object) {
		s.release(nowMs, object)
	}
}

func (s *State) release(nowMs int64, object string) {
	if _, ok := s.released[object]; !ok {
		s.released[object] = nowMs
	}
}

// dropChunks releases the references of a partition's chunks (its topic
// is being deleted).
func (s *State) dropChunks(nowMs int64, t *Topic) {
	for _, p := range t.Partitions {
		for _, c := range p.Chunks {
			s.unref(nowMs, c.Object)
		}
		p.Chunks = nil
	}
}

// rebuildRefs recounts the chunk references from the index.
func (s *State) rebuildRefs() {
	clear(s.objRefs)
	for _, t := range s.topics {
		for _, p := range t.Partitions {
			for _, c := range p.Chunks {
				s.objRefs[c.Object]++
			}
		}
	}
}

// ObjectRefs returns how many chunks refer to object.
func (s *State) ObjectRefs(object string) int { return s.objRefs[object] }

// IsReleased reports whether object is on the released list.
func (s *State) IsReleased(object string) bool {
	_, ok := s.released[object]
	return ok
}

// ReleasedCount returns how many objects are on the released list.
func (s *State) ReleasedCount() int { return len(s.released) }

// Released returns the released objects released at or before beforeMs,
// oldest first.
func (s *State) Released(beforeMs int64) []ReleasedObject {
	var out []ReleasedObject
	for k, ms := range s.released {
		if ms <= beforeMs {
			out = append(out, ReleasedObject{Key: k, ReleasedMs: ms})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ReleasedMs != out[j].ReleasedMs {
			return out[i].ReleasedMs < out[j].ReleasedMs
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// RetentionStart returns the log start that the topic's retention.ms and
// retention.bytes call for at nowMs: whole chunks only, oldest first. It
// returns the current log start when nothing is due, and when the topic's
// cleanup.policy does not include delete.
func (t *Topic) RetentionStart(p *Partition, nowMs int64) int64 {
	if !t.Deletes() {
		return p.LogStart
	}
	retMs, retBytes := t.ConfigInt("retention.ms"), t.ConfigInt("retention.bytes")
	var size int64
	for _, c := range p.Chunks {
		size += c.Len
	}
	n := 0
	for n < len(p.Chunks) {
		c := p.Chunks[n]
		expired := retMs >= 0 && c.MaxTimestamp < nowMs-retMs
		tooBig := retBytes >= 0 && size-c.Len >= retBytes
		if !expired && !tooBig {
			break
		}
		size -= c.Len
		n++
	}
	if n == 0 {
		return p.LogStart
	}
	if n == len(p.Chunks) {
		return max(p.LogStart, p.HighWatermark)
	}
	return max(p.LogStart, p.Chunks[n].BaseOffset)
}

// Deletes reports whether the topic's cleanup.policy includes delete:
// retention and DeleteRecords apply to it.
func (t *Topic) Deletes() bool { return t.hasPolicy("delete") }

// Compacts reports whether the topic's cleanup.policy includes compact:
// key compaction applies to it and its records need keys. Produce asks
// for every partition, so it does not allocate.
func (t *Topic) Compacts() bool { return t.hasPolicy("compact") }

func (t *Topic) hasPolicy(name string) bool {
	policy, _ := t.Config("cleanup.policy")
	for p := range strings.SplitSeq(policy, ",") {
		if strings.TrimSpace(p) == name {
			return true
		}
	}
	return false
}

func (op SetTopicConfigs) encode(e *encoder) {
	e.id(op.Topic)
	encodeConfigs(e, op.Configs)
}

func decodeSetTopicConfigs(d *decoder) Op {
	return SetTopicConfigs{Topic: d.id(), Configs: decodeConfigs(d)}
}

func (op AdvanceLogStart) encode(e *encoder) {
	e.id(op.Topic)
	e.svar(int64(op.Partition))
	e.svar(op.Offset)
}

func decodeAdvanceLogStart(d *decoder) Op {
	return AdvanceLogStart{Topic: d.id(), Partition: d.i32(), Offset: d.svar()}
}

func (op ForgetObjects) encode(e *encoder) { e.strs(op.Keys) }

func decodeForgetObjects(d *decoder) Op {
	n := d.count(1)
	op := ForgetObjects{Keys: make([]string, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		op.Keys = append(op.Keys, d.str())
	}
	return op
}

func encodeConfigs(e *encoder, configs map[string]string) {
	keys := make([]string, 0, len(configs))
	for k := range configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uvar(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(configs[k])
	}
}

func decodeConfigs(d *decoder) map[string]string {
	nc := d.count(2)
	if nc == 0 {
		return nil
	}
	m := make(map[string]string, min(nc, 64)) // a topic has about 30: a bigger count grows as it reads
	for j := 0; j < nc && d.err == nil; j++ {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

// Snapshot released-objects section (version 4): the released objects
// sorted by key, each with its release time.
func (s *State) encodeReleased(e *encoder) {
	keys := make([]string, 0, len(s.released))
	for k := range s.released {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uvar(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.svar(s.released[k])
	}
}

func (s *State) decodeReleased(d *decoder) {
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str()
		s.release(d.svar(), k)
	}
}
