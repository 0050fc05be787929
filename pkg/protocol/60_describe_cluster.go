package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster, versions 0-1 (KIP-700). Every agent reports itself as
// the controller: there is no controller, the bucket decides.
func init() { register(60, 0, 1, deferred(handleDescribeCluster)) }

func handleDescribeCluster(_ context.Context, s *Server, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.cfg.NodeID
	resp.EndpointType = 1
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, s.cfg.AdvertisedHost, s.cfg.AdvertisedPort
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	return resp
}
