package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// InitProducerId, versions 0-4, for idempotent producers. Each call gets a
// fresh id with epoch 0 (for a producer without a transactional id Kafka
// does the same, even when v3+ passes the current id to bump its epoch).
// Ids come from blocks reserved in the metadata log; a reservation is
// submitted in phase one, in the connection's order (order.go).
// Transactional ids are refused until transactions land.
func init() { register(22, 0, 4, twoPhase(handleInitProducerID)) }

func handleInitProducerID(ctx context.Context, s *Server, req *kmsg.InitProducerIDRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return func() kmsg.Response { return resp }
	}
	// An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or
	// WRITE on some topic (Kafka 2.8+, KIP-679).
	if z := s.authzOf(ctx); !z.cluster(meta.OpIdempotentWrite) && !z.anyTopic(meta.OpWrite) {
		resp.ErrorCode = errClusterAuth.Code
		return func() kmsg.Response { return resp }
	}
	id := s.producers.take(ctx)
	return func() kmsg.Response {
		id, err := id()
		if err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = id, 0
		return resp
	}
}
