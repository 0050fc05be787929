package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
)

// zeros is a batch of one record whose value is n zeros, its records
// section written by write (nil: Build's encoder for c).
func zeros(t testing.TB, c Codec, n int, write func(w io.Writer) io.WriteCloser) []byte {
	t.Helper()
	raw := rawRecords([]Record{{Key: []byte("k"), Value: make([]byte, n)}})
	if write == nil {
		return withBody(t, template, c, 1, squeeze(t, c, raw))
	}
	var buf bytes.Buffer
	w := write(&buf)
	if _, err := w.Write(raw); err != nil || w.Close() != nil {
		t.Fatal(err)
	}
	return withBody(t, template, c, 1, buf.Bytes())
}

// lz4Default writes 4 MiB blocks, as franz-go's lz4 does.
func lz4Default(w io.Writer) io.WriteCloser { return lz4.NewWriter(w) }

// TestBudgetConcurrent: many validations at once, of lying headers and of
// real batches inflating 3 MiB each by every codec and framing (streams
// growing their chunk, zstd doubling, lz4's 4 MiB block buffers), never
// hold more than the budget between them, give all of it back, and all
// finish with the right answer: none deadlocks waiting for another.
func TestBudgetConcurrent(t *testing.T) {
	const size = 16 << 20
	budget := NewBudget(size)
	cases := map[string][]byte{
		"zstd":                zeros(t, Zstd, 3<<20, nil),
		"zstd stream":         zeros(t, Zstd, 3<<20, zstdStream),
		"snappy":              zeros(t, Snappy, 3<<20, nil),
		"xerial":              withBody(t, template, Snappy, 1, xerialFramed(rawRecords([]Record{{Value: make([]byte, 3<<20)}}))),
		"gzip":                zeros(t, Gzip, 3<<20, nil),
		"lz4":                 zeros(t, LZ4, 3<<20, nil),
		"lz4 4 MiB blocks":    zeros(t, LZ4, 3<<20, lz4Default),
		"lying zstd":          withBody(t, template, Zstd, 1, lyingZstd()),
		"lying snappy":        withBody(t, template, Snappy, 1, lyingSnappy(64<<20)),
		"lying xerial chunks": withBody(t, template, Snappy, 1, lyingXerial(64)),
	}
	// A deadlock fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 8 {
		for name, b := range cases {
			want := error(nil)
			if strings.HasPrefix(name, "lying") {
				want = ErrCorrupt
			}
			wg.Go(func() {
				<-start
				if _, err := ValidateRecords(ctx, b, 64<<20, budget); !errors.Is(err, want) {
					mu.Lock()
					t.Errorf("%s #%d: %v, want %v", name, i, err, want)
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if peak := budget.peak.Load(); peak > size || peak < 3<<20 {
		t.Errorf("the validations held %d bytes at most; want at least one's 3 MiB and at most the budget's %d", peak, size)
	}
	if n := budget.InUse(); n != 0 {
		t.Errorf("%d bytes still held after every validation returned", n)
	}
}

// waitFor polls until cond holds; a deadline fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
	}
}

// TestBudgetWaitsHoldingNothing: a validation that outgrows what is left
// of the budget gives back all it holds before it waits (so waiters cannot
// deadlock on each other's shares), then finishes once there is room; and
// a validation waiting for room ends when its context does.
func TestBudgetWaitsHoldingNothing(t *testing.T) {
	const size = 8 << 20
	for name, b := range map[string][]byte{
		"gzip":        zeros(t, Gzip, 3<<20, nil),
		"lz4":         zeros(t, LZ4, 3<<20, nil),
		"zstd stream": zeros(t, Zstd, 3<<20, zstdStream),
		"zstd":        zeros(t, Zstd, 3<<20, nil),
		"snappy":      zeros(t, Snappy, 3<<20, nil),
	} {
		t.Run(name, func(t *testing.T) {
			budget := NewBudget(size)
			// Leave 1 MiB: enough to start, not to finish.
			others, err := budget.Acquire(t.Context(), size-1<<20)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := ValidateRecords(t.Context(), b, 64<<20, budget)
				done <- err
			}()
			waitFor(t, "the validation waits", func() bool { return budget.waiting.Load() == 1 })
			if n := budget.InUse(); n != others {
				t.Errorf("waiting, the validation holds %d bytes of the budget", n-others)
			}
			budget.Release(others)
			if err := <-done; err != nil {
				t.Fatalf("with room again: %v", err)
			}
			if n := budget.InUse(); n != 0 {
				t.Errorf("%d bytes still held", n)
			}

			// With the whole budget held elsewhere, a cancelled wait ends.
			all, _ := budget.Acquire(t.Context(), size)
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				_, err := ValidateRecords(ctx, b, 64<<20, budget)
				done <- err
			}()
			waitFor(t, "the validation waits", func() bool { return budget.waiting.Load() == 1 })
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled while waiting: %v, want context.Canceled", err)
			}
			budget.Release(all)
			if n := budget.InUse(); n != 0 {
				t.Errorf("%d bytes still held after the cancelled validation", n)
			}
		})
	}
}

// TestRecodeMemory: what the produce path charges for recompressing a batch
// covers what decoding and encoding it again allocate, for every pair of
// codecs and records of every shape.
func TestRecodeMemory(t *testing.T) {
	tiny := make([]Record, 20000)
	for i := range tiny {
		tiny[i].OffsetDelta = int32(i)
	}
	headers := make([]Record, 100)
	for i := range headers {
		headers[i] = Record{OffsetDelta: int32(i), Headers: make([]RecordHeader, 500)}
		for j := range headers[i].Headers {
			headers[i].Headers[j].Key = fmt.Sprint(j)
		}
	}
	for _, c := range codecs { // the encoders' one-time state
		mustBuild(t, template, c, sampleRecords())
	}
	for name, recs := range map[string][]Record{
		"sample":       sampleRecords(),
		"tiny records": tiny,
		"many headers": headers,
		"a big value":  {{Key: []byte("k"), Value: bytes.Repeat([]byte("barge "), 1<<20)}},
	} {
		for _, from := range codecs {
			b := mustBuild(t, template, from, recs)
			s, err := ValidateRecords(t.Context(), b, 64<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, to := range codecs {
				var err error
				n := allocated(func() {
					var recs []Record
					if recs, err = Records(b, 64<<20); err == nil {
						_, err = Build(s.Header, to, recs)
					}
				})
				if err != nil || n > uint64(s.RecodeMemory()) {
					t.Errorf("%s, %s to %s: %v, %d bytes allocated, %d charged", name, from, to, err, n, s.RecodeMemory())
				}
			}
		}
	}
}
