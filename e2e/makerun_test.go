package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
)

// TestMakeRun: the README's `make run` starts an agent that kcat can list.
// Ports and the bucket directory are moved out of the way through the
// documented BARGE_* variables so the test can run beside a developer's agent.
func TestMakeRun(t *testing.T) {
	kafka, web := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", harness.RepoRoot(), "run")
	cmd.Env = append(cmd.Environ(), "BARGE_LISTEN="+kafka, "BARGE_HTTP="+web, "BARGE_STORE=file://"+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // make, go run and the agent
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-exited
	}()

	harness.Eventually(t, 4*time.Minute, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("make run exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get("http://" + web + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "make run never became ready:\n%s", &out)

	list, err := exec.CommandContext(ctx, "kcat", "-b", kafka, "-L", "-m", "10").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -L: %v\n%s", err, list)
	}
	if want := fmt.Sprintf("broker 0 at %s", kafka); !strings.Contains(string(list), want) {
		t.Fatalf("kcat -L does not list %q:\n%s", want, list)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
