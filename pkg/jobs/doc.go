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
// orphans: seg/, cmp/ and cln/ objects that no chunk refers to and that are
// not released, older than OrphanGrace (by the later of the time in the
// key and the bucket's LastModified) — segments whose commit never landed
// (an agent died between the PUT and the commit) and compaction outputs
// whose op never applied. The sweep does not trust its view of the state:
// it has the log condemn them first and deletes only what the log
// condemned, and the state refuses any commit of a condemned object
// (meta/condemn.go), so a commit landing late loses instead of pointing at
// a deleted object. Condemning needs cluster Format2; before it, orphans
// stay. ExpireProducers ("expire-producers") drops idempotent producers
// silent for ProducerExpiry from the state.
//
// Metadata-log trimming ("meta-compaction", TrimMeta) snapshots the log
// and deletes the entries the snapshots cover once older than
// MetaRetention; see meta/trim.go for why that is safe.
//
// File compaction copies runs of small chunks into one object per
// partition, size-tiered so that a partition's chunks stay bounded by its
// bytes, and appends ReplaceChunks, which the state rejects if the run
// changed meanwhile; see compact.go.
//
// Key compaction ("clean/<topic>", Kafka's log cleaner) keeps the newest
// record per key of topics whose cleanup.policy includes compact, at their
// original offsets, by rewriting runs of chunks into cln/ objects and
// appending CleanChunks; see clean.go for when a pass is due and what it
// keeps.
//
// Which agent runs which job: each job ("retention/<topic>",
// "compact/<topic>", "clean/<topic>", "collect", "meta-compaction") is meant for the live
// agent that rendezvous hashing picks among the live agents, the same way
// groups are placed (Config.Owns, pkg/fleet). That only spreads the work: two agents
// with different views of the live set, or an agent restarted while its
// old process still ran, would both run one. So before a job runs, its
// agent takes the job's lease in the metadata log (meta/leases.go, and
// lease.go here): one entry asks for the leases of all the jobs of a kind
// that the agent owns and that have work to do (passes with nothing to do
// write nothing; collection with the orphan sweep on and trimming ask on
// every pass, since only a listing tells whether they have work), the
// granted jobs run, and one entry releases them. A lease lasts
// LeaseDuration (--job-lease) from its entry; the holder renews it every
// third of that while the job runs, and a job whose renewal is refused or
// does not land before the lease would end by the holder's clock is
// cancelled. A refused job is left to the holder; the next pass asks again.
// An agent that dies holding leases keeps its jobs from the others until
// the leases run out, so LeaseDuration bounds how long a job waits after a
// crash; a clean shutdown releases them.
//
// The leases keep two agents from doing the same work and writing two
// outputs for it; correctness does not rest on them, since every op the
// jobs append is checked against the state: retention ops are idempotent
// (a log start never moves back), so are deletes and ForgetObjects, and of
// two compactors replacing the same run the state accepts only the first.
// That covers what leases cannot: clocks that disagree by more than a
// lease, and a holder stalled (paused, partitioned) past its lease.
package jobs
