package main

import "fmt"

// Result is everything measured for one scenario; bench/results.json holds
// one per scenario.
type Result struct {
	Scenario string  `json:"scenario"`
	Config   Config  `json:"config"`
	Barge    Figures `json:"barge"`
	Limit    Limit   `json:"limit"`
	Peer     Figures `json:"kfake"`
	// Fleet is the same load against Config.FleetAgents agents behind a
	// load balancer, for scenarios that have one.
	Fleet   *Figures `json:"fleet,omitempty"`
	Ratios  Ratios   `json:"ratios"`
	Targets []Target `json:"targets"`
}

// Config is the scenario as run.
type Config struct {
	RecordSize      int     `json:"record_size"`
	Partitions      int     `json:"partitions"`
	Producers       int     `json:"producers"`
	Consumers       int     `json:"consumers"`
	Acks            string  `json:"acks"`
	Compression     string  `json:"compression"`
	FlushIntervalMs float64 `json:"flush_interval_ms"`
	RateMBps        float64 `json:"rate_mb_per_s"` // 0: as fast as the broker answers
	ProduceSeconds  float64 `json:"produce_seconds"`
	LatencySeconds  float64 `json:"latency_seconds"`
	FleetAgents     int     `json:"fleet_agents,omitempty"`            // agents of the fleet measured beside the one
	TxnRecords      int     `json:"txn_records,omitempty"`             // records per transaction; 0: none
	GroupCatchUp    int     `json:"group_catchup_consumers,omitempty"` // consumers of the group catch-up; 0: none
}

func configOf(sc Scenario, t Timing) Config {
	c := Config{RecordSize: sc.Load.RecordSize, Partitions: sc.Load.Partitions, Producers: sc.Load.Producers,
		Consumers: sc.Load.Consumers, Acks: sc.Load.Acks, Compression: sc.Load.Compression,
		FlushIntervalMs: ms(sc.FlushInterval), RateMBps: sc.RateMBps, ProduceSeconds: t.Produce.Seconds(), TxnRecords: sc.Load.TxnRecords,
		FleetAgents: sc.Fleet, GroupCatchUp: sc.GroupCatchUp}
	if sc.saturating() {
		c.LatencySeconds = t.Latency.Seconds()
	}
	return c
}

// Figures are one broker's numbers (MB = 10^6 bytes of record values).
type Figures struct {
	ProduceMBps      float64 `json:"produce_mb_per_s"`
	ProduceRecPerSec float64 `json:"produce_records_per_s"`
	ProduceErrors    int64   `json:"produce_errors"`
	// Latencies are measured at LatencyMBps: half the throughput for
	// saturating scenarios (so they are not queueing figures), else the
	// scenario's fixed rate.
	LatencyMBps     float64 `json:"latency_load_mb_per_s"`
	ProduceP50ms    float64 `json:"produce_p50_ms"`
	ProduceP99ms    float64 `json:"produce_p99_ms"`
	ProduceP999ms   float64 `json:"produce_p999_ms"`
	E2EP50ms        float64 `json:"e2e_p50_ms"`
	E2EP99ms        float64 `json:"e2e_p99_ms"`
	TailConsumeMBps float64 `json:"tail_consume_mb_per_s"`
	CatchUpMBps     float64 `json:"catchup_mb_per_s"`
	CatchUpComplete bool    `json:"catchup_complete"`
	CatchUpMB       float64 `json:"catchup_mb"`
	// GroupCatchUpMBps is the cold read by Scenario.GroupCatchUp
	// consumers at once, when the scenario has one.
	GroupCatchUpMBps     float64 `json:"group_catchup_mb_per_s,omitempty"`
	GroupCatchUpComplete bool    `json:"group_catchup_complete,omitempty"`
	// CatchUpFetchCycleMs is the catch-up consumer's mean time per Fetch
	// (it has one in flight at a time), CatchUpFetchAnswerMs the part of
	// it spent waiting for and reading the answer, of CatchUpFetchMB on
	// average; the rest is the client's own. Group ones are per consumer.
	CatchUpFetchCycleMs       float64        `json:"catchup_fetch_cycle_ms,omitempty"`
	CatchUpFetchAnswerMs      float64        `json:"catchup_fetch_answer_ms,omitempty"`
	CatchUpFetchMB            float64        `json:"catchup_fetch_mb,omitempty"`
	GroupCatchUpFetchCycleMs  float64        `json:"group_catchup_fetch_cycle_ms,omitempty"`
	GroupCatchUpFetchAnswerMs float64        `json:"group_catchup_fetch_answer_ms,omitempty"`
	LatencySamples            uint64         `json:"latency_samples"`
	E2ESamples                uint64         `json:"e2e_samples"`
	Bucket                    *BucketFigures `json:"bucket,omitempty"`
	Inside                    *InsideFigures `json:"inside_agent,omitempty"`
	Agent                     *AgentFigures  `json:"agent,omitempty"`
	// Visibility is a fleet's cross-agent visibility (visibility.go).
	Visibility *VisibilityFigures `json:"visibility,omitempty"`

	windowBytes   int64
	windowSeconds float64
}

// BucketFigures are the agent's own object-store counters (a fleet's
// summed over its agents).
type BucketFigures struct {
	SegmentPutsPerSec float64 `json:"segment_puts_per_s"` // op=put: segment objects (and snapshots)
	MetaPutsPerSec    float64 `json:"meta_puts_per_s"`    // op=put_if_absent: metadata-log commits, lost races included
	// Conditional PUTs that found the log slot taken (412: another agent
	// appended first, or a retry found its own earlier attempt); a fleet's
	// agents race for every slot.
	MetaPutConflictsPerSec float64 `json:"meta_put_conflicts_per_s"`
	PutsPerSec             float64 `json:"puts_per_s"`      // both
	PutsPerGiB             float64 `json:"puts_per_gib"`    // both, per GiB produced
	GetsPerSec             float64 `json:"gets_per_s"`      // while producing, including metadata-log polls
	TailDataGets           int64   `json:"tail_data_gets"`  // segment reads (and entries read) while serving tail consumers
	BurstDataGets          int64   `json:"burst_data_gets"` // the same during the saturating phase, where consumers may lag
	// Segment reads (barge_segment_reads_total: whole or ranged GETs of
	// segment data for fetches that missed the cache; metadata-log reads
	// are not counted) over the same window as TailDataGets, and per GiB
	// acknowledged in it. In a fleet TailDataGets also counts the log
	// entries each agent reads of the others' commits; these do not.
	TailSegmentReads  int64   `json:"tail_segment_reads"`
	TailGetsPerGiB    float64 `json:"tail_gets_per_gib"`
	CatchUpGetsPerSec float64 `json:"catchup_gets_per_s"`
	CatchUpGetsPerGiB float64 `json:"catchup_gets_per_gib"`
	// CatchUpReadAmp is the bytes GET from the bucket per byte of record
	// values the catch-up read (1 plus framing is ideal).
	CatchUpReadAmp float64 `json:"catchup_read_amplification"`
	// GroupCatchUpReadAmp is the same for the group catch-up: above 1
	// when consumers that share segments miss one another in the cache.
	GroupCatchUpReadAmp float64 `json:"group_catchup_read_amplification,omitempty"`
	// CatchUpCores is the cores the catch-up kept busy, by process: the
	// agent, MinIO and the bench's consumer, all on one machine.
	CatchUpCores struct {
		Agent, MinIO, Client float64
	} `json:"catchup_cores"`
	// CatchUpFetchesPerSec is the catch-up's Fetch requests per second;
	// CatchUpFetchP50ms and P99ms, how long the agent took to have each
	// answer ready.
	// CatchUpCoreSecondsPerGB is the CatchUpCores' sum per GB consumed;
	// CatchUpCeilingMBps, the catch-up that cost allows with every core of
	// the machine busy: the most the catch-up could reach here while the
	// agent, MinIO and the consumer share the cores.
	CatchUpCoreSecondsPerGB float64 `json:"catchup_core_seconds_per_gb,omitempty"`
	CatchUpCeilingMBps      float64 `json:"catchup_ceiling_mb_per_s,omitempty"`
	CatchUpFetchesPerSec    float64 `json:"catchup_fetches_per_s"`
	CatchUpFetchP50ms       float64 `json:"catchup_fetch_p50_ms"`
	CatchUpFetchP99ms       float64 `json:"catchup_fetch_p99_ms"`
	MeanFlushBytes          float64 `json:"mean_flush_bytes"`
	FlushesPerSec           float64 `json:"flushes_per_s"`
}

// InsideFigures are the agent's own latency histograms over the latency
// window (Prometheus bucket estimates): where a produce's time goes.
type InsideFigures struct {
	ProduceP50ms    float64 `json:"produce_request_p50_ms"` // request read → answer ready
	ProduceP99ms    float64 `json:"produce_request_p99_ms"`
	SealCommitP50ms float64 `json:"seal_to_commit_p50_ms"` // segment sealed → commit applied
	SealCommitP99ms float64 `json:"seal_to_commit_p99_ms"`
	PutP99ms        float64 `json:"segment_put_p99_ms"`
	CommitPutP99ms  float64 `json:"commit_put_p99_ms"`
	// Stages split an answered produce request's time
	// (barge_produce_stage_seconds): queue (read → appended), seal
	// (waiting in the open segment), put (seal → in the bucket), commit
	// (→ the commit applied); each [p50, p99] in ms.
	Stages map[string][2]float64 `json:"produce_stages_ms,omitempty"`
	// Seals are the shares of the segments sealed, by reason
	// (barge_segment_seals_total: time, size, waiting, quiet).
	Seals map[string]float64 `json:"seal_shares,omitempty"`
}

// produceStages are barge_produce_stage_seconds' stages in request order.
var produceStages = []string{"queue", "seal", "put", "commit"}

// AgentFigures are the agent process's own costs while producing (a
// fleet's: the largest peak RSS of one agent, CPU summed over all).
type AgentFigures struct {
	Agents           int     `json:"agents"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	CPUSecondsPerGiB float64 `json:"cpu_seconds_per_gib"`
	// Who else used the machine in the same window, per GiB produced: the
	// MinIO server, and this process (producers, consumers).
	MinIOCPUSecondsPerGiB  float64 `json:"minio_cpu_seconds_per_gib"`
	ClientCPUSecondsPerGiB float64 `json:"client_cpu_seconds_per_gib"`
	MachineCPUUse          float64 `json:"machine_cpu_use"` // agent+MinIO+clients over all cores, 0..1
}

// Limit is the bucket's raw bandwidth, measured in the same run.
type Limit struct {
	Put RawResult `json:"raw_put"`
	Get RawResult `json:"raw_get"`
}

// Ratios put Barge beside the limit and the peer.
type Ratios struct {
	ProduceOfRawPut  float64 `json:"produce_fraction_of_raw_put"`
	CatchUpOfRawGet  float64 `json:"catchup_fraction_of_raw_get"`
	ProduceVsPeer    float64 `json:"produce_mb_per_s_vs_kfake"`
	ProduceP99VsPeer float64 `json:"produce_p99_vs_kfake"`
	E2EP99VsPeer     float64 `json:"e2e_p99_vs_kfake"`
	TailVsPeer       float64 `json:"tail_consume_vs_kfake"`
	CatchUpVsPeer    float64 `json:"catchup_vs_kfake"`
	// The group catch-up's, for scenarios with one.
	GroupCatchUpOfRawGet float64 `json:"group_catchup_fraction_of_raw_get,omitempty"`
	GroupCatchUpVsPeer   float64 `json:"group_catchup_vs_kfake,omitempty"`
	// The fleet beside the one agent (fleet ÷ one), for scenarios with one.
	FleetProduceVsOne    float64 `json:"fleet_produce_mb_per_s_vs_one,omitempty"`
	FleetProduceP99VsOne float64 `json:"fleet_produce_p99_vs_one,omitempty"`
	FleetE2EP99VsOne     float64 `json:"fleet_e2e_p99_vs_one,omitempty"`
}

// Target is one acceptance target, reported, never asserted.
type Target struct {
	Name  string  `json:"name"`
	Rule  string  `json:"rule"`
	Got   float64 `json:"got"`
	Limit float64 `json:"limit"`
	Met   bool    `json:"met"`
}

func (f *Figures) fromThroughput(p PhaseStats) {
	f.windowBytes, f.windowSeconds = p.Bytes, p.Seconds
	f.ProduceMBps = float64(p.Bytes) / 1e6 / p.Seconds
	f.ProduceRecPerSec = float64(p.Records) / p.Seconds
	f.TailConsumeMBps = float64(p.ConsumedBytes) / 1e6 / p.Seconds
}

func (f *Figures) fromLatency(p PhaseStats, loadMBps float64) {
	f.LatencyMBps = loadMBps
	f.ProduceP50ms = ms(p.ProduceLat.Quantile(0.5))
	f.ProduceP99ms = ms(p.ProduceLat.Quantile(0.99))
	f.ProduceP999ms = ms(p.ProduceLat.Quantile(0.999))
	f.E2EP50ms = ms(p.E2ELat.Quantile(0.5))
	f.E2EP99ms = ms(p.E2ELat.Quantile(0.99))
	f.LatencySamples, f.E2ESamples = p.ProduceLat.Count(), p.E2ELat.Count()
}

func (f *Figures) fromCatchUp(c CatchUp) {
	f.CatchUpMBps = float64(c.Bytes) / 1e6 / c.Seconds
	f.CatchUpMB = float64(c.Bytes) / 1e6
	f.CatchUpComplete = c.Complete
	cycle, answer := c.fetchCycle(1)
	f.CatchUpFetchCycleMs, f.CatchUpFetchAnswerMs = ms(cycle), ms(answer)
	if c.Fetches > 0 {
		f.CatchUpFetchMB = float64(c.FetchBytes) / 1e6 / float64(c.Fetches)
	}
}

func (f *Figures) fromGroupCatchUp(c CatchUp, clients int) {
	f.GroupCatchUpMBps = float64(c.Bytes) / 1e6 / c.Seconds
	f.GroupCatchUpComplete = c.Complete
	cycle, answer := c.fetchCycle(clients)
	f.GroupCatchUpFetchCycleMs, f.GroupCatchUpFetchAnswerMs = ms(cycle), ms(answer)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// evaluate fills the ratios and the targets.
func (r *Result) evaluate(sc Scenario) {
	b, p := &r.Barge, &r.Peer
	r.Ratios = Ratios{
		ProduceOfRawPut:      ratio(b.ProduceMBps, r.Limit.Put.MBps),
		CatchUpOfRawGet:      ratio(b.CatchUpMBps, r.Limit.Get.MBps),
		ProduceVsPeer:        ratio(b.ProduceMBps, p.ProduceMBps),
		ProduceP99VsPeer:     ratio(b.ProduceP99ms, p.ProduceP99ms),
		E2EP99VsPeer:         ratio(b.E2EP99ms, p.E2EP99ms),
		TailVsPeer:           ratio(b.TailConsumeMBps, p.TailConsumeMBps),
		CatchUpVsPeer:        ratio(b.CatchUpMBps, p.CatchUpMBps),
		GroupCatchUpOfRawGet: ratio(b.GroupCatchUpMBps, r.Limit.Get.MBps),
		GroupCatchUpVsPeer:   ratio(b.GroupCatchUpMBps, p.GroupCatchUpMBps),
	}
	r.Targets = nil
	if sc.saturating() && sc.Load.Acks == "all" {
		r.Targets = append(r.Targets, Target{Name: "throughput", Rule: "produce MB/s ≥ 0.85 × raw PUT MB/s",
			Got: b.ProduceMBps, Limit: 0.85 * r.Limit.Put.MBps, Met: b.ProduceMBps >= 0.85*r.Limit.Put.MBps})
	}
	lim := ms(sc.FlushInterval) + 2*r.Limit.Put.P99ms
	r.Targets = append(r.Targets, Target{Name: "latency", Rule: "produce p99 ≤ flush interval + 2 × raw PUT p99 (ms)",
		Got: b.ProduceP99ms, Limit: lim, Met: b.ProduceP99ms <= lim})
	r.Targets = append(r.Targets, issue16Targets(sc, r)...)
	// At a saturating load segments seal by size (8 MiB), not by time, so
	// the PUT-rate target applies to the fixed, lighter loads.
	if b.Bucket != nil && !sc.saturating() {
		lim := 1000/ms(sc.FlushInterval) + 1
		r.Targets = append(r.Targets,
			Target{Name: "put rate", Rule: "segment PUTs/s ≤ 1000/flush-ms + 1",
				Got: b.Bucket.SegmentPutsPerSec, Limit: lim, Met: b.Bucket.SegmentPutsPerSec <= lim})
	}
	if b.Bucket != nil {
		r.Targets = append(r.Targets,
			Target{Name: "tail gets", Rule: "data GETs while serving tail reads = 0",
				Got: float64(b.Bucket.TailDataGets), Limit: 0, Met: b.Bucket.TailDataGets == 0})
	}
	if fl := r.Fleet; fl != nil {
		r.Ratios.FleetProduceVsOne = ratio(fl.ProduceMBps, b.ProduceMBps)
		r.Ratios.FleetProduceP99VsOne = ratio(fl.ProduceP99ms, b.ProduceP99ms)
		r.Ratios.FleetE2EP99VsOne = ratio(fl.E2EP99ms, b.E2EP99ms)
		r.Targets = append(r.Targets, Target{Name: "fleet latency", Rule: "fleet produce p99 ≤ flush interval + 2 × raw PUT p99 (ms)",
			Got: fl.ProduceP99ms, Limit: lim, Met: fl.ProduceP99ms <= lim})
		if fl.Bucket != nil {
			// Segment reads, not TailDataGets: each agent of a fleet
			// GETs the log entries of the others' commits.
			r.Targets = append(r.Targets, Target{Name: "fleet tail gets", Rule: "fleet segment reads per GiB while serving tail reads = 0",
				Got: fl.Bucket.TailGetsPerGiB, Limit: 0, Met: fl.Bucket.TailSegmentReads == 0})
		}
	}
}

// issue16Targets are issue 16's acceptance targets, for the plain
// saturating scenarios of 64 partitions (acks=all, no transactions, one
// agent) of 1 KiB and 100 B records: latency at the latency phase's load
// near what one flush, one PUT and one commit cost; catch-up near the
// bucket's GET bandwidth; CPU per GiB produced; peak RSS near the cache.
func issue16Targets(sc Scenario, r *Result) []Target {
	cpu := map[int]float64{1024: 3.5, 100: 8}[sc.Load.RecordSize]
	if !sc.saturating() || sc.Load.Acks != "all" || sc.Load.TxnRecords > 0 || sc.Load.Partitions != 64 || sc.Fleet > 0 || cpu == 0 {
		return nil
	}
	b := &r.Barge
	flush := ms(sc.FlushInterval)
	p99 := flush + r.Limit.Put.P99ms + 50
	p50 := flush/2 + r.Limit.Put.P50ms + 50
	cu := 0.6 * r.Limit.Get.MBps
	t := []Target{
		{Name: "p99 at half", Rule: "produce p99 ≤ flush interval + raw PUT p99 + 50 (ms)", Got: b.ProduceP99ms, Limit: p99, Met: b.ProduceP99ms <= p99},
		{Name: "p50 at half", Rule: "produce p50 ≤ flush interval/2 + raw PUT p50 + 50 (ms)", Got: b.ProduceP50ms, Limit: p50, Met: b.ProduceP50ms <= p50},
		{Name: "catch-up", Rule: "catch-up MB/s ≥ 0.6 × raw GET MB/s", Got: b.CatchUpMBps, Limit: cu, Met: b.CatchUpComplete && b.CatchUpMBps >= cu},
	}
	if a := b.Agent; a != nil {
		rss := float64(agentCacheBytes>>20) + 256
		t = append(t,
			Target{Name: "cpu", Rule: fmt.Sprintf("agent CPU s/GiB produced ≤ %g", cpu), Got: a.CPUSecondsPerGiB, Limit: cpu, Met: a.CPUSecondsPerGiB <= cpu},
			Target{Name: "rss", Rule: "agent peak RSS ≤ cache + 256 (MiB)", Got: a.PeakRSSMiB, Limit: rss, Met: a.PeakRSSMiB <= rss})
	}
	return t
}

func (t Target) String() string {
	verdict := "met"
	if !t.Met {
		verdict = "MISSED"
	}
	return fmt.Sprintf("%-15s %-58s got %9.2f limit %9.2f  %s", t.Name, t.Rule, t.Got, t.Limit, verdict)
}
