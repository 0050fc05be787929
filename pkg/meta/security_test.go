package meta

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// securityState is a state of Format6, where the security ops apply.
func securityState() *State {
	s := NewState()
	s.format = Format6
	return s
}

func testCredential(m ScramMechanism, seed byte) ScramCredential {
	n := ScramKeyLen(m)
	return ScramCredential{Iterations: 4096, Salt: []byte{seed, 1, 2},
		StoredKey: bytes.Repeat([]byte{seed}, n), ServerKey: bytes.Repeat([]byte{seed + 1}, n)}
}

func TestSecurityOpsNeedFormat6(t *testing.T) {
	s := NewState()
	s.format = Format5
	r := apply(s, SetScramCredential{User: "alice", Mechanism: ScramSHA512, Credential: testCredential(ScramSHA512, 1)},
		CreateACLs{ACLs: []ACL{readTopic("User:alice", "a")}})
	if !errors.Is(r[0].Err, ErrFormat) || !errors.Is(r[1].Err, ErrFormat) {
		t.Fatalf("results %v, %v: want ErrFormat before Format6", r[0].Err, r[1].Err)
	}
	if _, ok := s.ScramCredential("alice", ScramSHA512); ok || s.ACLs() != nil {
		t.Fatal("a Format5 state took security ops")
	}
}

func TestScramCredentials(t *testing.T) {
	s := securityState()
	c := testCredential(ScramSHA512, 7)
	op := SetScramCredential{User: "alice", Mechanism: ScramSHA512, Credential: c}
	if r := apply(s, op); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	op.Credential.StoredKey[0] = 0 // the state holds its own copy
	got, ok := s.ScramCredential("alice", ScramSHA512)
	if !ok || got.StoredKey[0] != 7 || got.Iterations != 4096 {
		t.Fatalf("credential %+v, %v", got, ok)
	}
	if _, ok := s.ScramCredential("alice", ScramSHA256); ok {
		t.Fatal("a SHA-256 credential nobody set")
	}
	apply(s, SetScramCredential{User: "alice", Mechanism: ScramSHA256, Credential: testCredential(ScramSHA256, 3)})
	want := []ScramUser{{Name: "alice", Mechanisms: []ScramMechanism{ScramSHA256, ScramSHA512}, Iterations: []int32{4096, 4096}}}
	if u := s.ScramUsers(); !reflect.DeepEqual(u, want) {
		t.Fatalf("users %+v, want %+v", u, want)
	}
	clone := s.Clone()
	if r := apply(s, DeleteScramCredential{User: "alice", Mechanism: ScramSHA512}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	if _, ok := s.ScramCredential("alice", ScramSHA512); ok {
		t.Fatal("deleted credential still there")
	}
	if _, ok := clone.ScramCredential("alice", ScramSHA512); !ok {
		t.Fatal("deleting in the state changed its clone")
	}
	if r := apply(s, DeleteScramCredential{User: "alice", Mechanism: ScramSHA512}); !errors.Is(r[0].Err, ErrNoCredential) {
		t.Fatalf("deleting twice: %v, want ErrNoCredential", r[0].Err)
	}
	for _, bad := range []SetScramCredential{
		{User: "", Mechanism: ScramSHA512, Credential: testCredential(ScramSHA512, 1)},
		{User: "bob", Mechanism: 3, Credential: testCredential(ScramSHA512, 1)},
		{User: "bob", Mechanism: ScramSHA256, Credential: testCredential(ScramSHA512, 1)}, // key lengths
		{User: "bob", Mechanism: ScramSHA512, Credential: ScramCredential{Iterations: 100, Salt: []byte{1},
			StoredKey: make([]byte, 64), ServerKey: make([]byte, 64)}},
	} {
		if r := apply(s, bad); !errors.Is(r[0].Err, ErrBadCredential) {
			t.Errorf("%+v: %v, want ErrBadCredential", bad, r[0].Err)
		}
	}
	if _, ok := s.ScramCredential("bob", ScramSHA512); ok {
		t.Fatal("a refused credential was kept")
	}
}

func readTopic(principal, topic string) ACL {
	return ACL{ResourceType: ResourceTopic, ResourceName: topic, PatternType: PatternLiteral,
		Principal: principal, Host: "*", Operation: OpRead, Permission: PermissionAllow}
}

func TestACLs(t *testing.T) {
	s := securityState()
	a := readTopic("User:alice", "a")
	pre := ACL{ResourceType: ResourceGroup, ResourceName: "app-", PatternType: PatternPrefixed,
		Principal: "User:alice", Host: "*", Operation: OpRead, Permission: PermissionAllow}
	deny := ACL{ResourceType: ResourceTopic, ResourceName: "*", PatternType: PatternLiteral,
		Principal: "User:bob", Host: "10.0.0.1", Operation: OpAll, Permission: PermissionDeny}
	bad := a
	bad.Permission = 0
	r := apply(s, CreateACLs{ACLs: []ACL{a, pre, a, bad, deny}})
	errs := r[0].ACLErrs
	if len(errs) != 5 || errs[0] != nil || errs[1] != nil || errs[2] != nil || !errors.Is(errs[3], ErrBadACL) || errs[4] != nil {
		t.Fatalf("errors %v", errs)
	}
	first := s.ACLs()
	if got := first.Bindings(); len(got) != 3 {
		t.Fatalf("bindings %+v: want 3 (the duplicate once, the bad one not)", got)
	}
	apply(s, CreateACLs{ACLs: []ACL{a}})
	if s.ACLs() != first {
		t.Fatal("adding a binding that exists made a new version")
	}

	any := ACLFilter{ResourceType: ACLAny, PatternType: ACLAny, Operation: ACLAny, Permission: ACLAny}
	name := func(n string) *string { return &n }
	match := any
	match.ResourceType, match.PatternType, match.ResourceName = ResourceGroup, PatternMatch, name("app-orders")
	if !match.Matches(pre) || match.Matches(a) {
		t.Fatal("a MATCH filter finds the prefixed binding that applies, and only it")
	}
	literal := any
	literal.ResourceName = name("app-orders")
	if literal.Matches(pre) {
		t.Fatal("an ANY-pattern filter with a name matches only that exact name")
	}
	wild := any
	wild.PatternType, wild.ResourceName = PatternMatch, name("anything")
	if !wild.Matches(deny) || wild.Matches(a) {
		t.Fatal("a MATCH filter finds the literal wildcard binding")
	}
	host := any
	host.Host = name("10.0.0.1")
	r = apply(s, DeleteACLs{Filters: []ACLFilter{host, host}})
	if d := r[0].DeletedACLs; len(d) != 2 || len(d[0]) != 1 || d[0][0] != deny || len(d[1]) != 1 {
		t.Fatalf("deleted %+v: want the deny binding for each filter", d)
	}
	if got := first.Bindings(); len(got) != 3 {
		t.Fatal("deleting changed an earlier version of the bindings")
	}
	r = apply(s, DeleteACLs{Filters: []ACLFilter{any}})
	if len(r[0].DeletedACLs[0]) != 2 || s.ACLs() != nil {
		t.Fatalf("deleting everything: %+v, left %+v", r[0].DeletedACLs, s.ACLs().Bindings())
	}
}

func TestCheckACL(t *testing.T) {
	good := readTopic("User:alice", "a")
	if err := CheckACL(good); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*ACL){
		"resource type":    func(a *ACL) { a.ResourceType = ACLAny },
		"pattern":          func(a *ACL) { a.PatternType = PatternMatch },
		"empty name":       func(a *ACL) { a.ResourceName = "" },
		"cluster name":     func(a *ACL) { a.ResourceType = ResourceCluster },
		"prefixed *":       func(a *ACL) { a.PatternType, a.ResourceName = PatternPrefixed, "*" },
		"principal":        func(a *ACL) { a.Principal = "alice" },
		"host":             func(a *ACL) { a.Host = "" },
		"operation ANY":    func(a *ACL) { a.Operation = ACLAny },
		"operation":        func(a *ACL) { a.Operation = 15 },
		"permission ANY":   func(a *ACL) { a.Permission = ACLAny },
		"permission codes": func(a *ACL) { a.Permission = 4 },
	} {
		a := good
		change(&a)
		if err := CheckACL(a); !errors.Is(err, ErrBadACL) {
			t.Errorf("%s: %v, want ErrBadACL", name, err)
		}
	}
}

// TestSecuritySnapshotAndEntries: the ops survive an entry's encoding,
// and the state a snapshot's.
func TestSecuritySnapshotAndEntries(t *testing.T) {
	name := "x"
	en := &Entry{Writer: "w", TimeMs: 5, Ops: []Op{
		SetScramCredential{User: "alice", Mechanism: ScramSHA256, Credential: testCredential(ScramSHA256, 9)},
		DeleteScramCredential{User: "bob", Mechanism: ScramSHA512},
		CreateACLs{ACLs: []ACL{readTopic("User:alice", "a"), readTopic("User:carol", "b")}},
		DeleteACLs{Filters: []ACLFilter{{ResourceType: ResourceTopic, ResourceName: &name, PatternType: ACLAny,
			Operation: ACLAny, Permission: ACLAny}}},
	}}
	got, err := DecodeEntry(en.EncodeAt(Format6))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Ops, en.Ops) {
		t.Fatalf("decoded %+v\nwant %+v", got.Ops, en.Ops)
	}
	s := securityState()
	s.Apply(1, got)
	snap := s.EncodeSnapshot()
	back, err := DecodeSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.EncodeSnapshot(), snap) {
		t.Fatal("snapshot does not round-trip")
	}
	if c, ok := back.ScramCredential("alice", ScramSHA256); !ok || !reflect.DeepEqual(c, testCredential(ScramSHA256, 9)) {
		t.Fatalf("credential after the snapshot: %+v, %v", c, ok)
	}
	if !reflect.DeepEqual(back.ACLs().Bindings(), s.ACLs().Bindings()) || len(back.ACLs().Bindings()) != 2 {
		t.Fatalf("bindings after the snapshot: %+v", back.ACLs().Bindings())
	}
	old := NewState()
	old.format = Format5
	if v := old.EncodeSnapshot()[4]; v != 10 {
		t.Fatalf("a Format5 state's snapshot is version %d, want 10 for Format5 builds", v)
	}
}
