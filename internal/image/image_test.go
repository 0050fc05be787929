package image

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeImage(t *testing.T, s Spec) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, s); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, buf.Bytes()
}

// Write lays out an image Read takes back whole (digests, sizes, both
// manifests agreeing): the config as the package says it, the agent
// executable and owned by root, the data directory owned by the user, a
// passwd entry for it, the CA bundle where Go looks. The same input writes
// the same bytes.
func TestWriteRead(t *testing.T) {
	spec := Spec{Agent: []byte("\x7fELF not really"), CACerts: []byte("-----BEGIN CERTIFICATE-----\n"), Arch: "arm64", Tag: "barge:dev"}
	file, b := writeImage(t, spec)
	if _, again := writeImage(t, spec); !bytes.Equal(b, again) {
		t.Error("two writes of one spec differ")
	}
	img, err := Read(file)
	if err != nil {
		t.Fatal(err)
	}
	c := img.Config
	if c.Architecture != "arm64" || c.OS != "linux" || !c.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("platform %s/%s created %v", c.OS, c.Architecture, c.Created)
	}
	if c.Config.User != User || !slices.Equal(c.Config.Entrypoint, []string{AgentPath}) || len(c.Config.Cmd) != 0 ||
		c.Config.WorkingDir != DataDir || !slices.Equal(c.Config.Env, Env) {
		t.Errorf("config %+v", c.Config)
	}
	for _, p := range Ports {
		if _, ok := c.Config.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, c.Config.ExposedPorts)
		}
	}
	if !slices.Equal(img.RepoTags, []string{"barge:dev"}) || img.RefName != "dev" {
		t.Errorf("named %v / %q", img.RepoTags, img.RefName)
	}

	agent := img.Files[AgentPath]
	if agent == nil || !bytes.Equal(agent.Data, spec.Agent) || agent.Header.Mode != 0o755 || agent.Header.Uid != 0 {
		t.Fatalf("agent %+v", agent)
	}
	if f := img.Files[CACertsPath]; f == nil || !bytes.Equal(f.Data, spec.CACerts) {
		t.Errorf("CA certificates %+v", f)
	}
	if d := img.Files[DataDir]; d == nil || !d.Header.FileInfo().IsDir() || d.Header.Uid != UID || d.Header.Gid != GID || d.Header.Mode&0o700 != 0o700 {
		t.Errorf("data directory %+v", d)
	}
	if d := img.Files["/tmp"]; d == nil || d.Header.Mode != 0o1777 {
		t.Errorf("/tmp %+v", d)
	}
	passwd := img.Files["/etc/passwd"]
	if passwd == nil || !strings.Contains(string(passwd.Data), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd %+v", passwd)
	}
	// Every file's directory is in the layer too.
	for name := range img.Files {
		if dir := filepath.Dir(name); dir != "/" && img.Files[dir] == nil {
			t.Errorf("%s without its directory %s", name, dir)
		}
	}
}

// Read refuses a tarball whose blob is not what its digest says.
func TestReadChecksDigests(t *testing.T) {
	file, b := writeImage(t, Spec{Agent: []byte("agent"), CACerts: []byte("certs"), Arch: "amd64"})
	i := bytes.Index(b, []byte("nonroot:x:65532"))
	b[i] = 'N'
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(file); err == nil || !strings.Contains(err.Error(), "holds") {
		t.Fatalf("a changed layer read as %v", err)
	}
}

func TestNames(t *testing.T) {
	for ref, want := range map[string][2]string{
		"barge":                        {"docker.io/library/barge:latest", "latest"},
		"barge:dev":                    {"docker.io/library/barge:dev", "dev"},
		"bargehq/barge:1.0":            {"docker.io/bargehq/barge:1.0", "1.0"},
		"ghcr.io/bargehq/barge":        {"ghcr.io/bargehq/barge:latest", "latest"},
		"localhost:5000/barge:x":       {"localhost:5000/barge:x", "x"},
		"123.dkr.ecr.aws/barge:v2":     {"123.dkr.ecr.aws/barge:v2", "v2"},
		"localhost/barge":              {"localhost/barge:latest", "latest"},
		"registry.example:443/a/b/c:d": {"registry.example:443/a/b/c:d", "d"},
	} {
		if got := [2]string{fullName(ref), tagOf(ref)}; got != want {
			t.Errorf("%s: %v, want %v", ref, got, want)
		}
	}
}

// The Dockerfile builds what make image builds: the same static build, the
// agent at AgentPath as the entrypoint, the same user, environment, ports
// and working directory. (No engine here runs it.)
func TestDockerfileMatches(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]string // instructions per stage, continuation lines joined
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if line == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			line += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		line += l
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], strings.Join(strings.Fields(line), " "))
		}
		line = ""
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	build, final := strings.Join(stages[0], "\n"), stages[len(stages)-1]
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", "./cmd/agent"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage does not say %q:\n%s", want, build)
		}
	}
	has := func(want string) {
		t.Helper()
		if !slices.Contains(final, want) {
			t.Errorf("the final stage has no %q:\n%s", want, strings.Join(final, "\n"))
		}
	}
	has(`ENTRYPOINT ["` + AgentPath + `"]`)
	has("USER " + User)
	has("WORKDIR " + DataDir)
	has("ENV " + strings.Join(Env, " "))
	has("EXPOSE " + strings.Join(Ports, " "))
	has("COPY --from=build /out/barge-agent " + AgentPath)
	has("COPY --from=build --chown=" + User + " --chmod=0750 /out/data " + DataDir)
	if !strings.HasPrefix(final[0], "FROM gcr.io/distroless/static") {
		t.Errorf("final base %q, want distroless static (CA certificates, nonroot)", final[0])
	}
}
