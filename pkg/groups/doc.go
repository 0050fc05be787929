// Package groups is the group coordinator: Apache Kafka's classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with the join and
// sync state of every group in memory, as Kafka's GroupCoordinator keeps
// it. pkg/protocol decides whether this agent coordinates a group
// (NOT_COORDINATOR), decodes requests and encodes answers; everything
// between is here. What must outlive the agent goes to the metadata log,
// reached through Log: the generation each completed sync produced
// (meta.GroupGeneration) and committed offsets (meta.CommitOffsets), which
// the log's state machine checks against the logged generation.
//
// States and transitions, as in Kafka:
//
//	Empty ──join──▶ PreparingRebalance ──all joined or rebalance timeout──▶ CompletingRebalance
//	CompletingRebalance ──leader's SyncGroup──▶ Stable ──join, leave, session timeout──▶ PreparingRebalance
//	CompletingRebalance ──sync deadline (rebalance timeout)──▶ PreparingRebalance, without the members that did not sync
//	PreparingRebalance ──nobody rejoined──▶ Empty;  Empty ──DeleteGroups──▶ Dead
//
// Timers (timers.go, set by rebalance.go and join.go), all time.AfterFunc
// callbacks that take the mutex and re-check that they still belong to the
// current state:
//   - group.initial.rebalance.delay: an Empty group's first join phase
//     waits the delay, again for as long as new members keep arriving
//     within it, up to the members' longest rebalance timeout;
//   - the rebalance timeout: a join phase ends then without the members
//     that did not rejoin;
//   - the sync deadline, also the rebalance timeout: a group whose leader
//     has not sent its SyncGroup by then drops the members that did not send
//     theirs and rebalances (Kafka's DelayedSync also drops a Stable group's
//     members that never synced; here the leader's sync ends the deadline);
//   - a member's session timeout, restarted by every heartbeat, join, sync
//     and commit: the member is removed when it runs out;
//   - a member id handed out with MEMBER_ID_REQUIRED (KIP-394) is expected
//     back within the session timeout the join asked for, then forgotten.
//
// Locking: one mutex guards every group: the work under it is small and
// never waits for I/O. Log appends are submitted under it, so that a
// commit checked against a generation reaches the log after that
// generation and before the next, and waited for outside it. They are
// submitted with TrySubmit, which never waits for room in the log's queue:
// when it is full, the commit or the leader's sync that needed the append
// is answered COORDINATOR_NOT_AVAILABLE, which clients retry (Kafka's
// answer when the offsets topic cannot take an append in time), instead of
// every group stalling behind the lock.
//
// Idle groups are freed: a group's memory goes once it is Empty, with no
// members and no member id handed out, and its last generation applied to
// the log's state. newGroup starts a group from the logged generation, so
// freeing it earlier, while that generation waits in the log's queue,
// would let a new incarnation reuse generation numbers. The coordinator
// frees a group at the end of whatever left it idle (a leave, a timer, a
// refused join, a commit from outside group management) or, while a
// generation's append is in flight, once that is done (logGeneration). A
// generation whose append failed is forgotten with the group, as an agent
// restart would forget it; should it land after all (an unknown outcome),
// the next generation logged is refused and the group rebalances past it
// (generationFailed).
package groups
