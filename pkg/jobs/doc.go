// Package jobs runs the agent's background work over whole objects:
// retention, file compaction (compact.go) and collection.
//
// Retention applies each topic's retention.ms and retention.bytes
// (Kafka's log.retention.check.interval.ms sets how often) by appending
// AdvanceLogStart ops to the metadata log: whole chunks only, oldest first,
// so a partition keeps at least retention.bytes and nothing younger than
// retention.ms. The state then drops the chunks below the new start and
// releases an object once no chunk refers to it.
//
// Collection deletes released objects from the bucket once they have been
// released for a grace period, so that fetches in flight (which looked the
// chunk up before it was dropped) finish, and then appends ForgetObjects so
// the released list stays small. A delete that fails is retried on the
// next pass; deleting an object twice is harmless. The same pass sweeps
// orphans: seg/ and cmp/ objects that no chunk refers to and that are not
// released, whose key's leading unix-ms timestamp is older than OrphanGrace — segments whose commit never landed (an agent died between the
// PUT and the commit) and compaction outputs whose ReplaceChunks never
// applied. A segment still waiting for its commit is younger than that.
//
// Metadata-log trimming ("meta-compaction", TrimMeta) snapshots the log
// and deletes the entries the snapshots cover once older than
// MetaRetention; see meta/trim.go for why that is safe.
//
// File compaction copies runs of small chunks of ingestion objects into
// one object per partition and appends ReplaceChunks, which the state
// rejects if the run changed meanwhile; see compact.go.
//
// Which agent runs which job: a job ("retention/<topic>", "compact/<topic>",
// "collect", "meta-compaction") is run
// by the live agent that rendezvous hashing picks among the live agents,
// the same way groups are placed. Two agents with different views of the
// live set may briefly both run one: retention ops are idempotent (a log
// start never moves back), so are deletes and ForgetObjects, and of two
// compactors replacing the same run the state accepts only the first. Leases as
// log entries, which ARCHITECTURE.md calls for, are not built yet.
package jobs
