package meta

import (
	"errors"
	"slices"
	"sort"
	"strings"
)

// Security (Format6): the SCRAM credentials clients log in with and the ACL
// bindings requests are authorized against. They live in the log, like
// topics, so that every agent of a fleet authenticates and authorizes by
// the same rules within one poll of a change (pkg/security enforces them).
//
// A credential is what RFC 5802 has a server keep: the salt, the iteration
// count, StoredKey and ServerKey, never the password. ACL bindings are
// Kafka's: a resource pattern (type, name, literal or prefixed) and an
// access-control entry (principal, host, operation, allow or deny). The
// state keeps them as an immutable, sorted and duplicate-free set that each
// change replaces, so a reader may hold one without a lock and a pointer
// names one version of the rules.

// ScramMechanism is a SCRAM mechanism by Kafka's code in
// AlterUserScramCredentials.
type ScramMechanism int8

// The SCRAM mechanisms.
const (
	ScramSHA256 ScramMechanism = 1
	ScramSHA512 ScramMechanism = 2
)

// ScramKeyLen is the length of StoredKey and ServerKey for mechanism m (0
// for an unknown mechanism).
func ScramKeyLen(m ScramMechanism) int {
	switch m {
	case ScramSHA256:
		return 32
	case ScramSHA512:
		return 64
	}
	return 0
}

// The iteration bounds Kafka accepts for a SCRAM credential.
const (
	ScramMinIterations = 4096
	ScramMaxIterations = 16384
)

// ScramCredential is a user's credential for one mechanism.
type ScramCredential struct {
	Iterations           int32
	Salt                 []byte
	StoredKey, ServerKey []byte
}

// SetScramCredential creates or replaces User's credential for Mechanism.
type SetScramCredential struct {
	User       string
	Mechanism  ScramMechanism
	Credential ScramCredential
}

// DeleteScramCredential removes User's credential for Mechanism.
type DeleteScramCredential struct {
	User      string
	Mechanism ScramMechanism
}

// The codes of Kafka's ACL enums (org.apache.kafka.common.resource and
// .acl), as the ACL APIs carry them.
const (
	ACLAny = 1 // the ANY of every enum, in filters

	ResourceTopic           = 2
	ResourceGroup           = 3
	ResourceCluster         = 4
	ResourceTransactionalID = 5
	ResourceDelegationToken = 6
	ResourceUser            = 7

	PatternMatch    = 2 // filters only
	PatternLiteral  = 3
	PatternPrefixed = 4

	OpAll             = 2
	OpRead            = 3
	OpWrite           = 4
	OpCreate          = 5
	OpDelete          = 6
	OpAlter           = 7
	OpDescribe        = 8
	OpClusterAction   = 9
	OpDescribeConfigs = 10
	OpAlterConfigs    = 11
	OpIdempotentWrite = 12
	OpCreateTokens    = 13
	OpDescribeTokens  = 14

	PermissionDeny  = 2
	PermissionAllow = 3
)

// ClusterResourceName is the one name a cluster resource has.
const ClusterResourceName = "kafka-cluster"

// WildcardResource, as a literal name, matches every resource of its type;
// as a principal or host ("User:*", "*"), every one.
const (
	WildcardResource  = "*"
	WildcardPrincipal = "User:*"
	WildcardHost      = "*"
)

// ACL is one ACL binding.
type ACL struct {
	ResourceType int8
	ResourceName string
	PatternType  int8
	Principal    string // "User:alice"
	Host         string // "*" or an IP address
	Operation    int8
	Permission   int8
}

// ACLFilter selects bindings, as DescribeAcls and DeleteAcls do: ACLAny in
// an enum, or a nil string, matches anything; PatternMatch matches the
// bindings that would apply to the named resource.
type ACLFilter struct {
	ResourceType int8
	ResourceName *string
	PatternType  int8
	Principal    *string
	Host         *string
	Operation    int8
	Permission   int8
}

// CreateACLs adds bindings; one already present is left as it is.
type CreateACLs struct{ ACLs []ACL }

// DeleteACLs removes every binding that matches one of the filters; the
// result lists, per filter, the bindings it matched.
type DeleteACLs struct{ Filters []ACLFilter }

func (SetScramCredential) kind() uint8    { return kindSetScramCredential }
func (DeleteScramCredential) kind() uint8 { return kindDeleteScramCredential }
func (CreateACLs) kind() uint8            { return kindCreateACLs }
func (DeleteACLs) kind() uint8            { return kindDeleteACLs }

// Bounds on what the log keeps, so that no request can grow every agent's
// state without limit.
const (
	MaxScramCredentials = 100_000
	MaxACLs             = 100_000
	maxSecurityName     = 1024 // a user, principal, host or resource name
)

// The errors of the security ops.
var (
	ErrBadCredential     = errors.New("meta: unacceptable SCRAM credential")
	ErrNoCredential      = errors.New("meta: no such SCRAM credential")
	ErrTooManyCredential = errors.New("meta: too many SCRAM credentials")
	ErrBadACL            = errors.New("meta: invalid ACL binding")
	ErrTooManyACLs       = errors.New("meta: too many ACL bindings")
)

// CheckScramCredential reports whether a credential is one the log may
// keep.
func CheckScramCredential(op SetScramCredential) error {
	n := ScramKeyLen(op.Mechanism)
	c := op.Credential
	switch {
	case op.User == "" || len(op.User) > maxSecurityName:
		return errors.Join(ErrBadCredential, errors.New("the user name must have 1 to 1024 bytes"))
	case n == 0:
		return errors.Join(ErrBadCredential, errors.New("unknown SCRAM mechanism"))
	case c.Iterations < ScramMinIterations || c.Iterations > ScramMaxIterations:
		return errors.Join(ErrBadCredential, errors.New("iterations must be between 4096 and 16384"))
	case len(c.Salt) == 0 || len(c.Salt) > 1024 || len(c.StoredKey) != n || len(c.ServerKey) != n:
		return errors.Join(ErrBadCredential, errors.New("bad salt or key lengths"))
	}
	return nil
}

// CheckACL reports whether a binding is one Kafka would accept.
func CheckACL(a ACL) error {
	bad := func(why string) error { return errors.Join(ErrBadACL, errors.New(why)) }
	switch {
	case a.ResourceType < ResourceTopic || a.ResourceType > ResourceUser:
		return bad("unknown resource type")
	case a.PatternType != PatternLiteral && a.PatternType != PatternPrefixed:
		return bad("the pattern type must be LITERAL or PREFIXED")
	case a.ResourceName == "" || len(a.ResourceName) > maxSecurityName:
		return bad("the resource name must have 1 to 1024 bytes")
	case a.ResourceType == ResourceCluster && (a.ResourceName != ClusterResourceName || a.PatternType != PatternLiteral):
		return bad("a cluster resource is the literal kafka-cluster")
	case a.PatternType == PatternPrefixed && a.ResourceName == WildcardResource:
		return bad("a prefixed pattern may not be the wildcard")
	case !validPrincipal(a.Principal):
		return bad("the principal must be Type:name, such as User:alice")
	case a.Host == "" || len(a.Host) > maxSecurityName:
		return bad("the host must be * or an address")
	case a.Operation < OpAll || a.Operation > OpDescribeTokens:
		return bad("unknown operation")
	case a.Permission != PermissionDeny && a.Permission != PermissionAllow:
		return bad("the permission must be ALLOW or DENY")
	}
	return nil
}

func validPrincipal(p string) bool {
	typ, name, ok := strings.Cut(p, ":")
	return ok && typ != "" && name != "" && len(p) <= maxSecurityName
}

// Matches reports whether the filter selects binding a, as Kafka's
// AclBindingFilter.matches does.
func (f ACLFilter) Matches(a ACL) bool {
	if f.ResourceType != ACLAny && f.ResourceType != a.ResourceType {
		return false
	}
	if f.PatternType != ACLAny && f.PatternType != PatternMatch && f.PatternType != a.PatternType {
		return false
	}
	if f.ResourceName != nil {
		name := *f.ResourceName
		switch {
		case f.PatternType == ACLAny || f.PatternType == a.PatternType:
			if name != a.ResourceName {
				return false
			}
		case a.PatternType == PatternLiteral:
			if name != a.ResourceName && a.ResourceName != WildcardResource {
				return false
			}
		case a.PatternType == PatternPrefixed:
			if !strings.HasPrefix(name, a.ResourceName) {
				return false
			}
		default:
			return false
		}
	}
	return (f.Principal == nil || *f.Principal == a.Principal) &&
		(f.Host == nil || *f.Host == a.Host) &&
		(f.Operation == ACLAny || f.Operation == a.Operation) &&
		(f.Permission == ACLAny || f.Permission == a.Permission)
}

// ACLs is one version of the bindings: immutable, sorted, no duplicates.
type ACLs struct{ list []ACL }

// Bindings returns the bindings, which the caller must not change.
func (a *ACLs) Bindings() []ACL {
	if a == nil {
		return nil
	}
	return a.list
}

func compareACL(a, b ACL) int {
	if c := strings.Compare(a.ResourceName, b.ResourceName); c != 0 {
		return c
	}
	if c := strings.Compare(a.Principal, b.Principal); c != 0 {
		return c
	}
	if c := strings.Compare(a.Host, b.Host); c != 0 {
		return c
	}
	for _, d := range [...][2]int8{
		{a.ResourceType, b.ResourceType}, {a.PatternType, b.PatternType},
		{a.Operation, b.Operation}, {a.Permission, b.Permission},
	} {
		if d[0] != d[1] {
			return int(d[0]) - int(d[1])
		}
	}
	return 0
}

// ACLs returns the current bindings (nil: none).
func (s *State) ACLs() *ACLs { return s.acls }

// ScramCredential returns user's credential for mechanism m.
func (s *State) ScramCredential(user string, m ScramMechanism) (ScramCredential, bool) {
	c, ok := s.scram[scramKey{user, m}]
	return c, ok
}

// ScramUser is one user's mechanisms and their iteration counts.
type ScramUser struct {
	Name       string
	Mechanisms []ScramMechanism // ascending
	Iterations []int32          // Mechanisms' iterations
}

// ScramUsers lists the users that have credentials, by name.
func (s *State) ScramUsers() []ScramUser {
	keys := make([]scramKey, 0, len(s.scram))
	for k := range s.scram {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].user != keys[j].user {
			return keys[i].user < keys[j].user
		}
		return keys[i].mech < keys[j].mech
	})
	var out []ScramUser
	for _, k := range keys {
		if len(out) == 0 || out[len(out)-1].Name != k.user {
			out = append(out, ScramUser{Name: k.user})
		}
		u := &out[len(out)-1]
		u.Mechanisms = append(u.Mechanisms, k.mech)
		u.Iterations = append(u.Iterations, s.scram[k].Iterations)
	}
	return out
}

type scramKey struct {
	user string
	mech ScramMechanism
}

func (s *State) setScramCredential(op SetScramCredential) error {
	if err := CheckScramCredential(op); err != nil {
		return err
	}
	k := scramKey{op.User, op.Mechanism}
	if _, ok := s.scram[k]; !ok && len(s.scram) >= MaxScramCredentials {
		return ErrTooManyCredential
	}
	c := op.Credential
	// Copy: the op's slices belong to the caller (or the entry).
	s.scram[k] = ScramCredential{Iterations: c.Iterations, Salt: slices.Clone(c.Salt),
		StoredKey: slices.Clone(c.StoredKey), ServerKey: slices.Clone(c.ServerKey)}
	return nil
}

func (s *State) deleteScramCredential(op DeleteScramCredential) error {
	k := scramKey{op.User, op.Mechanism}
	if _, ok := s.scram[k]; !ok {
		return ErrNoCredential
	}
	delete(s.scram, k)
	return nil
}

// createACLs adds op's valid bindings, reporting an error per binding. The
// new ones are appended, then the list sorted and compacted once, so one
// large CreateACLs costs n log n on every agent, not n².
func (s *State) createACLs(op CreateACLs) []error {
	errs := make([]error, len(op.ACLs))
	old := s.acls.Bindings()
	list := slices.Clone(old)
	for i, a := range op.ACLs {
		if errs[i] = CheckACL(a); errs[i] == nil {
			list = append(list, a)
		}
	}
	if len(list) == len(old) {
		return errs
	}
	slices.SortStableFunc(list, compareACL)
	list = slices.CompactFunc(list, func(a, b ACL) bool { return compareACL(a, b) == 0 })
	if len(list) > MaxACLs {
		// Refuse the op's new bindings whole: which of them would fit
		// is not worth the ambiguity.
		for i := range errs {
			if errs[i] == nil {
				if _, found := slices.BinarySearchFunc(old, op.ACLs[i], compareACL); !found {
					errs[i] = ErrTooManyACLs
				}
			}
		}
		return errs
	}
	if len(list) != len(old) {
		s.acls = &ACLs{list: list}
	}
	return errs
}

// deleteACLs removes what op's filters match and returns, per filter, the
// bindings it matched.
func (s *State) deleteACLs(op DeleteACLs) [][]ACL {
	out := make([][]ACL, len(op.Filters))
	old := s.acls.Bindings()
	keep := make([]ACL, 0, len(old))
	for _, a := range old {
		hit := false
		for i, f := range op.Filters {
			if f.Matches(a) {
				out[i] = append(out[i], a)
				hit = true
			}
		}
		if !hit {
			keep = append(keep, a)
		}
	}
	if len(keep) != len(old) {
		s.acls = nil
		if len(keep) > 0 {
			s.acls = &ACLs{list: keep}
		}
	}
	return out
}

func (op SetScramCredential) encode(e *encoder) {
	e.str(op.User)
	e.u8(uint8(op.Mechanism))
	e.svar(int64(op.Credential.Iterations))
	e.bytes(op.Credential.Salt)
	e.bytes(op.Credential.StoredKey)
	e.bytes(op.Credential.ServerKey)
}

func decodeSetScramCredential(d *decoder) Op {
	op := SetScramCredential{User: d.str(), Mechanism: ScramMechanism(d.u8())}
	op.Credential.Iterations = int32(d.svar())
	op.Credential.Salt, op.Credential.StoredKey, op.Credential.ServerKey = d.bytes(), d.bytes(), d.bytes()
	return op
}

func (op DeleteScramCredential) encode(e *encoder) {
	e.str(op.User)
	e.u8(uint8(op.Mechanism))
}

func decodeDeleteScramCredential(d *decoder) Op {
	return DeleteScramCredential{User: d.str(), Mechanism: ScramMechanism(d.u8())}
}

func (e *encoder) acl(a ACL) {
	e.b = append(e.b, uint8(a.ResourceType), uint8(a.PatternType), uint8(a.Operation), uint8(a.Permission))
	e.str(a.ResourceName)
	e.str(a.Principal)
	e.str(a.Host)
}

func (d *decoder) acl() ACL {
	a := ACL{ResourceType: int8(d.u8()), PatternType: int8(d.u8()), Operation: int8(d.u8()), Permission: int8(d.u8())}
	a.ResourceName, a.Principal, a.Host = d.str(), d.str(), d.str()
	return a
}

func (op CreateACLs) encode(e *encoder) {
	e.uvar(uint64(len(op.ACLs)))
	for _, a := range op.ACLs {
		e.acl(a)
	}
}

func decodeCreateACLs(d *decoder) Op {
	n := d.count(7)
	op := CreateACLs{ACLs: make([]ACL, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		op.ACLs = append(op.ACLs, d.acl())
	}
	return op
}

// optStr writes a nullable string.
func (e *encoder) optStr(s *string) {
	e.bool(s != nil)
	if s != nil {
		e.str(*s)
	}
}

func (d *decoder) optStr() *string {
	if !d.bool() {
		return nil
	}
	s := d.str()
	return &s
}

func (op DeleteACLs) encode(e *encoder) {
	e.uvar(uint64(len(op.Filters)))
	for _, f := range op.Filters {
		e.b = append(e.b, uint8(f.ResourceType), uint8(f.PatternType), uint8(f.Operation), uint8(f.Permission))
		e.optStr(f.ResourceName)
		e.optStr(f.Principal)
		e.optStr(f.Host)
	}
}

func decodeDeleteACLs(d *decoder) Op {
	n := d.count(7)
	op := DeleteACLs{Filters: make([]ACLFilter, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		f := ACLFilter{ResourceType: int8(d.u8()), PatternType: int8(d.u8()), Operation: int8(d.u8()), Permission: int8(d.u8())}
		f.ResourceName, f.Principal, f.Host = d.optStr(), d.optStr(), d.optStr()
		op.Filters = append(op.Filters, f)
	}
	return op
}

// encodeSecurity writes the snapshot's security section (version 11): the
// credentials by user and mechanism, then the sorted bindings.
func (s *State) encodeSecurity(e *encoder) {
	users := s.ScramUsers()
	e.uvar(uint64(len(s.scram)))
	for _, u := range users {
		for _, m := range u.Mechanisms {
			SetScramCredential{User: u.Name, Mechanism: m, Credential: s.scram[scramKey{u.Name, m}]}.encode(e)
		}
	}
	CreateACLs{ACLs: s.acls.Bindings()}.encode(e)
}

func (s *State) decodeSecurity(d *decoder) {
	n := d.count(6)
	for i := 0; i < n && d.err == nil; i++ {
		op := decodeSetScramCredential(d).(SetScramCredential)
		if d.err == nil && s.setScramCredential(op) != nil {
			d.fail("SCRAM credential")
		}
	}
	op := decodeCreateACLs(d).(CreateACLs)
	if d.err != nil {
		return
	}
	for _, err := range s.createACLs(op) {
		if err != nil {
			d.fail("ACL binding")
			return
		}
	}
}
