package e2e

import (
	"context"
	"fmt"
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
// given leaders in that zone while one is live; one naming its rack in
// Fetch (client.rack) is sent to read from the agent there (KIP-392's
// preferred read replica). Off EC2, --zone auto stops
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

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A consumer that names its rack in Fetch (client.rack, KIP-392) and
	// reaches an agent outside its zone is told to read from the agent
	// there that would lead for it; it then reads every partition from
	// that agent alone.
	md, err := metadataSeen(plain.Addr, "zoned")
	if err != nil {
		t.Fatal(err)
	}
	nodeOf := map[string]int32{}
	for _, br := range md.Brokers {
		nodeOf[net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))] = br.NodeID
	}
	prod := client(t, plain.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(24) {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "zoned", Partition: p, Value: []byte{byte(p)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(at *harness.Agent, rack string) []kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes, req.Rack = 0, 1<<20, rack
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = "zoned", md.Topics[0].TopicID
		for p := range int32(24) {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes = p, 1<<20
			ft.Partitions = append(ft.Partitions, fp)
		}
		req.Topics = append(req.Topics, ft)
		resp, err := req.RequestWith(ctx, client(t, at.Addr).SeedBrokers()[0])
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions
	}
	for _, p := range fetch(plain, "eu-west-1b") {
		if p.ErrorCode != 0 || p.PreferredReadReplica != nodeOf[named.Addr] || len(p.RecordBatches) != 0 {
			t.Fatalf("fetch of partition %d in rack eu-west-1b from %s: preferred replica %d with %d bytes (%v), want %d (%s) and no records",
				p.Partition, plain, p.PreferredReadReplica, len(p.RecordBatches), p.ErrorCode, nodeOf[named.Addr], named)
		}
	}
	for _, c := range []struct {
		at   *harness.Agent
		rack string
	}{{named, "eu-west-1b"}, {plain, "ap-south-1c"}, {plain, ""}} {
		var bad kmsg.FetchResponseTopicPartition
		harness.Eventually(t, time.Minute, func() bool { // the agent may not have read the records' commits yet
			for _, p := range fetch(c.at, c.rack) {
				if p.ErrorCode != 0 || p.PreferredReadReplica != -1 || len(p.RecordBatches) == 0 {
					bad = p
					return false
				}
			}
			return true
		}, "fetch in rack %q from %s: %v, want preferred replica -1 and the record",
			c.rack, c.at, lazy(func() string {
				return fmt.Sprintf("partition %d answered preferred replica %d with %d bytes", bad.Partition, bad.PreferredReadReplica, len(bad.RecordBatches))
			}))
	}
	fetched := func(a *harness.Agent) float64 { return scrape(t, a.HTTPAddr)["barge_fetch_bytes_total"] }
	before := map[*harness.Agent]float64{auto: fetched(auto), named: fetched(named), plain: fetched(plain)}
	cons := client(t, plain.Addr, kgo.Rack("eu-west-1b"), kgo.ConsumeTopics("zoned"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32]bool{}
	for len(got) < 24 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got[r.Partition] = true })
	}
	if len(got) != 24 {
		t.Fatalf("the consumer in rack eu-west-1b read %d of 24 partitions", len(got))
	}
	for a, b := range before {
		if moved := fetched(a) - b; (a == named) != (moved > 0) {
			t.Errorf("%s (zone %s) served %v fetched bytes to the consumer in rack eu-west-1b", a, want[a.Addr], moved)
		}
	}

	// No instance metadata (a closed port): the agent exits, naming the
	// flag, instead of serving without its zone.
	cmd := exec.CommandContext(ctx, harness.AgentBinary(t), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1:1", "--http", "", "--store", b.URL, "--zone", "auto")
	cmd.Env = append(cmd.Environ(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || err == nil || !strings.Contains(string(out), "--zone auto") {
		t.Fatalf("--zone auto without instance metadata: %v, %v\n%s", ctx.Err(), err, out)
	}
}
