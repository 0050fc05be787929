package protocol

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// maxTopicNameLen is Kafka's limit (249, so that partition directory names
// stay under 255 bytes on the brokers of old).
const maxTopicNameLen = 249

// validateTopicName applies Kafka's rules (org.apache.kafka.common.internals.Topic).
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is illegal, it can't be empty")
	case name == "." || name == "..":
		return errors.New("topic name cannot be \".\" or \"..\"")
	case len(name) > maxTopicNameLen:
		return fmt.Errorf("topic name is illegal, it can't be longer than %d characters", maxTopicNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
		}
	}
	return nil
}

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
	case errors.Is(err, batch.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, batch.ErrUnsupportedCodec):
		return kerr.UnsupportedCompressionType.Code
	case errors.Is(err, batch.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, tiered.ErrStorage), errors.Is(err, meta.ErrUnavailable):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, tiered.ErrClosed):
		return kerr.NotLeaderForPartition.Code // the agent is going away: look elsewhere
	default:
		return kerr.UnknownServerError.Code
	}
}

func strp(s string) *string { return &s }

// appendOps writes ops as one log entry and reports each op's outcome to
// set: the append's error if it failed, else the op's own result.
func (s *Server) appendOps(ctx context.Context, ops []meta.Op, set func(i int, err error)) {
	if len(ops) == 0 {
		return
	}
	results, err := s.log.Append(ctx, ops...)
	for i := range ops {
		if err == nil {
			set(i, results[i].Err)
		} else {
			set(i, err)
		}
	}
}
