package harness

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// IMDSMockBinary returns the path of AWS's EC2 instance-metadata mock
// (amazon-ec2-metadata-mock, installed by make deps into .tools/bin), or
// $BARGE_IMDS_MOCK_BIN.
func IMDSMockBinary() string {
	if p := os.Getenv("BARGE_IMDS_MOCK_BIN"); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), ".tools", "bin", "ec2-metadata-mock")
}

// StartIMDS runs the instance-metadata mock on a free loopback port,
// IMDSv2 only (a token is required, as on instances that enforce it), and
// returns its endpoint for AWS_EC2_METADATA_SERVICE_ENDPOINT. It answers
// with the mock's defaults: placement/availability-zone us-east-1a,
// local-ipv4 172.16.34.43. The process is killed when the test ends.
func StartIMDS(t testing.TB) string {
	t.Helper()
	return StartIMDSWith(t, nil)
}

// StartIMDSWith is StartIMDS with some meta-data values replaced, by the
// mock's names for them ("local-ipv4": "127.0.0.2"; see its
// aemm-metadata-default-values.json), given to it as AEMM_METADATA_VALUES_*
// variables.
func StartIMDSWith(t testing.TB, values map[string]string) string {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "imds.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(IMDSMockBinary(), "--hostname", "127.0.0.1", "--port", fmt.Sprint(port), "--imdsv2")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.Env = append(os.Environ(), "HOME="+dir) // its config and saved state stay in the test's directory
	for k, v := range values {
		cmd.Env = append(cmd.Env, "AEMM_METADATA_VALUES_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+v)
	}
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: starting the instance-metadata mock (make deps installs it): %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	endpoint := "http://" + loopback(port)
	Eventually(t, 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPut, endpoint+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the instance-metadata mock did not come up (log %s)", logf.Name())
	return endpoint
}
