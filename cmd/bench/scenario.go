package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/objstore"
)

// Scenario is one load shape, run against Barge, the raw bucket and kfake.
type Scenario struct {
	Name          string
	Load          Load
	FlushInterval time.Duration
	RateMBps      float64 // 0: produce as fast as the broker answers
}

// Timing says how long each phase runs.
type Timing struct {
	Produce time.Duration // the throughput phase (and the whole produce phase at a fixed rate)
	Latency time.Duration // the half-load phase of saturating scenarios
	Warmup  time.Duration // unmeasured start of each phase
	CatchUp time.Duration // most a cold read may take
	Raw     time.Duration // each of raw PUT and raw GET
}

func (s Scenario) saturating() bool { return s.RateMBps == 0 }

// recordsPerSec converts the scenario's rate to records per second.
func (s Scenario) recordsPerSec() float64 { return s.RateMBps * 1e6 / float64(s.Load.RecordSize) }

// ingestInflight is tiered.IngestConfig.MaxInflight's default: segments the
// agent uploads at once. The raw PUT limit uses the same number.
const ingestInflight = 4

type bench struct {
	minio      *harness.MinIO
	timing     Timing
	log        *slog.Logger
	profileDir string // when set, the agent's CPU and allocation profiles of each throughput phase go here
	cpuProfile chan struct{}
	agentBin   string // prebuilt agent binary; empty builds ./cmd/agent
}

// run measures one scenario.
func (b *bench) run(ctx context.Context, sc Scenario) (*Result, error) {
	res := &Result{Scenario: sc.Name, Config: configOf(sc, b.timing)}
	bucket, storeURL, err := b.minio.CreateBucket()
	if err != nil {
		return nil, err
	}
	b.log.Info("barge", "scenario", sc.Name)
	latRate, err := b.runBarge(ctx, sc, storeURL, res)
	if err != nil {
		return nil, fmt.Errorf("barge: %w", err)
	}

	b.log.Info("raw bucket", "scenario", sc.Name, "object_bytes", int64(res.Barge.Bucket.MeanFlushBytes))
	store, err := objstore.NewS3(ctx, objstore.S3Config{Bucket: bucket, Endpoint: b.minio.Endpoint,
		PathStyle: true, AccessKey: b.minio.AccessKey, SecretKey: b.minio.SecretKey})
	if err != nil {
		return nil, err
	}
	size := int64(res.Barge.Bucket.MeanFlushBytes)
	if size <= 0 {
		size = 8 << 20
	}
	put, get, err := rawBench(ctx, store, size, ingestInflight, b.timing.Raw)
	if err != nil {
		return nil, err
	}
	res.Limit = Limit{Put: put, Get: get}

	b.log.Info("kfake", "scenario", sc.Name)
	if err := b.runPeer(ctx, sc, latRate, res); err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	res.evaluate(sc)
	return res, nil
}

// produceAll runs the throughput phase and, for saturating scenarios, the
// latency phase at latRate records/s (0: half the measured throughput). It
// returns the rate the latencies were measured at. mark scrapes.
func (b *bench) produceAll(ctx context.Context, d *driver, sc Scenario, latRate float64, f *Figures, mark func(phase string, open bool)) (float64, error) {
	rate := 0.0
	if !sc.saturating() {
		rate = sc.recordsPerSec()
	}
	tp, err := d.phase(ctx, b.timing.Produce, b.timing.Warmup, rate, func(open bool) { mark("produce", open) })
	if err != nil {
		return 0, err
	}
	f.fromThroughput(tp)
	lat := tp
	if sc.saturating() {
		// Let the tail consumers catch up with the burst first, so the
		// latency window sees consumers at the tail.
		if !d.waitConsumed(ctx, d.acked.Load(), 60*time.Second) {
			b.log.Warn("tail consumers did not catch up after the throughput phase")
		}
		if latRate <= 0 {
			latRate = float64(tp.Records) / tp.Seconds / 2
		}
		lat, err = d.phase(ctx, b.timing.Latency, b.timing.Warmup, latRate, func(open bool) { mark("latency", open) })
		if err != nil {
			return 0, err
		}
	} else {
		latRate = rate
	}
	f.fromLatency(lat, latRate*float64(sc.Load.RecordSize)/1e6)
	f.ProduceErrors = tp.ProduceErrors + lat.ProduceErrors
	if f.ProduceErrors > 0 {
		b.log.Warn("produce errors", "n", f.ProduceErrors)
	}
	return latRate, nil
}

func (b *bench) runBarge(ctx context.Context, sc Scenario, storeURL string, res *Result) (float64, error) {
	cfg := harness.AgentConfig{Binary: b.agentBin, Store: storeURL, FlushInterval: sc.FlushInterval, Env: b.minio.Env(),
		Args: []string{"--log-level", "warn"}}
	if b.profileDir != "" {
		cfg.Args = append(cfg.Args, "--pprof")
	}
	agent, err := harness.LaunchAgent(cfg)
	if err != nil {
		return 0, err
	}
	defer func() { agent.Kill(); os.RemoveAll(agent.Dir) }()
	topic := "bench-" + sc.Name
	d, err := newDriver(ctx, sc.Load, []string{agent.Addr}, topic)
	if err != nil {
		return 0, err
	}
	defer d.close()

	scrapes := map[string]Metrics{}
	cpuMarks := map[string]cpuMark{}
	var scrapeErr error
	mark := func(phase string, open bool) {
		key := phase + map[bool]string{true: ".open", false: ".close"}[open]
		m, err := Scrape(agent.HTTPAddr)
		if err != nil && scrapeErr == nil {
			scrapeErr = err
		}
		scrapes[key] = m
		cpuMarks[key] = cpuMark{minio: procCPUOrZero(b.minio.Pid()), self: selfCPU()}
		if b.profileDir != "" && phase == "produce" {
			b.profile(agent.HTTPAddr, sc.Name, open)
		}
	}
	f := &res.Barge
	latRate, err := b.produceAll(ctx, d, sc, 0, f, mark)
	if err != nil {
		return 0, err
	}
	// Tail reads: wait until the consumers have everything, then count the
	// data GETs the agent made since the first window opened.
	produced := d.acked.Load()
	if !d.waitConsumed(ctx, produced, 60*time.Second) {
		b.log.Warn("tail consumers did not catch up", "consumed", d.consumed.Load(), "produced", produced)
	}
	mark("tail", false)
	if scrapeErr != nil {
		return 0, scrapeErr
	}
	rss, err := harness.PeakRSS(agent.Pid())
	if err != nil {
		return 0, err
	}
	tpw := scrapes["produce.close"].Sub(scrapes["produce.open"])
	tailFrom := "produce.open"
	if sc.saturating() {
		tailFrom = "latency.open"
	}
	tail := scrapes["tail.close"].Sub(scrapes[tailFrom])
	dataGets := func(m Metrics) int64 {
		return int64(m.Sum("barge_objstore_requests_total", `op="get_range"`) + m.Sum("barge_objstore_requests_total", `op="get"`, `result="ok"`))
	}
	gib := float64(f.windowBytes) / (1 << 30)
	bk := &BucketFigures{
		SegmentPutsPerSec: tpw.Sum("barge_objstore_requests_total", `op="put"`) / f.windowSeconds,
		MetaPutsPerSec:    tpw.Sum("barge_objstore_requests_total", `op="put_if_absent"`) / f.windowSeconds,
		GetsPerSec:        (tpw.Sum("barge_objstore_requests_total", `op="get"`) + tpw.Sum("barge_objstore_requests_total", `op="get_range"`)) / f.windowSeconds,
		TailDataGets:      dataGets(tail),
		BurstDataGets:     dataGets(tpw),
	}
	bk.PutsPerSec = bk.SegmentPutsPerSec + bk.MetaPutsPerSec
	if gib > 0 {
		bk.PutsPerGiB = bk.PutsPerSec * f.windowSeconds / gib
	}
	if n := tpw.Sum("barge_flush_bytes_count"); n > 0 {
		bk.MeanFlushBytes = tpw.Sum("barge_flush_bytes_sum") / n
		bk.FlushesPerSec = n / f.windowSeconds
	}
	f.Bucket = bk
	latFrom, latTo := "produce.open", "produce.close"
	if sc.saturating() {
		latFrom, latTo = "latency.open", "latency.close"
	}
	lw := scrapes[latTo].Sub(scrapes[latFrom])
	f.Inside = &InsideFigures{
		ProduceP50ms:    1000 * lw.Quantile(0.5, "barge_request_seconds", `api="Produce"`),
		ProduceP99ms:    1000 * lw.Quantile(0.99, "barge_request_seconds", `api="Produce"`),
		SealCommitP50ms: 1000 * lw.Quantile(0.5, "barge_flush_seconds"),
		SealCommitP99ms: 1000 * lw.Quantile(0.99, "barge_flush_seconds"),
		PutP99ms:        1000 * lw.Quantile(0.99, "barge_objstore_request_seconds", `op="put"`),
		CommitPutP99ms:  1000 * lw.Quantile(0.99, "barge_objstore_request_seconds", `op="put_if_absent"`),
	}
	ag := &AgentFigures{PeakRSSMiB: float64(rss) / (1 << 20)}
	if gib > 0 {
		ag.CPUSecondsPerGiB = tpw.Sum("process_cpu_seconds_total") / gib
		ag.MinIOCPUSecondsPerGiB = (cpuMarks["produce.close"].minio - cpuMarks["produce.open"].minio) / gib
		ag.ClientCPUSecondsPerGiB = (cpuMarks["produce.close"].self - cpuMarks["produce.open"].self) / gib
		ag.MachineCPUUse = (tpw.Sum("process_cpu_seconds_total") + cpuMarks["produce.close"].minio - cpuMarks["produce.open"].minio +
			cpuMarks["produce.close"].self - cpuMarks["produce.open"].self) / f.windowSeconds / float64(runtime.NumCPU())
	}
	f.Agent = ag
	d.close()

	// Cold catch-up through a fresh agent: nothing of the topic is cached.
	want, err := endOffsets(ctx, []string{agent.Addr}, topic)
	if err != nil {
		return 0, err
	}
	if err := agent.Stop(); err != nil {
		return 0, fmt.Errorf("stopping agent: %w", err)
	}
	cold, err := harness.LaunchAgent(cfg)
	if err != nil {
		return 0, err
	}
	defer func() { cold.Kill(); os.RemoveAll(cold.Dir) }()
	m0, err := Scrape(cold.HTTPAddr)
	if err != nil {
		return 0, err
	}
	cu, err := catchUp(ctx, []string{cold.Addr}, topic, sc.Load.Partitions, want, b.timing.CatchUp)
	if err != nil {
		return 0, err
	}
	m1, err := Scrape(cold.HTTPAddr)
	if err != nil {
		return 0, err
	}
	f.fromCatchUp(cu)
	dm := m1.Sub(m0)
	gets := dm.Sum("barge_objstore_requests_total", `op="get"`) + dm.Sum("barge_objstore_requests_total", `op="get_range"`)
	bk.CatchUpGetsPerSec = gets / cu.Seconds
	if cu.Bytes > 0 {
		bk.CatchUpGetsPerGiB = gets / (float64(cu.Bytes) / (1 << 30))
	}
	return latRate, nil
}

func (b *bench) runPeer(ctx context.Context, sc Scenario, latRate float64, res *Result) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return err
	}
	defer c.Close()
	seeds := c.ListenAddrs()
	topic := "bench-" + sc.Name
	d, err := newDriver(ctx, sc.Load, seeds, topic)
	if err != nil {
		return err
	}
	defer d.close()
	f := &res.Peer
	if _, err := b.produceAll(ctx, d, sc, latRate, f, func(string, bool) {}); err != nil {
		return err
	}
	produced := d.acked.Load()
	d.waitConsumed(ctx, produced, 60*time.Second)
	d.close()
	want, err := endOffsets(ctx, seeds, topic)
	if err != nil {
		return err
	}
	cu, err := catchUp(ctx, seeds, topic, sc.Load.Partitions, want, b.timing.CatchUp)
	if err != nil {
		return err
	}
	f.fromCatchUp(cu)
	return nil
}

// endOffsets returns the sum of the topic's high watermarks.
func endOffsets(ctx context.Context, seeds []string, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(lctx, topic)
	if err != nil {
		return 0, err
	}
	if err := offs.Error(); err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// profile starts a CPU profile of the agent when the throughput window
// opens and, when it closes, waits for it and takes an allocation profile.
func (b *bench) profile(addr, name string, open bool) {
	get := func(path, file string) {
		c := &http.Client{Timeout: 2 * time.Minute}
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			b.log.Warn("profile", "path", path, "err", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(b.profileDir, file))
		if err != nil {
			b.log.Warn("profile", "err", err)
			return
		}
		defer f.Close()
		io.Copy(f, resp.Body)
	}
	if open {
		os.MkdirAll(b.profileDir, 0o755)
		secs := int((b.timing.Produce - b.timing.Warmup).Seconds())
		b.cpuProfile = make(chan struct{})
		go func() {
			defer close(b.cpuProfile)
			get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(secs, 1)), name+".cpu.pprof")
		}()
		return
	}
	<-b.cpuProfile
	get("/debug/pprof/allocs", name+".allocs.pprof")
}
