package meta

// Kafka's internal topics. Kafka keeps group offsets and transaction state
// in them; Barge keeps both in the metadata log, but lists the two topics
// (created by the agents once the cluster has transactions) because tools
// and regex consumers expect them: marked internal in Metadata, one
// partition each, always empty, and refused to every change (pkg/protocol).
const (
	ConsumerOffsetsTopic  = "__consumer_offsets"
	TransactionStateTopic = "__transaction_state"
)

// InternalTopics are the internal topics' names.
var InternalTopics = []string{ConsumerOffsetsTopic, TransactionStateTopic}

// IsInternalTopic reports whether name is one of Kafka's internal topics.
func IsInternalTopic(name string) bool {
	return name == ConsumerOffsetsTopic || name == TransactionStateTopic
}

// Internal reports whether the topic is one of Kafka's internal topics.
func (t *Topic) Internal() bool { return IsInternalTopic(t.Name) }

// InternalPartitions returns the partitions of the internal topics, which
// no user limit counts.
func (s *State) InternalPartitions() int {
	n := 0
	for _, name := range InternalTopics {
		if t := s.topics[name]; t != nil {
			n += len(t.Partitions)
		}
	}
	return n
}
