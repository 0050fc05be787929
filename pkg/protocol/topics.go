package protocol

import (
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// validateTopicName applies Kafka's rules, the same the state machine
// enforces.
func validateTopicName(name string) error { return meta.CheckTopicName(name) }

// collides reports an existing topic whose name differs only in '.' versus
// '_', which Kafka forbids because metric names would clash.
func collides(st *meta.State, name string) string {
	norm := strings.ReplaceAll(name, ".", "_")
	for _, n := range st.TopicNames() {
		if n != name && strings.ReplaceAll(n, ".", "_") == norm {
			return n
		}
	}
	return ""
}

// errorCode maps an internal error to the Kafka error a client expects.
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(errTooLarge)), errors.Is(err, batch.ErrTooLarge):
		// A batch whose records decompress past the agent's bound is
		// refused as one too large, which a producer may split.
		return kerr.MessageTooLarge.Code
	case errors.Is(err, errInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, meta.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, meta.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, meta.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, meta.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, meta.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, meta.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, meta.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, meta.ErrProducerFenced):
		return kerr.ProducerFenced.Code
	case errors.Is(err, meta.ErrInvalidProducerIDMapping):
		return kerr.InvalidProducerIDMapping.Code
	case errors.Is(err, meta.ErrConcurrentTransactions):
		return kerr.ConcurrentTransactions.Code
	case errors.Is(err, batch.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, batch.ErrUnsupportedCodec):
		return kerr.UnsupportedCompressionType.Code
	case errors.Is(err, batch.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, meta.ErrInvalidTopicName):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, meta.ErrLimit), errors.Is(err, meta.ErrTooManyACLs), errors.Is(err, meta.ErrTooManyCredential):
		return kerr.PolicyViolation.Code
	case errors.Is(err, meta.ErrBadCredential):
		return kerr.UnacceptableCredential.Code
	case errors.Is(err, meta.ErrNoCredential):
		return kerr.ResourceNotFound.Code
	case errors.Is(err, meta.ErrBadACL):
		return kerr.InvalidRequest.Code
	case errors.Is(err, tiered.ErrStorage), errors.Is(err, meta.ErrUnavailable), errors.Is(err, meta.ErrStalled),
		errors.Is(err, meta.ErrCondemned), errors.Is(err, meta.ErrBusy), errors.Is(err, meta.ErrFormat):
		// Retriable: the records were not stored; the client sends them
		// again (a condemned segment's commit lost its race with the
		// orphan sweep).
		return kerr.KafkaStorageError.Code
	case errors.Is(err, tiered.ErrClosed):
		return kerr.NotLeaderForPartition.Code // the agent is going away: look elsewhere
	case errors.Is(err, meta.ErrFenced):
		// Not a member of the fleet (expired while paused, or gone):
		// nothing was stored; the client refreshes and sends again.
		return kerr.NotLeaderForPartition.Code
	default:
		return kerr.UnknownServerError.Code
	}
}

func strp(s string) *string { return &s }

// internalTopic refuses a change to one of Kafka's internal topics (meta's
// internal_topics.go), which Barge lists but keeps empty.
func internalTopic(name string) (int16, *string) {
	return kerr.InvalidRequest.Code, strp("Topic '" + name + "' is internal: its contents live in the metadata log, and it cannot be changed.")
}
