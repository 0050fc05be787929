package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Fixed credentials of the test MinIO.
const (
	MinIOAccessKey = "bargetest"
	MinIOSecretKey = "bargetest-secret"
)

// MinIO is the MinIO server shared by all tests of one test process.
type MinIO struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint  string
	AccessKey string
	SecretKey string
	// Client is a minio-go client for the server, for creating buckets and
	// inspecting what the code under test wrote.
	Client *minio.Client

	cmd     *exec.Cmd
	dir     string
	logPath string
	done    chan struct{}
}

var (
	minioOnce    sync.Once
	minioShared  *MinIO
	minioErr     error
	bucketSerial atomic.Int64
)

// MinIOBinary returns the path of the MinIO server binary: $BARGE_MINIO_BIN,
// or .tools/bin/minio under the repository root (installed by make deps).
func MinIOBinary() string {
	if p := os.Getenv("BARGE_MINIO_BIN"); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), ".tools", "bin", "minio")
}

// StartMinIO returns the process's MinIO server, starting it on the first
// call. It fails the test when the binary is missing or the server does not
// come up. Call Main from TestMain so the server is stopped at exit.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m, err := LaunchMinIO()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return m
}

// LaunchMinIO is StartMinIO for programs that are not tests (cmd/bench): it
// returns the process's shared server, or the error that kept it from
// starting. Shutdown stops it.
func LaunchMinIO() (*MinIO, error) {
	minioOnce.Do(func() { minioShared, minioErr = startMinIO() })
	return minioShared, minioErr
}

func startMinIO() (*MinIO, error) {
	bin := MinIOBinary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("MinIO server binary not found at %s (%v): run `make test` (or `make deps`), which installs it, or set BARGE_MINIO_BIN", bin, err)
	}
	dir, err := os.MkdirTemp("", "barge-minio-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*MinIO, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	// The data dir must not be the parent of the log file: MinIO would
	// treat the log as a stray object.
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		return fail(err)
	}
	logPath := filepath.Join(dir, "minio.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()

	l, err := freePortErr()
	if err != nil {
		return fail(err)
	}
	c, err := freePortErr()
	if err != nil {
		return fail(err)
	}
	m := &MinIO{
		Endpoint:  "http://" + loopback(l),
		AccessKey: MinIOAccessKey,
		SecretKey: MinIOSecretKey,
		dir:       dir,
		logPath:   logPath,
		done:      make(chan struct{}),
	}
	cmd := exec.Command(bin, "server", dataDir, "--address", loopback(l), "--console-address", loopback(c), "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+MinIOAccessKey,
		"MINIO_ROOT_PASSWORD="+MinIOSecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start minio: %w", err))
	}
	m.cmd = cmd
	go func() { cmd.Wait(); close(m.done) }()

	health := m.Endpoint + "/minio/health/live"
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-m.done:
			out := tail(logPath, 8<<10)
			return fail(fmt.Errorf("minio exited before it was live; log:\n%s", out))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			return fail(fmt.Errorf("minio not live at %s within 60s; log:\n%s", health, tail(logPath, 8<<10)))
		}
	}

	u, _ := url.Parse(m.Endpoint)
	m.Client, err = minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(MinIOAccessKey, MinIOSecretKey, ""),
		Secure: false,
		Region: "us-east-1",
	})
	if err != nil {
		m.stop()
		return fail(err)
	}
	return m, nil
}

// Pid returns the server's process id (0 if it is not running).
func (m *MinIO) Pid() int {
	if m == nil || m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *MinIO) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

func stopMinIO() {
	if minioShared != nil {
		minioShared.stop()
		os.RemoveAll(minioShared.dir)
	}
}

// NewBucket creates a fresh, uniquely named bucket and returns the store
// URL for it: s3://BUCKET?endpoint=...&region=us-east-1&path_style=true.
// The bucket is left behind; the whole server goes away at exit.
func (m *MinIO) NewBucket(t testing.TB) string {
	t.Helper()
	return m.storeURL(m.newBucketName(t))
}

func (m *MinIO) newBucketName(t testing.TB) string {
	t.Helper()
	name, err := m.createBucket()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return name
}

// CreateBucket is NewBucket for programs that are not tests: it returns the
// new bucket's name and its store URL.
func (m *MinIO) CreateBucket() (bucket, storeURL string, err error) {
	name, err := m.createBucket()
	if err != nil {
		return "", "", err
	}
	return name, m.storeURL(name), nil
}

func (m *MinIO) createBucket() (string, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("barge-test-%d-%s", bucketSerial.Add(1), hex.EncodeToString(rnd[:]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return "", fmt.Errorf("create bucket %s: %w", name, err)
	}
	return name, nil
}

func (m *MinIO) storeURL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + url.QueryEscape(m.Endpoint) + "&region=us-east-1&path_style=true"
}

// Env returns the environment an agent subprocess needs to reach this
// server through the AWS SDK's default credential chain.
func (m *MinIO) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// ListKeys returns the keys in bucket under prefix, in key order.
func (m *MinIO) ListKeys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	for obj := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("harness: list %s/%s: %v", bucket, prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}
