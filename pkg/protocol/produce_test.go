package protocol

import (
	"errors"
	"math"
	"testing"

	"github.com/bargehq/barge/pkg/batch"
)

// TestCheckTimestamps: Kafka's per-record timestamp rules, judged from the
// records' oldest and newest timestamps, at the edges and at the ends of
// int64, where a careless subtraction would overflow and let a record in.
func TestCheckTimestamps(t *testing.T) {
	const now, hour = int64(1_800_000_000_000), int64(3_600_000)
	bounded := timestampBounds{before: hour, after: hour}
	none := timestampBounds{-1, -1}
	const logAppendAttr = 0x08 // attribute bit 3
	sum := func(h batch.Header, oldest, newest int64) batch.Summary {
		return batch.Summary{Header: h, MinTimestamp: oldest, MaxTimestamp: newest}
	}
	create := batch.Header{}
	stamped := batch.Header{Attributes: logAppendAttr, MaxTimestamp: now}
	unstamped := batch.Header{Attributes: logAppendAttr, MaxTimestamp: -1}
	tests := []struct {
		name      string
		s         batch.Summary
		logAppend bool
		b         timestampBounds
		ok        bool
	}{
		{"at both bounds", sum(create, now-hour, now+hour), false, bounded, true},
		{"a millisecond ahead", sum(create, now, now+hour+1), false, bounded, false},
		{"a millisecond behind", sum(create, now-hour-1, now), false, bounded, false},
		{"no record has a timestamp", sum(create, math.MaxInt64, -1), false, bounded, true},
		{"the oldest int64", sum(create, math.MinInt64, now), false, bounded, false},
		{"the newest int64", sum(create, now, math.MaxInt64), false, bounded, false},
		{"negative, unbounded behind", sum(create, -5, now), false, timestampBounds{math.MaxInt64 - 1, hour}, true},
		{"no bounds", sum(create, math.MinInt64, math.MaxInt64), false, none, true},
		{"a producer's LogAppendTime batch, LogAppendTime topic", sum(stamped, now, now), true, none, false},
		{"a producer's LogAppendTime batch, CreateTime topic", sum(stamped, now, now), false, bounded, true},
		{"a producer's LogAppendTime batch without a timestamp", sum(unstamped, math.MaxInt64, -1), false, bounded, false},
	}
	for _, tt := range tests {
		err := checkTimestamps(tt.s, tt.logAppend, tt.b, now)
		if tt.ok != (err == nil) || err != nil && !errors.Is(err, errInvalidTimestamp) {
			t.Errorf("%s: %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
