package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printScenario writes one scenario's figures: Barge, the limit and kfake
// side by side.
func printScenario(w io.Writer, r *Result) {
	c := r.Config
	load := "as fast as acknowledged"
	if c.RateMBps > 0 {
		load = fmt.Sprintf("%.1f MB/s fixed", c.RateMBps)
	}
	fmt.Fprintf(w, "\n== %s: %d B records, %d partitions, %d producers, %d consumers, acks=%s, %s, flush %gms, %s ==\n",
		r.Scenario, c.RecordSize, c.Partitions, c.Producers, c.Consumers, c.Acks, c.Compression, c.FlushIntervalMs, load)
	b, p, l := &r.Barge, &r.Peer, &r.Limit
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tbarge\traw bucket\tbarge/raw\tkfake\tbarge/kfake\t")
	row := func(name string, bv, lv, pv float64, f string) {
		cell := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf(f, v)
		}
		rl := "-"
		if lv > 0 {
			rl = fmt.Sprintf("%.2f", bv/lv)
		}
		rp := "-"
		if pv > 0 {
			rp = fmt.Sprintf("%.2f", bv/pv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", name, cell(bv), cell(lv), rl, cell(pv), rp)
	}
	row("produce MB/s", b.ProduceMBps, l.Put.MBps, p.ProduceMBps, "%.1f")
	row("produce records/s", b.ProduceRecPerSec, 0, p.ProduceRecPerSec, "%.0f")
	fmt.Fprintf(tw, "latencies at MB/s\t%.1f\t\t\t%.1f\t\t\n", b.LatencyMBps, p.LatencyMBps)
	row("produce p50 ms", b.ProduceP50ms, l.Put.P50ms, p.ProduceP50ms, "%.1f")
	row("produce p99 ms", b.ProduceP99ms, l.Put.P99ms, p.ProduceP99ms, "%.1f")
	row("produce p999 ms", b.ProduceP999ms, 0, p.ProduceP999ms, "%.1f")
	row("end-to-end p50 ms", b.E2EP50ms, 0, p.E2EP50ms, "%.1f")
	row("end-to-end p99 ms", b.E2EP99ms, 0, p.E2EP99ms, "%.1f")
	row("tail consume MB/s", b.TailConsumeMBps, 0, p.TailConsumeMBps, "%.1f")
	row("catch-up MB/s", b.CatchUpMBps, l.Get.MBps, p.CatchUpMBps, "%.1f")
	tw.Flush()
	fmt.Fprintf(w, "raw bucket: %s objects, %d in flight: PUT %.1f MB/s (p50 %.1f ms, p99 %.1f ms), GET %.1f MB/s (p99 %.1f ms)\n",
		size(l.Put.ObjectBytes), l.Put.Inflight, l.Put.MBps, l.Put.P50ms, l.Put.P99ms, l.Get.MBps, l.Get.P99ms)
	if bk := b.Bucket; bk != nil {
		fmt.Fprintf(w, "bucket: %.2f PUTs/s (%.2f segment + %.2f commit), %.1f PUTs/GiB, %.1f flushes/s of %s; "+
			"%.1f GETs/s while producing (metadata polls), %d data GETs for tail reads (%d while saturating); catch-up %.1f GETs/s, %.0f GETs/GiB\n",
			bk.PutsPerSec, bk.SegmentPutsPerSec, bk.MetaPutsPerSec, bk.PutsPerGiB, bk.FlushesPerSec, size(int64(bk.MeanFlushBytes)),
			bk.GetsPerSec, bk.TailDataGets, bk.BurstDataGets, bk.CatchUpGetsPerSec, bk.CatchUpGetsPerGiB)
	}
	if in := b.Inside; in != nil {
		fmt.Fprintf(w, "inside the agent: produce request p50 %.0f / p99 %.0f ms; seal→commit p50 %.0f / p99 %.0f ms; segment PUT p99 %.0f ms; commit PUT p99 %.0f ms\n",
			in.ProduceP50ms, in.ProduceP99ms, in.SealCommitP50ms, in.SealCommitP99ms, in.PutP99ms, in.CommitPutP99ms)
	}
	if a := b.Agent; a != nil {
		fmt.Fprintf(w, "agent: peak RSS %.0f MiB, %.1f CPU s/GiB produced (MinIO %.1f, clients %.1f; cores %.0f%% busy)\n",
			a.PeakRSSMiB, a.CPUSecondsPerGiB, a.MinIOCPUSecondsPerGiB, a.ClientCPUSecondsPerGiB, 100*a.MachineCPUUse)
	}
	if !b.CatchUpComplete || !p.CatchUpComplete {
		fmt.Fprintf(w, "catch-up stopped at the time limit: barge read %.0f MB, kfake %.0f MB\n", b.CatchUpMB, p.CatchUpMB)
	}
	if b.ProduceErrors+p.ProduceErrors > 0 {
		fmt.Fprintf(w, "produce errors: barge %d, kfake %d\n", b.ProduceErrors, p.ProduceErrors)
	}
	for _, t := range r.Targets {
		fmt.Fprintf(w, "target %s\n", t)
	}
}

// printSummary writes one row per scenario, the table the README shows.
func printSummary(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\n== summary (%d CPUs, %s) ==\n", rep.CPUs, rep.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tMB/s\tof raw PUT\tvs kfake\tp50 ms\tp99 ms\tp999 ms\te2e p99\tvs kfake\ttail MB/s\tcatch-up MB/s\tof raw GET\tPUT/s\tPUT/GiB\ttail GETs\tRSS MiB\tCPU s/GiB\ttargets\t")
	for _, r := range rep.Results {
		b := r.Barge
		var missed []string
		for _, t := range r.Targets {
			if !t.Met {
				missed = append(missed, t.Name)
			}
		}
		verdict := "all met"
		if len(missed) > 0 {
			verdict = "missed: " + strings.Join(missed, ", ")
		}
		var puts, perGiB, rss, cpu float64
		var tailGets int64
		if b.Bucket != nil {
			puts, perGiB, tailGets = b.Bucket.PutsPerSec, b.Bucket.PutsPerGiB, b.Bucket.TailDataGets
		}
		if b.Agent != nil {
			rss, cpu = b.Agent.PeakRSSMiB, b.Agent.CPUSecondsPerGiB
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.1f\t%.1f\t%.2f\t%.1f\t%.0f\t%d\t%.0f\t%.1f\t%s\t\n",
			r.Scenario, b.ProduceMBps, r.Ratios.ProduceOfRawPut, r.Ratios.ProduceVsPeer, b.ProduceP50ms, b.ProduceP99ms,
			b.ProduceP999ms, b.E2EP99ms, r.Ratios.E2EP99VsPeer, b.TailConsumeMBps, b.CatchUpMBps, r.Ratios.CatchUpOfRawGet,
			puts, perGiB, tailGets, rss, cpu, verdict)
	}
	tw.Flush()
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
