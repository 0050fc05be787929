// Package batch reads, checks, patches and writes Kafka v2 record batches
// (magic 2), the unit in which producers send records and in which Barge stores
// and serves them byte for byte.
//
// The broker's hot path never builds records: it splits a Produce request's
// records field with [Split], checks each batch with [ValidateRecords]
// (lengths, magic, CRC32C, counts, codec, then every record's framing and
// offset delta, as Kafka's LogValidator does) without allocating or copying
// an uncompressed batch, and patches the few fields it owns in place
// ([SetBaseOffset], [SetPartitionLeaderEpoch], which the CRC does not cover,
// and [SetLogAppendTime] and [SetCreateTime], which recompute it).
// [Validate] is the header and CRC part alone.
//
// Decoding ([Records]) and encoding ([Build]) are for the cold paths, such as
// compaction and tests; they decompress gzip, snappy (raw and xerial framed),
// lz4 (frame format) and zstd, always under a caller-supplied output bound,
// because batch bytes come from the network and are untrusted. For the same
// reason no header's claim of the output's size is believed beyond what the
// compressed bytes can make (zstd.go, snappyMaxDecoded): memory goes to
// real output, and a [Budget] shared by every validation bounds it for all
// of them together.
package batch
