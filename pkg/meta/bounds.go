package meta

import (
	"errors"
	"fmt"
)

// Hard bounds of the state machine. Apply refuses an op that would cross
// them, whatever wrote it, so that no entry can crash an agent or bloat it
// past them: a few bytes of CreatePartitions must not allocate billions of
// partitions in every agent, at every restart. Every other collection the
// state keeps grows with the bytes of the entries that made it, and
// Log.write bounds an entry's size; a partition costs about 80 bytes of
// memory in every agent, so the bounds below cap that at about 170 MB.
// The agents' configurable limits (--max-partitions-per-topic,
// --max-partitions) are policy, checked when a request is answered, and
// must lie within these.
//
// The bounds came with Format2. A cluster still at Format1 may hold agents
// built before them, whose state must not fork from ours, so there only a
// count no agent could allocate is refused.
const (
	// MaxTopicNameLen is Kafka's limit (249, so that partition directory
	// names stay under 255 bytes on the brokers of old).
	MaxTopicNameLen = 249
	// HardMaxPartitionsPerTopic bounds a topic's partitions.
	HardMaxPartitionsPerTopic = 1 << 20
	// HardMaxPartitions bounds the partitions of all topics together,
	// about what KRaft is tested to hold.
	HardMaxPartitions = 1 << 21
	// format1MaxPartitions is the bound of a Format1 cluster: tens of
	// gigabytes of memory, which no agent survives to disagree about.
	format1MaxPartitions = 1 << 28
	// MaxEntryBytes bounds one log entry; Log.write refuses ops that do
	// not fit in one.
	MaxEntryBytes = 8 << 20
)

// Errors for ops out of bounds.
var (
	// ErrLimit refuses an op that would take the state past a hard bound
	// (Kafka's POLICY_VIOLATION at the protocol).
	ErrLimit = errors.New("meta: over a limit of the metadata state")
	// ErrInvalidTopicName refuses a topic name Kafka would refuse.
	ErrInvalidTopicName = errors.New("meta: invalid topic name")
)

// CheckTopicName applies Kafka's rules (org.apache.kafka.common.internals.Topic).
// The error is ErrInvalidTopicName, and its text what Kafka's
// INVALID_TOPIC_EXCEPTION message says.
func CheckTopicName(name string) error {
	switch {
	case name == "":
		return topicNameError("topic name is illegal, it can't be empty")
	case name == "." || name == "..":
		return topicNameError("topic name cannot be \".\" or \"..\"")
	case len(name) > MaxTopicNameLen:
		return topicNameError(fmt.Sprintf("topic name is illegal, it can't be longer than %d characters", MaxTopicNameLen))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return topicNameError(fmt.Sprintf("topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", name))
		}
	}
	return nil
}

type topicNameError string

func (e topicNameError) Error() string { return string(e) }
func (e topicNameError) Unwrap() error { return ErrInvalidTopicName }

// checkPartitions checks that a topic may grow from have to want
// partitions.
func (s *State) checkPartitions(have int, want int32) error {
	perTopic, total := HardMaxPartitionsPerTopic, HardMaxPartitions
	if s.format < Format2 {
		perTopic, total = format1MaxPartitions, format1MaxPartitions
	}
	switch {
	case want < 1:
		return ErrInvalidPartitions
	case int(want) > perTopic:
		return fmt.Errorf("%w: %d partitions is more than the %d a topic may have", ErrInvalidPartitions, want, perTopic)
	case s.partitions-have+int(want) > total:
		return fmt.Errorf("%w: %d more partitions would take the cluster past %d", ErrLimit, int(want)-have, total)
	}
	return nil
}

// Partitions returns how many partitions all topics have together.
func (s *State) Partitions() int { return s.partitions }
