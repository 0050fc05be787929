package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// The meta-log scenario: N agents' metadata logs (real pkg/meta code, one
// *meta.Log per writer in this process) share one bucket and each appends a
// flush-sized commit several times a second. The bucket is in memory behind
// S3 Standard-like latencies (withLatency): the round trips, not the
// bytes, decide who wins a slot and how long the losers wait, so no MinIO
// is needed. It runs twice: "direct", every agent racing for every slot
// with its own conditional PUT (the log before issue 13, and what
// --meta-sequencer=false does), and "sequenced", the agents sending their
// entries to the sequencer (meta/sequencer.go) over an in-process relay
// (meta.LocalRelay) that adds a same-zone network round trip
// (localRelayRTT) to every call.
const metaLogName = "meta-log"

var metaLogWriters = []int{1, 4, 16, 64}

const (
	metaLogRate       = 4.0 // commits per second per writer, as an agent flushing every 250 ms
	metaLogPartitions = 64  // of the one topic
	metaLogParts      = 8   // partitions per commit
	metaLogBatches    = 2   // batches per partition per commit
	metaLogBatchBytes = 64 << 10
)

// MetaLogResult is the meta-log scenario in bench/results.json.
type MetaLogResult struct {
	Seconds       float64      `json:"seconds"` // commits are started for this long at each N
	PerWriterRate float64      `json:"commits_per_s_per_writer"`
	PartsPerEntry int          `json:"parts_per_commit"`
	Latency       LatencyMs    `json:"latency_ms"`
	Rows          []MetaLogRow `json:"rows"`
}

// LatencyMs is the bucket's added delays (withLatency), for the JSON report.
type LatencyMs struct {
	PutIfAbsent float64 `json:"put_if_absent"`
	Put         float64 `json:"put"`
	Get         float64 `json:"get"`
	List        float64 `json:"list"`
	Delete      float64 `json:"delete"`
}

// MetaLogRow is one writer count.
type MetaLogRow struct {
	Mode            string  `json:"mode"` // direct or sequenced
	Writers         int     `json:"writers"`
	Started         int64   `json:"started"`               // Appends called
	OfferedPerSec   float64 `json:"offered_commits_per_s"` // Started over the scenario's duration
	Commits         int64   `json:"commits"`               // Appends that succeeded
	Failed          int64   `json:"failed"`                // Appends that returned an error
	FirstError      string  `json:"first_error,omitempty"`
	Entries         uint64  `json:"entries"`          // log slots the writers won
	Seconds         float64 `json:"seconds"`          // first commit started to last answered
	CommitsPerSec   float64 `json:"commits_per_s"`    // Commits / Seconds
	CommitP50ms     float64 `json:"commit_p50_ms"`    // Append called to its result
	CommitP99ms     float64 `json:"commit_p99_ms"`    //
	MaxWaitMs       float64 `json:"max_wait_ms"`      // the slowest writer's longest Append
	MinWriterShare  float64 `json:"min_writer_share"` // the least served writer's commits / its fair share
	PutIfAbsent     uint64  `json:"put_if_absent"`
	Exists          uint64  `json:"put_if_absent_412"`
	Gets            uint64  `json:"gets"`
	Lists           uint64  `json:"lists"`
	PutsPerEntry    float64 `json:"puts_per_entry"`  // every PutIfAbsent attempt / Entries
	GetsPerCommit   float64 `json:"gets_per_commit"` // every GET (slot reads after a 412 and tail polls) / Commits
	ExistsPerCommit float64 `json:"412s_per_commit"`
}

func (b *bench) runMetaLog(ctx context.Context, dur time.Duration) (*MetaLogResult, error) {
	lat := s3Standard
	res := &MetaLogResult{Seconds: dur.Seconds(), PerWriterRate: metaLogRate, PartsPerEntry: metaLogParts,
		Latency: LatencyMs{PutIfAbsent: ms(lat.PutIfAbsent), Put: ms(lat.Put), Get: ms(lat.Get), List: ms(lat.List), Delete: ms(lat.Delete)}}
	for _, sequenced := range []bool{false, true} {
		for _, n := range metaLogWriters {
			b.log.Info("meta-log", "writers", n, "sequenced", sequenced, "seconds", dur.Seconds())
			row, err := metaLogRun(ctx, n, dur, lat, sequenced, b.log)
			if err != nil {
				return nil, fmt.Errorf("%s, %d writers: %w", metaLogName, n, err)
			}
			res.Rows = append(res.Rows, row)
		}
	}
	return res, nil
}

// metaLogRun measures n writers on a fresh store, sequenced or not.
func metaLogRun(ctx context.Context, n int, dur time.Duration, lat Latencies, sequenced bool, logger *slog.Logger) (MetaLogRow, error) {
	row := MetaLogRow{Writers: n, Mode: "direct"}
	var relay *meta.LocalRelay
	if sequenced {
		row.Mode, relay = "sequenced", meta.NewLocalRelay(localRelayRTT)
	}
	store := objstore.Instrument(withLatency(objstore.NewMemory(), lat), nil)

	// The topic the commits land in, created by a log that then goes away.
	topic := meta.TopicID{0xba, 0x46, 0xe0}
	{
		setup, err := meta.Open(ctx, store, meta.Options{WriterID: "setup", Logger: logger})
		if err != nil {
			return row, err
		}
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { setup.Run(sctx); close(done) }()
		r, err := setup.Append(ctx, meta.CreateTopic{Name: "meta-log", ID: topic, Partitions: metaLogPartitions, ReplicationFactor: 1})
		if err == nil {
			err = setup.Leave(ctx) // it holds no format back
		}
		stop()
		<-done
		if err == nil {
			err = r[0].Err
		}
		if err != nil {
			return row, fmt.Errorf("create topic: %w", err)
		}
	}

	logs := make([]*meta.Log, n)
	var g sync.WaitGroup
	errs := make([]error, n)
	for i := range logs {
		g.Go(func() {
			opts := meta.Options{WriterID: fmt.Sprintf("w%02d", i), Logger: logger}
			if relay != nil {
				opts.Relay, opts.Sequence = relay, true
			}
			logs[i], errs[i] = meta.Open(ctx, store, opts)
		})
	}
	g.Wait()
	for _, err := range errs {
		if err != nil {
			return row, err
		}
	}
	runCtx, stopLogs := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() { stopLogs(); running.Wait() }()
	for _, l := range logs {
		running.Go(func() { l.Run(runCtx) })
	}
	if relay != nil {
		if err := joinSequenced(ctx, logs, relay); err != nil {
			return row, err
		}
	}

	base := store.Counts()
	var (
		hist     Histogram
		mu       sync.Mutex
		maxWait  time.Duration
		last     time.Time
		perWrite = make([]int64, n)
	)
	start := time.Now()
	end := start.Add(dur)
	period := time.Duration(float64(time.Second) / metaLogRate)
	var appends sync.WaitGroup
	var writers sync.WaitGroup
	for w, l := range logs {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
			// A random phase, then intervals of 0.75 to 1.25 periods
			// (seeded, so runs are alike): the writers' flushes drift
			// apart as real agents' do.
			next := start.Add(time.Duration(rng.Float64() * float64(period)))
			for i := 0; next.Before(end); i++ {
				sleep(ctx, time.Until(next))
				if ctx.Err() != nil {
					return
				}
				op := metaLogCommit(rng, topic, l.WriterID(), i)
				mu.Lock()
				row.Started++
				mu.Unlock()
				// Open loop, as an agent's ingest submits a commit
				// per sealed segment whether or not the last one has
				// landed (its log then group-commits what queued up).
				appends.Go(func() {
					began := time.Now()
					r, err := l.Append(ctx, op)
					took := time.Since(began)
					if err == nil {
						err = firstBatchErr(r)
					}
					if err == nil {
						hist.Record(took) // commit latency: of commits, not of failures
					}
					mu.Lock()
					defer mu.Unlock()
					maxWait = max(maxWait, took)
					if now := time.Now(); now.After(last) {
						last = now
					}
					if err != nil {
						if row.Failed++; row.FirstError == "" {
							row.FirstError = err.Error()
						}
						return
					}
					row.Commits++
					perWrite[w]++
				})
				next = next.Add(time.Duration((0.75 + rng.Float64()/2) * float64(period)))
			}
		})
	}
	writers.Wait()
	appends.Wait()
	if err := ctx.Err(); err != nil {
		return row, err
	}
	counts := store.Counts()
	delta := func(k string) uint64 { return counts[k] - base[k] }

	row.OfferedPerSec = float64(row.Started) / dur.Seconds()
	if !last.IsZero() {
		row.Seconds = last.Sub(start).Seconds()
	}
	row.CommitsPerSec = ratio(float64(row.Commits), row.Seconds)
	row.CommitP50ms, row.CommitP99ms = ms(hist.Quantile(0.5)), ms(hist.Quantile(0.99))
	row.MaxWaitMs = ms(maxWait)
	fair := float64(row.Commits) / float64(n)
	row.MinWriterShare = 1
	for _, c := range perWrite {
		row.MinWriterShare = min(row.MinWriterShare, ratio(float64(c), fair))
	}
	row.PutIfAbsent = delta(string(objstore.OpPutIfAbsent))
	row.Exists = delta(string(objstore.OpPutIfAbsent) + "/" + objstore.ResultExists)
	row.Entries = delta(string(objstore.OpPutIfAbsent) + "/" + objstore.ResultOK)
	row.Gets = delta(string(objstore.OpGet)) + delta(string(objstore.OpGetRange))
	row.Lists = delta(string(objstore.OpList))
	row.PutsPerEntry = ratio(float64(row.PutIfAbsent), float64(row.Entries))
	row.GetsPerCommit = ratio(float64(row.Gets), float64(row.Commits))
	row.ExistsPerCommit = ratio(float64(row.Exists), float64(row.Commits))
	return row, nil
}

// metaLogCommit is one flush's commit: metaLogParts partitions, from a
// random one on, of metaLogBatches batches each, in one segment object.
func metaLogCommit(rng *rand.Rand, topic meta.TopicID, writer string, i int) meta.Commit {
	c := meta.Commit{Object: fmt.Sprintf("data/%s/%08d.seg", writer, i)}
	first := rng.IntN(metaLogPartitions)
	now := time.Now().UnixMilli()
	for p := range metaLogParts {
		part := meta.CommitPart{Topic: topic, Partition: int32((first + p) % metaLogPartitions)}
		for range metaLogBatches {
			part.Batches = append(part.Batches, meta.CommitBatch{Pos: c.Size, Len: metaLogBatchBytes,
				Records: 64, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
			c.Size += metaLogBatchBytes
		}
		c.Parts = append(c.Parts, part)
	}
	return c
}

func firstBatchErr(r []meta.Result) error {
	for _, res := range r {
		if res.Err != nil {
			return res.Err
		}
		for _, part := range res.Parts {
			for _, b := range part {
				if b.Err != nil {
					return b.Err
				}
			}
		}
	}
	return nil
}

// printMetaLog writes the meta-log table and issue 13's targets at the
// largest writer count.
func printMetaLog(w io.Writer, r *MetaLogResult) {
	fmt.Fprintf(w, "\n== %s: N writers × %.0f commits/s each (%d partitions × %d batches per commit), %.0fs per N; "+
		"in-memory bucket at S3 Standard-like latency (PutIfAbsent %.0f ms, GET/List %.0f ms, Put/Delete %.0f ms) ==\n",
		metaLogName, r.PerWriterRate, r.PartsPerEntry, metaLogBatches, r.Seconds, r.Latency.PutIfAbsent, r.Latency.Get, r.Latency.Put)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\twriters\tstarted/s\tcommits/s\tcommits/entry\tp50 ms\tp99 ms\tmax wait ms\tleast served\tPUT/entry\tGET/commit\t412/commit\tfailed\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.1f\t%.2f\t%d\t\n",
			row.Mode, row.Writers, row.OfferedPerSec, row.CommitsPerSec, ratio(float64(row.Commits), float64(row.Entries)),
			row.CommitP50ms, row.CommitP99ms, row.MaxWaitMs, row.MinWriterShare, row.PutsPerEntry, row.GetsPerCommit,
			row.ExistsPerCommit, row.Failed)
	}
	tw.Flush()
	for _, row := range r.Rows {
		if row.FirstError != "" {
			fmt.Fprintf(w, "%s, %d writers: first failure: %s\n", row.Mode, row.Writers, row.FirstError)
		}
	}
	var rows []MetaLogRow // the targets are the sequenced log's
	for _, row := range r.Rows {
		if row.Mode == "sequenced" {
			rows = append(rows, row)
		}
	}
	if len(rows) < 2 {
		return
	}
	one, top := rows[0], rows[len(rows)-1]
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	p99x := ratio(top.CommitP99ms, one.CommitP99ms)
	fmt.Fprintf(w, "sequenced, targets at %d writers (issue 13): commit p99 %.1f× %d writer's (≤ 3×) %s; PUT/entry %.2f (≤ 1.2) %s; longest wait %.2f s (≤ 2 s) %s\n",
		top.Writers, p99x, one.Writers, verdict(p99x <= 3), top.PutsPerEntry, verdict(top.PutsPerEntry <= 1.2),
		top.MaxWaitMs/1000, verdict(top.MaxWaitMs <= 2000 && top.Failed == 0))
}

// joinSequenced registers every log as an agent, raises the cluster to the
// format with sequencing, and waits until every log sees one sequencer.
func joinSequenced(ctx context.Context, logs []*meta.Log, relay *meta.LocalRelay) error {
	var g errgroup.Group
	for i, l := range logs {
		addr := fmt.Sprintf("w%02d:9092", i)
		relay.Add(addr, l)
		g.Go(func() error {
			_, err := l.Append(ctx, meta.AgentHeartbeat{Addr: addr})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	for range 2 { // announce, then raise
		for _, l := range logs {
			g.Go(func() error {
				if err := l.SyncTail(ctx); err != nil {
					return err
				}
				return l.StepFormat(ctx, time.Now())
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("raise the format: %w", err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ids := map[string]bool{}
		for _, l := range logs {
			l.View(func(st *meta.State) {
				a, _ := st.Sequencer(time.Now().UnixMilli())
				ids[a.ID] = true
			})
		}
		if len(ids) == 1 && !ids[""] {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the logs did not agree on a sequencer within a minute")
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// localRelayRTT is the round trip the relay adds: agents in one zone.
const localRelayRTT = 500 * time.Microsecond
