package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fleetResult is a fleet scenario's result as the bench fills it.
func fleetResult() (*Result, Scenario) {
	sc := Scenario{Name: "fleet-3", Load: Load{RecordSize: 1024, Partitions: 64, Producers: 4, Consumers: 2, Acks: "all"},
		FlushInterval: 250 * time.Millisecond, Fleet: 3}
	one := Figures{ProduceMBps: 90, ProduceP99ms: 700, E2EP99ms: 650, CatchUpMBps: 40, CatchUpComplete: true,
		Bucket: &BucketFigures{PutsPerSec: 17}, Agent: &AgentFigures{Agents: 1, PeakRSSMiB: 1000, CPUSecondsPerGiB: 5}}
	fleet := &Figures{ProduceMBps: 60, ProduceP99ms: 900, E2EP99ms: 975,
		Bucket: &BucketFigures{PutsPerSec: 30, TailDataGets: 40, TailSegmentReads: 2, TailGetsPerGiB: 1.5},
		Agent:  &AgentFigures{Agents: 3, PeakRSSMiB: 600, CPUSecondsPerGiB: 9}}
	r := &Result{Scenario: sc.Name, Config: configOf(sc, shortTiming), Barge: one, Peer: Figures{ProduceMBps: 60, E2EP99ms: 50},
		Limit: Limit{Put: RawResult{MBps: 150, P99ms: 300}, Get: RawResult{MBps: 600}}, Fleet: fleet}
	r.evaluate(sc)
	return r, sc
}

func TestEvaluateFleet(t *testing.T) {
	r, _ := fleetResult()
	if got := r.Ratios.FleetProduceVsOne; got < 0.666 || got > 0.667 {
		t.Errorf("fleet produce vs one = %v, want 2/3", got)
	}
	if got := r.Ratios.FleetE2EP99VsOne; got != 1.5 {
		t.Errorf("fleet e2e p99 vs one = %v, want 1.5", got)
	}
	targets := map[string]Target{}
	for _, tg := range r.Targets {
		targets[tg.Name] = tg
	}
	// 900 ms ≤ 250 + 2 × 300.
	if tg, ok := targets["fleet latency"]; !ok || tg.Met || tg.Limit != 850 {
		t.Errorf("fleet latency target %+v (present %v), want missed against 850", tg, ok)
	}
	// Segment reads count, not the log entries in TailDataGets.
	if tg, ok := targets["fleet tail gets"]; !ok || tg.Met || tg.Got != 1.5 {
		t.Errorf("fleet tail gets target %+v (present %v), want missed at 1.5/GiB", tg, ok)
	}
	if tg := targets["tail gets"]; !tg.Met {
		t.Errorf("the one agent's tail gets target %+v should hold", tg)
	}

	one := &Result{Scenario: "1KiB-64p", Barge: r.Barge, Limit: r.Limit}
	one.evaluate(Scenario{Name: "1KiB-64p", Load: Load{RecordSize: 1024, Partitions: 64, Acks: "all"}, FlushInterval: 250 * time.Millisecond})
	for _, tg := range one.Targets {
		if strings.HasPrefix(tg.Name, "fleet") {
			t.Errorf("a scenario without a fleet has target %q", tg.Name)
		}
	}
	if one.Ratios.FleetProduceVsOne != 0 {
		t.Errorf("a scenario without a fleet has fleet ratios %+v", one.Ratios)
	}
}

func TestReportFleet(t *testing.T) {
	r, _ := fleetResult()
	var buf bytes.Buffer
	printScenario(&buf, r)
	out := buf.String()
	for _, want := range []string{"3 agents behind HAProxy", "one agent", "fleet/one", "tail GETs/GiB", "fleet bucket, all agents"} {
		if !strings.Contains(out, want) {
			t.Errorf("scenario block lacks %q:\n%s", want, out)
		}
	}
	// The one agent's tail GETs are a measured 0, printed as 0, not "-".
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "tail GETs/GiB") {
			if f := strings.Fields(line); len(f) != 5 || f[2] != "0.0" || f[3] != "1.5" {
				t.Errorf("tail GETs/GiB row %q, want 0.0 and 1.5", line)
			}
		}
	}
	buf.Reset()
	printSummary(&buf, &Report{CPUs: 2, GoVersion: "go", Results: []*Result{r}})
	out = buf.String()
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "fleet-3") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 3 || !strings.Contains(rows[1], "fleet-3 ×3") {
		t.Fatalf("summary rows for fleet-3: %q, want the one agent's, the fleet's and the note:\n%s", rows, out)
	}
	if !strings.Contains(rows[1], "missed: latency, tail gets") || strings.Contains(rows[0], "tail gets") {
		t.Errorf("fleet targets not on the fleet's row:\n%s", out)
	}
	if f := strings.Fields(rows[1]); f[11] != "-" || f[12] != "-" {
		t.Errorf("fleet row shows a catch-up (%q, %q), which it does not measure: %q", f[11], f[12], rows[1])
	}
}

// Issue 16's targets apply to the plain saturating 1 KiB and 100 B
// scenarios, with limits from the same run's raw bucket.
func TestIssue16Targets(t *testing.T) {
	sc := Scenario{Name: "1KiB-64p", Load: Load{RecordSize: 1024, Partitions: 64, Acks: "all"}, FlushInterval: 250 * time.Millisecond}
	r := &Result{Scenario: sc.Name,
		Barge: Figures{ProduceP50ms: 200, ProduceP99ms: 450, CatchUpMBps: 500, CatchUpComplete: true,
			Agent: &AgentFigures{PeakRSSMiB: 700, CPUSecondsPerGiB: 4}},
		Limit: Limit{Put: RawResult{P50ms: 60, P99ms: 120}, Get: RawResult{MBps: 1000}}}
	r.evaluate(sc)
	want := map[string]struct {
		limit float64
		met   bool
	}{
		"p99 at half": {420, false}, // 250 + 120 + 50
		"p50 at half": {235, true},  // 125 + 60 + 50
		"catch-up":    {600, false},
		"cpu":         {3.5, false},
		"rss":         {768, true},
	}
	got := map[string]Target{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg
	}
	for name, w := range want {
		if tg, ok := got[name]; !ok || tg.Limit != w.limit || tg.Met != w.met {
			t.Errorf("target %q: %+v (present %v), want limit %v met %v", name, tg, ok, w.limit, w.met)
		}
	}
	sc.Load.RecordSize = 100
	r.evaluate(sc)
	for _, tg := range r.Targets {
		if tg.Name == "cpu" && (tg.Limit != 8 || !tg.Met) {
			t.Errorf("100 B cpu target %+v, want met against 8", tg)
		}
	}
	for _, other := range []Scenario{
		{Name: "txn", Load: Load{RecordSize: 1024, Partitions: 64, Acks: "all", TxnRecords: 100}},
		{Name: "fleet", Load: sc.Load, Fleet: 3},
		{Name: "rate", Load: sc.Load, RateMBps: 20},
	} {
		r.evaluate(other)
		for _, tg := range r.Targets {
			if tg.Name == "catch-up" {
				t.Errorf("scenario %s has issue 16's targets", other.Name)
			}
		}
	}
}

func TestCatchUpCost(t *testing.T) {
	// Four fetches of 50 MB in 0.25 s by one consumer: 62.5 ms each, 20 ms
	// of them the answer's.
	var f Figures
	f.fromCatchUp(CatchUp{Seconds: 0.25, Bytes: 200e6, Records: 1, Fetches: 4, FetchBytes: 208e6, AnswerSeconds: 0.08})
	if f.CatchUpFetchCycleMs != 62.5 || f.CatchUpFetchAnswerMs != 20 || f.CatchUpFetchMB != 52 {
		t.Errorf("fetch cycle %v ms, answer %v ms, %v MB; want 62.5, 20, 52", f.CatchUpFetchCycleMs, f.CatchUpFetchAnswerMs, f.CatchUpFetchMB)
	}
	// The hook counts answers with records, not a consumer's empty
	// waits, nor other requests.
	var h fetchTimes
	h.OnBrokerE2E(kgo.BrokerMetadata{}, int16(kmsg.Fetch), kgo.BrokerE2E{BytesRead: 52e6, ReadWait: time.Millisecond, TimeToRead: 40 * time.Millisecond})
	h.OnBrokerE2E(kgo.BrokerMetadata{}, int16(kmsg.Fetch), kgo.BrokerE2E{BytesRead: 900, TimeToRead: time.Second})
	h.OnBrokerE2E(kgo.BrokerMetadata{}, int16(kmsg.Metadata), kgo.BrokerE2E{BytesRead: 1e6, TimeToRead: time.Second})
	if n, b, d := h.fetches.Load(), h.bytes.Load(), time.Duration(h.nanos.Load()); n != 1 || b != 52e6 || d != 41*time.Millisecond {
		t.Errorf("hook counted %d fetches, %d bytes, %v; want 1, 52e6, 41ms", n, b, d)
	}
	// Four consumers' 8 fetches in 0.25 s: each consumer's cycle 125 ms.
	f.fromGroupCatchUp(CatchUp{Seconds: 0.25, Bytes: 200e6, Fetches: 8, AnswerSeconds: 0.4}, 4)
	if f.GroupCatchUpFetchCycleMs != 125 || f.GroupCatchUpFetchAnswerMs != 50 {
		t.Errorf("group fetch cycle %v ms, answer %v ms; want 125, 50", f.GroupCatchUpFetchCycleMs, f.GroupCatchUpFetchAnswerMs)
	}

	bk := &BucketFigures{CatchUpCoreSecondsPerGB: 2, CatchUpCeilingMBps: 1000}
	bk.CatchUpCores.Agent, bk.CatchUpCores.MinIO, bk.CatchUpCores.Client = 0.4, 0.6, 0.6
	r := &Result{Barge: Figures{CatchUpMBps: 800, CatchUpFetchCycleMs: 60, CatchUpFetchMB: 50, CatchUpFetchAnswerMs: 20, Bucket: bk},
		Limit: Limit{Get: RawResult{MBps: 2000, StoreCores: 1.6, ClientCores: 0.4}}}
	var buf bytes.Buffer
	printCatchUpCost(&buf, r)
	for _, want := range []string{
		"catch-up cost 2.00 core-s/GB (agent 0.50, MinIO 0.75, consumer 0.75): with every core busy at most 1000 MB/s, 0.50 of raw GET, whose GETs cost 1.00 core-s/GB (MinIO 0.80, reader 0.20)",
		"barge 60 ms per 50.0 MB answer, 20 of them waiting for and reading it; kfake -",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("catch-up cost lacks %q:\n%s", want, buf.String())
		}
	}
}
