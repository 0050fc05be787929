package harness

import (
	"context"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// LeaseHistory is what a whole metadata log says about the jobs.
type LeaseHistory struct {
	Replaces int                       // accepted ReplaceChunks
	Grants   map[string]map[string]int // job → writer → leases granted (renewals not counted)
	Addrs    map[string]string         // writer → the address it heartbeats
	Open     map[string]bool           // jobs whose last grant was never released
	Final    *meta.State               // the state at the end of the log
}

// ReadLeaseHistory reads every entry of store's metadata log (none may
// have been trimmed) and folds it, failing the test where the log shows
// what leases rule out: a job granted to one writer while another held
// it, a ReplaceChunks appended without its topic's "compact/<topic>"
// lease, or one the state rejected.
func ReadLeaseHistory(t testing.TB, store objstore.Store) LeaseHistory {
	t.Helper()
	type span struct {
		holder      string
		from, until int64
		open        bool // not released yet
	}
	spans := map[string][]*span{}
	h := LeaseHistory{Grants: map[string]map[string]int{}, Addrs: map[string]string{}, Open: map[string]bool{}, Final: meta.NewState()}
	st := h.Final
	for i, en := range LogEntries(t, store) {
		key := meta.EntryKey(uint64(i + 1))
		for _, ap := range meta.Appends(en, nil) {
			for _, op := range ap.Ops {
				if rc, ok := op.(meta.ReplaceChunks); ok {
					job := "compact/" + st.TopicByID(rc.Topic).Name
					if l, ok := st.Lease(job); !ok || l.Holder != ap.Writer || !l.Held(ap.TimeMs) {
						t.Errorf("%s: %s replaced chunks of %s without its lease (%+v)", key, ap.Writer, job, l)
					}
				}
			}
		}
		res := st.Apply(uint64(i+1), en)
		for _, ap := range meta.Appends(en, res) {
			for j, op := range ap.Ops {
				switch op := op.(type) {
				case meta.AgentHeartbeat:
					h.Addrs[ap.Writer] = op.Addr
				case meta.ReplaceChunks:
					if ap.Results[j].Err != nil {
						t.Errorf("%s: ReplaceChunks by %s: %v", key, ap.Writer, ap.Results[j].Err)
					} else {
						h.Replaces++
					}
				case meta.AcquireLease:
					if ap.Results[j].Err != nil {
						continue
					}
					ss := spans[op.Job]
					if n := len(ss); n > 0 && ss[n-1].holder == ap.Writer && ss[n-1].open && ap.TimeMs < ss[n-1].until {
						ss[n-1].until = ap.TimeMs + op.DurationMs // a renewal
						continue
					}
					spans[op.Job] = append(ss, &span{holder: ap.Writer, from: ap.TimeMs, until: ap.TimeMs + op.DurationMs, open: true})
					if h.Grants[op.Job] == nil {
						h.Grants[op.Job] = map[string]int{}
					}
					h.Grants[op.Job][ap.Writer]++
				case meta.ReleaseLease:
					if ss := spans[op.Job]; len(ss) > 0 && ss[len(ss)-1].holder == ap.Writer && ss[len(ss)-1].open {
						ss[len(ss)-1].until = min(ss[len(ss)-1].until, ap.TimeMs)
						ss[len(ss)-1].open = false
					}
				}
			}
		}
	}
	for job, ss := range spans {
		h.Open[job] = len(ss) > 0 && ss[len(ss)-1].open
		for i := 1; i < len(ss); i++ {
			if prev, cur := ss[i-1], ss[i]; prev.holder != cur.holder && cur.from < prev.until {
				t.Errorf("%s: granted to %s at %d while %s held it until %d", job, cur.holder, cur.from, prev.holder, prev.until)
			}
		}
	}
	return h
}

// LogEntries reads every entry of store's metadata log, in slot order from
// slot 1 (none may have been trimmed).
func LogEntries(t testing.TB, store objstore.Store) []*meta.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	infos, err := store.List(ctx, "meta/log/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*meta.Entry, len(infos))
	for i, info := range infos {
		if info.Key != meta.EntryKey(uint64(i+1)) {
			t.Fatalf("log entry %d is %s: the log was trimmed", i+1, info.Key)
		}
		data, err := store.Get(ctx, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = meta.DecodeEntry(data); err != nil {
			t.Fatalf("%s: %v", info.Key, err)
		}
	}
	return out
}
