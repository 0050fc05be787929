package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Main runs the tests, then stops the shared MinIO (if a test started it)
// and removes the agent build directory, and exits with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown kills any load balancer left running, stops the shared MinIO
// (if one was started) and removes the agent build directory. Main calls
// it after the tests; programs that use LaunchMinIO, LaunchLoadBalancer or
// BuildAgent call it before they exit.
func Shutdown() {
	stopLoadBalancers()
	stopMinIO()
	removeAgentBuild()
}

var (
	repoRootOnce sync.Once
	repoRoot     string
)

// RepoRoot returns the directory holding go.mod, found by walking up from
// the working directory. It panics when there is none.
func RepoRoot() string {
	repoRootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			panic(fmt.Sprintf("harness: getwd: %v", err))
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				repoRoot = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				panic("harness: no go.mod above the working directory")
			}
			dir = parent
		}
	})
	return repoRoot
}

// Eventually polls cond every 10ms until it returns true, and fails the
// test with msg (formatted with args) if that has not happened within
// timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: condition not met within %v: %s", timeout, fmt.Sprintf(msg, args...))
		}
		<-tick.C
	}
}
