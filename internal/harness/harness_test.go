package harness_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

var (
	fakeOnce sync.Once
	fakeBin  string
	fakeErr  error
)

func fakeAgent(t *testing.T) string {
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "barge-fakeagent-")
		if err != nil {
			fakeErr = err
			return
		}
		fakeBin = filepath.Join(dir, "fakeagent")
		out, err := exec.Command("go", "build", "-o", fakeBin, "./testdata/fakeagent").CombinedOutput()
		if err != nil {
			fakeErr = err
			t.Logf("%s", out)
		}
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
	return fakeBin
}

func TestRepoRoot(t *testing.T) {
	if _, err := os.Stat(filepath.Join(harness.RepoRoot(), "go.mod")); err != nil {
		t.Fatal(err)
	}
}

func TestStartAgent(t *testing.T) {
	a := harness.StartAgent(t, harness.AgentConfig{
		Binary:        fakeAgent(t),
		FlushInterval: 5 * time.Millisecond,
		Env:           []string{"BARGE_FAKE=yes"},
		Args:          []string{"--advertise", "ignored:1"},
	})
	// The default store lands in the agent's directory.
	if _, err := os.Stat(filepath.Join(a.Dir, "data")); err != nil {
		t.Fatalf("default store dir: %v", err)
	}
	if c, err := net.Dial("tcp", a.Addr); err != nil {
		t.Fatalf("kafka listener: %v", err)
	} else {
		c.Close()
	}
	log, _ := os.ReadFile(a.LogPath)
	for _, want := range []string{"--flush-interval 5ms", "BARGE_FAKE= yes", "--store file://./data"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	addr, httpAddr, pid := a.Addr, a.HTTPAddr, a.Pid()
	a.Kill()
	if a.Running() {
		t.Fatal("running after Kill")
	}
	a.Restart(t)
	if a.Addr != addr || a.HTTPAddr != httpAddr || a.Pid() == pid {
		t.Fatalf("restart: %s %s %d, was %s %s %d", a.Addr, a.HTTPAddr, a.Pid(), addr, httpAddr, pid)
	}
	resp, err := http.Get("http://" + a.HTTPAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := a.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if a.ExitCode() != 0 {
		t.Fatalf("exit code %d", a.ExitCode())
	}
	a.Restart(t) // from stopped
	a.Restart(t) // from running
}

func TestEventually(t *testing.T) {
	start := time.Now()
	harness.Eventually(t, 5*time.Second, func() bool { return time.Since(start) > 30*time.Millisecond }, "never")
}

func TestMinIOBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	m := harness.StartMinIO(t)
	if m2 := harness.StartMinIO(t); m2 != m {
		t.Fatal("second StartMinIO started another server")
	}
	url := m.NewBucket(t)
	if !strings.HasPrefix(url, "s3://barge-test-") || !strings.Contains(url, "path_style=true") {
		t.Fatalf("bucket URL %s", url)
	}
	ctx := context.Background()
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			for _, k := range []string{"seg/2", "meta/log/1", "seg/1"} {
				if err := s.Put(ctx, k, []byte(k)); err != nil {
					t.Fatal(err)
				}
			}
			if got := b.List(t, "seg/"); strings.Join(got, ",") != "seg/1,seg/2" {
				t.Fatalf("List(seg/) = %q", got)
			}
			if got := b.List(t, ""); len(got) != 3 {
				t.Fatalf("List() = %q", got)
			}
		})
	}
}
