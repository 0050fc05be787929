// Package cache plays the role of Kafka's page cache for segment bytes.
// The newest committed objects are held whole, outside any admission
// policy, so consumers at the tail never reach the bucket; older ranges go
// through a Ristretto cache (cost = bytes) with single-flight loading, so
// many consumers missing the same range make one GET. Nothing depends on a
// hit for correctness: Ristretto may refuse or drop any entry.
package cache
