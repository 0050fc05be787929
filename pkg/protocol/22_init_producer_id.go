package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId, versions 0-4, for idempotent producers. Each call gets a
// fresh id with epoch 0 (for a producer without a transactional id Kafka
// does the same, even when v3+ passes the current id to bump its epoch).
// Transactional ids are refused until transactions land.
func init() { register(22, 0, 4, deferred(handleInitProducerID)) }

func handleInitProducerID(ctx context.Context, s *Server, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	id, err := s.producers.nextID(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
