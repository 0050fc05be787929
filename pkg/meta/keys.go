package meta

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Every key Barge writes in a bucket, in one place: the log and its
// snapshots, the cluster id, and the data objects the log's chunks point
// into. Whatever lists, sweeps or parses keys goes through these.
const (
	logPrefix  = "meta/log/"
	snapPrefix = "meta/snap/"

	// ClusterIDKey holds the id every agent on the bucket reports.
	ClusterIDKey = "meta/cluster-id"
	// PeerTokenKey holds the secret agents greet each other with
	// (pkg/protocol's peer connections): whoever can read the bucket.
	PeerTokenKey = "meta/peer-token"

	// SegmentPrefix starts the key of every object an agent's ingest
	// flush writes: batches of every partition, as producers sent them.
	SegmentPrefix = "seg/"
	// CompactedPrefix starts the key of every object file compaction
	// writes: chunks of one partition merged, batches unchanged.
	CompactedPrefix = "cmp/"
	// CleanedPrefix starts the key of every object key compaction
	// writes. Their batches carry their real base offsets, with gaps
	// where superseded records were dropped; every other object holds
	// batches whose offsets follow from the chunk's base.
	CleanedPrefix = "cln/"
)

// DataPrefixes are the prefixes of every data object, which the orphan
// sweep judges.
var DataPrefixes = []string{SegmentPrefix, CompactedPrefix, CleanedPrefix}

// EntryKey is the object key of log slot seq.
func EntryKey(seq uint64) string { return fmt.Sprintf("%s%020d", logPrefix, seq) }

// SnapshotKey is the object key of the snapshot taken after slot seq.
func SnapshotKey(seq uint64) string { return fmt.Sprintf("%s%020d", snapPrefix, seq) }

// DataKey names a data object written at ms by writer as its n-th: the
// 13-digit time makes keys list in the order they were written, and the
// writer and count make them unique without coordination.
func DataKey(prefix string, ms int64, writer string, n int64) string {
	return fmt.Sprintf("%s%013d-%s-%06d", prefix, ms, writer, n%1_000_000)
}

// DataKeyTime returns the time in a key DataKey made under prefix, and
// false for a key of any other form (not Barge's to judge).
func DataKeyTime(prefix, key string) (time.Time, bool) {
	name, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(name[:strings.IndexByte(name+"-", '-')], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
