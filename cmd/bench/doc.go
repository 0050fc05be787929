// Command bench measures Barge's speed and cost in one run, as ratios that
// hold on a noisy machine (`make bench`, `make bench-short`).
//
// For every scenario it starts a fresh bucket on one real MinIO and a fresh
// agent subprocess, drives it with franz-go producers and consumers, and
// measures, beside it, in the same run:
//
//   - the limit: raw PUT bandwidth of the same bucket with objects the size
//     of the agent's own flushes and as many in flight as its ingest pipeline,
//     and raw GET bandwidth of the same objects;
//   - the peer: the same load against franz-go's in-memory fake cluster
//     (kfake) started in this process;
//   - for a fleet scenario (fleet-3), the fleet: the same load against
//     several agents on a fresh bucket behind a real HAProxy, the clients
//     given only its address (the agents advertise their own, so it only
//     bootstraps), its latencies at the single agent's rate and its
//     /metrics summed over the agents.
//
// Phases of one scenario against one target (Barge, then kfake):
//
//  1. tail consumers start at offset 0 of the empty topic and keep up;
//  2. throughput: producers send as fast as the broker answers (closed loop,
//     bounded client buffers), or at the scenario's fixed rate;
//  3. latency: for saturating scenarios, the producers send at half the
//     throughput just measured, so latencies are not queueing figures;
//  4. catch-up: a new consumer reads the whole topic from offset 0 through a
//     freshly started agent, so every byte comes from the bucket.
//
// The meta-log scenario runs no agent: 1, 4, 16 and 64 in-process
// metadata logs (pkg/meta) share one in-memory bucket behind S3
// Standard-like latencies, each appending a flush-sized commit 4 times a
// second, and it reports commit latency and bucket requests per commit
// (metalog.go).
//
// Bucket requests, CPU seconds and RSS come from the agent's own /metrics
// and /proc, as deltas between scrapes taken at phase boundaries. Nothing
// here asserts a number: targets are evaluated and printed, and the whole
// report is written to bench/results.json.
package main
