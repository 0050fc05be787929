// Package e2e holds Barge's behaviour tests: real agent processes on
// loopback ports, a real MinIO server or a local directory as the bucket,
// and real Kafka clients (franz-go, kcat) driving them. Each acceptance
// point of the foundation is one test here; `make test` runs them all.
package e2e
