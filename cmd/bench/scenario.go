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
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/objstore"
)

// Scenario is one load shape, run against Barge, the raw bucket and kfake.
type Scenario struct {
	Name          string
	Load          Load
	FlushInterval time.Duration
	RateMBps      float64 // 0: produce as fast as the broker answers
	// Fleet, when nonzero, also runs the same load against that many
	// agents behind a load balancer (runFleet), beside the one agent.
	Fleet int
	// GroupCatchUp, when nonzero, adds a second cold read of the whole
	// topic by that many consumers, each given every GroupCatchUp-th
	// partition as a group's members share them: consumers catching up at
	// once, whose reads of the segments every partition is packed into
	// must meet in the cache.
	GroupCatchUp int
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

	if sc.Fleet > 0 {
		b.log.Info("fleet", "scenario", sc.Name, "agents", sc.Fleet)
		res.Fleet = &Figures{}
		if err := b.runFleet(ctx, sc, latRate, res.Fleet); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
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
	put, get, err := rawBench(ctx, store, size, ingestInflight, b.timing.Raw, func() float64 { return procCPUOrZero(b.minio.Pid()) })
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

// brokers is what one Barge measurement drives: one agent, or a fleet of
// agents that the clients reach only through seeds (a load balancer).
type brokers struct {
	agents []*harness.Agent
	seeds  []string
	// settle, when set, runs after the topic is created and before any
	// producer or consumer starts.
	settle func(ctx context.Context, topic string) error
}

func (b *bench) agentConfig(sc Scenario, storeURL string) harness.AgentConfig {
	return harness.AgentConfig{Binary: b.agentBin, Store: storeURL, FlushInterval: sc.FlushInterval, Env: b.minio.Env(),
		Args: []string{"--log-level", "warn", "--cache-bytes", strconv.FormatInt(agentCacheBytes, 10)}}
}

// agentCacheBytes is the agent's --cache-bytes in every scenario (its
// default), against which the memory target is set.
const agentCacheBytes = 512 << 20

func (b *bench) runBarge(ctx context.Context, sc Scenario, storeURL string, res *Result) (float64, error) {
	cfg := b.agentConfig(sc, storeURL)
	if b.profileDir != "" {
		cfg.Args = append(cfg.Args, "--pprof")
	}
	agent, err := harness.LaunchAgent(cfg)
	if err != nil {
		return 0, err
	}
	defer func() { agent.Kill(); os.RemoveAll(agent.Dir) }()
	topic := "bench-" + sc.Name
	f := &res.Barge
	latRate, err := b.measure(ctx, sc, brokers{agents: []*harness.Agent{agent}, seeds: []string{agent.Addr}}, topic, 0, f)
	if err != nil {
		return 0, err
	}

	// Cold catch-up through a fresh agent: nothing of the topic is cached.
	want, err := endOffsets(ctx, []string{agent.Addr}, topic)
	if err != nil {
		return 0, err
	}
	if err := agent.Stop(); err != nil {
		return 0, fmt.Errorf("stopping agent: %w", err)
	}
	cu, dm, err := b.coldRead(ctx, cfg, sc, topic, 1, want, f)
	if err != nil {
		return 0, err
	}
	f.fromCatchUp(cu)
	f.Bucket.CatchUpFetchesPerSec = dm.Sum("barge_requests_total", `api="Fetch"`) / cu.Seconds
	f.Bucket.CatchUpFetchP50ms = 1000 * dm.Quantile(0.5, "barge_request_seconds", `api="Fetch"`)
	f.Bucket.CatchUpFetchP99ms = 1000 * dm.Quantile(0.99, "barge_request_seconds", `api="Fetch"`)
	gets := dm.Sum("barge_objstore_requests_total", `op="get"`) + dm.Sum("barge_objstore_requests_total", `op="get_range"`)
	f.Bucket.CatchUpGetsPerSec = gets / cu.Seconds
	f.Bucket.CatchUpGetsPerGiB = perGiB(gets, cu.Bytes)
	f.Bucket.CatchUpReadAmp = readAmp(dm, cu)
	if c := f.Bucket.CatchUpCores; f.CatchUpMBps > 0 && c.Agent+c.MinIO+c.Client > 0 {
		f.Bucket.CatchUpCoreSecondsPerGB = (c.Agent + c.MinIO + c.Client) / (f.CatchUpMBps / 1000)
		f.Bucket.CatchUpCeilingMBps = float64(runtime.NumCPU()) * 1000 / f.Bucket.CatchUpCoreSecondsPerGB
	}
	if sc.GroupCatchUp > 0 {
		g, dm, err := b.coldRead(ctx, cfg, sc, topic, sc.GroupCatchUp, want, nil)
		if err != nil {
			return 0, err
		}
		f.fromGroupCatchUp(g, sc.GroupCatchUp)
		f.Bucket.GroupCatchUpReadAmp = readAmp(dm, g)
	}
	return latRate, nil
}

// coldRead reads the whole topic with clients consumers through a fresh
// agent, whose cache holds none of it, and returns the read and what the
// agent counted meanwhile. With f set it also profiles the read's first
// seconds (-profile) and records the cores each process kept busy.
func (b *bench) coldRead(ctx context.Context, cfg harness.AgentConfig, sc Scenario, topic string, clients int, want int64, f *Figures) (CatchUp, Metrics, error) {
	cold, err := harness.LaunchAgent(cfg)
	if err != nil {
		return CatchUp{}, nil, err
	}
	defer func() {
		// Stopped, not killed: on its way out it leaves the cluster. A
		// killed agent stays a member until its heartbeats expire, and
		// the next cold read's agent, started meanwhile, would see it
		// lead a third of the partitions: their consumers would wait for
		// it for seconds, then read from the start behind the others.
		if err := cold.Stop(); err != nil {
			b.log.Warn("stopping the catch-up agent", "err", err)
		}
		os.RemoveAll(cold.Dir)
	}()
	// Alone in the cluster, leading every partition, before the read.
	if err := waitFleetAgrees(ctx, []*harness.Agent{cold}, topic, time.Minute); err != nil {
		return CatchUp{}, nil, err
	}
	m0, err := Scrape(cold.HTTPAddr)
	if err != nil {
		return CatchUp{}, nil, err
	}
	minio0, self0 := procCPUOrZero(b.minio.Pid()), selfCPU()
	profile := f != nil && b.profileDir != ""
	if profile {
		b.profile(cold.HTTPAddr, sc.Name+"-catchup", true, 3)
	}
	cu, err := catchUp(ctx, []string{cold.Addr}, topic, sc.Load.Partitions, clients, want, b.timing.CatchUp)
	if profile {
		b.profile(cold.HTTPAddr, sc.Name+"-catchup", false, 0)
	}
	if err != nil {
		return CatchUp{}, nil, err
	}
	minio1, self1 := procCPUOrZero(b.minio.Pid()), selfCPU()
	m1, err := Scrape(cold.HTTPAddr)
	if err != nil {
		return CatchUp{}, nil, err
	}
	dm := m1.Sub(m0)
	if f != nil {
		cores := &f.Bucket.CatchUpCores
		cores.Agent = dm.Sum("process_cpu_seconds_total") / cu.Seconds
		cores.MinIO, cores.Client = (minio1-minio0)/cu.Seconds, (self1-self0)/cu.Seconds
	}
	return cu, dm, nil
}

// readAmp is the bytes the agent read from the bucket per byte of record
// values the read consumed.
func readAmp(dm Metrics, cu CatchUp) float64 {
	if cu.Bytes == 0 {
		return 0
	}
	return (dm.Sum("barge_objstore_bytes_total", `op="get"`) + dm.Sum("barge_objstore_bytes_total", `op="get_range"`)) / float64(cu.Bytes)
}

// runFleet runs the scenario's load against sc.Fleet agents on a fresh
// bucket behind a real HAProxy, the clients given only its address. The
// agents advertise their own addresses (direct mode), so the load balancer
// only bootstraps: after one Metadata each client talks to each
// partition's leader. Latencies are measured at latRate records/s, the
// rate the single agent's were, so that the two compare at the same load.
// There is no catch-up phase: the single agent's measures the bucket.
func (b *bench) runFleet(ctx context.Context, sc Scenario, latRate float64, f *Figures) error {
	_, storeURL, err := b.minio.CreateBucket()
	if err != nil {
		return err
	}
	agents, lb, err := harness.LaunchFleet(sc.Fleet, b.agentConfig(sc, storeURL))
	if err != nil {
		return err
	}
	defer func() {
		lb.Close()
		for _, a := range agents {
			a.Kill()
			os.RemoveAll(a.Dir)
		}
	}()
	settle := func(ctx context.Context, topic string) error {
		return waitFleetAgrees(ctx, agents, topic, time.Minute)
	}
	topic := "bench-" + sc.Name
	if _, err = b.measure(ctx, sc, brokers{agents: agents, seeds: []string{lb.Addr()}, settle: settle}, topic, latRate, f); err != nil {
		return err
	}
	b.log.Info("fleet: cross-agent visibility", "scenario", sc.Name)
	f.Visibility, err = measureVisibility(ctx, agents, topic)
	return err
}

// measure creates the topic, runs the produce phases (produceAll) and the
// tail read against br, and fills f from what the clients saw and from the
// agents' /metrics, summed over all of them, as deltas between scrapes at
// the phase boundaries. It returns the rate the latencies were measured at.
func (b *bench) measure(ctx context.Context, sc Scenario, br brokers, topic string, latRate float64, f *Figures) (float64, error) {
	d, err := newDriver(ctx, sc.Load, br.seeds, topic, br.settle)
	if err != nil {
		return 0, err
	}
	defer d.close()
	var addrs []string
	for _, a := range br.agents {
		addrs = append(addrs, a.HTTPAddr)
	}
	profile := b.profileDir != "" && len(br.agents) == 1

	scrapes := map[string]Metrics{}
	cpuMarks := map[string]cpuMark{}
	acked := map[string]int64{} // bytes acknowledged by then
	var scrapeErr error
	mark := func(phase string, open bool) {
		key := phase + map[bool]string{true: ".open", false: ".close"}[open]
		m, err := ScrapeAll(addrs...)
		if err != nil && scrapeErr == nil {
			scrapeErr = err
		}
		scrapes[key] = m
		cpuMarks[key] = cpuMark{minio: procCPUOrZero(b.minio.Pid()), self: selfCPU()}
		acked[key] = d.ackedBytes.Load()
		if profile && phase == "produce" {
			b.profile(addrs[0], sc.Name, open, int((b.timing.Produce - b.timing.Warmup).Seconds()))
		}
	}
	latRate, err = b.produceAll(ctx, d, sc, latRate, f, mark)
	if err != nil {
		return 0, err
	}
	// Tail reads: wait until the consumers have everything, then count the
	// data GETs the agents made since the first window opened.
	produced := d.acked.Load()
	if !d.waitConsumed(ctx, produced, 60*time.Second) {
		b.log.Warn("tail consumers did not catch up", "consumed", d.consumed.Load(), "produced", produced)
	}
	mark("tail", false)
	if scrapeErr != nil {
		return 0, scrapeErr
	}
	var rss int64
	for _, a := range br.agents {
		r, err := harness.PeakRSS(a.Pid())
		if err != nil {
			return 0, err
		}
		rss = max(rss, r)
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
		SegmentPutsPerSec:      tpw.Sum("barge_objstore_requests_total", `op="put"`) / f.windowSeconds,
		MetaPutsPerSec:         tpw.Sum("barge_objstore_requests_total", `op="put_if_absent"`) / f.windowSeconds,
		MetaPutConflictsPerSec: tpw.Sum("barge_objstore_requests_total", `op="put_if_absent"`, `result="exists"`) / f.windowSeconds,
		GetsPerSec:             (tpw.Sum("barge_objstore_requests_total", `op="get"`) + tpw.Sum("barge_objstore_requests_total", `op="get_range"`)) / f.windowSeconds,
		TailDataGets:           dataGets(tail),
		BurstDataGets:          dataGets(tpw),
		TailSegmentReads:       int64(tail.Sum("barge_segment_reads_total")),
	}
	bk.TailGetsPerGiB = perGiB(float64(bk.TailSegmentReads), acked["tail.close"]-acked[tailFrom])
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
		Stages:          map[string][2]float64{},
	}
	if n := lw.Sum("barge_segment_seals_total"); n > 0 {
		f.Inside.Seals = map[string]float64{}
		for _, why := range []string{"time", "size", "waiting", "quiet"} {
			f.Inside.Seals[why] = lw.Sum("barge_segment_seals_total", `reason="`+why+`"`) / n
		}
	}
	for _, st := range produceStages {
		l := `stage="` + st + `"`
		f.Inside.Stages[st] = [2]float64{1000 * lw.Quantile(0.5, "barge_produce_stage_seconds", l), 1000 * lw.Quantile(0.99, "barge_produce_stage_seconds", l)}
	}
	ag := &AgentFigures{Agents: len(br.agents), PeakRSSMiB: float64(rss) / (1 << 20)}
	if gib > 0 {
		ag.CPUSecondsPerGiB = tpw.Sum("process_cpu_seconds_total") / gib
		ag.MinIOCPUSecondsPerGiB = (cpuMarks["produce.close"].minio - cpuMarks["produce.open"].minio) / gib
		ag.ClientCPUSecondsPerGiB = (cpuMarks["produce.close"].self - cpuMarks["produce.open"].self) / gib
		ag.MachineCPUUse = (tpw.Sum("process_cpu_seconds_total") + cpuMarks["produce.close"].minio - cpuMarks["produce.open"].minio +
			cpuMarks["produce.close"].self - cpuMarks["produce.open"].self) / f.windowSeconds / float64(runtime.NumCPU())
	}
	f.Agent = ag
	return latRate, nil
}

// perGiB is n per GiB of bytes (0 when bytes is not positive).
func perGiB(n float64, bytes int64) float64 {
	if bytes <= 0 {
		return 0
	}
	return n / (float64(bytes) / (1 << 30))
}

// waitFleetAgrees waits until every agent, asked itself, knows topic and
// lists all of the agents as brokers: from then on they name the same
// leader for each partition (rendezvous over the same members), so the
// clients that start next meet on the leaders.
func waitFleetAgrees(ctx context.Context, agents []*harness.Agent, topic string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, a := range agents {
		for {
			n, err := brokersSeen(wctx, a.Addr, topic)
			if err == nil && n == len(agents) {
				break
			}
			if wctx.Err() != nil {
				return fmt.Errorf("%s did not list %d agents and know %s within %v (last: %d brokers, %v)", a, len(agents), topic, timeout, n, err)
			}
			sleep(wctx, 50*time.Millisecond)
		}
	}
	return nil
}

// brokersSeen asks the agent at addr itself (not whichever broker a client
// would pick) for topic's metadata and returns how many brokers it lists,
// or an error unless every partition is led by one of them.
func brokersSeen(ctx context.Context, addr, topic string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl.SeedBrokers()[0])
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		return len(resp.Brokers), fmt.Errorf("metadata of %s: %v", topic, kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	listed := map[int32]bool{}
	for _, b := range resp.Brokers {
		listed[b.NodeID] = true
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || !listed[p.Leader] {
			return len(resp.Brokers), fmt.Errorf("%s partition %d: leader %d, %v", topic, p.Partition, p.Leader, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	return len(resp.Brokers), nil
}

func (b *bench) runPeer(ctx context.Context, sc Scenario, latRate float64, res *Result) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return err
	}
	defer c.Close()
	seeds := c.ListenAddrs()
	topic := "bench-" + sc.Name
	d, err := newDriver(ctx, sc.Load, seeds, topic, nil)
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
	cu, err := catchUp(ctx, seeds, topic, sc.Load.Partitions, 1, want, b.timing.CatchUp)
	if err != nil {
		return err
	}
	f.fromCatchUp(cu)
	if sc.GroupCatchUp > 0 {
		g, err := catchUp(ctx, seeds, topic, sc.Load.Partitions, sc.GroupCatchUp, want, b.timing.CatchUp)
		if err != nil {
			return err
		}
		f.fromGroupCatchUp(g, sc.GroupCatchUp)
	}
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

// profile starts a CPU profile of the agent, secs long, when the window
// opens and, when it closes, waits for it and takes an allocation profile.
func (b *bench) profile(addr, name string, open bool, secs int) {
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
