package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// FindCoordinator, versions 0-4 (v4: batched keys, KIP-699).
//
// Groups are spread over the live agents by rendezvous hashing (cluster.go),
// so every agent names the same coordinator; transactional ids too (txn.go),
// once the cluster's format has transactions. librdkafka also takes
// this API's presence as the sign that a broker understands lz4 framing
// (its LZ4 feature), so without it kcat silently sends lz4 uncompressed.
// v3: flexible.
func init() { register(10, 0, 4, deferred(handleFindCoordinator)) }

func handleFindCoordinator(ctx context.Context, s *Server, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	z := s.authzOf(ctx)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		owner := s.coordinatorOf(key)
		c.Key, c.NodeID, c.Host, c.Port = key, owner.NodeID, owner.Host, owner.Port
		switch {
		case req.CoordinatorType == 0 && !z.group(meta.OpDescribe, key):
			c.ErrorCode = errGroupAuth.Code
		case req.CoordinatorType == 1 && !z.txn(meta.OpDescribe, key):
			c.ErrorCode = errTxnAuth.Code
		case req.CoordinatorType == 1 && !s.txnFormat():
			c.ErrorCode, c.ErrorMessage = kerr.CoordinatorNotAvailable.Code, strp("not every agent of the cluster understands transactions yet")
		case req.CoordinatorType != 0 && req.CoordinatorType != 1:
			c.ErrorCode, c.ErrorMessage = kerr.InvalidRequest.Code, strp("unknown coordinator type")
		case key == "":
			c.ErrorCode, c.ErrorMessage = kerr.InvalidRequest.Code, strp("the key must not be empty")
		}
		if c.ErrorCode != 0 {
			c.NodeID, c.Host, c.Port = -1, "", -1
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.ErrorMessage, c.NodeID, c.Host, c.Port
	}
	return resp
}
