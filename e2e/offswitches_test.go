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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
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
