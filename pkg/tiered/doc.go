// Package tiered turns produced batches into segment objects and reads them
// back. Ingest packs the batches of every partition that arrive within one
// flush interval into a single object, uploads it, and commits it to the
// metadata log, which assigns offsets; only then are producers answered.
// Reader serves a partition's committed byte ranges through the cache with
// each batch's base offset patched in, the bytes the batch CRC leaves out.
package tiered
