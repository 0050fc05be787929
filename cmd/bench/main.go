package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/bargehq/barge/internal/harness"
)

// Report is bench/results.json.
type Report struct {
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Short     bool      `json:"short"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	Results   []*Result `json:"scenarios"`
	// MetaLog is the meta-log scenario, when it ran.
	MetaLog *MetaLogResult `json:"meta_log,omitempty"`
}

func main() {
	var (
		short      = flag.Bool("short", false, "run every scenario briefly (make bench-short)")
		only       = flag.String("scenarios", "", "comma-separated scenario names to run (default: all)")
		out        = flag.String("out", "bench/results.json", "where to write the JSON report")
		agentBin   = flag.String("agent", "", "prebuilt agent binary (default: build ./cmd/agent), for before/after comparisons")
		profile    = flag.String("profile", "", "directory for the agent's CPU and allocation profiles of each throughput phase")
		duration   = flag.Duration("duration", 0, "produce phase per scenario (default 16s, 3s with -short)")
		recordSize = flag.Int("record-size", 0, "record value bytes (custom scenario)")
		partitions = flag.Int("partitions", 0, "partitions (custom scenario)")
		producers  = flag.Int("producers", 0, "producer clients (custom scenario)")
		consumers  = flag.Int("consumers", 0, "tail consumer clients (custom scenario)")
		acks       = flag.String("acks", "", "all, 1 or 0 (custom scenario)")
		comp       = flag.String("compression", "", "none, gzip, snappy, lz4 or zstd (custom scenario)")
		flush      = flag.Duration("flush-interval", 0, "agent --flush-interval (custom scenario)")
		linger     = flag.Duration("linger", 0, "producer linger (custom scenario; default franz-go's 10ms)")
		rate       = flag.Float64("rate", -1, "MB/s to produce, 0 for as fast as acknowledged (custom scenario)")
		fleet      = flag.Int("fleet", -1, "also run the load against this many agents behind HAProxy, 0 for none (custom scenario)")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: bench [flags]\n\nWithout load flags it runs the standard scenarios (%s).\n"+
			"Any load flag (-record-size, -partitions, -producers, -consumers, -acks, -compression,\n"+
			"-flush-interval, -linger, -rate, -fleet) runs one custom scenario instead, starting from 1KiB-64p.\n\n",
			strings.Join(scenarioNames(), ", "))
		flag.PrintDefaults()
	}
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	timing := longTiming
	if *short {
		timing = shortTiming
	}
	if *duration > 0 {
		timing = timingFor(*duration)
	}
	scenarios := standardScenarios()
	metaLog := true // the meta-log scenario, which needs no agent
	custom := false
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "record-size", "partitions", "producers", "consumers", "acks", "compression", "flush-interval", "rate", "linger", "fleet":
			custom = true
		}
	})
	if custom {
		sc := scenarios[0]
		sc.Name = "custom"
		if *recordSize > 0 {
			sc.Load.RecordSize = *recordSize
		}
		if *partitions > 0 {
			sc.Load.Partitions = *partitions
		}
		if *producers > 0 {
			sc.Load.Producers = *producers
		}
		if *consumers > 0 {
			sc.Load.Consumers = *consumers
		}
		if *acks != "" {
			sc.Load.Acks = *acks
		}
		if *comp != "" {
			sc.Load.Compression = *comp
		}
		if *flush > 0 {
			sc.FlushInterval = *flush
		}
		if *linger > 0 {
			sc.Load.Linger = *linger
		}
		if *rate >= 0 {
			sc.RateMBps = *rate
		}
		if *fleet >= 0 {
			sc.Fleet = *fleet
		}
		scenarios, metaLog = []Scenario{sc}, false
	} else if *only != "" {
		var pick []Scenario
		metaLog = false
		for _, name := range strings.Split(*only, ",") {
			found := false
			if strings.TrimSpace(name) == metaLogName {
				metaLog, found = true, true
			}
			for _, sc := range scenarios {
				if sc.Name == strings.TrimSpace(name) {
					pick, found = append(pick, sc), true
				}
			}
			if !found {
				fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (have %s)\n", name, strings.Join(scenarioNames(), ", "))
				os.Exit(2)
			}
		}
		scenarios = pick
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, scenarios, metaLog, timing, *short, *out, *profile, *agentBin, logger)
	stop()
	harness.Shutdown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, scenarios []Scenario, metaLog bool, timing Timing, short bool, out, profileDir, agentBin string, logger *slog.Logger) error {
	start := time.Now()
	b := &bench{timing: timing, log: logger, profileDir: profileDir, agentBin: agentBin}
	if len(scenarios) > 0 {
		logger.Info("building the agent and starting MinIO")
		if agentBin == "" {
			if _, err := harness.BuildAgent(); err != nil {
				return err
			}
		}
		m, err := harness.LaunchMinIO()
		if err != nil {
			return err
		}
		b.minio = m
	}
	rep := &Report{Started: start.UTC(), Short: short, GoVersion: runtime.Version(), CPUs: runtime.NumCPU()}
	for _, sc := range scenarios {
		res, err := b.run(ctx, sc)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
		rep.Results = append(rep.Results, res)
		printScenario(os.Stdout, res)
	}
	printTxnRatio(os.Stdout, rep.Results)
	if metaLog {
		res, err := b.runMetaLog(ctx, timing.Produce)
		if err != nil {
			return err
		}
		rep.MetaLog = res
	}
	rep.Seconds = time.Since(start).Seconds()
	if len(rep.Results) > 0 {
		printSummary(os.Stdout, rep)
	}
	if rep.MetaLog != nil {
		printMetaLog(os.Stdout, rep.MetaLog)
	}
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s (%.0fs in all)\n", out, rep.Seconds)
	}
	return nil
}

var (
	longTiming  = timingFor(16 * time.Second)
	shortTiming = timingFor(3 * time.Second)
)

func timingFor(produce time.Duration) Timing {
	return Timing{
		Produce: produce,
		Latency: produce * 2 / 3,
		Warmup:  min(produce/5, 2*time.Second),
		CatchUp: max(produce, 3*time.Second),
		Raw:     min(max(produce/4, 1500*time.Millisecond), 5*time.Second),
	}
}

func standardScenarios() []Scenario {
	base := Load{RecordSize: 1024, Partitions: 64, Producers: 4, Consumers: 2, Acks: "all", Compression: "none"}
	small := base
	small.RecordSize = 100
	wide := base
	wide.Partitions = 10000
	txn := base
	txn.TxnRecords = 100
	return []Scenario{
		{Name: "1KiB-64p", Load: base, FlushInterval: 250 * time.Millisecond, GroupCatchUp: 4},
		{Name: "100B-64p", Load: small, FlushInterval: 250 * time.Millisecond, GroupCatchUp: 4},
		{Name: "10k-partitions", Load: wide, FlushInterval: 250 * time.Millisecond, RateMBps: 2},
		{Name: "flush-5ms", Load: base, FlushInterval: 5 * time.Millisecond, RateMBps: 8},
		{Name: "flush-50ms", Load: base, FlushInterval: 50 * time.Millisecond, RateMBps: 8},
		{Name: "flush-250ms", Load: base, FlushInterval: 250 * time.Millisecond, RateMBps: 8},
		// 1KiB-64p again, and the same load against three agents behind
		// HAProxy beside it.
		{Name: "fleet-3", Load: base, FlushInterval: 250 * time.Millisecond, Fleet: 3},
		// 1KiB-64p's idempotent producers in transactions of 100 records,
		// with read_committed tail consumers.
		{Name: "txn-1KiB-64p", Load: txn, FlushInterval: 250 * time.Millisecond},
	}
}

func scenarioNames() []string {
	var names []string
	for _, sc := range standardScenarios() {
		names = append(names, sc.Name)
	}
	return append(names, metaLogName)
}
