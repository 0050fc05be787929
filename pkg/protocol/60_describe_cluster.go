package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster, versions 0-1 (KIP-700). The brokers are the live agents;
// there is no controller (the bucket decides), so the lowest node id is
// reported as one.
func init() { register(60, 0, 1, deferred(handleDescribeCluster)) }

func handleDescribeCluster(ctx context.Context, s *Server, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	// Anyone may ask, as in Kafka: authorization changes only the
	// authorized-operations field.
	z := s.authzOf(ctx)
	resp.ClusterAuthorizedOperations = notRequested
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = z.clusterOps()
	}
	resp.ClusterID = s.cfg.ClusterID
	resp.EndpointType = 1
	brokers := s.brokers()
	resp.ControllerID = brokers[0].NodeID
	for _, br := range brokers {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = br.NodeID, br.Host, br.Port, rack(br.Zone)
		resp.Brokers = append(resp.Brokers, b)
		resp.ControllerID = min(resp.ControllerID, br.NodeID)
	}
	return resp
}
