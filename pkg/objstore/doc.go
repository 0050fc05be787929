// Package objstore is Barge's view of the bucket: one small Store interface
// (put, put-if-absent, get, ranged get, list, delete) that every byte of
// durable state goes through.
//
// Backends are S3 (aws-sdk-go-v2; AWS S3, S3 Express, MinIO and LocalStack
// alike), a local directory (File) for the embedded default and an in-memory
// map (Memory) for unit tests; all three honour the same contract, which the
// shared contract test checks, most importantly that PutIfAbsent has exactly
// one winner among concurrent creators and that a nil error means durable.
//
// Instrument adds Prometheus metrics around any Store and Faulty injects
// failures, delays and lost answers deterministically for tests; Open builds
// a Store from a file://, mem:// or s3:// URL.
package objstore
