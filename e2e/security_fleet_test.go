package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestSecureSharedFleet: three agents behind HAProxy at one shared address,
// on SASL_SSL. Agents reach each other over TLS (checking each other's
// certificate): the sequencer gets the others' appends, and group
// requests reach their coordinator, which authorizes them as the client's
// own principal, so a user without a group's ACL is refused
// GROUP_AUTHORIZATION_FAILED whichever agent it reached.
func TestSecureSharedFleet(t *testing.T) {
	const topic, records = "fleet", 300
	certs := harness.NewCerts(t)
	b := harness.FileBackend(t)
	agents, lb := harness.SharedFleet(t, 3, b, harness.AgentConfig{
		Env: []string{"BARGE_SASL_BOOTSTRAP_USER=" + adminUser + ":" + adminPass},
		Args: []string{"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey, "--tls-peer-ca-file", certs.CA,
			"--sasl-mechanisms", "SCRAM-SHA-512", "--authorizer", "acl", "--group-initial-rebalance-delay", "0s"}})
	tlsOpt := kgo.DialTLSConfig(certs.ClientTLS(t, false))
	adm := adminOf(t, lb.Addr(), tlsOpt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	addUser(t, adm, "bob", "bob-secret")
	addUser(t, adm, "eve", "eve-secret")
	addACLs(t, adm, kadm.NewACLs().Allow("User:bob", "User:eve").Topics(topic).Operations(kadm.OpRead, kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	addACLs(t, adm, kadm.NewACLs().Allow("User:bob").Groups("g-").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed))
	// Eve may find a group's coordinator (DESCRIBE), so her commits are
	// forwarded, but not commit (READ): the coordinator must refuse them.
	addACLs(t, adm, kadm.NewACLs().Allow("User:eve").Groups("g-").Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternPrefixed))

	bob := client(t, lb.Addr(), tlsOpt, scramLogin("bob", "bob-secret"))
	for i := range records {
		if err := bob.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatalf("producing through the load balancer: %v", err)
		}
	}
	// Six groups: their coordinators are spread over the three agents, so
	// most are reached by forwarding.
	for g := range 6 {
		group := fmt.Sprintf("g-%d", g)
		cons := client(t, lb.Addr(), tlsOpt, scramLogin("bob", "bob-secret"), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		for got := 0; got < records; {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("group %s read %d of %d", group, got, records)
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("group %s: %v", group, err) })
			got += fs.NumRecords()
		}
		if err := cons.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("group %s commit: %v", group, err)
		}
		cons.Close()

		eve := client(t, lb.Addr(), tlsOpt, scramLogin("eve", "eve-secret"), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.RequestRetries(1))
		if err := eve.CommitRecords(ctx, &kgo.Record{Topic: topic, Partition: 0, Offset: 1}); !errors.Is(err, kerr.GroupAuthorizationFailed) {
			t.Fatalf("eve committing for %s: %v, want GROUP_AUTHORIZATION_FAILED", group, err)
		}
		eve.Close()
	}
	forwarded := 0.0
	for _, a := range agents {
		forwarded += metricValue(t, a, `barge_forwarded_requests_total{outcome="ok"}`)
		if f := metricValue(t, a, `barge_forwarded_requests_total{outcome="failed"}`); f > 0 {
			t.Fatalf("agent %s failed to forward %v requests", a.Addr, f)
		}
	}
	if forwarded == 0 {
		t.Fatal("no group request was forwarded between the agents")
	}
	if au := auditSequencing(t, b.Open(t)); au.contributed == 0 {
		t.Fatal("no append reached the sequencer over the agents' TLS connections")
	} else {
		t.Logf("%v group requests forwarded and %d appends sequenced over TLS", forwarded, au.contributed)
	}
}
