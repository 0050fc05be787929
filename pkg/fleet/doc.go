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
//   - Two agents that have read the same log and agree on the time (within
//     the slack TTL leaves over HeartbeatInterval) compute the same live set
//     and the same owners; between them, an owner is only a hint. What must
//     never happen twice is fenced elsewhere: jobs by leases in the log,
//     group state by the coordinator's generation and the log's order.
//   - When an agent leaves the live set only the keys it owned move
//     (rendezvous), so a departure does not reshuffle everyone's groups.
//   - This agent is always live to itself, so it can serve while its own
//     heartbeat is in flight.
//   - Leading a partition only concentrates its traffic: every agent
//     serves every partition from the bucket, so a client whose view is
//     older than the fleet's is answered, not refused. Leader epochs stay
//     0 until membership is recorded in the log (then every agent can
//     agree on when a leader changed).
package fleet
