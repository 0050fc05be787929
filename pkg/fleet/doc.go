// Package fleet is who is in the cluster and who does what. It holds the
// three facts every agent must compute alike: which agents are live (each
// is heard from through its metadata-log entries, and an idle one writes a
// heartbeat), the stable hash that places work on them (rendezvous, highest
// random weight), and the owners that hash picks: a partition's leader, a
// consumer group's coordinator and a background job's runner. pkg/protocol
// asks it whom to name in Metadata and FindCoordinator and whether to serve
// a group; pkg/jobs asks it, through Owns, which jobs to try.
//
// Invariants:
//   - From cluster Format4 on, who is live is decided in the log
//     (meta.State.Members): an agent joins with its heartbeat, leaves with
//     LeaveCluster, and is expired by one live agent (Heartbeat) once it
//     has been silent for TTL, or sooner, once it has missed a heartbeat,
//     if its peer address refuses connections. Two agents that have read the same log
//     compute the same live set, the same owners and the same leader
//     epoch, whatever their clocks say. Before Format4 each agent reads
//     heartbeat times against its own clock, and epochs are 0.
//   - The leader epoch is the membership epoch: it goes up with every
//     change of the live set, so it changes whenever a leader can, and a
//     client that has seen a newer placement ignores an older one.
//   - Between agents that have read different slots an owner is only a
//     hint. What must never happen twice is fenced elsewhere: jobs by
//     leases in the log, group state by the coordinator's generation and
//     the log's order, records by the log refusing commits from agents
//     that are not members.
//   - When an agent leaves the live set only the keys it owned move
//     (rendezvous), so a departure does not reshuffle everyone's groups.
//   - This agent is always live to itself, so it can serve while its own
//     heartbeat is in flight.
//   - Leading a partition only concentrates its traffic: every agent
//     serves every partition from the bucket, so a client whose view is
//     older than the fleet's is answered, not refused, except that a
//     Fetch naming an older leader epoch is told to refresh
//     (FENCED_LEADER_EPOCH), which moves consumers to the new leader.
package fleet
