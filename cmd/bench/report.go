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
	if c.TxnRecords > 0 {
		load += fmt.Sprintf(", transactions of %d records, read_committed consumers", c.TxnRecords)
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
	if r.Config.GroupCatchUp > 0 {
		row(fmt.Sprintf("catch-up MB/s, %d consumers", r.Config.GroupCatchUp), b.GroupCatchUpMBps, l.Get.MBps, p.GroupCatchUpMBps, "%.1f")
	}
	tw.Flush()
	fmt.Fprintf(w, "raw bucket: %s objects, %d in flight: PUT %.1f MB/s (p50 %.1f ms, p99 %.1f ms), GET %.1f MB/s (p99 %.1f ms)\n",
		size(l.Put.ObjectBytes), l.Put.Inflight, l.Put.MBps, l.Put.P50ms, l.Put.P99ms, l.Get.MBps, l.Get.P99ms)
	if bk := b.Bucket; bk != nil {
		printBucket(w, "bucket", bk)
		c := bk.CatchUpCores
		fmt.Fprintf(w, "; catch-up %.1f GETs/s, %.0f GETs/GiB, %.2f bytes read per byte consumed, %.1f fetches/s answered in p50 %.0f / p99 %.0f ms, cores busy: agent %.2f, MinIO %.2f, consumer %.2f\n",
			bk.CatchUpGetsPerSec, bk.CatchUpGetsPerGiB, bk.CatchUpReadAmp, bk.CatchUpFetchesPerSec, bk.CatchUpFetchP50ms, bk.CatchUpFetchP99ms, c.Agent, c.MinIO, c.Client)
		if r.Config.GroupCatchUp > 0 {
			fmt.Fprintf(w, "catch-up by %d consumers at once: %.2f bytes read per byte consumed\n", r.Config.GroupCatchUp, bk.GroupCatchUpReadAmp)
		}
		printCatchUpCost(w, r)
	}
	if in := b.Inside; in != nil {
		printInside(w, "inside the agent", in, b.ProduceP50ms)
	}
	if a := b.Agent; a != nil {
		fmt.Fprintf(w, "agent: peak RSS %.0f MiB, %.1f CPU s/GiB produced (MinIO %.1f, clients %.1f; cores %.0f%% busy)\n",
			a.PeakRSSMiB, a.CPUSecondsPerGiB, a.MinIOCPUSecondsPerGiB, a.ClientCPUSecondsPerGiB, 100*a.MachineCPUUse)
	}
	if r.Fleet != nil {
		printFleet(w, r)
	}
	if !b.CatchUpComplete || !p.CatchUpComplete {
		fmt.Fprintf(w, "catch-up stopped at the time limit: barge read %.0f MB, kfake %.0f MB\n", b.CatchUpMB, p.CatchUpMB)
	}
	if r.Config.GroupCatchUp > 0 && (!b.GroupCatchUpComplete || !p.GroupCatchUpComplete) {
		fmt.Fprintf(w, "catch-up by %d consumers stopped at the time limit (barge complete: %v, kfake: %v)\n", r.Config.GroupCatchUp, b.GroupCatchUpComplete, p.GroupCatchUpComplete)
	}
	if b.ProduceErrors+p.ProduceErrors > 0 {
		fmt.Fprintf(w, "produce errors: barge %d, kfake %d\n", b.ProduceErrors, p.ProduceErrors)
	}
	for _, t := range r.Targets {
		fmt.Fprintf(w, "target %s\n", t)
	}
}

// printBucket writes a bucket line without its end.
func printBucket(w io.Writer, what string, bk *BucketFigures) {
	fmt.Fprintf(w, "%s: %.2f PUTs/s (%.2f segment + %.2f commit, %.2f of them 412s), %.1f PUTs/GiB, %.1f flushes/s of %s; "+
		"%.1f GETs/s while producing (metadata polls), %d data GETs for tail reads (%d while saturating), %d of them segment reads (%.1f/GiB)",
		what, bk.PutsPerSec, bk.SegmentPutsPerSec, bk.MetaPutsPerSec, bk.MetaPutConflictsPerSec, bk.PutsPerGiB, bk.FlushesPerSec, size(int64(bk.MeanFlushBytes)),
		bk.GetsPerSec, bk.TailDataGets, bk.BurstDataGets, bk.TailSegmentReads, bk.TailGetsPerGiB)
}

// printFleet writes the fleet beside the one agent: the same load, the
// latencies at the same rate.
func printFleet(w io.Writer, r *Result) {
	o, f := &r.Barge, r.Fleet
	fmt.Fprintf(w, "-- the same load against %d agents behind HAProxy (clients given only its address; agents advertise their own) --\n", r.Config.FleetAgents)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tone agent\tfleet\tfleet/one\t")
	row := func(name string, ov, fv float64, format string, zero bool) {
		cell := func(v float64) string {
			if v == 0 && !zero {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		rt := "-"
		if ov > 0 {
			rt = fmt.Sprintf("%.2f", fv/ov)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, cell(ov), cell(fv), rt)
	}
	row("produce MB/s", o.ProduceMBps, f.ProduceMBps, "%.1f", false)
	row("produce records/s", o.ProduceRecPerSec, f.ProduceRecPerSec, "%.0f", false)
	row("latencies at MB/s", o.LatencyMBps, f.LatencyMBps, "%.1f", false)
	row("produce p50 ms", o.ProduceP50ms, f.ProduceP50ms, "%.1f", false)
	row("produce p99 ms", o.ProduceP99ms, f.ProduceP99ms, "%.1f", false)
	row("produce p999 ms", o.ProduceP999ms, f.ProduceP999ms, "%.1f", false)
	row("end-to-end p50 ms", o.E2EP50ms, f.E2EP50ms, "%.1f", false)
	row("end-to-end p99 ms", o.E2EP99ms, f.E2EP99ms, "%.1f", false)
	row("tail consume MB/s", o.TailConsumeMBps, f.TailConsumeMBps, "%.1f", false)
	if o.Bucket != nil && f.Bucket != nil {
		row("tail GETs/GiB", o.Bucket.TailGetsPerGiB, f.Bucket.TailGetsPerGiB, "%.1f", true)
		row("PUTs/s", o.Bucket.PutsPerSec, f.Bucket.PutsPerSec, "%.1f", false)
		row("PUTs/GiB", o.Bucket.PutsPerGiB, f.Bucket.PutsPerGiB, "%.0f", false)
	}
	if o.Agent != nil && f.Agent != nil {
		row("agent CPU s/GiB", o.Agent.CPUSecondsPerGiB, f.Agent.CPUSecondsPerGiB, "%.1f", false)
		row("peak RSS MiB per agent", o.Agent.PeakRSSMiB, f.Agent.PeakRSSMiB, "%.0f", false)
	}
	tw.Flush()
	if bk := f.Bucket; bk != nil {
		printBucket(w, "fleet bucket, all agents", bk)
		fmt.Fprintln(w)
	}
	if in := f.Inside; in != nil {
		printInside(w, "inside the fleet's agents", in, f.ProduceP50ms)
	}
	if a := f.Agent; a != nil {
		fmt.Fprintf(w, "fleet: %.1f CPU s/GiB produced over %d agents (MinIO %.1f, clients %.1f; cores %.0f%% busy)\n",
			a.CPUSecondsPerGiB, a.Agents, a.MinIOCPUSecondsPerGiB, a.ClientCPUSecondsPerGiB, 100*a.MachineCPUUse)
	}
	if v := f.Visibility; v != nil {
		fmt.Fprintf(w, "cross-agent visibility (acknowledged by one agent → fetched through another, %d records): p50 %.1f / p99 %.1f / max %.1f ms (issue 13: p99 ≤ 50 ms + one bucket GET)\n",
			v.Samples, v.P50ms, v.P99ms, v.MaxMs)
	}
	if f.ProduceErrors > 0 {
		fmt.Fprintf(w, "fleet produce errors: %d\n", f.ProduceErrors)
	}
}

// printSummary writes one row per scenario, the table the README shows.
func printSummary(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\n== summary (%d CPUs, %s) ==\n", rep.CPUs, rep.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tMB/s\tof raw PUT\tvs kfake\tp50 ms\tp99 ms\tp999 ms\te2e p99\tvs kfake\ttail MB/s\tcatch-up MB/s\tof raw GET\tPUT/s\tPUT/GiB\ttail GET/GiB\tRSS MiB\tCPU s/GiB\ttargets\t")
	for _, r := range rep.Results {
		var missed, fleetMissed []string
		for _, t := range r.Targets {
			switch {
			case t.Met:
			case strings.HasPrefix(t.Name, "fleet "):
				fleetMissed = append(fleetMissed, strings.TrimPrefix(t.Name, "fleet "))
			default:
				missed = append(missed, t.Name)
			}
		}
		summaryRow(tw, r.Scenario, &r.Barge, r.Limit, &r.Peer, missed)
		if r.Fleet != nil {
			summaryRow(tw, fmt.Sprintf("%s ×%d", r.Scenario, r.Config.FleetAgents), r.Fleet, r.Limit, &r.Peer, fleetMissed)
		}
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Fleet == nil {
			continue
		}
		fmt.Fprintf(w, "%s ×%d: the same load against %d agents behind HAProxy (RSS: the largest agent's; CPU: all agents')\n",
			r.Scenario, r.Config.FleetAgents, r.Config.FleetAgents)
	}
}

// summaryRow writes one broker's row of the summary: the one agent's, or a
// fleet's, whose catch-up is not measured.
func summaryRow(w io.Writer, name string, b *Figures, l Limit, p *Figures, missed []string) {
	verdict := "all met"
	if len(missed) > 0 {
		verdict = "missed: " + strings.Join(missed, ", ")
	}
	var puts, perGiB, tailGets, rss, cpu float64
	if b.Bucket != nil {
		puts, perGiB, tailGets = b.Bucket.PutsPerSec, b.Bucket.PutsPerGiB, b.Bucket.TailGetsPerGiB
	}
	if b.Agent != nil {
		rss, cpu = b.Agent.PeakRSSMiB, b.Agent.CPUSecondsPerGiB
	}
	catchUp, ofGet := "-", "-"
	if b.CatchUpMBps > 0 {
		catchUp, ofGet = fmt.Sprintf("%.1f", b.CatchUpMBps), fmt.Sprintf("%.2f", ratio(b.CatchUpMBps, l.Get.MBps))
	}
	fmt.Fprintf(w, "%s\t%.1f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.1f\t%s\t%s\t%.1f\t%.0f\t%.1f\t%.0f\t%.1f\t%s\t\n",
		name, b.ProduceMBps, ratio(b.ProduceMBps, l.Put.MBps), ratio(b.ProduceMBps, p.ProduceMBps), b.ProduceP50ms, b.ProduceP99ms,
		b.ProduceP999ms, b.E2EP99ms, ratio(b.E2EP99ms, p.E2EP99ms), b.TailConsumeMBps, catchUp, ofGet,
		puts, perGiB, tailGets, rss, cpu, verdict)
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

// printTxnRatio writes how transactional producing compares with the
// idempotent producing of the same load, when both were run.
func printTxnRatio(w io.Writer, results []*Result) {
	var idem, txn *Result
	for _, r := range results {
		switch {
		case r.Config.TxnRecords > 0 && txn == nil:
			txn = r
		case r.Config.TxnRecords == 0 && r.Config.RateMBps == 0 && r.Config.FleetAgents == 0 && idem == nil:
			idem = r
		}
	}
	if idem == nil || txn == nil || idem.Barge.ProduceMBps == 0 {
		return
	}
	fmt.Fprintf(w, "\ntransactions: %s produces %.1f MB/s, %.2f of %s's idempotent %.1f MB/s (kfake: %.2f); end-to-end p99 %.0f ms against %.0f ms\n",
		txn.Scenario, txn.Barge.ProduceMBps, txn.Barge.ProduceMBps/idem.Barge.ProduceMBps, idem.Scenario, idem.Barge.ProduceMBps,
		ratio(txn.Peer.ProduceMBps, idem.Peer.ProduceMBps), txn.Barge.E2EP99ms, idem.Barge.E2EP99ms)
}

// printInside prints the agent's own view of produce latency: its request
// time, the segment pipeline, and where a request's time went, stage by
// stage, beside what the clients saw (clientP50ms: send → acknowledgement;
// the difference from the request's p50 is roughly the records' wait in
// the client for a request to go out in).
func printInside(w io.Writer, who string, in *InsideFigures, clientP50ms float64) {
	fmt.Fprintf(w, "%s: produce request p50 %.0f / p99 %.0f ms; seal→commit p50 %.0f / p99 %.0f ms; segment PUT p99 %.0f ms; commit PUT p99 %.0f ms\n",
		who, in.ProduceP50ms, in.ProduceP99ms, in.SealCommitP50ms, in.SealCommitP99ms, in.PutP99ms, in.CommitPutP99ms)
	if len(in.Stages) == 0 {
		return
	}
	fmt.Fprint(w, "  a produce request's time, p50 / p99 ms:")
	for i, st := range produceStages {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %.0f / %.0f", sep, st, in.Stages[st][0], in.Stages[st][1])
	}
	fmt.Fprintf(w, "; records wait in the client about %.0f ms at p50 (client p50 − request p50)\n", max(0, clientP50ms-in.ProduceP50ms))
	if len(in.Seals) > 0 {
		fmt.Fprintf(w, "  segments sealed: %.0f%% by time, %.0f%% by size, %.0f%% with every producer's window waiting, %.0f%% quiet\n", 100*in.Seals["time"], 100*in.Seals["size"], 100*in.Seals["waiting"], 100*in.Seals["quiet"])
	}
}

// printCatchUpCost says where a catch-up's time went: what the three
// processes sharing the machine spent per GB beside what raw GETs cost,
// the rate that allows with every core busy, and how a consumer's one
// fetch at a time divides between the broker's answer and the client.
func printCatchUpCost(w io.Writer, r *Result) {
	b, p, bk, get := &r.Barge, &r.Peer, r.Barge.Bucket, r.Limit.Get
	if bk.CatchUpCoreSecondsPerGB > 0 {
		c, gb := bk.CatchUpCores, b.CatchUpMBps/1000
		fmt.Fprintf(w, "catch-up cost %.2f core-s/GB (agent %.2f, MinIO %.2f, consumer %.2f): with every core busy at most %.0f MB/s, %.2f of raw GET",
			bk.CatchUpCoreSecondsPerGB, c.Agent/gb, c.MinIO/gb, c.Client/gb, bk.CatchUpCeilingMBps, ratio(bk.CatchUpCeilingMBps, get.MBps))
		if cost := get.coreSecondsPerGB(); cost > 0 {
			gb := get.MBps / 1000
			fmt.Fprintf(w, ", whose GETs cost %.2f core-s/GB (MinIO %.2f, reader %.2f)", cost, get.StoreCores/gb, get.ClientCores/gb)
		}
		fmt.Fprintln(w)
	}
	cycle := func(f *Figures) string {
		if f.CatchUpFetchCycleMs == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f ms per %.1f MB answer, %.0f of them waiting for and reading it", f.CatchUpFetchCycleMs, f.CatchUpFetchMB, f.CatchUpFetchAnswerMs)
	}
	fmt.Fprintf(w, "catch-up consumer's fetch cycle: barge %s; kfake %s", cycle(b), cycle(p))
	if r.Config.GroupCatchUp > 0 && b.GroupCatchUpFetchCycleMs > 0 {
		fmt.Fprintf(w, "; with %d at once, per consumer: barge %.0f ms (%.0f answer), kfake %.0f ms (%.0f answer)", r.Config.GroupCatchUp,
			b.GroupCatchUpFetchCycleMs, b.GroupCatchUpFetchAnswerMs, p.GroupCatchUpFetchCycleMs, p.GroupCatchUpFetchAnswerMs)
	}
	fmt.Fprintln(w)
}
