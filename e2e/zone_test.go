package e2e

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// TestZones: --zone names an agent's availability zone, and --zone auto
// reads it from EC2 instance metadata (IMDSv2, here AWS's mock). The zone
// is recorded in the metadata log, so every agent reports every other's
// as its broker.rack in Metadata and DescribeCluster, as Kafka reports
// broker.rack. A client naming its zone in client.id (barge_az=NAME) is
// given leaders in that zone while one is live. Off EC2, --zone auto stops
// the agent at start-up with a message that says why.
func TestZones(t *testing.T) {
	b := harness.FileBackend(t)
	imds := harness.StartIMDS(t)
	auto := harness.StartAgent(t, harness.AgentConfig{Store: b.URL, FlushInterval: 5 * time.Millisecond,
		Env: append(b.Env, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds), Args: []string{"--zone", "auto"}})
	named := startAgent(t, b, 5*time.Millisecond, "--zone", "eu-west-1b")
	plain := startAgent(t, b, 5*time.Millisecond)
	want := map[string]string{auto.Addr: "us-east-1a", named.Addr: "eu-west-1b", plain.Addr: "<nil>"}

	racks := func(addr string, req kmsg.Request) map[string]string {
		resp, err := client(t, addr).Request(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		add := func(host string, port int32, rack *string) {
			r := "<nil>"
			if rack != nil {
				r = *rack
			}
			got[net.JoinHostPort(host, strconv.Itoa(int(port)))] = r
		}
		switch resp := resp.(type) {
		case *kmsg.MetadataResponse:
			for _, br := range resp.Brokers {
				add(br.Host, br.Port, br.Rack)
			}
		case *kmsg.DescribeClusterResponse:
			for _, br := range resp.Brokers {
				add(br.Host, br.Port, br.Rack)
			}
		}
		return got
	}
	for _, a := range []*harness.Agent{auto, named, plain} {
		for _, req := range []kmsg.Request{kmsg.NewPtrMetadataRequest(), kmsg.NewPtrDescribeClusterRequest()} {
			var got map[string]string
			harness.Eventually(t, time.Minute, func() bool {
				got = racks(a.Addr, req)
				return len(got) == len(want)
			}, "%s never listed all three agents", a)
			for addr, rack := range want {
				if got[addr] != rack {
					t.Errorf("%s %s: %s has rack %s, want %s", a, kmsg.NameForKey(req.Key()), addr, got[addr], rack)
				}
			}
		}
	}

	// A client that names its zone in client.id is given leaders there
	// while one is live; one naming a zone without agents, all of them.
	createTopic(t, plain.Addr, "zoned", 24, nil)
	for _, a := range []*harness.Agent{auto, named, plain} {
		harness.Eventually(t, time.Minute, func() bool { return sees(a.Addr, "zoned", 3) }, "%s never saw the topic", a)
	}
	leaders := func(clientID string) map[string]int {
		resp, err := metadataSeen(plain.Addr, "zoned", kgo.ClientID(clientID))
		if err != nil {
			t.Fatalf("client id %q: %v", clientID, err)
		}
		addrs := map[int32]string{}
		for _, br := range resp.Brokers {
			addrs[br.NodeID] = net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		}
		n := map[string]int{}
		for _, p := range resp.Topics[0].Partitions {
			n[addrs[p.Leader]]++
		}
		return n
	}
	if got := leaders("app,barge_az=eu-west-1b"); len(got) != 1 || got[named.Addr] != 24 {
		t.Errorf("leaders for a client in eu-west-1b: %v, want all 24 on %s", got, named.Addr)
	}
	if got := leaders("barge_az=us-east-1a"); len(got) != 1 || got[auto.Addr] != 24 {
		t.Errorf("leaders for a client in us-east-1a: %v, want all 24 on %s", got, auto.Addr)
	}
	if got := leaders("app,barge_az=ap-south-1c"); len(got) != 3 {
		t.Errorf("leaders for a client in a zone without agents: %v, want all three agents", got)
	}

	// No instance metadata (a closed port): the agent exits, naming the
	// flag, instead of serving without its zone.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.AgentBinary(t), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1:1", "--http", "", "--store", b.URL, "--zone", "auto")
	cmd.Env = append(cmd.Environ(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || err == nil || !strings.Contains(string(out), "--zone auto") {
		t.Fatalf("--zone auto without instance metadata: %v, %v\n%s", ctx.Err(), err, out)
	}
}
