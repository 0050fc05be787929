package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/security"
)

// DescribeUserScramCredentials and AlterUserScramCredentials, version 0
// (KIP-554). The credentials live in the metadata log
// (meta.SetScramCredential): made through one agent, they authenticate on
// every agent once it has read the entry. The client sends the salted
// password, never the password; the log keeps only StoredKey and ServerKey
// derived from it. Describing needs DESCRIBE on the cluster, altering
// ALTER; the errors are Kafka's (RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE,
// UNACCEPTABLE_CREDENTIAL, UNSUPPORTED_SASL_MECHANISM).
func init() {
	register(50, 0, 0, deferred(handleDescribeUserSCRAMCredentials))
	register(51, 0, 0, twoPhase(handleAlterUserSCRAMCredentials))
}

func handleDescribeUserSCRAMCredentials(ctx context.Context, s *Server, req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !s.authzOf(ctx).cluster(meta.OpDescribe) {
		resp.ErrorCode = errClusterAuth.Code
		return resp
	}
	var users []meta.ScramUser
	s.log.View(func(st *meta.State) { users = st.ScramUsers() })
	byName := map[string]meta.ScramUser{}
	for _, u := range users {
		byName[u.Name] = u
	}
	result := func(u meta.ScramUser) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u.Name
		for i, m := range u.Mechanisms {
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = int8(m), u.Iterations[i]
			r.CredentialInfos = append(r.CredentialInfos, ci)
		}
		return r
	}
	if len(req.Users) == 0 {
		for _, u := range users {
			resp.Results = append(resp.Results, result(u))
		}
		return resp
	}
	count := map[string]int{}
	for _, ru := range req.Users {
		count[ru.Name]++
	}
	for _, ru := range req.Users {
		u, ok := byName[ru.Name]
		r := result(u)
		r.User = ru.Name
		switch {
		case count[ru.Name] > 1:
			r.ErrorCode, r.ErrorMessage = kerr.DuplicateResource.Code, strp("Cannot describe SCRAM credentials for the same user twice in a single request: "+ru.Name)
			r.CredentialInfos = nil
		case !ok:
			r.ErrorCode, r.ErrorMessage = kerr.ResourceNotFound.Code, strp("Attempt to describe a user credential that does not exist: "+ru.Name)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

func handleAlterUserSCRAMCredentials(ctx context.Context, s *Server, req *kmsg.AlterUserSCRAMCredentialsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	// One result per user, in the order the users first appear.
	at := map[string]int{}
	result := func(user string) *kmsg.AlterUserSCRAMCredentialsResponseResult {
		i, ok := at[user]
		if !ok {
			i = len(resp.Results)
			at[user] = i
			r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			r.User = user
			resp.Results = append(resp.Results, r)
		}
		return &resp.Results[i]
	}
	fail := func(user string, code int16, msg string) {
		if r := result(user); r.ErrorCode == 0 {
			r.ErrorCode, r.ErrorMessage = code, strp(msg)
		}
	}
	allowed := s.authzOf(ctx).cluster(meta.OpAlter)
	type change struct {
		user string
		mech int8
	}
	seen := map[change]int{}
	for _, d := range req.Deletions {
		seen[change{d.Name, d.Mechanism}]++
	}
	for _, u := range req.Upsertions {
		seen[change{u.Name, u.Mechanism}]++
	}
	check := func(user string, mech int8) bool {
		switch {
		case !allowed:
			fail(user, errClusterAuth.Code, "Authorization failed.")
		case user == "":
			fail(user, kerr.UnacceptableCredential.Code, "Username must not be empty")
		case meta.ScramKeyLen(meta.ScramMechanism(mech)) == 0:
			fail(user, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		case seen[change{user, mech}] > 1:
			fail(user, kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		default:
			result(user)
			return true
		}
		return false
	}
	var ops []meta.Op
	var users []string // of each op
	var known map[change]bool
	s.log.View(func(st *meta.State) {
		known = map[change]bool{}
		for _, d := range req.Deletions {
			_, ok := st.ScramCredential(d.Name, meta.ScramMechanism(d.Mechanism))
			known[change{d.Name, d.Mechanism}] = ok
		}
	})
	for _, d := range req.Deletions {
		if !check(d.Name, d.Mechanism) {
			continue
		}
		if !known[change{d.Name, d.Mechanism}] {
			fail(d.Name, kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist")
			continue
		}
		ops = append(ops, meta.DeleteScramCredential{User: d.Name, Mechanism: meta.ScramMechanism(d.Mechanism)})
		users = append(users, d.Name)
	}
	for _, u := range req.Upsertions {
		if !check(u.Name, u.Mechanism) {
			continue
		}
		m := meta.ScramMechanism(u.Mechanism)
		if u.Iterations < meta.ScramMinIterations || u.Iterations > meta.ScramMaxIterations {
			fail(u.Name, kerr.UnacceptableCredential.Code, "Iterations must be between 4096 and 16384")
			continue
		}
		c, err := security.CredentialFromSaltedPassword(m, u.SaltedPassword, u.Salt, int(u.Iterations))
		if err == nil {
			err = meta.CheckScramCredential(meta.SetScramCredential{User: u.Name, Mechanism: m, Credential: c})
		}
		if err != nil {
			fail(u.Name, kerr.UnacceptableCredential.Code, err.Error())
			continue
		}
		ops = append(ops, meta.SetScramCredential{User: u.Name, Mechanism: m, Credential: c})
		users = append(users, u.Name)
	}
	// A user with one failed change keeps none of them, as in Kafka.
	kept := ops[:0]
	var keptUsers []string
	for i, op := range ops {
		if result(users[i]).ErrorCode == 0 {
			kept = append(kept, op)
			keptUsers = append(keptUsers, users[i])
		}
	}
	p := s.submit(ctx, kept...)
	return func() kmsg.Response {
		settle(ctx, p, len(kept), func(k int, _ meta.Result, err error) {
			if err != nil {
				fail(keptUsers[k], errorCode(err), err.Error())
			}
		})
		return resp
	}
}
