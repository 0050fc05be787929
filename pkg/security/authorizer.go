package security

import (
	"strings"
	"sync/atomic"

	"github.com/bargehq/barge/pkg/meta"
)

// Authorizer is Kafka's ACL authorizer (StandardAuthorizer's rules) over
// one version of the bindings at a time.
type Authorizer struct {
	superUsers   map[string]bool
	allowIfNoACL bool
	index        atomic.Pointer[aclIndex] // of the newest version asked about
}

// NewAuthorizer returns an authorizer with super.users and
// allow.everyone.if.no.acl.found.
func NewAuthorizer(superUsers []string, allowIfNoACL bool) *Authorizer {
	a := &Authorizer{superUsers: map[string]bool{}, allowIfNoACL: allowIfNoACL}
	for _, p := range superUsers {
		a.superUsers[p] = true
	}
	return a
}

// aclIndex is one version of the bindings by resource type: literal ones
// by name, prefixed ones in a list (few, in practice).
type aclIndex struct {
	acls  *meta.ACLs
	types map[int8]*typeIndex
}

type typeIndex struct {
	literal  map[string][]meta.ACL
	prefixed []meta.ACL
}

// indexOf returns the index of acls, building it once per version: a
// change of the bindings makes a new *meta.ACLs.
func (a *Authorizer) indexOf(acls *meta.ACLs) *aclIndex {
	if ix := a.index.Load(); ix != nil && ix.acls == acls {
		return ix
	}
	ix := &aclIndex{acls: acls, types: map[int8]*typeIndex{}}
	for _, b := range acls.Bindings() {
		t := ix.types[b.ResourceType]
		if t == nil {
			t = &typeIndex{literal: map[string][]meta.ACL{}}
			ix.types[b.ResourceType] = t
		}
		if b.PatternType == meta.PatternPrefixed {
			t.prefixed = append(t.prefixed, b)
		} else {
			t.literal[b.ResourceName] = append(t.literal[b.ResourceName], b)
		}
	}
	a.index.Store(ix)
	return ix
}

// matching calls fn with every binding that applies to the resource,
// until fn returns false.
func (ix *aclIndex) matching(resourceType int8, name string, fn func(meta.ACL) bool) {
	t := ix.types[resourceType]
	if t == nil {
		return
	}
	for _, b := range t.literal[name] {
		if !fn(b) {
			return
		}
	}
	if name != meta.WildcardResource {
		for _, b := range t.literal[meta.WildcardResource] {
			if !fn(b) {
				return
			}
		}
	}
	for _, b := range t.prefixed {
		if strings.HasPrefix(name, b.ResourceName) && !fn(b) {
			return
		}
	}
}

func matchesWho(b meta.ACL, principal, host string) bool {
	return (b.Principal == principal || b.Principal == meta.WildcardPrincipal) &&
		(b.Host == host || b.Host == meta.WildcardHost)
}

// implies reports whether an ALLOW of operation granted allows op: itself,
// ALL, and Kafka's implied DESCRIBE and DESCRIBE_CONFIGS.
func implies(granted, op int8) bool {
	switch {
	case granted == op, granted == meta.OpAll:
		return true
	case op == meta.OpDescribe:
		return granted == meta.OpRead || granted == meta.OpWrite || granted == meta.OpDelete || granted == meta.OpAlter
	case op == meta.OpDescribeConfigs:
		return granted == meta.OpAlterConfigs
	}
	return false
}

// Authorize reports whether principal, connected from host, may perform op
// on the named resource.
func (a *Authorizer) Authorize(acls *meta.ACLs, principal, host string, op, resourceType int8, name string) bool {
	if a.superUsers[principal] {
		return true
	}
	any, denied, allowed := false, false, false
	a.indexOf(acls).matching(resourceType, name, func(b meta.ACL) bool {
		any = true
		if !matchesWho(b, principal, host) {
			return true
		}
		if b.Permission == meta.PermissionDeny && (b.Operation == op || b.Operation == meta.OpAll) {
			denied = true
			return false
		}
		if b.Permission == meta.PermissionAllow && implies(b.Operation, op) {
			allowed = true
		}
		return true
	})
	switch {
	case denied:
		return false
	case allowed:
		return true
	}
	return !any && a.allowIfNoACL
}

// AuthorizeAny reports whether principal may perform op on some resource
// of the type (Kafka's authorizeByResourceType): some ALLOW for it, of op
// or ALL, names a resource that no DENY of op or ALL covers.
func (a *Authorizer) AuthorizeAny(acls *meta.ACLs, principal, host string, op, resourceType int8) bool {
	if a.superUsers[principal] {
		return true
	}
	t := a.indexOf(acls).types[resourceType]
	if t == nil {
		return a.allowIfNoACL
	}
	var allowLit, allowPre, denyLit, denyPre []string
	add := func(b meta.ACL) {
		if !matchesWho(b, principal, host) || (b.Operation != op && b.Operation != meta.OpAll) {
			return
		}
		lit := b.PatternType == meta.PatternLiteral
		switch {
		case b.Permission == meta.PermissionDeny && lit:
			denyLit = append(denyLit, b.ResourceName)
		case b.Permission == meta.PermissionDeny:
			denyPre = append(denyPre, b.ResourceName)
		case lit:
			allowLit = append(allowLit, b.ResourceName)
		default:
			allowPre = append(allowPre, b.ResourceName)
		}
	}
	for _, bs := range t.literal {
		for _, b := range bs {
			add(b)
		}
	}
	for _, b := range t.prefixed {
		add(b)
	}
	for _, d := range denyLit {
		if d == meta.WildcardResource {
			return false
		}
	}
	coveredByDenyPrefix := func(name string) bool {
		for _, d := range denyPre {
			if strings.HasPrefix(name, d) {
				return true
			}
		}
		return false
	}
	for _, p := range allowPre {
		if !coveredByDenyPrefix(p) {
			return true
		}
	}
	for _, l := range allowLit {
		if l == meta.WildcardResource {
			return true
		}
		denied := coveredByDenyPrefix(l)
		for _, d := range denyLit {
			denied = denied || d == l
		}
		if !denied {
			return true
		}
	}
	return false
}

// supportedOps are the operations each resource type has (Kafka's
// AclEntry.supportedOperations), in the authorized-operations fields.
var supportedOps = map[int8][]int8{
	meta.ResourceTopic: {meta.OpRead, meta.OpWrite, meta.OpCreate, meta.OpDescribe, meta.OpDelete,
		meta.OpAlter, meta.OpDescribeConfigs, meta.OpAlterConfigs},
	meta.ResourceGroup: {meta.OpRead, meta.OpDescribe, meta.OpDelete},
	meta.ResourceCluster: {meta.OpCreate, meta.OpClusterAction, meta.OpDescribeConfigs, meta.OpAlterConfigs,
		meta.OpIdempotentWrite, meta.OpAlter, meta.OpDescribe},
	meta.ResourceTransactionalID: {meta.OpDescribe, meta.OpWrite},
	meta.ResourceDelegationToken: {meta.OpDescribe},
	meta.ResourceUser:            {meta.OpCreateTokens, meta.OpDescribeTokens},
}

// AllOperations is the authorized-operations bitfield of everything a
// resource type has: what every principal may do without an authorizer.
func AllOperations(resourceType int8) int32 {
	var bits int32
	for _, op := range supportedOps[resourceType] {
		bits |= 1 << op
	}
	return bits
}

// AuthorizedOperations is the bitfield (bit n: operation code n) of the
// resource's operations principal may perform.
func (a *Authorizer) AuthorizedOperations(acls *meta.ACLs, principal, host string, resourceType int8, name string) int32 {
	var bits int32
	for _, op := range supportedOps[resourceType] {
		if a.Authorize(acls, principal, host, op, resourceType, name) {
			bits |= 1 << op
		}
	}
	return bits
}
