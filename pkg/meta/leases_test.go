package meta

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

// applyBy applies ops as the next slot written by writer at timeMs.
func applyBy(s *State, writer string, timeMs int64, ops ...Op) []Result {
	return s.Apply(s.Seq+1, &Entry{Writer: writer, TimeMs: timeMs, Ops: ops})
}

func wantLease(t *testing.T, s *State, job, holder string, until int64) {
	t.Helper()
	l, ok := s.Lease(job)
	if !ok || l.Holder != holder || l.UntilMs != until {
		t.Fatalf("lease of %s = %+v %v, want %s until %d", job, l, ok, holder, until)
	}
}

func TestLeaseGrantRefuseExpire(t *testing.T) {
	s := NewState()
	r := applyBy(s, "a", 1000, AcquireLease{Job: "compact/t", DurationMs: 500}, AcquireLease{Job: "collect", DurationMs: 100})
	if r[0].Err != nil || r[1].Err != nil {
		t.Fatalf("first acquire: %v %v", r[0].Err, r[1].Err)
	}
	wantLease(t, s, "compact/t", "a", 1500)
	wantLease(t, s, "collect", "a", 1100)

	// Another writer is refused while the lease runs, in the same entry as
	// a job it may have.
	r = applyBy(s, "b", 1499, AcquireLease{Job: "compact/t", DurationMs: 500}, AcquireLease{Job: "retention/t", DurationMs: 500})
	if !errors.Is(r[0].Err, ErrLeaseHeld) || r[1].Err != nil {
		t.Fatalf("b's acquire: %v %v, want held and granted", r[0].Err, r[1].Err)
	}
	wantLease(t, s, "compact/t", "a", 1500)
	wantLease(t, s, "retention/t", "b", 1999)

	// The holder renews, even after expiry when nobody took it.
	if r = applyBy(s, "a", 1200, AcquireLease{Job: "compact/t", DurationMs: 1000}); r[0].Err != nil {
		t.Fatalf("renewal: %v", r[0].Err)
	}
	wantLease(t, s, "compact/t", "a", 2200)
	if r = applyBy(s, "a", 5000, AcquireLease{Job: "collect", DurationMs: 100}); r[0].Err != nil {
		t.Fatalf("renewal after expiry: %v", r[0].Err)
	}
	wantLease(t, s, "collect", "a", 5100)

	// Expiry is by entry time: at UntilMs exactly the lease is gone.
	if r = applyBy(s, "b", 2199, AcquireLease{Job: "compact/t", DurationMs: 10}); !errors.Is(r[0].Err, ErrLeaseHeld) {
		t.Fatalf("acquire 1ms before expiry: %v", r[0].Err)
	}
	if r = applyBy(s, "b", 2200, AcquireLease{Job: "compact/t", DurationMs: 10}); r[0].Err != nil {
		t.Fatalf("acquire at expiry: %v", r[0].Err)
	}
	wantLease(t, s, "compact/t", "b", 2210)
	// The old holder now asks in vain.
	if r = applyBy(s, "a", 2205, AcquireLease{Job: "compact/t", DurationMs: 10}); !errors.Is(r[0].Err, ErrLeaseHeld) {
		t.Fatalf("old holder's acquire: %v", r[0].Err)
	}
}

func TestLeaseRelease(t *testing.T) {
	s := NewState()
	applyBy(s, "a", 1000, AcquireLease{Job: "j", DurationMs: 1000})
	// A release by anyone but the holder is ignored: a holder whose lease
	// expired and went to another must not free the new one's.
	if r := applyBy(s, "b", 1100, ReleaseLease{Job: "j"}, ReleaseLease{Job: "unknown"}); r[0].Err != nil || r[1].Err != nil {
		t.Fatalf("release results %v", r)
	}
	wantLease(t, s, "j", "a", 2000)
	if r := applyBy(s, "b", 1200, AcquireLease{Job: "j", DurationMs: 1000}); !errors.Is(r[0].Err, ErrLeaseHeld) {
		t.Fatalf("acquire after a stranger's release: %v", r[0].Err)
	}
	applyBy(s, "a", 1300, ReleaseLease{Job: "j"})
	if l, ok := s.Lease("j"); ok {
		t.Fatalf("lease %+v after the holder's release", l)
	}
	if r := applyBy(s, "b", 1301, AcquireLease{Job: "j", DurationMs: 1000}); r[0].Err != nil {
		t.Fatalf("acquire after release: %v", r[0].Err)
	}
	wantLease(t, s, "j", "b", 2301)
	// Acquire and release in one entry leave nothing.
	applyBy(s, "c", 9000, AcquireLease{Job: "k", DurationMs: 5}, ReleaseLease{Job: "k"})
	if _, ok := s.Lease("k"); ok {
		t.Fatal("lease left after acquire and release in one entry")
	}
}

func TestLeaseInvalid(t *testing.T) {
	s := NewState()
	r := applyBy(s, "a", 1000, AcquireLease{Job: "j", DurationMs: 0}, AcquireLease{Job: "j", DurationMs: -5}, AcquireLease{DurationMs: 10})
	for i, res := range r {
		if !errors.Is(res.Err, ErrInvalidLease) {
			t.Fatalf("op %d: %v, want ErrInvalidLease", i, res.Err)
		}
	}
	if _, ok := s.Lease("j"); ok {
		t.Fatal("an invalid acquire left a lease")
	}
	// A huge duration saturates instead of wrapping into the past.
	applyBy(s, "a", 1000, AcquireLease{Job: "j", DurationMs: math.MaxInt64})
	wantLease(t, s, "j", "a", math.MaxInt64)
	if r := applyBy(s, "b", math.MaxInt64-1, AcquireLease{Job: "j", DurationMs: 1}); !errors.Is(r[0].Err, ErrLeaseHeld) {
		t.Fatalf("acquire of a saturated lease: %v", r[0].Err)
	}
}

func TestLeaseSnapshot(t *testing.T) {
	s := historyState(t)
	applyBy(s, "a", 1000, AcquireLease{Job: "compact/orders", DurationMs: 120000}, AcquireLease{Job: "collect", DurationMs: 1})
	applyBy(s, "b", 2000, AcquireLease{Job: "retention/events", DurationMs: 60000}, AcquireLease{Job: "", DurationMs: 1})
	b := s.EncodeSnapshot()
	dec, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsSnapshot(s, dec) || !bytes.Equal(dec.EncodeSnapshot(), b) {
		t.Fatal("leases do not survive a snapshot")
	}
	wantLease(t, dec, "compact/orders", "a", 121000)
	wantLease(t, dec, "collect", "a", 1001) // expired, but kept until someone asks
	// The decoded state decides the next acquisitions as the original does.
	next := &Entry{Writer: "b", TimeMs: 1500, Ops: []Op{AcquireLease{Job: "compact/orders", DurationMs: 1},
		AcquireLease{Job: "collect", DurationMs: 1}, ReleaseLease{Job: "retention/events"}}}
	if r1, r2 := s.Apply(s.Seq+1, next), dec.Apply(dec.Seq+1, next); !reflect.DeepEqual(r1, r2) || !errors.Is(r1[0].Err, ErrLeaseHeld) || r1[1].Err != nil {
		t.Fatalf("results after the snapshot: %v and %v", r1, r2)
	}
	if !bytes.Equal(s.EncodeSnapshot(), dec.EncodeSnapshot()) {
		t.Fatal("states differ after the same entry")
	}
}
