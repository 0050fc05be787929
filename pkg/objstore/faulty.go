package objstore

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrInjected is the error Faulty returns for an injected failure.
var ErrInjected = errors.New("objstore: injected fault")

// Faulty wraps a Store for tests and fails, delays or loses the answer of
// chosen requests, deterministically: faults are tied to call counts, not
// to chance.
//
//	f.FailNth(OpPut, 1)         // the next Put fails before reaching the store
//	f.LoseNth(OpPutIfAbsent, 2) // the second PutIfAbsent from now takes effect, then returns ErrInjected
//	f.FailAll()                 // every request fails until f.Heal()
//	f.SetDelay(OpGetRange, 50*time.Millisecond)
//
// Injected errors are ErrInjected. Delays respect the context.
type Faulty struct {
	inner Store

	mu      sync.Mutex
	calls   map[Op]int // calls started so far, per op
	fail    map[Op]map[int]bool
	lose    map[Op]map[int]bool
	down    map[Op]bool // nil key set + downAll for "all ops"
	downAll bool
	delay   map[Op]time.Duration
}

// NewFaulty wraps s with no faults armed.
func NewFaulty(s Store) *Faulty {
	return &Faulty{
		inner: s,
		calls: make(map[Op]int),
		fail:  make(map[Op]map[int]bool),
		lose:  make(map[Op]map[int]bool),
		down:  make(map[Op]bool),
		delay: make(map[Op]time.Duration),
	}
}

// Unwrap returns the wrapped store.
func (f *Faulty) Unwrap() Store { return f.inner }

// FailNth makes the nth future call of op (1 = the next one) fail with
// ErrInjected without reaching the store.
func (f *Faulty) FailNth(op Op, n int) { f.arm(f.fail, op, n) }

// LoseNth makes the nth future call of op (1 = the next one) reach the
// store and take effect, then return ErrInjected instead of its answer: a
// write that happened although the caller was told it failed.
func (f *Faulty) LoseNth(op Op, n int) { f.arm(f.lose, op, n) }

func (f *Faulty) arm(m map[Op]map[int]bool, op Op, n int) {
	if n < 1 {
		panic("objstore: Faulty: n must be >= 1")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m[op] == nil {
		m[op] = make(map[int]bool)
	}
	m[op][f.calls[op]+n] = true
}

// FailAll makes every call of the given ops (of all ops when none are
// given) fail with ErrInjected, without reaching the store, until Heal.
func (f *Faulty) FailAll(ops ...Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ops) == 0 {
		f.downAll = true
	}
	for _, op := range ops {
		f.down[op] = true
	}
}

// Heal clears every armed fault and delay.
func (f *Faulty) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downAll = false
	clear(f.down)
	clear(f.fail)
	clear(f.lose)
	clear(f.delay)
}

// SetDelay makes every call of op wait d before it runs (0 removes it).
func (f *Faulty) SetDelay(op Op, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.delay, op)
	} else {
		f.delay[op] = d
	}
}

// Calls returns how many calls of op have started.
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// before counts the call and decides its fate. It returns a non-nil error
// when the call must fail without reaching the store, and lose=true when
// the answer must be replaced by ErrInjected.
func (f *Faulty) before(ctx context.Context, op Op) (lose bool, err error) {
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	failNow := f.downAll || f.down[op] || f.fail[op][n]
	delete(f.fail[op], n)
	lose = f.lose[op][n]
	delete(f.lose[op], n)
	d := f.delay[op]
	f.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
	}
	if failNow {
		return false, ErrInjected
	}
	return lose, nil
}

func (f *Faulty) Put(ctx context.Context, key string, data []byte) error {
	lose, err := f.before(ctx, OpPut)
	if err != nil {
		return err
	}
	if err := f.inner.Put(ctx, key, data); err != nil || !lose {
		return err
	}
	return ErrInjected
}

func (f *Faulty) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	lose, err := f.before(ctx, OpPutIfAbsent)
	if err != nil {
		return err
	}
	if err := f.inner.PutIfAbsent(ctx, key, data); err != nil || !lose {
		return err
	}
	return ErrInjected
}

func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	lose, err := f.before(ctx, OpGet)
	if err != nil {
		return nil, err
	}
	b, err := f.inner.Get(ctx, key)
	if err != nil || !lose {
		return b, err
	}
	return nil, ErrInjected
}

func (f *Faulty) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	lose, err := f.before(ctx, OpGetRange)
	if err != nil {
		return nil, err
	}
	b, err := f.inner.GetRange(ctx, key, off, length)
	if err != nil || !lose {
		return b, err
	}
	return nil, ErrInjected
}

func (f *Faulty) List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error) {
	lose, err := f.before(ctx, OpList)
	if err != nil {
		return nil, err
	}
	objs, err := f.inner.List(ctx, prefix, startAfter, limit)
	if err != nil || !lose {
		return objs, err
	}
	return nil, ErrInjected
}

func (f *Faulty) Delete(ctx context.Context, key string) error {
	lose, err := f.before(ctx, OpDelete)
	if err != nil {
		return err
	}
	if err := f.inner.Delete(ctx, key); err != nil || !lose {
		return err
	}
	return ErrInjected
}
