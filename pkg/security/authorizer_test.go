package security

import (
	"fmt"
	"testing"

	"github.com/bargehq/barge/pkg/meta"
)

// aclSet applies bindings to a Format6 state and returns its version.
func aclSet(t testing.TB, bs ...meta.ACL) *meta.ACLs {
	t.Helper()
	s := meta.NewState()
	s.Apply(1, &meta.Entry{Writer: "w", Ops: []meta.Op{meta.SetFormat{Version: meta.Format6}}})
	r := s.Apply(2, &meta.Entry{Writer: "w", Ops: []meta.Op{meta.CreateACLs{ACLs: bs}}})
	for _, err := range r[0].ACLErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	return s.ACLs()
}

func binding(typ int8, name string, pattern int8, principal, host string, op, perm int8) meta.ACL {
	return meta.ACL{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: principal,
		Host: host, Operation: op, Permission: perm}
}

func allow(typ int8, name, principal string, op int8) meta.ACL {
	return binding(typ, name, meta.PatternLiteral, principal, "*", op, meta.PermissionAllow)
}

func TestAuthorizeRules(t *testing.T) {
	const alice, bob = "User:alice", "User:bob"
	acls := aclSet(t,
		allow(meta.ResourceTopic, "a", alice, meta.OpRead),
		allow(meta.ResourceTopic, "all", alice, meta.OpAll),
		allow(meta.ResourceTopic, "cfg", alice, meta.OpAlterConfigs),
		binding(meta.ResourceTopic, "app-", meta.PatternPrefixed, alice, "*", meta.OpWrite, meta.PermissionAllow),
		binding(meta.ResourceTopic, "app-secret", meta.PatternLiteral, alice, "*", meta.OpWrite, meta.PermissionDeny),
		allow(meta.ResourceTopic, "*", bob, meta.OpDescribe),
		binding(meta.ResourceTopic, "b", meta.PatternLiteral, meta.WildcardPrincipal, "10.0.0.1", meta.OpRead, meta.PermissionAllow),
		binding(meta.ResourceTopic, "all", meta.PatternLiteral, bob, "*", meta.OpAll, meta.PermissionDeny),
		allow(meta.ResourceGroup, "g", alice, meta.OpRead),
	)
	a := NewAuthorizer([]string{"User:root"}, false)
	for _, c := range []struct {
		principal, host string
		op, typ         int8
		name            string
		want            bool
	}{
		{alice, "1.1.1.1", meta.OpRead, meta.ResourceTopic, "a", true},
		{alice, "1.1.1.1", meta.OpWrite, meta.ResourceTopic, "a", false},            // only READ
		{alice, "1.1.1.1", meta.OpDescribe, meta.ResourceTopic, "a", true},          // implied by READ
		{alice, "1.1.1.1", meta.OpDelete, meta.ResourceTopic, "all", true},          // ALL
		{alice, "1.1.1.1", meta.OpDescribeConfigs, meta.ResourceTopic, "cfg", true}, // implied by ALTER_CONFIGS
		{alice, "1.1.1.1", meta.OpDescribe, meta.ResourceTopic, "cfg", false},       // ALTER_CONFIGS implies no DESCRIBE
		{alice, "1.1.1.1", meta.OpWrite, meta.ResourceTopic, "app-orders", true},    // prefixed
		{alice, "1.1.1.1", meta.OpWrite, meta.ResourceTopic, "app-secret", false},   // DENY wins
		{alice, "1.1.1.1", meta.OpWrite, meta.ResourceTopic, "ap", false},           // not the prefix
		{bob, "1.1.1.1", meta.OpDescribe, meta.ResourceTopic, "anything", true},     // literal wildcard
		{bob, "1.1.1.1", meta.OpRead, meta.ResourceTopic, "anything", false},
		{bob, "1.1.1.1", meta.OpDescribe, meta.ResourceTopic, "all", false}, // DENY ALL beats the wildcard ALLOW
		{bob, "10.0.0.1", meta.OpRead, meta.ResourceTopic, "b", true},       // any principal, that host
		{bob, "10.0.0.2", meta.OpRead, meta.ResourceTopic, "b", false},
		{alice, "1.1.1.1", meta.OpRead, meta.ResourceGroup, "g", true},
		{alice, "1.1.1.1", meta.OpRead, meta.ResourceGroup, "a", false},       // types apart
		{alice, "1.1.1.1", meta.OpRead, meta.ResourceTopic, "unnamed", false}, // deny by default
		{"User:root", "1.1.1.1", meta.OpDelete, meta.ResourceCluster, meta.ClusterResourceName, true},
	} {
		if got := a.Authorize(acls, c.principal, c.host, c.op, c.typ, c.name); got != c.want {
			t.Errorf("%s@%s op %d on %d/%s: %v, want %v", c.principal, c.host, c.op, c.typ, c.name, got, c.want)
		}
	}
	// allow.everyone.if.no.acl.found: only where no binding names the
	// resource at all.
	open := NewAuthorizer(nil, true)
	if !open.Authorize(acls, alice, "h", meta.OpRead, meta.ResourceGroup, "unnamed") {
		t.Error("a resource no binding names is allowed with allowIfNoACL")
	}
	if open.Authorize(acls, alice, "h", meta.OpRead, meta.ResourceTopic, "unnamed") {
		t.Error("a topic the wildcard binding names is not opened by allowIfNoACL")
	}
	if open.Authorize(acls, bob, "h", meta.OpRead, meta.ResourceTopic, "a") {
		t.Error("a resource some binding names is not opened by allowIfNoACL")
	}
	if !open.Authorize(nil, bob, "h", meta.OpRead, meta.ResourceTopic, "a") || a.Authorize(nil, bob, "h", meta.OpRead, meta.ResourceTopic, "a") {
		t.Error("with no bindings at all: allowIfNoACL decides")
	}
}

func TestAuthorizeAny(t *testing.T) {
	const alice = "User:alice"
	a := NewAuthorizer(nil, false)
	if a.AuthorizeAny(aclSet(t, allow(meta.ResourceTopic, "a", alice, meta.OpRead)), alice, "h", meta.OpWrite, meta.ResourceTopic) {
		t.Error("READ on a topic is no WRITE on any")
	}
	if !a.AuthorizeAny(aclSet(t, allow(meta.ResourceTopic, "a", alice, meta.OpWrite)), alice, "h", meta.OpWrite, meta.ResourceTopic) {
		t.Error("WRITE on one topic is WRITE on some")
	}
	denied := aclSet(t, allow(meta.ResourceTopic, "a", alice, meta.OpWrite),
		binding(meta.ResourceTopic, "*", meta.PatternLiteral, alice, "*", meta.OpWrite, meta.PermissionDeny))
	if a.AuthorizeAny(denied, alice, "h", meta.OpWrite, meta.ResourceTopic) {
		t.Error("a DENY on every topic leaves none")
	}
	prefixDenied := aclSet(t, binding(meta.ResourceTopic, "app-x", meta.PatternPrefixed, alice, "*", meta.OpAll, meta.PermissionAllow),
		binding(meta.ResourceTopic, "app-", meta.PatternPrefixed, alice, "*", meta.OpWrite, meta.PermissionDeny))
	if a.AuthorizeAny(prefixDenied, alice, "h", meta.OpWrite, meta.ResourceTopic) {
		t.Error("an ALLOW prefix inside a DENY prefix allows nothing")
	}
}

func TestAuthorizedOperations(t *testing.T) {
	const alice = "User:alice"
	acls := aclSet(t, allow(meta.ResourceTopic, "a", alice, meta.OpRead), allow(meta.ResourceGroup, "g", alice, meta.OpAll))
	a := NewAuthorizer(nil, false)
	if got, want := a.AuthorizedOperations(acls, alice, "h", meta.ResourceTopic, "a"), int32(1<<meta.OpRead|1<<meta.OpDescribe); got != want {
		t.Errorf("topic bits %b, want %b", got, want)
	}
	if got, want := a.AuthorizedOperations(acls, alice, "h", meta.ResourceGroup, "g"), AllOperations(meta.ResourceGroup); got != want {
		t.Errorf("group bits %b, want every group operation %b", got, want)
	}
	if got := AllOperations(meta.ResourceGroup); got != 1<<meta.OpRead|1<<meta.OpDescribe|1<<meta.OpDelete {
		t.Errorf("a group's operations %b", got)
	}
}

// The index is built once per version of the bindings.
func TestAuthorizerFollowsNewVersions(t *testing.T) {
	a := NewAuthorizer(nil, false)
	v1 := aclSet(t, allow(meta.ResourceTopic, "a", "User:x", meta.OpRead))
	v2 := aclSet(t, allow(meta.ResourceTopic, "b", "User:x", meta.OpRead))
	if !a.Authorize(v1, "User:x", "h", meta.OpRead, meta.ResourceTopic, "a") || a.Authorize(v2, "User:x", "h", meta.OpRead, meta.ResourceTopic, "a") ||
		!a.Authorize(v2, "User:x", "h", meta.OpRead, meta.ResourceTopic, "b") {
		t.Fatal("an old version's index answered for a new one")
	}
}

func BenchmarkAuthorize(b *testing.B) {
	var bs []meta.ACL
	for i := range 10_000 {
		bs = append(bs, allow(meta.ResourceTopic, fmt.Sprintf("topic-%d", i), fmt.Sprintf("User:u%d", i%100), meta.OpRead))
	}
	bs = append(bs, binding(meta.ResourceTopic, "topic-", meta.PatternPrefixed, "User:u1", "*", meta.OpDescribe, meta.PermissionAllow))
	acls := aclSet(b, bs...)
	a := NewAuthorizer(nil, false)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.Authorize(acls, "User:u7", "10.0.0.1", meta.OpRead, meta.ResourceTopic, "topic-5007")
	}
}
