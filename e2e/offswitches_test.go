package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/fleet"
)

// listeningPorts returns the TCP ports the process pid listens on: its
// socket descriptors matched against the kernel's LISTEN sockets.
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			port, err := strconv.ParseInt(f[1][strings.LastIndexByte(f[1], ':')+1:], 16, 32)
			if err != nil {
				t.Fatalf("%s line %q: %v", table, sc.Text(), err)
			}
			ports = append(ports, int(port))
		}
		f.Close()
	}
	slices.Sort(ports)
	return ports
}

// TestHTTPOff: with --http "" the agent binds no HTTP listener (the only
// port it listens on is Kafka's) and still serves Kafka.
func TestHTTPOff(t *testing.T) {
	b := harness.FileBackend(t)
	a := harness.StartAgent(t, harness.AgentConfig{Store: b.URL, NoHTTP: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createTopic(t, a.Addr, "nohttp", 1, nil)
	cl := client(t, a.Addr, kgo.DefaultProduceTopic("nohttp"))
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Append(nil, i)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	got := consumeAll(t, a.Addr, "nohttp", map[int32]int64{0: 5})
	if string(got[0][4].Value) != "4" {
		t.Fatalf("offset 4 holds %q", got[0][4].Value)
	}
	_, port, _ := strings.Cut(a.Addr, ":")
	if ports := listeningPorts(t, a.Pid()); fmt.Sprint(ports) != "["+port+"]" {
		t.Fatalf("the agent listens on ports %v, want only Kafka's %s", ports, port)
	}
}

// TestJobsOffSwitches: --cleaner-backoff=0 turns key compaction off and
// --orphan-grace=0 the orphan sweep, while the other jobs run: retention
// empties a topic and collection deletes its segments (the pass that
// would sweep orphans), yet a compacted topic's duplicates stay dirty and
// readable, and orphan seg/, cmp/ and cln/ objects named an hour ago stay
// in the bucket, never condemned.
func TestJobsOffSwitches(t *testing.T) {
	b := harness.FileBackend(t)
	store := b.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old := time.Now().Add(-time.Hour).UnixMilli()
	orphans := []string{
		fmt.Sprintf("seg/%013d-dead-000001", old),
		fmt.Sprintf("cmp/%013d-dead-000002", old),
		fmt.Sprintf("cln/%013d-dead-000003", old),
	}
	for _, k := range orphans {
		if err := store.Put(ctx, k, []byte("never committed")); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgent(t, b, 0, "--cleaner-backoff=0", "--orphan-grace=0",
		"--retention-check-interval=100ms", "--collect-grace=100ms", "--compaction-interval=0")
	createTopic(t, a.Addr, "kept", 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("compact"), "min.cleanable.dirty.ratio": kadm.StringPtr("0.01")})
	createTopic(t, a.Addr, "gone", 1, map[string]*string{"retention.ms": kadm.StringPtr("1")})
	cl := client(t, a.Addr)
	for i := range 10 {
		for _, r := range []*kgo.Record{
			{Topic: "kept", Key: fmt.Append(nil, "k", i%2), Value: fmt.Append(nil, i)},
			{Topic: "gone", Value: fmt.Append(nil, i)},
		} {
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	// Retention released the segments of "gone" and collection deleted
	// them: collection passes ran after everything was written.
	var m map[string]float64
	harness.Eventually(t, time.Minute, func() bool {
		m = scrape(t, a.HTTPAddr)
		return m["barge_retention_log_start_moves_total"] > 0 && m["barge_collected_objects_total"] >= 10 && m["barge_released_objects"] == 0
	}, "retention and collection never ran: %v", lazy(func() string {
		return fmt.Sprint(m["barge_retention_log_start_moves_total"], m["barge_collected_objects_total"], m["barge_released_objects"])
	}))

	for _, k := range orphans {
		if !slices.Contains(b.List(t, k[:4]), k) {
			t.Errorf("orphan %s was swept with --orphan-grace=0", k)
		}
	}
	if n := m["barge_condemned_objects_total"]; n != 0 {
		t.Errorf("barge_condemned_objects_total %v with --orphan-grace=0", n)
	}
	if n := m["barge_cleaned_partitions_total"]; n != 0 {
		t.Errorf("barge_cleaned_partitions_total %v with --cleaner-backoff=0", n)
	}
	if cln := b.List(t, "cln/"); len(cln) != 1 {
		t.Errorf("cln/ holds %v with --cleaner-backoff=0, want only the planted orphan", cln)
	}
	if _, cleaned, _ := cleanerState(t, b, "kept"); cleaned[0] != 0 {
		t.Errorf("clean/dirty boundary at %d with --cleaner-backoff=0", cleaned[0])
	}
	got := consumeAll(t, a.Addr, "kept", map[int32]int64{0: 10})
	for i, r := range got[0] {
		if string(r.Value) != fmt.Sprint(i) {
			t.Fatalf("kept/%d holds %q: the duplicates were compacted away", i, r.Value)
		}
	}
}

// TestJobsFalse: an agent run with --jobs=false runs no background job.
// Beside an agent with jobs on, with topics whose retention rendezvous over
// both agents gives to each, the agent with jobs on applies retention to
// both (jobs are placed over the agents that run them), while the
// --jobs=false one never takes a job lease (the log says so) and exports
// no job metrics.
func TestJobsFalse(t *testing.T) {
	b := harness.FileBackend(t)
	args := []string{"--retention-check-interval=100ms", "--collect-grace=100ms", "--meta-retention=0"}
	off := startAgent(t, b, 0, append(args, "--jobs=false")...)
	on := startAgent(t, b, 0, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	view := client(t, on.Addr)
	harness.Eventually(t, 30*time.Second, func() bool { return len(brokersOf(ctx, view)) == 2 },
		"the agents never saw each other")
	addrs := []string{off.Addr, on.Addr}
	topics := map[string]string{} // owner address → topic
	for i := 0; len(topics) < 2; i++ {
		name := fmt.Sprint("jf-", i)
		if o := fleet.Rendezvous("retention/"+name, addrs); topics[o] == "" {
			topics[o] = name
			createTopic(t, on.Addr, name, 1, map[string]*string{"retention.ms": kadm.StringPtr("1")})
		}
	}
	cl := client(t, on.Addr)
	for _, name := range topics {
		for i := range 3 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: name, Value: fmt.Append(nil, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	adm := kadm.NewClient(view)
	// Jobs are placed over the agents that run them: the topic rendezvous
	// over every agent gives the --jobs=false one is retained by the other.
	for _, owner := range addrs {
		harness.Eventually(t, 30*time.Second, func() bool { return startOffsets(t, adm, topics[owner])[0] == 3 },
			"the agent with jobs on never applied retention to %s", topics[owner])
	}
	for _, name := range []string{"barge_job_leases_total", "barge_retention_log_start_moves_total", "barge_collected_objects_total"} {
		for k := range scrape(t, off.HTTPAddr) {
			if strings.HasPrefix(k, name) {
				t.Errorf("the --jobs=false agent exports %s", k)
			}
		}
	}
	if err := off.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := on.Stop(); err != nil {
		t.Fatal(err)
	}
	h := harness.ReadLeaseHistory(t, b.Open(t))
	for job, ws := range h.Grants {
		for w := range ws {
			if h.Addrs[w] == off.Addr {
				t.Errorf("the --jobs=false agent was granted %s", job)
			}
		}
	}
}
