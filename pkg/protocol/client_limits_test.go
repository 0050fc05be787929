package protocol

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bargehq/barge/internal/harness"
)

// metric returns the value of the gauge or counter name in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestBudgetShares(t *testing.T) {
	const MiB, GiB = 1 << 20, 1 << 30
	for _, tc := range []struct {
		name            string
		max, frame      int64
		perIP, conns    int
		wantConn, wantA int64
	}{
		{"defaults: a quarter is less than one frame", 256 * MiB, 100 * MiB, 1024, 4096, 100 * MiB, 100 * MiB},
		{"a larger budget: a quarter each", GiB, 100 * MiB, 1024, 4096, 256 * MiB, 256 * MiB},
		{"an address may have more connections than a quarter", GiB, 100 * MiB, 2048, 4096, 256 * MiB, 512 * MiB},
		{"behind a proxy every client is one address", GiB, 100 * MiB, 4096, 4096, 256 * MiB, GiB},
		{"a per-address cap over the total", GiB, 100 * MiB, 8192, 4096, 256 * MiB, GiB},
		{"a budget smaller than one frame is no one's share", 8192, 100 * MiB, 1024, 4096, 8192, 8192},
		{"a budget just over one frame", 150 * MiB, 100 * MiB, 1024, 4096, 100 * MiB, 100 * MiB},
	} {
		conn, addr := budgetShares(tc.max, tc.frame, tc.perIP, tc.conns)
		if conn != tc.wantConn || addr != tc.wantA {
			t.Errorf("%s: shares %d per connection and %d per address, want %d and %d", tc.name, conn, addr, tc.wantConn, tc.wantA)
		}
	}
}

// TestBudgetShareAccounting: a connection or an address over its share
// waits while others take the rest of the budget, and what they hold is
// given back whole.
func TestBudgetShareAccounting(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newRequestBudget(1000, 300, 500, newMetrics(reg))
	a1, a2, a3 := &budgetAccount{addr: "a"}, &budgetAccount{addr: "a"}, &budgetAccount{addr: "a"}
	other := &budgetAccount{addr: "b"}
	take := func(acct *budgetAccount, size int64) int64 {
		t.Helper()
		held, err := b.acquire(context.Background(), acct, size)
		if err != nil || held != size {
			t.Fatalf("acquire %d for %s: took %d, %v", size, acct.addr, held, err)
		}
		return held
	}
	stopped, stop := context.WithCancel(context.Background())
	stop()
	wouldWait := func(acct *budgetAccount, size int64, why string) {
		t.Helper()
		if held, err := b.acquire(stopped, acct, size); !errors.Is(err, context.Canceled) {
			t.Fatalf("acquire %d for %s: took %d, %v; want a wait (%s)", size, acct.addr, held, err, why)
		}
	}
	queued := func() float64 { return metric(t, reg, "barge_queued_request_bytes") }
	waits := func() float64 { return metric(t, reg, "barge_queued_request_waits") }

	take(a1, 200)
	wouldWait(a1, 200, "its connection's share is 300")
	take(a1, 100) // exactly the share
	take(a2, 150)
	wouldWait(a3, 100, "its address's share is 500")
	take(other, 300) // another address is not held up
	if q := queued(); q != 750 {
		t.Errorf("%v bytes queued, want 750", q)
	}
	if n := waits(); n != 0 {
		t.Errorf("%v waits after each gave up, want 0", n)
	}

	got := make(chan error, 1)
	go func() { _, err := b.acquire(context.Background(), a3, 100); got <- err }()
	harness.Eventually(t, time.Minute, func() bool { return waits() == 1 }, "the third connection never waited")
	b.release(a1, 200, 200) // its address is at 250
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b.release(a1, 100, 100)
	b.release(a2, 150, 150)
	b.release(a3, 100, 100)
	b.release(other, 300, 300)
	if q := queued(); q != 0 {
		t.Errorf("%v bytes queued after every release, want 0", q)
	}
	if len(b.addrs) != 0 || a1.held+a2.held+a3.held+other.held != 0 {
		t.Errorf("held after every release: addresses %v, connections %d %d %d %d", b.addrs, a1.held, a2.held, a3.held, other.held)
	}
	if !b.sem.TryAcquire(1000) {
		t.Error("the whole budget is not free after every release")
	}
}

// TestBudgetLargerThanShares: a frame larger than the whole budget takes
// all of it, and a budget no larger than one frame has no shares, so that
// waits stay in arrival order.
func TestBudgetLargerThanShares(t *testing.T) {
	reg := prometheus.NewRegistry()
	conn, addr := budgetShares(8192, 100<<20, 1024, 4096)
	b := newRequestBudget(8192, conn, addr, newMetrics(reg))
	acct := &budgetAccount{addr: "a"}
	held, err := b.acquire(context.Background(), acct, 10000)
	if err != nil || held != 8192 {
		t.Fatalf("a frame over the budget took %d, %v; want all 8192", held, err)
	}
	if q := metric(t, reg, "barge_queued_request_bytes"); q != 10000 {
		t.Errorf("%v bytes queued, want the frame's 10000", q)
	}
	b.release(acct, held, 10000)
	for range 4 {
		take, err := b.acquire(context.Background(), acct, 2048)
		if err != nil || take != 2048 {
			t.Fatalf("acquire 2048: %d, %v", take, err)
		}
	}
	if len(b.addrs) != 0 {
		t.Errorf("shares as large as the budget were counted: %v", b.addrs)
	}
}
