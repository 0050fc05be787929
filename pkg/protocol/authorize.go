package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/security"
)

// Authorization, as Kafka's authorizer does it: every handler asks, per
// resource it touches, whether the connection's principal may perform the
// operation, and answers the resource's own error code (TOPIC_, GROUP_,
// CLUSTER_, TRANSACTIONAL_ID_AUTHORIZATION_FAILED) for a refusal. The rules
// are the ACL bindings in the metadata log (meta.State.ACLs), so every agent
// applies the same ones within a poll of a change. A topic the principal may
// not DESCRIBE is answered as unauthorized whether or not it exists, and
// left out of an all-topics Metadata answer, so names do not leak.
//
// authz is taken once per request: the principal, the client's address and
// one version of the bindings, read outside the log's View (whose callback
// must not take the log's lock again).

type authz struct {
	s         *Server
	on        bool // an authorizer applies (not off, not a peer, not a super user)
	principal string
	host      string
	acls      *meta.ACLs
}

// authzOf returns the authorization of the request ctx belongs to.
func (s *Server) authzOf(ctx context.Context) authz {
	z := authz{s: s}
	a := s.cfg.Security.Authorizer
	c := connOf(ctx)
	if a == nil || c == nil || c.auth.agent || s.superUser(c.auth.principal) {
		return z
	}
	z.on, z.principal, z.host = true, c.auth.principal, c.auth.host
	s.log.View(func(st *meta.State) { z.acls = st.ACLs() })
	return z
}

// allowed reports whether the principal may perform op on the resource.
func (z authz) allowed(op, resourceType int8, name string) bool {
	return !z.on || z.s.cfg.Security.Authorizer.Authorize(z.acls, z.principal, z.host, op, resourceType, name)
}

// topic, group, cluster and txn are allowed for each resource type.
func (z authz) topic(op int8, name string) bool { return z.allowed(op, meta.ResourceTopic, name) }
func (z authz) group(op int8, name string) bool { return z.allowed(op, meta.ResourceGroup, name) }
func (z authz) cluster(op int8) bool {
	return z.allowed(op, meta.ResourceCluster, meta.ClusterResourceName)
}
func (z authz) txn(op int8, id string) bool {
	return z.allowed(op, meta.ResourceTransactionalID, id)
}

// anyTopic reports whether the principal may perform op on some topic
// (Kafka's authorizeByResourceType): an idempotent producer needs
// IDEMPOTENT_WRITE on the cluster or WRITE on any topic.
func (z authz) anyTopic(op int8) bool {
	return !z.on || z.s.cfg.Security.Authorizer.AuthorizeAny(z.acls, z.principal, z.host, op, meta.ResourceTopic)
}

// ops returns the authorized-operations bitfield of a resource (Metadata
// v8+, DescribeCluster, DescribeGroups v3+).
func (z authz) ops(resourceType int8, name string) int32 {
	if !z.on {
		return security.AllOperations(resourceType)
	}
	return z.s.cfg.Security.Authorizer.AuthorizedOperations(z.acls, z.principal, z.host, resourceType, name)
}

// configs returns the refusal of op on a config resource (0: allowed):
// topics by name, brokers as the cluster, as Kafka checks them.
func (z authz) configs(typ kmsg.ConfigResourceType, name string, op int8) int16 {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !z.topic(op, name) {
			return errTopicAuth.Code
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		if !z.cluster(op) {
			return errClusterAuth.Code
		}
	}
	return 0
}

// clusterOps is the cluster's authorized operations as Kafka reports them:
// none to a principal that may not DESCRIBE the cluster.
func (z authz) clusterOps() int32 {
	if !z.cluster(meta.OpDescribe) {
		return 0
	}
	return z.ops(meta.ResourceCluster, meta.ClusterResourceName)
}

// The refusals' codes.
var (
	errTopicAuth   = kerr.TopicAuthorizationFailed
	errGroupAuth   = kerr.GroupAuthorizationFailed
	errClusterAuth = kerr.ClusterAuthorizationFailed
	errTxnAuth     = kerr.TransactionalIDAuthorizationFailed
)

// notRequested is the authorized-operations field's value when the client
// did not ask for it.
const notRequested = -2147483648
