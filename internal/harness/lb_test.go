package harness_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
)

// apiVersionsThrough opens a new connection to addr, asks ApiVersions v0
// and checks that a Kafka answer came back.
func apiVersionsThrough(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := binary.BigEndian.AppendUint32(nil, 10) // size of what follows
	req = binary.BigEndian.AppendUint16(req, 18)  // ApiVersions
	req = binary.BigEndian.AppendUint16(req, 0)   // v0
	req = binary.BigEndian.AppendUint32(req, 42)  // correlation id
	req = binary.BigEndian.AppendUint16(req, 0xffff)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		t.Fatalf("ApiVersions through %s: %v", addr, err)
	}
	if corr := binary.BigEndian.Uint32(head[4:]); corr != 42 {
		t.Fatalf("ApiVersions through %s: correlation id %d, want 42", addr, corr)
	}
}

// apiVersionsAnswered is how many ApiVersions requests agent a has answered
// (barge_requests_total{api="ApiVersions"}).
func apiVersionsAnswered(t *testing.T, a *harness.Agent) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + a.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `barge_requests_total{api="ApiVersions"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	return 0
}

// spread makes n connections through the load balancer one after another
// and returns how many each agent answered, in the order of agents.
func spread(t *testing.T, lb *harness.LoadBalancer, n int, agents ...*harness.Agent) []int {
	t.Helper()
	before := make([]int, len(agents))
	for i, a := range agents {
		if a.Running() {
			before[i] = apiVersionsAnswered(t, a)
		}
	}
	for range n {
		apiVersionsThrough(t, lb.Addr())
	}
	got := make([]int, len(agents))
	for i, a := range agents {
		if a.Running() {
			got[i] = apiVersionsAnswered(t, a) - before[i]
		}
	}
	return got
}

func wantSpread(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: connections answered per agent %v, want %v", what, got, want)
	}
}

// TestLoadBalancer runs a real HAProxy in front of three real agents on one
// bucket: new connections go round-robin, a killed agent is taken out, and
// a reload changes the agents.
func TestLoadBalancer(t *testing.T) {
	// Without the sequencer, whose relay connections between the agents
	// greet with ApiVersions too and would blur the count.
	agents, lb := harness.Fleet(t, 3, harness.FileBackend(t), harness.AgentConfig{Args: []string{"--meta-sequencer=false"}})
	a0, a1, a2 := agents[0], agents[1], agents[2]

	wantSpread(t, "three agents UP", spread(t, lb, 9, a0, a1, a2), 3, 3, 3)

	a1.Kill()
	lb.WaitState(t, a1, false)
	wantSpread(t, "one of three killed", spread(t, lb, 6, a0, a1, a2), 3, 0, 3)

	a1.Restart(t)
	lb.WaitState(t, a1, true)
	wantSpread(t, "killed agent restarted", spread(t, lb, 9, a0, a1, a2), 3, 3, 3)

	oldPid := lb.Pid()
	lb.SetBackends(t, a1, a2)
	if lb.Pid() == oldPid {
		t.Fatal("SetBackends did not start a new haproxy")
	}
	wantSpread(t, "reloaded without a0", spread(t, lb, 6, a0, a1, a2), 0, 3, 3)
	lb.SetBackends(t, a0)
	wantSpread(t, "reloaded with a0 only", spread(t, lb, 3, a0, a1, a2), 3, 0, 0)
}

// TestLoadBalancerUnready checks that the health check is /readyz, not a
// TCP connect: an agent whose listener accepts but whose /readyz says 503
// gets no connection.
func TestLoadBalancerUnready(t *testing.T) {
	ready := harness.StartAgent(t, harness.AgentConfig{})
	unready := harness.StartAgent(t, harness.AgentConfig{Binary: fakeAgent(t), Unready: true, Args: []string{"--unready"}})
	lb := harness.StartLoadBalancer(t)
	if err := lb.Reload(ready, unready); err != nil {
		t.Fatal(err)
	}
	lb.WaitState(t, ready, true)
	lb.WaitState(t, unready, false)
	if st, _ := lb.State(unready); st.Check != "L7STS" {
		t.Errorf("unready agent's last check %q, want L7STS (an HTTP status other than 200)", st.Check)
	}
	// The fake closes every Kafka connection unanswered: one sent there
	// fails apiVersionsThrough.
	wantSpread(t, "one agent unready", spread(t, lb, 4, ready), 4)
}
