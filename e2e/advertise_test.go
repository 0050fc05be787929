package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// TestAdvertiseAuto: --advertise auto advertises the instance's private
// IPv4 address from EC2 instance metadata (IMDSv2, here AWS's mock made to
// answer local-ipv4 with 127.0.0.2) with the port of --listen, and clients
// reach the agent there; --peer-advertise auto does the same for the peer
// address behind a shared --advertise, so the agents forward group
// requests to each other at it. Off EC2, either stops the agent at
// start-up with a message naming the flag.
func TestAdvertiseAuto(t *testing.T) {
	const ip = "127.0.0.2" // a loopback address, unlike the harness's
	imds := harness.StartIMDSWith(t, map[string]string{"local-ipv4": ip})
	ownAddr := func() string { // a free port, on ip
		_, port, _ := net.SplitHostPort(freeAddr(t))
		return net.JoinHostPort(ip, port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("direct", func(t *testing.T) {
		b := harness.FileBackend(t)
		listen := ownAddr()
		// The harness's --advertise (127.0.0.1 and another port) comes
		// first; auto replaces it.
		a := harness.StartAgent(t, harness.AgentConfig{Store: b.URL, FlushInterval: 5 * time.Millisecond,
			Env:  append(b.Env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds),
			Args: []string{"--listen", listen, "--advertise", "auto"}})
		createTopic(t, listen, "auto", 1, nil)
		md, err := metadataSeen(listen, "auto")
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 1 || fmt.Sprintf("%s:%d", md.Brokers[0].Host, md.Brokers[0].Port) != listen {
			t.Fatalf("%s lists brokers %+v, want only %s", a, md.Brokers, listen)
		}
		// A client that follows the advertised address produces and
		// reads back.
		cl := client(t, listen, kgo.DefaultProduceTopic("auto"), kgo.ConsumeTopics("auto"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("at the advertised address")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.NumRecords() != 1 {
			t.Fatalf("read back %d records, ctx %v", fs.NumRecords(), ctx.Err())
		}
	})

	t.Run("shared", func(t *testing.T) {
		b := harness.FileBackend(t)
		const shared = "lb.invalid:9092" // clients would use it; nothing here does
		var agents []*harness.Agent
		var peers []string
		for range 2 {
			listen := ownAddr()
			agents = append(agents, harness.StartAgent(t, harness.AgentConfig{Store: b.URL, FlushInterval: 5 * time.Millisecond,
				SharedAddr: shared, Env: append(b.Env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds),
				Args: []string{"--listen", listen, "--peer-advertise", "auto"}}))
			peers = append(peers, listen)
		}
		for i, a := range agents {
			if log := a.Log(); !strings.Contains(log, "advertise="+shared+" peer_advertise="+peers[i]) {
				t.Fatalf("%s does not serve with --advertise %s and peer address %s:\n%s", a, shared, peers[i], log)
			}
		}
		// Every group named through the first agent is described; those
		// the second coordinates are forwarded to it at its peer address.
		groups := make([]string, 16)
		for i := range groups {
			groups[i] = fmt.Sprintf("auto-%d", i)
		}
		cl := client(t, peers[0])
		harness.Eventually(t, time.Minute, func() bool {
			before := forwardedOK(t, agents[:1])
			req := kmsg.NewPtrDescribeGroupsRequest()
			req.Groups = groups
			resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
			if err != nil || len(resp.Groups) != len(groups) {
				return false
			}
			for _, g := range resp.Groups {
				if g.ErrorCode != 0 {
					return false
				}
			}
			return forwardedOK(t, agents[:1]) > before
		}, "DescribeGroups of %d groups at %s was never answered in full with a part forwarded to %s", len(groups), peers[0], peers[1])
	})

	// No instance metadata (a closed port): the agent exits, naming the
	// flag, instead of advertising an address it guessed.
	for _, flags := range [][]string{{"--advertise", "auto"}, {"--advertise", "lb.invalid:9092", "--peer-advertise", "auto"}} {
		b := harness.FileBackend(t)
		cmd := exec.CommandContext(ctx, harness.AgentBinary(t), append([]string{"--listen", freeAddr(t), "--http", "", "--store", b.URL}, flags...)...)
		cmd.Env = append(cmd.Environ(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1")
		out, err := cmd.CombinedOutput()
		want := flags[len(flags)-2] + " auto: reading the private IPv4 address from EC2 instance metadata"
		if ctx.Err() != nil || err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("%v without instance metadata: %v, %v\n%s", flags, ctx.Err(), err, out)
		}
	}
}
