package meta

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// LocalRelay is a Relay between Logs of one process, by their agents'
// addresses, for benchmarks and tests of a fleet in one process. Each call
// takes RTT on top (a network round trip between agents).
type LocalRelay struct {
	RTT time.Duration

	mu   sync.Mutex
	logs map[string]*localAgent
}

type localAgent struct {
	log  *Log
	gone context.Context // ended by Remove: its calls fail
	end  context.CancelFunc
}

// NewLocalRelay returns a relay that reaches no Log yet.
func NewLocalRelay(rtt time.Duration) *LocalRelay {
	return &LocalRelay{RTT: rtt, logs: map[string]*localAgent{}}
}

// Add makes l reachable at addr (its AgentHeartbeat's address).
func (r *LocalRelay) Add(addr string, l *Log) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, end := context.WithCancel(context.Background())
	r.logs[addr] = &localAgent{log: l, gone: ctx, end: end}
}

// Remove makes addr unreachable, as if its process died: calls to it in
// flight fail at once, and later ones too.
func (r *LocalRelay) Remove(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.logs[addr]; a != nil {
		a.end()
		delete(r.logs, addr)
	}
}

// at returns the Log at addr and a context for a call to it, which ends
// with ctx or when the agent is removed.
func (r *LocalRelay) at(ctx context.Context, addr string) (*Log, context.Context, context.CancelFunc, error) {
	r.mu.Lock()
	a := r.logs[addr]
	r.mu.Unlock()
	if a == nil {
		return nil, nil, nil, fmt.Errorf("no agent at %s", addr)
	}
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.gone, cancel)
	return a.log, cctx, func() { stop(); cancel() }, nil
}

func (r *LocalRelay) hop(ctx context.Context) {
	if r.RTT <= 0 {
		return
	}
	t := time.NewTimer(r.RTT / 2)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Contribute implements Relay.
func (r *LocalRelay) Contribute(ctx context.Context, addr string, entry []byte, budget time.Duration) (uint64, []byte, error) {
	l, ctx, done, err := r.at(ctx, addr)
	if err != nil {
		return 0, nil, err
	}
	defer done()
	r.hop(ctx)
	seq, data, err := l.Sequence(ctx, entry, budget)
	r.hop(ctx)
	if err == nil && ctx.Err() != nil {
		return 0, nil, ctx.Err() // the answer died with the agent
	}
	return seq, data, err
}

// Slots implements Relay.
func (r *LocalRelay) Slots(ctx context.Context, addr string, after uint64, wait time.Duration) ([]Slot, error) {
	l, ctx, done, err := r.at(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer done()
	r.hop(ctx)
	slots, err := l.Slots(ctx, after, wait, 4<<20)
	r.hop(ctx)
	return slots, err
}
