package objstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bargehq/barge/pkg/objstore"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)

	s, err := objstore.Open(ctx, "file://./data")
	must(t, err)
	must(t, s.Put(ctx, "k", []byte("v")))
	if _, err := os.Stat(filepath.Join(dir, "data", "k")); err != nil {
		t.Fatalf("relative file store: %v", err)
	}
	s, err = objstore.Open(ctx, "file://"+filepath.Join(dir, "abs"))
	must(t, err)
	if f, ok := s.(*objstore.File); !ok || f.Dir() != filepath.Join(dir, "abs") {
		t.Fatalf("absolute file store: %#v", s)
	}
	s, err = objstore.Open(ctx, "mem://")
	must(t, err)
	if _, ok := s.(*objstore.Memory); !ok {
		t.Fatalf("mem:// gave %T", s)
	}
	s, err = objstore.Open(ctx, "s3://bucket/some/prefix?endpoint=http://127.0.0.1:9&region=eu-west-1&path_style=true")
	must(t, err)
	if _, ok := s.(*objstore.S3); !ok {
		t.Fatalf("s3:// gave %T", s)
	}
	for _, bad := range []string{"", "data", "ftp://x", "file://", "s3://b?bogus=1", "s3://b?path_style=maybe", "s3://"} {
		if _, err := objstore.Open(ctx, bad); err == nil {
			t.Errorf("Open(%q) accepted", bad)
		}
	}
}

func TestFileLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := objstore.NewFile(dir)
	must(t, err)
	must(t, s.Put(ctx, "seg/a/1", []byte("x")))
	must(t, s.PutIfAbsent(ctx, "seg/a/2", []byte("y")))
	if b, err := os.ReadFile(filepath.Join(dir, "seg", "a", "1")); err != nil || string(b) != "x" {
		t.Fatalf("file on disk: %q %v", b, err)
	}
	// No temporary files are left behind, and the staging dir is hidden.
	if ents, _ := os.ReadDir(filepath.Join(dir, ".tmp")); len(ents) != 0 {
		t.Fatalf(".tmp holds %d entries", len(ents))
	}
	must(t, os.WriteFile(filepath.Join(dir, ".tmp", "stray"), []byte("z"), 0o644))
	checkList(t, ctx, s, "", "", 0, []string{"seg/a/1", "seg/a/2"})
	if err := s.Put(ctx, ".tmp/x", nil); err == nil {
		t.Fatalf("Put into .tmp accepted")
	}
	// Deleting the last object removes the emptied directories.
	must(t, s.Delete(ctx, "seg/a/1"))
	must(t, s.Delete(ctx, "seg/a/2"))
	if _, err := os.Stat(filepath.Join(dir, "seg")); !os.IsNotExist(err) {
		t.Fatalf("seg/ left behind: %v", err)
	}
	// Two File stores on one directory (two agents on one host) share
	// the PutIfAbsent race.
	s2, err := objstore.NewFile(dir)
	must(t, err)
	must(t, s.PutIfAbsent(ctx, "meta/log/1", []byte("a")))
	if err := s2.PutIfAbsent(ctx, "meta/log/1", []byte("b")); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second store: %v", err)
	}
}

func TestInstrument(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s := objstore.Instrument(objstore.NewMemory(), reg)
	must(t, s.Put(ctx, "a", []byte("12345")))
	must(t, s.PutIfAbsent(ctx, "b", []byte("123")))
	if err := s.PutIfAbsent(ctx, "b", []byte("123")); !errors.Is(err, objstore.ErrExists) {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal(err)
	}
	_, err := s.GetRange(ctx, "a", 1, 2)
	must(t, err)
	_, err = s.Get(ctx, "a")
	must(t, err)
	_, err = s.List(ctx, "", "", 0)
	must(t, err)
	must(t, s.Delete(ctx, "a"))

	// A second wrapper on the same registry shares the series.
	s2 := objstore.Instrument(objstore.NewMemory(), reg)
	must(t, s2.Put(ctx, "c", []byte("1")))

	got := gather(t, reg)
	for series, v := range map[string]float64{
		`barge_objstore_requests_total{op="delete",result="ok"}`:            1,
		`barge_objstore_requests_total{op="get",result="not_found"}`:        1,
		`barge_objstore_requests_total{op="get",result="ok"}`:               1,
		`barge_objstore_requests_total{op="get_range",result="ok"}`:         1,
		`barge_objstore_requests_total{op="list",result="ok"}`:              1,
		`barge_objstore_requests_total{op="put",result="ok"}`:               2,
		`barge_objstore_requests_total{op="put_if_absent",result="exists"}`: 1,
		`barge_objstore_requests_total{op="put_if_absent",result="ok"}`:     1,
		`barge_objstore_bytes_total{op="get"}`:                              5,
		`barge_objstore_bytes_total{op="get_range"}`:                        2,
		`barge_objstore_bytes_total{op="put"}`:                              6,
		`barge_objstore_bytes_total{op="put_if_absent"}`:                    3,
		`barge_objstore_request_seconds_count{op="put"}`:                    2,
		`barge_objstore_request_seconds_count{op="get"}`:                    2,
	} {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
	if len(got) != 14+4 { // + histogram counts of put_if_absent, get_range, list, delete
		t.Errorf("series: %v", got)
	}
	c := s.Counts()
	if c["put_if_absent/exists"] != 1 || c["put_if_absent"] != 2 || c["get/not_found"] != 1 {
		t.Fatalf("Counts = %v", c)
	}
	// Nil registerer: no registration, still counts.
	s3 := objstore.Instrument(objstore.NewMemory(), nil)
	must(t, s3.Put(ctx, "x", nil))
	if s3.Counts()["put/ok"] != 1 {
		t.Fatalf("Counts = %v", s3.Counts())
	}
}

func TestFaulty(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)

	// FailNth: the 2nd Put from now fails without reaching the store.
	f.FailNth(objstore.OpPut, 2)
	must(t, f.Put(ctx, "a", []byte("1")))
	if err := f.Put(ctx, "b", []byte("2")); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("2nd put: %v", err)
	}
	must(t, f.Put(ctx, "c", []byte("3")))
	if _, err := mem.Get(ctx, "b"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("failed put reached the store: %v", err)
	}
	if f.Calls(objstore.OpPut) != 3 {
		t.Fatalf("Calls = %d", f.Calls(objstore.OpPut))
	}

	// LoseNth: the write happens, the answer is lost; a retry meets ErrExists.
	f.LoseNth(objstore.OpPutIfAbsent, 1)
	if err := f.PutIfAbsent(ctx, "log/1", []byte("x")); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("lost put: %v", err)
	}
	if err := f.PutIfAbsent(ctx, "log/1", []byte("x")); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("retry: %v", err)
	}

	// FailAll until Heal, per op or for all.
	f.FailAll(objstore.OpGet)
	if _, err := f.Get(ctx, "a"); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("get while down: %v", err)
	}
	_, err := f.GetRange(ctx, "a", 0, 1)
	must(t, err)
	f.FailAll()
	for _, err := range []error{
		f.Put(ctx, "z", nil), f.PutIfAbsent(ctx, "z", nil), f.Delete(ctx, "a"),
		second(f.GetRange(ctx, "a", 0, 1)), second(f.List(ctx, "", "", 0)),
	} {
		if !errors.Is(err, objstore.ErrInjected) {
			t.Fatalf("while down: %v", err)
		}
	}
	f.Heal()
	_, err = f.Get(ctx, "a")
	must(t, err)

	// Delay, cut short by the context.
	f.SetDelay(objstore.OpList, 20*time.Millisecond)
	start := time.Now()
	_, err = f.List(ctx, "", "", 0)
	must(t, err)
	if time.Since(start) < 20*time.Millisecond {
		t.Fatalf("no delay")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f.SetDelay(objstore.OpList, time.Hour)
	if _, err := f.List(cctx, "", "", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("delayed list with cancelled ctx: %v", err)
	}
	f.SetDelay(objstore.OpList, 0)
	_, err = f.List(ctx, "", "", 0)
	must(t, err)
}

func second[T any](_ T, err error) error { return err }

// gather returns counter values and histogram sample counts by series,
// written name{label="value",...} with labels in name order.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
			}
			l := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()+l] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"+l] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
