package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// DescribeAcls, CreateAcls and DeleteAcls, versions 1-3 (v0, without
// pattern types, is gone from Kafka 4, KIP-896; v2: flexible; v3: USER
// resources). The bindings live in the metadata log (meta.CreateACLs,
// meta.DeleteACLs), so an ACL made through one agent binds every agent
// once it has read the entry. Without an authorizer they answer
// SECURITY_DISABLED, as Kafka does. Describing needs DESCRIBE on the
// cluster, changing ALTER. Create and Delete are submitted in phase one, in
// the connection's order (order.go).
func init() {
	register(29, 1, 3, deferred(handleDescribeACLs))
	register(30, 1, 3, twoPhase(handleCreateACLs))
	register(31, 1, 3, twoPhase(handleDeleteACLs))
}

var errSecurityDisabled = "no authorizer is configured on the agent (--authorizer)"

func handleDescribeACLs(ctx context.Context, s *Server, req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f := meta.ACLFilter{ResourceType: int8(req.ResourceType), ResourceName: req.ResourceName,
		PatternType: int8(req.ResourcePatternType), Principal: req.Principal, Host: req.Host,
		Operation: int8(req.Operation), Permission: int8(req.PermissionType)}
	switch {
	case s.cfg.Security.Authorizer == nil:
		resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, strp(errSecurityDisabled)
		return resp
	case !s.authzOf(ctx).cluster(meta.OpDescribe):
		resp.ErrorCode = errClusterAuth.Code
		return resp
	}
	if msg := checkACLFilter(f); msg != "" {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, strp(msg)
		return resp
	}
	var acls *meta.ACLs
	s.log.View(func(st *meta.State) { acls = st.ACLs() })
	// The bindings are sorted by resource name first, so one resource's
	// are together but for the type and pattern, which the key splits.
	type key struct {
		typ, pattern int8
		name         string
	}
	at := map[key]int{}
	for _, a := range acls.Bindings() {
		if !f.Matches(a) {
			continue
		}
		k := key{a.ResourceType, a.PatternType, a.ResourceName}
		i, ok := at[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName = kmsg.ACLResourceType(a.ResourceType), a.ResourceName
			r.ResourcePatternType = kmsg.ACLResourcePatternType(a.PatternType)
			i = len(resp.Resources)
			at[k] = i
			resp.Resources = append(resp.Resources, r)
		}
		e := kmsg.NewDescribeACLsResponseResourceACL()
		e.Principal, e.Host = a.Principal, a.Host
		e.Operation, e.PermissionType = kmsg.ACLOperation(a.Operation), kmsg.ACLPermissionType(a.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, e)
	}
	return resp
}

// checkACLFilter refuses a filter with an UNKNOWN (0) enum, as Kafka does.
func checkACLFilter(f meta.ACLFilter) string {
	switch {
	case f.ResourceType <= 0 || f.ResourceType > meta.ResourceUser:
		return "unknown resource type"
	case f.PatternType <= 0 || f.PatternType > meta.PatternPrefixed:
		return "unknown pattern type"
	case f.Operation <= 0 || f.Operation > meta.OpDescribeTokens:
		return "unknown operation"
	case f.Permission <= 0 || f.Permission > meta.PermissionAllow:
		return "unknown permission type"
	}
	return ""
}

// mayAlterACLs is the refusal of a change to the ACLs (0: allowed): without
// an authorizer SECURITY_DISABLED, without ALTER on the cluster
// CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) mayAlterACLs(ctx context.Context) (int16, string) {
	switch {
	case s.cfg.Security.Authorizer == nil:
		return kerr.SecurityDisabled.Code, errSecurityDisabled
	case !s.authzOf(ctx).cluster(meta.OpAlter):
		return errClusterAuth.Code, "Authorization failed."
	}
	return 0, ""
}

func handleCreateACLs(ctx context.Context, s *Server, req *kmsg.CreateACLsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	answer := func() kmsg.Response { return resp }
	if code, msg := s.mayAlterACLs(ctx); code != 0 {
		for i := range resp.Results {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, strp(msg)
		}
		return answer
	}
	var op meta.CreateACLs
	var idx []int
	for i, c := range req.Creations {
		a := meta.ACL{ResourceType: int8(c.ResourceType), ResourceName: c.ResourceName,
			PatternType: int8(c.ResourcePatternType), Principal: c.Principal, Host: c.Host,
			Operation: int8(c.Operation), Permission: int8(c.PermissionType)}
		if err := meta.CheckACL(a); err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, strp(err.Error())
			continue
		}
		op.ACLs = append(op.ACLs, a)
		idx = append(idx, i)
	}
	if len(op.ACLs) == 0 {
		return answer
	}
	p := s.submit(ctx, op)
	return func() kmsg.Response {
		settle(ctx, p, 1, func(_ int, res meta.Result, err error) {
			for k, i := range idx {
				e := err
				if e == nil && k < len(res.ACLErrs) {
					e = res.ACLErrs[k]
				}
				if e != nil {
					resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errorCode(e), strp(e.Error())
				}
			}
		})
		return resp
	}
}

func handleDeleteACLs(ctx context.Context, s *Server, req *kmsg.DeleteACLsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	answer := func() kmsg.Response { return resp }
	if code, msg := s.mayAlterACLs(ctx); code != 0 {
		for i := range resp.Results {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, strp(msg)
		}
		return answer
	}
	var op meta.DeleteACLs
	var idx []int
	for i, rf := range req.Filters {
		f := meta.ACLFilter{ResourceType: int8(rf.ResourceType), ResourceName: rf.ResourceName,
			PatternType: int8(rf.ResourcePatternType), Principal: rf.Principal, Host: rf.Host,
			Operation: int8(rf.Operation), Permission: int8(rf.PermissionType)}
		if msg := checkACLFilter(f); msg != "" {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, strp(msg)
			continue
		}
		op.Filters = append(op.Filters, f)
		idx = append(idx, i)
	}
	if len(op.Filters) == 0 {
		return answer
	}
	p := s.submit(ctx, op)
	return func() kmsg.Response {
		settle(ctx, p, 1, func(_ int, res meta.Result, err error) {
			for k, i := range idx {
				r := &resp.Results[i]
				if err != nil {
					r.ErrorCode, r.ErrorMessage = errorCode(err), strp(err.Error())
					continue
				}
				if k >= len(res.DeletedACLs) {
					continue
				}
				for _, a := range res.DeletedACLs[k] {
					m := kmsg.NewDeleteACLsResponseResultMatchingACL()
					m.ResourceType, m.ResourceName = kmsg.ACLResourceType(a.ResourceType), a.ResourceName
					m.ResourcePatternType = kmsg.ACLResourcePatternType(a.PatternType)
					m.Principal, m.Host = a.Principal, a.Host
					m.Operation, m.PermissionType = kmsg.ACLOperation(a.Operation), kmsg.ACLPermissionType(a.Permission)
					r.MatchingACLs = append(r.MatchingACLs, m)
				}
			}
		})
		return resp
	}
}
