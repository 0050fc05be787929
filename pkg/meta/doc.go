// Package meta is Barge's metadata log: an append-only sequence of entries
// stored as objects meta/log/<20-digit seq>, each created with a conditional
// write so the bucket itself decides who took a slot, and folded by a pure,
// deterministic state machine (State.Apply) into topics, partitions, their
// segment index, log starts and high watermarks, producer sequences, groups,
// agents, the background jobs' leases (leases.go), SCRAM credentials and
// ACLs (security.go), transactions with each partition's open ones and
// aborted ranges (txn.go), and the segment objects no partition refers
// to any more. Every agent
// replays the same entries in the same order and so reaches the same state;
// snapshots (meta/snap/<seq>) bound the replay at start-up, and Log.Trim
// (trim.go) deletes the entries they cover once older than a retention
// window, with the Delta Lake rule keeping stale writers off trimmed slots.
// From cluster Format5 one agent, the sequencer, appends for all
// (sequencer.go): the others send it their entries through a Relay
// (relay.go; pkg/protocol carries it between agents) and follow the
// slots it pushes, falling back to appending directly; append numbers
// keep an entry that lands twice from being applied twice, and the
// conditional write still decides every slot. The package does
// no wire protocol work; Log owns all of its bucket I/O.
package meta
