package meta

import (
	"fmt"
	"testing"
)

// 10,000 producers restarting (each a new producer id) over 100
// partitions leave, once they expire, a state and a snapshot no larger
// than the producers still active need.
func TestExpireProducersBoundsState(t *testing.T) {
	const day = 24 * 60 * 60 * 1000
	const parts, restarts, active, spread = 100, 10000, 300, 10
	build := func(idempotent bool) *State {
		s := stateWith(t, parts)
		apply(s, SetFormat{Version: Format2})
		for pid := range restarts + active {
			ts := int64(0)
			if pid >= restarts {
				ts = 2 * day // the ones still producing
			}
			var ps []CommitPart
			for k := range spread {
				b := plain(int64(k)*10, 10, 1)
				if idempotent || pid >= restarts {
					b = idem(int64(pid), 0, 0, 1)
					b.Pos = int64(k) * 10
				}
				ps = append(ps, part(testID(1), int32((pid*spread+k)%parts), b))
			}
			applyAt(s, ts, commitOf(fmt.Sprintf("seg/%06d", pid), ps...))
		}
		return s
	}
	s := build(true)
	if got := s.ProducerStates(); got != (restarts+active)*spread {
		t.Fatalf("setup: %d producer states", got)
	}
	r := applyAt(s, 2*day, ExpireProducers{BeforeMs: 2*day - day})
	if r[0].Expired != restarts*spread {
		t.Fatalf("expired %d producer states, want %d", r[0].Expired, restarts*spread)
	}
	if got := s.ProducerStates(); got != active*spread {
		t.Fatalf("%d producer states left, want the active producers' %d", got, active*spread)
	}
	// The same log with only the active producers idempotent: what the
	// state must shrink to.
	want := build(false)
	applyAt(want, 2*day, ExpireProducers{BeforeMs: 2*day - day})
	got, base := len(s.EncodeSnapshot()), len(want.EncodeSnapshot())
	if got > base+64 {
		t.Fatalf("snapshot of %d bytes after expiry; with only the active producers it is %d", got, base)
	}
	// The active ones keep their de-duplication.
	p := partition(t, s, "t", int32(restarts*spread%parts))
	hw := p.HighWatermark
	c := commitOf("seg/dup", part(testID(1), int32(restarts*spread%parts), idem(restarts, 0, 0, 1)))
	if res := applyAt(s, 2*day, c)[0].Parts[0][0]; res.Err != nil || res.BaseOffset < 0 {
		t.Fatalf("a retried batch of an active producer: %+v", res)
	}
	if p.HighWatermark != hw {
		t.Fatalf("the duplicate was appended: high watermark %d, was %d", p.HighWatermark, hw)
	}
}
