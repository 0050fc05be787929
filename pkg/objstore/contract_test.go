package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/objstore"
)

func TestMain(m *testing.M) { harness.Main(m) }

// The one contract every backend honours. Each case gets a fresh, empty
// store.
var contract = []struct {
	name string
	run  func(t *testing.T, ctx context.Context, s objstore.Store)
}{
	{"PutGet", func(t *testing.T, ctx context.Context, s objstore.Store) {
		buf := []byte("hello")
		must(t, s.Put(ctx, "a/b/c", buf))
		buf[0] = 'J' // the store must have copied
		got, err := s.Get(ctx, "a/b/c")
		must(t, err)
		if string(got) != "hello" {
			t.Fatalf("Get = %q, want hello", got)
		}
		must(t, s.Put(ctx, "a/b/c", []byte("replaced")))
		got, err = s.Get(ctx, "a/b/c")
		must(t, err)
		if string(got) != "replaced" {
			t.Fatalf("Get after overwrite = %q", got)
		}
	}},
	{"EmptyObject", func(t *testing.T, ctx context.Context, s objstore.Store) {
		must(t, s.Put(ctx, "empty", nil))
		got, err := s.Get(ctx, "empty")
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("Get = %q, want empty", got)
		}
		objs, err := s.List(ctx, "", "", 0)
		must(t, err)
		if len(objs) != 1 || objs[0].Size != 0 {
			t.Fatalf("List = %+v", objs)
		}
	}},
	{"BinaryLarge", func(t *testing.T, ctx context.Context, s objstore.Store) {
		data := make([]byte, 3<<20+17)
		for i := range data {
			data[i] = byte(i * 7)
		}
		must(t, s.Put(ctx, "seg/big", data))
		got, err := s.Get(ctx, "seg/big")
		must(t, err)
		if !bytes.Equal(got, data) {
			t.Fatalf("large object differs")
		}
	}},
	{"NotFound", func(t *testing.T, ctx context.Context, s objstore.Store) {
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
		if _, err := s.GetRange(ctx, "nope/x", 0, 10); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("GetRange missing: %v, want ErrNotFound", err)
		}
		if _, err := s.GetRange(ctx, "nope/x", 0, 0); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("GetRange missing, empty range: %v, want ErrNotFound", err)
		}
		must(t, s.Delete(ctx, "nope"))
		objs, err := s.List(ctx, "", "", 0)
		must(t, err)
		if len(objs) != 0 {
			t.Fatalf("List empty store = %+v", objs)
		}
	}},
	{"GetRange", func(t *testing.T, ctx context.Context, s objstore.Store) {
		must(t, s.Put(ctx, "r", []byte("0123456789")))
		for _, c := range []struct {
			off, n int64
			want   string
		}{
			{0, 10, "0123456789"},
			{0, 1, "0"},
			{3, 4, "3456"},
			{9, 1, "9"},
			{5, 0, ""},
			{7, 100, "789"}, // cut short at the end
			{10, 5, ""},     // starts at the end
			{50, 5, ""},     // starts past the end
		} {
			got, err := s.GetRange(ctx, "r", c.off, c.n)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", c.off, c.n, err)
			}
			if string(got) != c.want {
				t.Fatalf("GetRange(%d, %d) = %q, want %q", c.off, c.n, got, c.want)
			}
		}
		if _, err := s.GetRange(ctx, "r", -1, 2); err == nil {
			t.Fatalf("GetRange with negative offset: no error")
		}
	}},
	{"List", func(t *testing.T, ctx context.Context, s objstore.Store) {
		// Bytewise order differs from a directory walk: '-' (0x2d) and
		// '.' (0x2e) sort before '/' (0x2f).
		keys := []string{"a/b", "a-b", "a.b", "a/a/z", "a/c", "b/x", "meta/log/00000000000000000002",
			"meta/log/00000000000000000001", "meta/log/00000000000000000010", "meta/snap/00000000000000000001"}
		for i, k := range keys {
			must(t, s.Put(ctx, k, bytes.Repeat([]byte{'x'}, i)))
		}
		want := []string{"a-b", "a.b", "a/a/z", "a/b", "a/c", "b/x", "meta/log/00000000000000000001",
			"meta/log/00000000000000000002", "meta/log/00000000000000000010", "meta/snap/00000000000000000001"}
		checkList(t, ctx, s, "", "", 0, want)
		checkList(t, ctx, s, "a", "", 0, want[:5])
		checkList(t, ctx, s, "a/", "", 0, []string{"a/a/z", "a/b", "a/c"})
		checkList(t, ctx, s, "a/", "a/a/z", 0, []string{"a/b", "a/c"})
		checkList(t, ctx, s, "a/", "a/b", 1, []string{"a/c"})
		checkList(t, ctx, s, "a/", "", 2, []string{"a/a/z", "a/b"})
		checkList(t, ctx, s, "meta/log/", "", 0, want[6:9])
		checkList(t, ctx, s, "meta/log/", "meta/log/00000000000000000001", 1, want[7:8])
		checkList(t, ctx, s, "meta/log/0000", "", 0, want[6:9])
		checkList(t, ctx, s, "meta/log/", "meta/log/00000000000000000010", 0, nil)
		checkList(t, ctx, s, "meta/l", "", 0, want[6:9])
		checkList(t, ctx, s, "zzz", "", 0, nil)
		checkList(t, ctx, s, "", "b", 0, want[5:])
		checkList(t, ctx, s, "", "", 3, want[:3])

		objs, err := s.List(ctx, "a/c", "", 0)
		must(t, err)
		if len(objs) != 1 || objs[0].Size != 4 {
			t.Fatalf("List a/c = %+v, want size 4", objs)
		}
	}},
	{"ListPaginates", func(t *testing.T, ctx context.Context, s objstore.Store) {
		// More than one S3 page (1000 keys) would be slow for every
		// backend; TestS3ListPastOnePageMinIO lists past it.
		var want []string
		for i := range 60 {
			k := fmt.Sprintf("p/%04d", i)
			want = append(want, k)
			must(t, s.Put(ctx, k, []byte{byte(i)}))
		}
		checkList(t, ctx, s, "p/", "", 0, want)
		checkList(t, ctx, s, "p/", "p/0029", 10, want[30:40])
	}},
	{"Delete", func(t *testing.T, ctx context.Context, s objstore.Store) {
		must(t, s.Put(ctx, "d/one", []byte("1")))
		must(t, s.Put(ctx, "d/two", []byte("2")))
		must(t, s.Delete(ctx, "d/one"))
		must(t, s.Delete(ctx, "d/one"))
		if _, err := s.Get(ctx, "d/one"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Get deleted: %v", err)
		}
		checkList(t, ctx, s, "", "", 0, []string{"d/two"})
		must(t, s.Delete(ctx, "d/two"))
		checkList(t, ctx, s, "", "", 0, nil)
		// The key can be created again, conditionally too.
		must(t, s.PutIfAbsent(ctx, "d/one", []byte("again")))
	}},
	{"PutIfAbsent", func(t *testing.T, ctx context.Context, s objstore.Store) {
		must(t, s.PutIfAbsent(ctx, "meta/log/00000000000000000001", []byte("first")))
		err := s.PutIfAbsent(ctx, "meta/log/00000000000000000001", []byte("second"))
		if !errors.Is(err, objstore.ErrExists) {
			t.Fatalf("second PutIfAbsent: %v, want ErrExists", err)
		}
		got, err := s.Get(ctx, "meta/log/00000000000000000001")
		must(t, err)
		if string(got) != "first" {
			t.Fatalf("Get = %q, want first", got)
		}
		// Put replaces unconditionally; PutIfAbsent still refuses.
		must(t, s.Put(ctx, "meta/log/00000000000000000001", []byte("third")))
		if err := s.PutIfAbsent(ctx, "meta/log/00000000000000000001", nil); !errors.Is(err, objstore.ErrExists) {
			t.Fatalf("PutIfAbsent after Put: %v, want ErrExists", err)
		}
	}},
	{"PutIfAbsentRace", func(t *testing.T, ctx context.Context, s objstore.Store) {
		for round := range 3 {
			key := fmt.Sprintf("meta/log/%020d", round)
			const n = 16
			var wins, losses atomic.Int32
			var winner atomic.Value
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					body := []byte(fmt.Sprintf("writer-%d", i))
					switch err := s.PutIfAbsent(ctx, key, body); {
					case err == nil:
						wins.Add(1)
						winner.Store(string(body))
					case errors.Is(err, objstore.ErrExists):
						losses.Add(1)
					default:
						t.Errorf("writer %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if wins.Load() != 1 || losses.Load() != n-1 {
				t.Fatalf("round %d: %d winners, %d losers; want 1 and %d", round, wins.Load(), losses.Load(), n-1)
			}
			got, err := s.Get(ctx, key)
			must(t, err)
			if string(got) != winner.Load().(string) {
				t.Fatalf("stored %q, winner wrote %q", got, winner.Load())
			}
		}
	}},
	{"ConcurrentPutDelete", func(t *testing.T, ctx context.Context, s objstore.Store) {
		// Puts and Deletes of keys sharing parent directories must not
		// fail (File removes emptied directories).
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 20 {
					k := fmt.Sprintf("x/y/%d-%d", i, j)
					if err := s.Put(ctx, k, []byte("v")); err != nil {
						t.Errorf("put %s: %v", k, err)
						return
					}
					if err := s.Delete(ctx, k); err != nil {
						t.Errorf("delete %s: %v", k, err)
						return
					}
				}
			})
		}
		wg.Wait()
		checkList(t, ctx, s, "", "", 0, nil)
	}},
	{"BadKeys", func(t *testing.T, ctx context.Context, s objstore.Store) {
		for _, k := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", "./a"} {
			if err := s.Put(ctx, k, []byte("x")); err == nil {
				t.Errorf("Put(%q) accepted", k)
			}
			if err := s.PutIfAbsent(ctx, k, []byte("x")); err == nil {
				t.Errorf("PutIfAbsent(%q) accepted", k)
			}
		}
	}},
}

func runContract(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	for _, c := range contract {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c.run(t, ctx, newStore(t))
		})
	}
}

func TestMemoryContract(t *testing.T) {
	runContract(t, func(t *testing.T) objstore.Store { return objstore.NewMemory() })
}

func TestFileContract(t *testing.T) {
	runContract(t, func(t *testing.T) objstore.Store {
		s, err := objstore.NewFile(t.TempDir())
		must(t, err)
		return s
	})
}

func TestS3ContractMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	runContract(t, func(t *testing.T) objstore.Store {
		return harness.MinIOBackend(t).Open(t)
	})
}

// The same contract through an S3 key prefix, opened from a URL with the
// credentials in the environment as the agent does it.
func TestS3ContractMinIOPrefixViaOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	m := harness.StartMinIO(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	runContract(t, func(t *testing.T) objstore.Store {
		b := harness.MinIOBackend(t)
		// An object outside the prefix must stay invisible to List (the
		// contract's List cases would see it) and untouched.
		must(t, b.Open(t).Put(context.Background(), "outside", []byte("x")))
		u := strings.Replace(b.URL, "?", "/tenant/one?", 1)
		s, err := objstore.Open(context.Background(), u)
		must(t, err)
		t.Cleanup(func() {
			if _, err := b.Open(t).Get(context.Background(), "outside"); err != nil {
				t.Errorf("object outside the prefix: %v", err)
			}
		})
		return s
	})
}

// TestS3ListPastOnePageMinIO: S3 answers a listing 1,000 keys a page, so
// a List of more, with no limit, must follow the continuation tokens: every
// key once, in order, also from a StartAfter inside the second page, with a
// limit reaching into it, and under a key prefix. The contract's cases stay
// within one page.
func TestS3ListPastOnePageMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	const n = 2345 // three pages
	m := harness.StartMinIO(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	b := harness.MinIOBackend(t)
	prefixed, err := objstore.Open(context.Background(), strings.Replace(b.URL, "?", "/tenant/one?", 1))
	must(t, err)
	for _, tc := range []struct {
		name string
		s    objstore.Store
	}{{"bucket", b.Open(t)}, {"prefix", prefixed}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			want := make([]string, n)
			for i := range want {
				want[i] = fmt.Sprintf("many/%05d", i)
			}
			// Put in parallel: one by one would take most of the time.
			keys := make(chan string)
			var failed atomic.Pointer[error]
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for k := range keys {
						if err := tc.s.Put(ctx, k, []byte(k)); err != nil {
							failed.CompareAndSwap(nil, &err)
						}
					}
				})
			}
			for _, k := range want {
				keys <- k
			}
			close(keys)
			wg.Wait()
			if err := failed.Load(); err != nil {
				t.Fatal(*err)
			}
			must(t, tc.s.Put(ctx, "other", []byte("x"))) // outside the listed prefix
			checkList(t, ctx, tc.s, "many/", "", 0, want)
			checkList(t, ctx, tc.s, "", "", 0, append(slices.Clone(want), "other"))
			checkList(t, ctx, tc.s, "many/", want[1499], 0, want[1500:])
			checkList(t, ctx, tc.s, "many/", "", 1500, want[:1500])
			checkList(t, ctx, tc.s, "many/", want[99], 1234, want[100:1334])
		})
	}
}

func checkList(t *testing.T, ctx context.Context, s objstore.Store, prefix, startAfter string, limit int, want []string) {
	t.Helper()
	objs, err := s.List(ctx, prefix, startAfter, limit)
	if err != nil {
		t.Fatalf("List(%q, %q, %d): %v", prefix, startAfter, limit, err)
	}
	got := make([]string, len(objs))
	for i, o := range objs {
		got[i] = o.Key
	}
	if slices.Equal(got, want) {
		return
	}
	if len(got)+len(want) <= 40 {
		t.Fatalf("List(%q, %q, %d) = %q, want %q", prefix, startAfter, limit, got, want)
	}
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	t.Fatalf("List(%q, %q, %d): %d keys, want %d; they differ from index %d on: %q…, want %q…",
		prefix, startAfter, limit, len(got), len(want), i, got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
