package harness

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// LoadBalancer is a real HAProxy in TCP mode on a loopback port,
// round-robin over a set of agents, each health-checked on its /readyz so
// that an unready or dead agent gets no new connections. It is what the
// fleet tests put in front of their agents: clients are given only Addr.
//
// Changing the agents (SetBackends) is an HAProxy reload: a new process
// with the new configuration takes the listening socket over from the old
// one (-x) and tells it to stop accepting (-sf). The old process keeps
// relaying the connections it already has until they close, as a reload
// in production does; cleanup kills every process.
//
// Its methods are not safe for concurrent use.
type LoadBalancer struct {
	addr      string
	dir       string // configurations, stats sockets and logs
	removeDir bool   // dir is not a t.TempDir

	gen     int
	cur     *lbProc   // the process accepting connections
	old     []*lbProc // earlier processes, draining
	servers []lbServer
}

type lbServer struct {
	name      string // HAProxy's server name: a0, a1, … in list order
	addr      string // where connections go (the agent's Kafka listener)
	checkHost string
	checkPort string
}

type lbProc struct {
	cmd     *exec.Cmd
	sock    string // its stats socket (admin level)
	logPath string
	done    chan struct{}
	waitErr error
}

// HAProxy health-check timing. A check every 100 ms (inter, and fastinter
// and downinter for the transitional and DOWN states) puts a killed agent
// DOWN within about 0.3 s and a ready one UP within 0.1 s; fall 2 keeps a
// single slow check on a loaded machine from taking a live agent out, and
// "timeout check" 2 s gives a busy agent time to answer.
const lbCheckTiming = "inter 100ms fastinter 100ms downinter 100ms rise 1 fall 2"

var (
	lbLiveMu sync.Mutex
	lbLive   = map[*lbProc]bool{} // every running process, for Shutdown
)

// HAProxyBinary returns the haproxy binary: $BARGE_HAPROXY_BIN or haproxy
// on the PATH (make deps installs Debian's package).
func HAProxyBinary() (string, error) {
	if p := os.Getenv("BARGE_HAPROXY_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("haproxy")
	if err != nil {
		return "", fmt.Errorf("haproxy not found (%v): run `make deps` (or `make test`), which installs Debian's haproxy package, or set BARGE_HAPROXY_BIN", err)
	}
	return p, nil
}

// StartLoadBalancer starts HAProxy on a fresh loopback port in front of the
// agents (which may be none yet: a connection then is closed at once) and
// waits until every agent is seen UP. The test's cleanup kills it and, if
// the test failed, logs its output. Agents must serve HTTP (not NoHTTP).
func StartLoadBalancer(t testing.TB, agents ...*Agent) *LoadBalancer {
	t.Helper()
	dir := t.TempDir()
	lb, err := newLoadBalancer(dir)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("load balancer %s:\n%s", lb.addr, lb.logs())
		}
		lb.Close()
	})
	if err := lb.Reload(agents...); err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, a := range agents {
		lb.WaitState(t, a, true)
	}
	return lb
}

// LaunchLoadBalancer is StartLoadBalancer for programs that are not tests
// (cmd/bench): it returns once HAProxy serves (without waiting for health
// checks; see State) and registers no cleanup: the caller calls Close, or
// Shutdown kills what is left.
func LaunchLoadBalancer(agents ...*Agent) (*LoadBalancer, error) {
	dir, err := os.MkdirTemp("", "barge-lb-")
	if err != nil {
		return nil, err
	}
	lb, err := newLoadBalancer(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	lb.removeDir = true
	err = lb.Reload(agents...)
	if err != nil {
		lb.Close()
		return nil, err
	}
	return lb, nil
}

func newLoadBalancer(dir string) (*LoadBalancer, error) {
	port, err := freePortErr()
	if err != nil {
		return nil, err
	}
	return &LoadBalancer{addr: loopback(port), dir: dir}, nil
}

// Addr is the load balancer's host:port, the only address a fleet test
// gives its clients.
func (lb *LoadBalancer) Addr() string { return lb.addr }

// Pid is the process id of the HAProxy accepting connections.
func (lb *LoadBalancer) Pid() int {
	if lb.cur == nil {
		return 0
	}
	return lb.cur.cmd.Process.Pid
}

// SetBackends reloads HAProxy with a new list of agents and waits until
// new connections go only to them and each of them is seen UP.
func (lb *LoadBalancer) SetBackends(t testing.TB, agents ...*Agent) {
	t.Helper()
	if err := lb.Reload(agents...); err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, a := range agents {
		lb.WaitState(t, a, true)
	}
}

// Reload is SetBackends returning an error, without waiting for the agents
// to be UP: it returns once the new process serves the new list and the
// old one, if any, has stopped accepting connections.
func (lb *LoadBalancer) Reload(agents ...*Agent) error {
	servers := make([]lbServer, len(agents))
	for i, a := range agents {
		if a.HTTPAddr == "" {
			return fmt.Errorf("load balancer: %s has no HTTP listener for its health check", a)
		}
		host, port, err := net.SplitHostPort(a.HTTPAddr)
		if err != nil {
			return fmt.Errorf("load balancer: %s: %v", a, err)
		}
		servers[i] = lbServer{name: "a" + strconv.Itoa(i), addr: a.Addr, checkHost: host, checkPort: port}
	}
	lb.gen++
	cfgPath := filepath.Join(lb.dir, fmt.Sprintf("haproxy-%d.cfg", lb.gen))
	p := &lbProc{
		sock:    filepath.Join(lb.dir, fmt.Sprintf("admin-%d.sock", lb.gen)),
		logPath: filepath.Join(lb.dir, fmt.Sprintf("haproxy-%d.log", lb.gen)),
		done:    make(chan struct{}),
	}
	if err := os.WriteFile(cfgPath, []byte(lbConfig(lb.addr, p.sock, servers)), 0o644); err != nil {
		return err
	}
	bin, err := HAProxyBinary()
	if err != nil {
		return err
	}
	// -db: stay in the foreground, a child the harness can kill.
	args := []string{"-db", "-f", cfgPath}
	prev := lb.cur
	if prev != nil && prev.running() {
		// Take the listening socket over from the running process
		// (seamless: no connection is refused in between), then tell it
		// to finish its connections and exit.
		args = append(args, "-x", prev.sock, "-sf", strconv.Itoa(prev.cmd.Process.Pid))
	}
	if err := p.start(bin, args); err != nil {
		return err
	}
	lb.cur = p
	if prev != nil {
		lb.old = append(lb.old, prev)
	}
	if err := lb.waitServing(p, servers); err != nil {
		return err
	}
	lb.servers = servers
	if prev != nil {
		return lb.waitStopped(prev)
	}
	return nil
}

// lbConfig is HAProxy's configuration: one TCP frontend on addr and one
// round-robin backend whose servers are checked with GET /readyz on the
// agent's HTTP listener.
func lbConfig(addr, sock string, servers []lbServer) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin expose-fd listeners
    stats timeout 10s

defaults
    mode tcp
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout check 2s
    # A connection to an agent that died before its check noticed is
    # retried on another one instead of being closed on the client.
    retries 2
    option redispatch 1

frontend kafka
    bind %s
    default_backend agents

backend agents
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server %s
`, sock, addr, lbCheckTiming)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s %s check addr %s port %s\n", s.name, s.addr, s.checkHost, s.checkPort)
	}
	return b.String()
}

func (p *lbProc) start(bin string, args []string) error {
	logf, err := os.Create(p.logPath)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own copy
	fmt.Fprintf(logf, "=== harness: starting %s %q at %s\n", bin, args, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	p.cmd = cmd
	lbLiveMu.Lock()
	lbLive[p] = true
	lbLiveMu.Unlock()
	go func() {
		err := cmd.Wait()
		p.waitErr = err // read only after done is closed
		lbLiveMu.Lock()
		delete(lbLive, p)
		lbLiveMu.Unlock()
		close(p.done)
	}()
	return nil
}

func (p *lbProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *lbProc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitServing waits until the new process answers on its stats socket
// with exactly the configured servers: it has then bound the frontend.
func (lb *LoadBalancer) waitServing(p *lbProc, servers []lbServer) error {
	want := make([]string, len(servers))
	for i, s := range servers {
		want[i] = s.name
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := p.stat()
		if err == nil && sameKeys(st, want) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("haproxy exited before serving (%v); log:\n%s", p.waitErr, tail(p.logPath, 16<<10))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy not serving %v within 30s (last: %v, %v); log:\n%s", want, st, err, tail(p.logPath, 16<<10))
		}
	}
}

// waitStopped waits until a replaced process has stopped accepting: it
// closes its listeners, its stats socket among them, on the -sf signal.
func (lb *LoadBalancer) waitStopped(p *lbProc) error {
	deadline := time.Now().Add(30 * time.Second)
	for p.running() {
		c, err := net.DialTimeout("unix", p.sock, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy pid %d still accepting 30s after the reload; log:\n%s", p.cmd.Process.Pid, tail(p.logPath, 16<<10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func sameKeys(m map[string]ServerState, want []string) bool {
	if len(m) != len(want) {
		return false
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

// ServerState is what HAProxy reports of one server: Status is "UP",
// "DOWN", or a transition such as "UP 1/2" (one failed check of the two
// that take it down); Check is the last check's result, such as "L7OK",
// "L7STS" (an answer other than 200) or "L4CON" (connection refused).
type ServerState struct {
	Status, Check string
}

// stat asks the process for "show stat" and returns its servers' states
// by server name.
func (p *lbProc) stat() (map[string]ServerState, error) {
	c, err := net.DialTimeout("unix", p.sock, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("show stat: no header (%v)", sc.Err())
	}
	col := map[string]int{}
	for i, name := range strings.Split(strings.TrimPrefix(sc.Text(), "# "), ",") {
		col[name] = i
	}
	px, sv, status, check := col["pxname"], col["svname"], col["status"], col["check_status"]
	if status == 0 || check == 0 {
		return nil, fmt.Errorf("show stat: unexpected header %q", sc.Text())
	}
	out := map[string]ServerState{}
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) <= check || f[px] != "agents" || f[sv] == "BACKEND" {
			continue
		}
		// "* L7OK": a check is running; the rest is the last result.
		out[f[sv]] = ServerState{Status: f[status], Check: strings.TrimPrefix(f[check], "* ")}
	}
	return out, sc.Err()
}

// State returns what the serving HAProxy reports of agent a, which must be
// in the current list.
func (lb *LoadBalancer) State(a *Agent) (ServerState, error) {
	name := ""
	for _, s := range lb.servers {
		if s.addr == a.Addr {
			name = s.name
		}
	}
	if name == "" {
		return ServerState{}, fmt.Errorf("load balancer: %s is not a backend", a)
	}
	st, err := lb.cur.stat()
	if err != nil {
		return ServerState{}, err
	}
	s, ok := st[name]
	if !ok {
		return ServerState{}, errors.New("load balancer: haproxy does not report server " + name)
	}
	return s, nil
}

// WaitState waits until HAProxy sees agent a UP after a passing check (up)
// or DOWN (not up), and fails the test if that takes over 30 s.
func (lb *LoadBalancer) WaitState(t testing.TB, a *Agent, up bool) {
	t.Helper()
	want := map[bool]string{true: "UP", false: "DOWN"}[up]
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := lb.State(a)
		if err == nil && st.Status == want && (!up || st.Check == "L7OK") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: haproxy does not see %s %s within 30s (last %+v, %v)", a, want, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitUp is WaitState(up) for programs that are not tests: it waits until
// HAProxy sees every one of agents UP after a passing check, or returns an
// error once timeout has passed.
func (lb *LoadBalancer) WaitUp(timeout time.Duration, agents ...*Agent) error {
	deadline := time.Now().Add(timeout)
	for _, a := range agents {
		for {
			st, err := lb.State(a)
			if err == nil && st.Status == "UP" && st.Check == "L7OK" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("load balancer: haproxy does not see %s UP within %v (last %+v, %v)", a, timeout, st, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Close kills every HAProxy process of this load balancer.
func (lb *LoadBalancer) Close() {
	for _, p := range lb.old {
		p.kill()
	}
	if lb.cur != nil {
		lb.cur.kill()
	}
	if lb.removeDir {
		os.RemoveAll(lb.dir)
	}
}

func (lb *LoadBalancer) logs() string {
	var b strings.Builder
	for _, p := range append(append([]*lbProc(nil), lb.old...), lb.cur) {
		if p != nil {
			fmt.Fprintf(&b, "--- %s\n%s", p.logPath, tail(p.logPath, 8<<10))
		}
	}
	return b.String()
}

// stopLoadBalancers kills any HAProxy a program left running.
func stopLoadBalancers() {
	lbLiveMu.Lock()
	procs := make([]*lbProc, 0, len(lbLive))
	for p := range lbLive {
		procs = append(procs, p)
	}
	lbLiveMu.Unlock()
	for _, p := range procs {
		p.kill()
	}
}
