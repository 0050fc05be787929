package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/bargehq/barge/internal/harness"
)

// The agents of these tests: SASL_PLAINTEXT with PLAIN and SCRAM-SHA-512,
// the bootstrap user admin, and the ACL authorizer.
const adminUser, adminPass = "admin", "admin-secret"

var secureArgs = []string{"--sasl-mechanisms", "PLAIN,SCRAM-SHA-512", "--authorizer", "acl"}

func secureAgent(t *testing.T, b harness.Backend, args ...string) *harness.Agent {
	t.Helper()
	return harness.StartAgent(t, harness.AgentConfig{Store: b.URL, Env: append(b.Env, "BARGE_SASL_BOOTSTRAP_USER="+adminUser+":"+adminPass),
		Args: append(append([]string{}, secureArgs...), args...)})
}

func scramLogin(user, pass string) kgo.Opt {
	return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())
}

func adminOf(t *testing.T, addr string, opts ...kgo.Opt) *kadm.Client {
	return kadm.NewClient(client(t, addr, append([]kgo.Opt{scramLogin(adminUser, adminPass)}, opts...)...))
}

func addUser(t *testing.T, adm *kadm.Client, user, pass string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Password: pass, Iterations: 4096}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("creating user %s: %v", user, err)
	}
}

func addACLs(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := adm.CreateACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("creating ACL %+v: %v", r, r.Err)
		}
	}
}

// kafkaConn is a Kafka connection without a client library, to see what
// the agent answers, or that it answers nothing.
type kafkaConn struct {
	net.Conn
	fmt  *kmsg.RequestFormatter
	corr int32
}

func dialKafka(t *testing.T, addr string) *kafkaConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &kafkaConn{Conn: c, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))}
}

// roundTrip sends req and reads its answer into resp (nil error), or
// reports how the connection ended.
func (c *kafkaConn) roundTrip(req kmsg.Request) (kmsg.Response, error) {
	c.corr++
	if _, err := c.Write(c.fmt.AppendRequest(nil, req, c.corr)); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body = body[4:] // the correlation id
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		body = body[1:] // no tags in our answers
	}
	return resp, resp.ReadFrom(body)
}

// closed reports whether the agent closed the connection: a read ends
// with EOF or a reset, not a timeout, within wait.
func closed(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func saslHandshake(t *testing.T, c *kafkaConn, mech string) {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech
	resp, err := c.roundTrip(hs)
	if err != nil || resp.(*kmsg.SASLHandshakeResponse).ErrorCode != 0 {
		t.Fatalf("SaslHandshake: %v %+v", err, resp)
	}
}

// TestSASLAuthenticationFailure (issue 14, acceptance 2): a wrong
// password gets SASL_AUTHENTICATION_FAILED and the connection closed; an
// unauthenticated client that sends Produce, Metadata or CreateTopics gets
// no answer, and nothing is created.
func TestSASLAuthenticationFailure(t *testing.T) {
	a := secureAgent(t, harness.FileBackend(t))
	adm := adminOf(t, a.Addr)
	addUser(t, adm, "alice", "alice-secret")

	c := dialKafka(t, a.Addr)
	saslHandshake(t, c, "PLAIN")
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, []byte("\x00alice\x00wrong")
	sent := time.Now()
	resp, err := c.roundTrip(auth)
	if waited := time.Since(sent); err == nil && waited < 100*time.Millisecond {
		t.Fatalf("the failure was answered after %v, before connection.failed.authentication.delay.ms (100 ms)", waited)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.(*kmsg.SASLAuthenticateResponse); r.ErrorCode != kerr.SaslAuthenticationFailed.Code || r.ErrorMessage == nil || strings.Contains(*r.ErrorMessage, "alice") {
		t.Fatalf("wrong password: code %d message %v; want SASL_AUTHENTICATION_FAILED with Kafka's message", r.ErrorCode, r.ErrorMessage)
	}
	if !closed(c, 10*time.Second) {
		t.Fatal("the connection stayed open after a failed authentication")
	}

	// franz-go reports the same, for SCRAM and PLAIN.
	for name, login := range map[string]kgo.Opt{
		"scram":  scramLogin("alice", "wrong"),
		"plain":  kgo.SASL(plain.Auth{User: "alice", Pass: "wrong"}.AsMechanism()),
		"nouser": scramLogin("mallory", "alice-secret"),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := kadm.NewClient(client(t, a.Addr, login, kgo.RequestRetries(0))).ListTopics(ctx)
		cancel()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}

	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 9
	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version = 5
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "sneaky", 1, 1
	create.Topics = append(create.Topics, ct)
	produce := kmsg.NewPtrProduceRequest()
	produce.Version, produce.Acks = 9, -1
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "sneaky"
	pt.Partitions = append(pt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: 0, Records: []byte{0}})
	produce.Topics = append(produce.Topics, pt)
	for _, req := range []kmsg.Request{meta, create, produce} {
		c := dialKafka(t, a.Addr)
		if resp, err := c.roundTrip(req); err == nil {
			t.Fatalf("%s before authentication was answered: %+v", kmsg.NameForKey(req.Key()), resp)
		}
		if !closed(c, 10*time.Second) {
			t.Fatalf("%s before authentication left the connection open", kmsg.NameForKey(req.Key()))
		}
	}
	// So is one after a handshake but before SaslAuthenticate.
	c = dialKafka(t, a.Addr)
	saslHandshake(t, c, "SCRAM-SHA-512")
	if _, err := c.roundTrip(create); err == nil {
		t.Fatal("CreateTopics between SaslHandshake and SaslAuthenticate was answered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil || topics.Has("sneaky") {
		t.Fatalf("topics %v, %v: the unauthenticated CreateTopics created one", topics.Names(), err)
	}
}

// TestACLReadOnlyPrincipal (issue 14, acceptance 3): a principal with
// only READ on topic a and on its group consumes a and nothing else;
// produce and CreateTopics are refused; and an ACL made through one agent
// is enforced by another agent on the bucket within its log poll.
func TestACLReadOnlyPrincipal(t *testing.T) {
	b := harness.FileBackend(t)
	a := secureAgent(t, b)
	adm := adminOf(t, a.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"a", "b"} {
		if r, err := adm.CreateTopic(ctx, 1, 1, nil, name); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
	}
	admin := client(t, a.Addr, scramLogin(adminUser, adminPass))
	for i := range 20 {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "a", Value: fmt.Appendf(nil, "a-%d", i)}, &kgo.Record{Topic: "b", Value: []byte("secret")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	addUser(t, adm, "reader", "reader-secret")
	addACLs(t, adm, kadm.NewACLs().Allow("User:reader").Topics("a").Groups("ga").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))

	reader := client(t, a.Addr, scramLogin("reader", "reader-secret"), kgo.ConsumerGroup("ga"), kgo.ConsumeTopics("a"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableIdempotentWrite(), kgo.RequestRetries(1),
		kgo.MaxVersions(kversion.V3_0_0())) // Fetch by topic name (v12), for fetchCode
	got := 0
	for got < 20 {
		fs := reader.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of a's 20 records", got)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != "a" || string(r.Value) != fmt.Sprintf("a-%d", got) {
				t.Fatalf("record %s %q at %d", r.Topic, r.Value, got)
			}
			got++
		})
	}
	if err := reader.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("committing as the group's reader: %v", err)
	}

	radm := kadm.NewClient(reader)
	topics, err := radm.ListTopics(ctx)
	if err != nil || topics.Has("b") || !topics.Has("a") {
		t.Fatalf("the reader sees %v (%v); want a only", topics.Names(), err)
	}
	// Metadata's authorized operations (v8+): READ, and the DESCRIBE it
	// implies.
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.IncludeTopicAuthorizedOperations = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("a")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, reader)
	if err != nil || len(mresp.Topics) != 1 || mresp.Topics[0].AuthorizedOperations != 1<<3|1<<8 {
		t.Fatalf("topic a's authorized operations: %v %+v; want READ and DESCRIBE (%b)", err, mresp, 1<<3|1<<8)
	}
	if err := reader.ProduceSync(ctx, &kgo.Record{Topic: "a", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to a: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	r, err := radm.CreateTopic(ctx, 1, 1, nil, "c")
	if err == nil {
		err = r.Err
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("CreateTopics: %v, want TOPIC_ or CLUSTER_AUTHORIZATION_FAILED", err)
	}
	if code := fetchCode(t, ctx, reader, "b"); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("fetching b: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	// A group it has no ACL for.
	other := client(t, a.Addr, scramLogin("reader", "reader-secret"), kgo.ConsumerGroup("gx"), kgo.ConsumeTopics("a"))
	if err := other.CommitRecords(ctx, &kgo.Record{Topic: "a", Partition: 0, Offset: 1}); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("committing for group gx: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}

	// An ACL made through A is enforced by B once B has read the entry.
	bAgent := secureAgent(t, b)
	onB := client(t, bAgent.Addr, scramLogin("reader", "reader-secret"), kgo.RequestRetries(1), kgo.MaxVersions(kversion.V3_0_0()))
	if fetchCode(t, ctx, onB, "b") != kerr.TopicAuthorizationFailed.Code {
		t.Fatal("agent B let the reader fetch b before any ACL allowed it")
	}
	addACLs(t, adm, kadm.NewACLs().Allow("User:reader").Topics("b").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	start := time.Now()
	harness.Eventually(t, 10*time.Second, func() bool { return fetchCode(t, ctx, onB, "b") == 0 },
		"agent B never enforced the ACL made through agent A")
	t.Logf("agent B enforced the new ACL %v after it was made on A", time.Since(start).Round(time.Millisecond))
}

// fetchCode fetches partition 0 of topic from offset 0 and returns its
// error code.
func fetchCode(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MaxBytes = 11, 10, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch answer %+v", resp)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// TestSCRAMCredentialsAcrossAgents (issue 14, acceptance 4): credentials
// made through one agent authenticate on another; deleting them ends new
// logins there.
func TestSCRAMCredentialsAcrossAgents(t *testing.T) {
	b := harness.FileBackend(t)
	a, other := secureAgent(t, b), secureAgent(t, b)
	adm := adminOf(t, a.Addr)
	login := func(addr, mech string) error {
		opt := scramLogin("carol", "carol-secret")
		if mech == "plain" {
			opt = kgo.SASL(plain.Auth{User: "carol", Pass: "carol-secret"}.AsMechanism())
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), opt, kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).ListTopics(ctx)
		return err
	}
	if err := login(other.Addr, "scram"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("carol before she exists: %v", err)
	}
	addUser(t, adm, "carol", "carol-secret")
	harness.Eventually(t, 10*time.Second, func() bool { return login(other.Addr, "scram") == nil },
		"credentials made through agent A never authenticated on agent B")
	if err := login(other.Addr, "plain"); err != nil {
		t.Fatalf("PLAIN against the same SCRAM credential: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		return errors.Is(login(other.Addr, "scram"), kerr.SaslAuthenticationFailed) && errors.Is(login(other.Addr, "plain"), kerr.SaslAuthenticationFailed)
	}, "deleted credentials still log in on agent B")
	// Deleting what is gone is Kafka's RESOURCE_NOT_FOUND.
	res, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil)
	if err != nil || !errors.Is(res.Error(), kerr.ResourceNotFound) {
		t.Fatalf("deleting twice: %v %v, want RESOURCE_NOT_FOUND", err, res.Error())
	}
}

// TestConnectionFloodWithoutAuthentication (issue 14, acceptance 5): a
// client opening thousands of connections and never authenticating holds
// at most max.connections.per.ip of them, each for the authentication
// deadline; clients elsewhere keep working, and the flooding address can
// log in afterwards.
func TestConnectionFloodWithoutAuthentication(t *testing.T) {
	const flood, perIP = 3000, 100
	a := secureAgent(t, harness.FileBackend(t), "--max-connections-per-ip", fmt.Sprint(perIP), "--authentication-timeout", "8s")
	from2 := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
	conns := make([]net.Conn, 0, flood)
	for range flood {
		c, err := from2.Dial("tcp", a.Addr)
		if err != nil {
			t.Fatalf("dialing from 127.0.0.2 after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})

	// Meanwhile a client from 127.0.0.1 logs in, produces and consumes,
	// while the flood holds its address's every slot.
	if held := metricValue(t, a, "barge_connections"); held < perIP {
		t.Fatalf("%v connections open after the flood; want its %d", held, perIP)
	}
	adm := adminOf(t, a.Addr)
	addUser(t, adm, "worker", "worker-secret")
	addACLs(t, adm, kadm.NewACLs().Allow("User:worker").Topics("work").Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternLiteral))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "work"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	worker := client(t, a.Addr, scramLogin("worker", "worker-secret"), kgo.ConsumeTopics("work"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for i := range 50 {
		if err := worker.ProduceSync(ctx, &kgo.Record{Topic: "work", Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatalf("producing during the flood: %v", err)
		}
	}
	for got := 0; got < 50; {
		fs := worker.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 50 during the flood", got)
		}
		got += fs.NumRecords()
	}

	// Every flooding connection ends: those over the cap at once, the
	// others at the authentication deadline.
	var open atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !closed(c, 30*time.Second) {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := open.Load(); n > 0 {
		t.Fatalf("%d of %d unauthenticated connections were still open 30 s later", n, flood)
	}
	refused, timedOut := metricValue(t, a, `barge_connections_refused_total{limit="max.connections.per.ip"}`), metricValue(t, a, `barge_authentication_failures_total{reason="timeout"}`)
	if refused < flood-perIP || timedOut < 1 || timedOut > perIP {
		t.Fatalf("refused %v at accept and %v at the deadline; want at least %d refused and at most %d timed out", refused, timedOut, flood-perIP, perIP)
	}

	// The flooding address may log in once it stops.
	cl := client(t, a.Addr, scramLogin("worker", "worker-secret"), kgo.Dialer(from2.DialContext))
	if _, err := kadm.NewClient(cl).ListTopics(ctx); err != nil {
		t.Fatalf("logging in from 127.0.0.2 after the flood: %v", err)
	}
	if log := a.Log(); strings.Contains(log, "panic") {
		t.Fatalf("the agent panicked:\n%s", log)
	}
}

// metricValue reads one sample from the agent's /metrics (0: none).
func metricValue(t *testing.T, a *harness.Agent, series string) float64 {
	t.Helper()
	return scrape(t, a.HTTPAddr)[series]
}

// TestSASLReauthentication: with connections.max.reauth.ms, a client is
// told its session lifetime (KIP-368); franz-go re-authenticates on the
// same connection and keeps working past it, and a connection that sends
// a request after its session ended is closed.
func TestSASLReauthentication(t *testing.T) {
	a := secureAgent(t, harness.FileBackend(t), "--connections-max-reauth", "1s")
	c := dialKafka(t, a.Addr)
	saslHandshake(t, c, "PLAIN")
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 1, []byte("\x00"+adminUser+"\x00"+adminPass)
	resp, err := c.roundTrip(auth)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.(*kmsg.SASLAuthenticateResponse); r.ErrorCode != 0 || r.SessionLifetimeMillis != 1000 {
		t.Fatalf("SaslAuthenticate: code %d, session lifetime %d; want 0 and 1000", r.ErrorCode, r.SessionLifetimeMillis)
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 9
	if _, err := c.roundTrip(meta); err != nil {
		t.Fatalf("Metadata within the session: %v", err)
	}
	// Re-authenticating on the connection renews the session.
	saslHandshake(t, c, "PLAIN")
	if resp, err := c.roundTrip(auth); err != nil || resp.(*kmsg.SASLAuthenticateResponse).ErrorCode != 0 {
		t.Fatalf("re-authentication: %v %+v", err, resp)
	}
	// Requests are served until the session ends; the first after it
	// closes the connection.
	renewed := time.Now()
	harness.Eventually(t, 10*time.Second, func() bool {
		_, err := c.roundTrip(meta)
		if err != nil && time.Since(renewed) < 900*time.Millisecond {
			t.Fatalf("closed %v into a one-second session: %v", time.Since(renewed), err)
		}
		return err != nil
	}, "the connection outlived its session")

	cl := client(t, a.Addr, scramLogin(adminUser, adminPass))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "reauth"); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	end := time.Now().Add(3500 * time.Millisecond)
	n := 0
	for time.Now().Before(end) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "reauth", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("producing across re-authentications, record %d: %v", n, err)
		}
		n++
	}
	if reauths := metricValue(t, a, `barge_authentication_failures_total{reason="failed"}`); reauths != 0 {
		t.Fatalf("%v failed authentications while franz-go re-authenticated", reauths)
	}
	if os.Getenv("BARGE_DEBUG") != "" {
		t.Logf("produced %d records across about three sessions", n)
	}
}

// TestTLSCertificateReload: the listener serves a new certificate once its
// files are rewritten, without a restart, and connections keep working.
func TestTLSCertificateReload(t *testing.T) {
	certs := harness.NewCerts(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	copyFile(t, certs.ServerCert, cert)
	copyFile(t, certs.ServerKey, key)
	a := harness.StartAgent(t, harness.AgentConfig{Args: []string{"--tls-cert-file", cert, "--tls-key-file", key}})
	conf := certs.ClientTLS(t, false)
	served := func() []byte {
		c, err := tls.Dial("tcp", a.Addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	before := served()
	next := harness.NewCerts(t) // another CA: the client must trust it too
	copyFile(t, next.ServerKey, key+".new")
	copyFile(t, next.ServerCert, cert+".new")
	// The key first, then the certificate, each renamed into place: the
	// agent may see the new key with the old certificate for a moment,
	// which fails to load and keeps the old pair.
	os.Rename(key+".new", key)
	os.Rename(cert+".new", cert)
	pool := conf.RootCAs.Clone()
	pem, _ := os.ReadFile(next.CA)
	pool.AppendCertsFromPEM(pem)
	conf.RootCAs = pool
	harness.Eventually(t, 10*time.Second, func() bool { return !bytes.Equal(served(), before) },
		"the agent never served the rewritten certificate")
	cl := client(t, a.Addr, kgo.DialTLSConfig(conf))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).ListTopics(ctx); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
