// Command agent runs one Barge agent: a stateless Kafka broker whose data
// and metadata live in one bucket. It reads flags (each with a BARGE_*
// environment equivalent), opens the bucket, replays the metadata log,
// serves Kafka clients and /metrics, and on SIGTERM flushes what it has
// buffered, answers those producers, and exits.
package main
