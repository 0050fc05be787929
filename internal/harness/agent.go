package harness

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	agentBuildMu  sync.Mutex
	agentBuildDir string
	agentBuilds   = map[string]*agentBuild{} // by ldflags
)

type agentBuild struct {
	once sync.Once
	bin  string
	err  error
}

// AgentBinary builds ./cmd/agent once per test process and returns the
// binary's path. A failed build fails the test with the compiler output.
func AgentBinary(t testing.TB) string {
	t.Helper()
	return AgentBinaryWith(t, "")
}

// AgentBinaryWith is AgentBinary for a build with the given -ldflags, such
// as an agent made to act as an older build:
//
//	-X github.com/bargehq/barge/pkg/meta.maxFormatOverride=1
func AgentBinaryWith(t testing.TB, ldflags string) string {
	t.Helper()
	bin, err := buildAgent(ldflags)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return bin
}

// BuildAgent is AgentBinary for programs that are not tests (cmd/bench):
// it builds ./cmd/agent once per process and returns the binary's path or
// the build error. Shutdown removes the build directory.
func BuildAgent() (string, error) { return buildAgent("") }

func buildAgent(ldflags string) (string, error) {
	agentBuildMu.Lock()
	b := agentBuilds[ldflags]
	if b == nil {
		b = &agentBuild{}
		agentBuilds[ldflags] = b
	}
	if agentBuildDir == "" {
		dir, err := os.MkdirTemp("", "barge-agent-build-")
		if err != nil {
			agentBuildMu.Unlock()
			return "", err
		}
		agentBuildDir = dir
	}
	dir, n := agentBuildDir, len(agentBuilds)
	agentBuildMu.Unlock()
	b.once.Do(func() {
		bin := filepath.Join(dir, fmt.Sprintf("barge-agent-%d", n))
		cmd := exec.Command("go", "build", "-o", bin, "-ldflags", ldflags, "./cmd/agent")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -ldflags %q ./cmd/agent: %v\n%s", ldflags, err, out)
			return
		}
		b.bin = bin
	})
	return b.bin, b.err
}

func removeAgentBuild() {
	if agentBuildDir != "" {
		os.RemoveAll(agentBuildDir)
	}
}

// AgentConfig says how to run an agent.
type AgentConfig struct {
	// Store is the --store URL; empty means file://./data, inside the
	// agent's own directory.
	Store string
	// FlushInterval is passed as --flush-interval when nonzero.
	FlushInterval time.Duration
	// Env is added to the test process's environment (later entries win).
	Env []string
	// Args are appended to the command line.
	Args []string
	// SharedAddr, when set, is advertised to clients instead of the
	// agent's own address (shared-address mode: a load balancer's), and
	// the agent's own address becomes its --peer-advertise.
	SharedAddr string
	// Binary overrides the agent binary (default AgentBinary(t)).
	Binary string
	// Unready starts an agent that is expected not to become ready: it
	// waits for /healthz instead of /readyz.
	Unready bool
	// NoHTTP runs the agent with --http "" (no HTTP listener; HTTPAddr is
	// empty): it is ready once its Kafka listener accepts a connection.
	NoHTTP bool
}

// Agent is one running agent process. Its methods are not safe for
// concurrent use.
type Agent struct {
	// Addr is the Kafka listener, HTTPAddr the --http listener (both
	// host:port on 127.0.0.1). They stay the same across Restart.
	Addr, HTTPAddr string
	// Dir is the agent's working directory; the default store lives in
	// Dir/data and the combined stdout and stderr in LogPath.
	Dir     string
	LogPath string
	Config  AgentConfig

	bin     string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// StartAgent runs an agent on two fresh loopback ports in a fresh temporary
// directory and waits until its /readyz answers 200. The test's cleanup
// kills it and, if the test failed, logs the tail of its output.
func StartAgent(t testing.TB, cfg AgentConfig) *Agent {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = AgentBinary(t)
	}
	a := newTestAgent(t, cfg)
	a.start(t)
	return a
}

// newTestAgent makes an agent that is not started yet, whose process the
// test's cleanup kills.
func newTestAgent(t testing.TB, cfg AgentConfig) *Agent {
	t.Helper()
	a, err := newAgent(cfg)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("agent %s log (tail of %s):\n%s", a.Addr, a.LogPath, tail(a.LogPath, 16<<10))
		} else {
			os.RemoveAll(a.Dir)
		}
	})
	return a
}

// LaunchAgent is StartAgent for programs that are not tests (cmd/bench): it
// returns an error instead of failing a test, and registers no cleanup; the
// caller kills the agent (Kill or Stop) and removes a.Dir.
func LaunchAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Binary == "" {
		bin, err := BuildAgent()
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}
	a, err := newAgent(cfg)
	if err != nil {
		return nil, err
	}
	if err := a.launch(); err != nil {
		a.Kill()
		os.RemoveAll(a.Dir)
		return nil, err
	}
	return a, nil
}

func newAgent(cfg AgentConfig) (*Agent, error) {
	kafka, err := freePortErr()
	if err != nil {
		return nil, err
	}
	http, err := freePortErr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "barge-agent-")
	if err != nil {
		return nil, err
	}
	httpAddr := loopback(http)
	if cfg.NoHTTP {
		httpAddr = ""
	}
	return &Agent{
		Addr:     loopback(kafka),
		HTTPAddr: httpAddr,
		Dir:      dir,
		LogPath:  filepath.Join(dir, "agent.log"),
		Config:   cfg,
		bin:      cfg.Binary,
	}, nil
}

func (a *Agent) args() []string {
	store := a.Config.Store
	if store == "" {
		store = "file://./data"
	}
	args := []string{"--listen", a.Addr}
	if a.Config.SharedAddr != "" {
		args = append(args, "--advertise", a.Config.SharedAddr, "--peer-advertise", a.Addr)
	} else {
		args = append(args, "--advertise", a.Addr)
	}
	args = append(args,
		"--http", a.HTTPAddr,
		"--store", store,
	)
	if a.Config.FlushInterval != 0 {
		args = append(args, "--flush-interval", a.Config.FlushInterval.String())
	}
	return append(args, a.Config.Args...)
}

func (a *Agent) start(t testing.TB) {
	t.Helper()
	if err := a.launch(); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// launch starts the process and waits until it is ready.
func (a *Agent) launch() error {
	logf, err := os.OpenFile(a.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== harness: starting %s %q at %s\n", a.bin, a.args(), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(a.bin, a.args()...)
	cmd.Dir = a.Dir
	cmd.Env = append(os.Environ(), a.Config.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start agent: %w", err)
	}
	logf.Close() // the child holds its own copy
	a.cmd = cmd
	a.done = make(chan struct{})
	a.waitErr = nil
	go func(done chan struct{}) {
		err := cmd.Wait()
		a.waitErr = err // read only after done is closed
		close(done)
	}(a.done)
	return a.waitReady()
}

func (a *Agent) waitReady() error {
	if a.Config.NoHTTP {
		return a.waitListening()
	}
	url := "http://" + a.HTTPAddr + "/readyz"
	if a.Config.Unready {
		url = "http://" + a.HTTPAddr + "/healthz"
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-a.done:
			return fmt.Errorf("agent exited before ready (%v); log:\n%s", a.waitErr, tail(a.LogPath, 16<<10))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			a.Kill()
			return fmt.Errorf("agent not ready at %s within 60s; log:\n%s", url, tail(a.LogPath, 16<<10))
		}
	}
}

// waitListening waits until the Kafka listener accepts a connection: the
// agent opens it only once it is ready to serve.
func (a *Agent) waitListening() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a.Addr, 2*time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-a.done:
			return fmt.Errorf("agent exited before listening (%v); log:\n%s", a.waitErr, tail(a.LogPath, 16<<10))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.Kill()
			return fmt.Errorf("agent not listening at %s within 60s; log:\n%s", a.Addr, tail(a.LogPath, 16<<10))
		}
	}
}

// Running reports whether the process is still alive.
func (a *Agent) Running() bool {
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Pid returns the process id of the current (or last) process.
func (a *Agent) Pid() int {
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to exit. It is a no-op when
// the agent is not running.
func (a *Agent) Kill() {
	if !a.Running() {
		return
	}
	_ = a.cmd.Process.Kill()
	<-a.done
}

// Stop sends SIGTERM and waits for the process to exit, returning its exit
// error (nil for a clean exit). If it has not exited after 60s it is killed
// and Stop returns an error saying so.
func (a *Agent) Stop() error {
	if !a.Running() {
		return a.waitErr
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return a.waitErr
	case <-time.After(60 * time.Second):
		a.Kill()
		return errors.New("harness: agent did not exit within 60s of SIGTERM; killed")
	}
}

// Restart starts the agent again (killing it first if it still runs) with
// the same ports, directory and configuration, and waits until it is ready.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Kill()
	a.start(t)
}

// RestartAs restarts the agent with another binary (an upgrade) and
// readiness expectation, keeping its ports, directory and flags.
func (a *Agent) RestartAs(t testing.TB, binary string, unready bool) {
	t.Helper()
	a.Kill()
	a.bin, a.Config.Binary, a.Config.Unready = binary, binary, unready
	a.start(t)
}

// Ready reports whether the agent's /readyz answers 200 now.
func (a *Agent) Ready() bool {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + a.HTTPAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Log returns the agent's output so far.
func (a *Agent) Log() string { return tail(a.LogPath, 1<<30) }

// ExitCode returns the exit code of the last process, or -1 while it runs
// or when it was killed by a signal.
func (a *Agent) ExitCode() int {
	if a.Running() || a.cmd == nil || a.cmd.ProcessState == nil {
		return -1
	}
	return a.cmd.ProcessState.ExitCode()
}

// String names the agent in messages.
func (a *Agent) String() string { return "agent " + a.Addr + " (pid " + strconv.Itoa(a.Pid()) + ")" }
