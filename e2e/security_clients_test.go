package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/bargehq/barge/internal/harness"
)

// A listener of TestSecureClients: one agent, and how each client reaches
// it.
type secureListener struct {
	name  string
	agent *harness.Agent
	adm   *kadm.Client // to create topics and read commits
	// kafka is the librdkafka properties (kcat's -X, confluent-kafka's
	// config); franz the franz-go options; js kafkajs' ssl and sasl.
	kafka map[string]string
	franz []kgo.Opt
	js    map[string]any
	// sarama sets up sarama's TLS and SASL (nil: sarama is not run).
	sarama func(*sarama.Config)
}

// TestSecureClients (issue 14, acceptance 1): kcat and
// confluent-kafka-python (librdkafka), franz-go, sarama and kafkajs
// produce, consume and run a consumer group as user alice over SASL_SSL
// with SCRAM-SHA-512 and over SASL_PLAINTEXT with PLAIN; kcat and franz-go
// do over mutual TLS with a client certificate. ACLs let alice and the
// certificate's principal use only topics and groups named sec-*.
func TestSecureClients(t *testing.T) {
	const alicePass = "alice-secret"
	certs := harness.NewCerts(t)
	// No initial rebalance delay: each client runs a group of one.
	tlsArgs := []string{"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey, "--group-initial-rebalance-delay", "0s"}
	// Each listener is its own fleet, on its own bucket: agents of one
	// fleet advertise each other to clients, so they share one listener
	// configuration.
	grant := func(adm *kadm.Client, principal string) {
		addACLs(t, adm, kadm.NewACLs().Allow(principal).Topics("sec-").Groups("sec-").
			Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe, kadm.OpCreate).ResourcePatternType(kadm.ACLPatternPrefixed))
	}
	sslAgent := secureAgent(t, harness.FileBackend(t), append([]string{"--sasl-mechanisms", "SCRAM-SHA-512"}, tlsArgs...)...)
	sslAdmin := adminOf(t, sslAgent.Addr, kgo.DialTLSConfig(certs.ClientTLS(t, false)))
	plainAgent := secureAgent(t, harness.FileBackend(t), "--group-initial-rebalance-delay", "0s")
	plainAdmin := adminOf(t, plainAgent.Addr)
	for _, adm := range []*kadm.Client{sslAdmin, plainAdmin} {
		addUser(t, adm, "alice", alicePass)
		grant(adm, "User:alice")
	}
	// The mutual-TLS fleet has no SASL user to make ACLs with: an agent
	// with SASL makes them for the certificate's principal, and leaves
	// before the mutual-TLS agent starts on the bucket.
	mb := harness.FileBackend(t)
	setup := secureAgent(t, mb)
	grant(adminOf(t, setup.Addr), harness.ClientPrincipal)
	if err := setup.Stop(); err != nil {
		t.Fatal(err)
	}
	mtlsAgent := harness.StartAgent(t, harness.AgentConfig{Store: mb.URL, Env: mb.Env,
		Args: append([]string{"--authorizer", "acl", "--tls-client-ca-file", certs.CA}, tlsArgs...)})
	mtlsAdmin := kadm.NewClient(client(t, mtlsAgent.Addr, kgo.DialTLSConfig(certs.ClientTLS(t, true))))

	listeners := []secureListener{
		{
			name: "sasl_ssl", agent: sslAgent, adm: sslAdmin,
			kafka: map[string]string{"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
				"sasl.username": "alice", "sasl.password": alicePass, "ssl.ca.location": certs.CA},
			franz: []kgo.Opt{kgo.DialTLSConfig(certs.ClientTLS(t, false)), scramLogin("alice", alicePass)},
			js: map[string]any{"ssl": map[string]string{"ca": certs.CA},
				"sasl": map[string]string{"mechanism": "scram-sha-512", "username": "alice", "password": alicePass}},
			sarama: func(c *sarama.Config) {
				c.Net.TLS.Enable, c.Net.TLS.Config = true, certs.ClientTLS(t, false)
				c.Net.SASL.Enable, c.Net.SASL.User, c.Net.SASL.Password = true, "alice", alicePass
				c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
				c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &franzSCRAM{} }
			},
		},
		{
			name: "sasl_plaintext", agent: plainAgent, adm: plainAdmin,
			kafka: map[string]string{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
				"sasl.username": "alice", "sasl.password": alicePass},
			franz: []kgo.Opt{kgo.SASL(plain.Auth{User: "alice", Pass: alicePass}.AsMechanism())},
			js:    map[string]any{"sasl": map[string]string{"mechanism": "plain", "username": "alice", "password": alicePass}},
			sarama: func(c *sarama.Config) {
				c.Net.SASL.Enable, c.Net.SASL.User, c.Net.SASL.Password = true, "alice", alicePass
				c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
			},
		},
		{
			name: "mtls", agent: mtlsAgent, adm: mtlsAdmin,
			kafka: map[string]string{"security.protocol": "SSL", "ssl.ca.location": certs.CA,
				"ssl.certificate.location": certs.ClientCert, "ssl.key.location": certs.ClientKey},
			franz: []kgo.Opt{kgo.DialTLSConfig(certs.ClientTLS(t, true))},
		},
	}
	clients := []struct {
		name string
		run  func(t *testing.T, l secureListener, topic, group string, n int) []string
	}{
		{"kcat", kcatRoundTrip},
		{"confluent-kafka-python", pythonRoundTrip},
		{"franz-go", franzRoundTrip},
		{"sarama", saramaRoundTrip},
		{"kafkajs", kafkajsRoundTrip},
	}
	const n = 50
	for _, l := range listeners {
		for _, c := range clients {
			if l.name == "mtls" && c.name != "kcat" && c.name != "franz-go" {
				continue
			}
			t.Run(l.name+"/"+c.name, func(t *testing.T) {
				topic := "sec-" + c.name + "-" + l.name
				group := topic + "-group"
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				adm := l.adm
				if r, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || r.Err != nil {
					t.Fatal(err, r.Err)
				}
				got := c.run(t, l, topic, group, n)
				want := make([]string, n)
				prefix := map[string]string{"kcat": "kcat", "confluent-kafka-python": "py", "franz-go": "franz", "sarama": "sarama", "kafkajs": "js"}[c.name]
				for i := range want {
					want[i] = fmt.Sprintf("%s-%d", prefix, i)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("consumed %d records %q…, want %d in order", len(got), head(got), n)
				}
				// The group's commit is in the log, for every agent.
				harness.Eventually(t, 30*time.Second, func() bool {
					offs, err := adm.FetchOffsets(ctx, group)
					o, ok := offs.Lookup(topic, 0)
					return err == nil && ok && o.At == n
				}, "group %s never committed offset %d", group, n)
			})
		}
	}
	// Without the client certificate, the mTLS listener lets nobody in.
	cl := client(t, mtlsAgent.Addr, kgo.DialTLSConfig(certs.ClientTLS(t, false)), kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).ListTopics(ctx); err == nil {
		t.Fatal("a client without a certificate was served by the mutual-TLS listener")
	}
}

func head(s []string) []string { return s[:min(len(s), 3)] }

// lines splits a client's output into its non-empty lines.
func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func runClient(t *testing.T, cmd *exec.Cmd, stdin []byte) []byte {
	t.Helper()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", filepath.Base(cmd.Path), err, out, stderr.Bytes())
	}
	return out
}

func kcatRoundTrip(t *testing.T, l secureListener, topic, group string, n int) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"-b", l.agent.Addr}
	for k, v := range l.kafka {
		args = append(args, "-X", k+"="+v)
	}
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "kcat-%d\n", i)
	}
	runClient(t, exec.CommandContext(ctx, "kcat", append(args, "-P", "-t", topic, "-X", "acks=all")...), in.Bytes())
	out := runClient(t, exec.CommandContext(ctx, "kcat", append(args, "-G", group, topic, "-q", "-c", fmt.Sprint(n),
		"-f", "%s\n", "-X", "auto.offset.reset=earliest")...), nil)
	return lines(out)
}

func pythonRoundTrip(t *testing.T, l secureListener, topic, group string, n int) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sec, _ := json.Marshal(l.kafka)
	return lines(runClient(t, exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "confluent_secure.py"),
		l.agent.Addr, topic, group, fmt.Sprint(n), string(sec)), nil))
}

// debianPython is the interpreter Debian's python3-confluent-kafka (make
// deps) is installed for, whatever python3 comes first on PATH.
const debianPython = "/usr/bin/python3"

func kafkajsRoundTrip(t *testing.T, l secureListener, topic, group string, n int) []string {
	modules := filepath.Join(harness.RepoRoot(), ".tools", "node", "node_modules")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sec, _ := json.Marshal(l.js)
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "kafkajs_secure.js"), l.agent.Addr, topic, group, fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "BARGE_KAFKAJS_SECURITY="+string(sec))
	return lines(runClient(t, cmd, nil))
}

func franzRoundTrip(t *testing.T, l secureListener, topic, group string, n int) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prod := client(t, l.agent.Addr, l.franz...)
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "franz-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	cons := client(t, l.agent.Addr, append(slices.Clone(l.franz), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())...)
	var got []string
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", len(got), n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return got
}

func saramaRoundTrip(t *testing.T, l secureListener, topic, group string, n int) []string {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	l.sarama(cfg)
	prod, err := sarama.NewSyncProducer([]string{l.agent.Addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range n {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("sarama-%d", i))}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	cg, err := sarama.NewConsumerGroup([]string{l.agent.Addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := &saramaCollector{want: n, done: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			t.Fatalf("consume: %v", err)
		}
	}
	if len(h.got) < n {
		t.Fatalf("consumed %d of %d", len(h.got), n)
	}
	return h.got
}

// saramaCollector gathers a group's records, marking and committing each,
// until it has want.
type saramaCollector struct {
	want int
	got  []string
	done context.CancelFunc
}

func (*saramaCollector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*saramaCollector) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaCollector) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.got = append(h.got, string(m.Value))
		sess.MarkMessage(m, "")
		if len(h.got) >= h.want {
			sess.Commit()
			h.done()
			return nil
		}
	}
	return nil
}

// franzSCRAM is sarama's SCRAM client, by franz-go's SCRAM-SHA-512 (sarama
// brings none of its own).
type franzSCRAM struct {
	sess  sasl.Session
	first []byte
	done  bool
}

func (s *franzSCRAM) Begin(user, pass, _ string) error {
	sess, first, err := scram.Auth{User: user, Pass: pass}.AsSha512Mechanism().Authenticate(context.Background(), "")
	s.sess, s.first = sess, first
	return err
}

func (s *franzSCRAM) Step(challenge string) (string, error) {
	if s.first != nil {
		first := s.first
		s.first = nil
		return string(first), nil
	}
	done, next, err := s.sess.Challenge([]byte(challenge))
	s.done = done
	return string(next), err
}

func (s *franzSCRAM) Done() bool { return s.done }
