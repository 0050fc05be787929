package protocol

import (
	"net"
	"slices"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchAnswer is a Fetch answer whose records are slices of cached chunks,
// written to the socket where they lie instead of being copied into the
// answer's buffer: a catching-up consumer's 55 MiB answer otherwise costs
// a 55 MiB allocation, its zeroing and a copy, per fetch.
//
// A partition's RecordBatches is its first slice; when its records span
// several chunks, the slices after it are in more, keyed by the first
// slice's data pointer, which no other partition of the answer shares
// (setRecords).
type fetchAnswer struct {
	*kmsg.FetchResponse
	more map[*byte][][]byte
}

// rest is the slices of p's records after p.RecordBatches.
func (a *fetchAnswer) rest(p *kmsg.FetchResponseTopicPartition) [][]byte {
	if len(a.more) == 0 || len(p.RecordBatches) == 0 {
		return nil
	}
	return a.more[unsafe.SliceData(p.RecordBatches)]
}

// setRecords makes recs, slices of cached chunks in order, p's records.
// Every partition with records has its first slice's pointer in more, so
// that a partition the request names twice, whose first slice may be the
// same, is found out and gets a copy instead.
func (a *fetchAnswer) setRecords(p *kmsg.FetchResponseTopicPartition, recs [][]byte) {
	if len(recs) == 0 {
		return
	}
	k := unsafe.SliceData(recs[0])
	if _, dup := a.more[k]; dup {
		p.RecordBatches = slices.Concat(recs...)
		return
	}
	if a.more == nil {
		a.more = map[*byte][][]byte{}
	}
	p.RecordBatches, a.more[k] = recs[0], recs[1:]
}

// flatten copies each partition's records into its RecordBatches, for
// kmsg's encoder.
func (a *fetchAnswer) flatten() {
	for i := range a.Topics {
		for j := range a.Topics[i].Partitions {
			p := &a.Topics[i].Partitions[j]
			if rest := a.rest(p); len(rest) > 0 {
				p.RecordBatches = slices.Concat(append([][]byte{p.RecordBatches}, rest...)...)
			}
		}
	}
	a.more = nil
}

// hasUnknownTags reports whether any part of the answer carries tagged
// fields kmsg keeps unparsed, which appendFetchWire does not write: such an
// answer is encoded by kmsg, copying its records.
func hasUnknownTags(v *kmsg.FetchResponse) bool {
	if v.UnknownTags.Len() > 0 {
		return true
	}
	for i := range v.Brokers {
		if v.Brokers[i].UnknownTags.Len() > 0 {
			return true
		}
	}
	for i := range v.Topics {
		t := &v.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return true
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.UnknownTags.Len() > 0 || p.DivergingEpoch.UnknownTags.Len() > 0 ||
				p.CurrentLeader.UnknownTags.Len() > 0 || p.SnapshotID.UnknownTags.Len() > 0 {
				return true
			}
			for k := range p.AbortedTransactions {
				if p.AbortedTransactions[k].UnknownTags.Len() > 0 {
					return true
				}
			}
		}
	}
	return false
}

// appendFetchWire appends the answer at its version as kmsg's AppendTo
// does, byte for byte, except that each partition's record bytes are left
// out of dst and appended to bufs in their place: bufs, read in order with
// dst's bytes between the records, is the encoded answer. at holds, for
// each entry of bufs, the length of dst it follows.
func (a *fetchAnswer) appendFetchWire(dst []byte, bufs net.Buffers, at []int) ([]byte, net.Buffers, []int) {
	v := a.FetchResponse
	version := v.Version
	flexible := version >= 12
	arrayLen := func(dst []byte, n int) []byte {
		if flexible {
			return kbin.AppendCompactArrayLen(dst, n)
		}
		return kbin.AppendArrayLen(dst, n)
	}
	str := func(dst []byte, s string) []byte {
		if flexible {
			return kbin.AppendCompactString(dst, s)
		}
		return kbin.AppendString(dst, s)
	}
	// tagged appends one tagged field, whose body body appends.
	tagged := func(dst []byte, tag uint32, body func([]byte) []byte) []byte {
		dst = kbin.AppendUvarint(dst, tag)
		start := len(dst)
		dst = body(dst)
		n := len(dst) - start
		// The size goes before the body: shift it by the size's width.
		w := len(kbin.AppendUvarint(nil, uint32(n)))
		dst = append(dst, make([]byte, w)...)
		copy(dst[start+w:], dst[start:start+n])
		kbin.AppendUvarint(dst[:start], uint32(n))
		return dst
	}

	if version >= 1 {
		dst = kbin.AppendInt32(dst, v.ThrottleMillis)
	}
	if version >= 7 {
		dst = kbin.AppendInt16(dst, v.ErrorCode)
		dst = kbin.AppendInt32(dst, v.SessionID)
	}
	dst = arrayLen(dst, len(v.Topics))
	for i := range v.Topics {
		t := &v.Topics[i]
		if version <= 12 {
			dst = str(dst, t.Topic)
		}
		if version >= 13 {
			dst = kbin.AppendUuid(dst, t.TopicID)
		}
		dst = arrayLen(dst, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			if version >= 4 {
				dst = kbin.AppendInt64(dst, p.LastStableOffset)
			}
			if version >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if version >= 4 {
				txns := p.AbortedTransactions
				if flexible {
					dst = kbin.AppendCompactNullableArrayLen(dst, len(txns), txns == nil)
				} else {
					dst = kbin.AppendNullableArrayLen(dst, len(txns), txns == nil)
				}
				for k := range txns {
					dst = kbin.AppendInt64(dst, txns[k].ProducerID)
					dst = kbin.AppendInt64(dst, txns[k].FirstOffset)
					if flexible {
						dst = append(dst, 0) // no tagged fields
					}
				}
			}
			if version >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			dst, bufs, at = a.appendRecords(dst, bufs, at, p, flexible)
			if flexible {
				dst = appendPartitionTags(dst, p, tagged)
			}
		}
		if flexible {
			dst = append(dst, 0) // the topic's tagged fields: none
		}
	}
	if flexible {
		if len(v.Brokers) == 0 {
			return append(dst, 0), bufs, at
		}
		dst = kbin.AppendUvarint(dst, 1)
		dst = tagged(dst, 0, func(dst []byte) []byte {
			dst = arrayLen(dst, len(v.Brokers))
			for k := range v.Brokers {
				b := &v.Brokers[k]
				dst = kbin.AppendInt32(dst, b.NodeID)
				dst = str(dst, b.Host)
				dst = kbin.AppendInt32(dst, b.Port)
				dst = kbin.AppendCompactNullableString(dst, b.Rack)
				dst = append(dst, 0)
			}
			return dst
		})
	}
	return dst, bufs, at
}

// appendRecords appends the length of p's records to dst and the records
// themselves to bufs.
func (a *fetchAnswer) appendRecords(dst []byte, bufs net.Buffers, at []int, p *kmsg.FetchResponseTopicPartition, flexible bool) ([]byte, net.Buffers, []int) {
	if p.RecordBatches == nil {
		if flexible {
			return append(dst, 0), bufs, at
		}
		return kbin.AppendInt32(dst, -1), bufs, at
	}
	rest := a.rest(p)
	n := len(p.RecordBatches)
	for _, b := range rest {
		n += len(b)
	}
	if flexible {
		dst = kbin.AppendUvarint(dst, 1+uint32(n))
	} else {
		dst = kbin.AppendInt32(dst, int32(n))
	}
	if len(p.RecordBatches) > 0 {
		bufs, at = append(bufs, p.RecordBatches), append(at, len(dst))
	}
	for _, b := range rest {
		bufs, at = append(bufs, b), append(at, len(dst))
	}
	return dst, bufs, at
}

// appendPartitionTags appends a partition's tagged fields as kmsg does:
// each only when it is not its default.
func appendPartitionTags(dst []byte, p *kmsg.FetchResponseTopicPartition, tagged func([]byte, uint32, func([]byte) []byte) []byte) []byte {
	de, cl, sn := p.DivergingEpoch, p.CurrentLeader, p.SnapshotID
	hasDE := de.Epoch != -1 || de.EndOffset != -1
	hasCL := cl.LeaderID != -1 || cl.LeaderEpoch != -1
	hasSN := sn.EndOffset != -1 || sn.Epoch != -1
	n := 0
	for _, has := range []bool{hasDE, hasCL, hasSN} {
		if has {
			n++
		}
	}
	dst = kbin.AppendUvarint(dst, uint32(n))
	if hasDE {
		dst = tagged(dst, 0, func(dst []byte) []byte {
			return append(kbin.AppendInt64(kbin.AppendInt32(dst, de.Epoch), de.EndOffset), 0)
		})
	}
	if hasCL {
		dst = tagged(dst, 1, func(dst []byte) []byte {
			return append(kbin.AppendInt32(kbin.AppendInt32(dst, cl.LeaderID), cl.LeaderEpoch), 0)
		})
	}
	if hasSN {
		dst = tagged(dst, 2, func(dst []byte) []byte {
			return append(kbin.AppendInt32(kbin.AppendInt64(dst, sn.EndOffset), sn.Epoch), 0)
		})
	}
	return dst
}
