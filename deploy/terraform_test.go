// Package deploy holds the deployment configuration (Terraform under
// deploy/terraform, and localstack/ beside it); its only Go code is this
// test, which checks that configuration offline.
package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The trees searched for Terraform roots, relative to the repository.
var trees = []string{"deploy", "localstack"}

// TestTerraform checks every Terraform root under deploy/ and localstack/
// (any directory holding .tf files) without a network:
//
//   - fmt: `terraform fmt -check -recursive` on the trees as they are;
//   - for each root, on a copy of the trees (so that relative module
//     sources resolve and no lock file or .terraform lands in the
//     repository): `terraform init -backend=false`, `terraform validate`,
//     and `terraform test` when the root has tests/*.tftest.hcl or
//     *.tftest.hcl.
//
// hashicorp/aws comes from tools/tfschema-provider, a schema-only stand-in
// built here (and cached under .tools/) and installed through a
// filesystem_mirror, so validate checks every argument, block, type and
// reference against the real provider's schema, and tests run with
// mock_provider "aws". The stand-in cannot plan or apply anything real;
// tests must use mock_provider.
func TestTerraform(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tf := findTerraform(t, repo)
	env := terraformEnv()

	var present []string
	for _, d := range trees {
		if fi, err := os.Stat(filepath.Join(repo, d)); err == nil && fi.IsDir() {
			present = append(present, d)
		}
	}
	roots, err := findRoots(repo, present)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) == 0 {
		t.Skipf("no Terraform roots (directories with .tf files) under %s/", strings.Join(trees, "/ or "))
	}

	t.Run("fmt", func(t *testing.T) {
		args := append([]string{"fmt", "-check", "-recursive", "-diff", "-no-color"}, present...)
		if out, err := run(tf, repo, env, args...); err != nil {
			t.Fatalf("terraform %s: %v (run `terraform fmt -recursive %s` to fix)\n%s",
				strings.Join(args, " "), err, strings.Join(present, " "), out)
		}
	})

	mirror, version := standIn(t, repo)
	cli := filepath.Join(t.TempDir(), "terraformrc")
	cfg := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %s
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
`, strconv.Quote(mirror))
	if err := os.WriteFile(cli, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(env, "TF_CLI_CONFIG_FILE="+cli)

	work := t.TempDir()
	for _, d := range present {
		if err := copyTree(filepath.Join(repo, d), filepath.Join(work, d)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("hashicorp/aws %s stand-in from %s; roots: %s", version, mirror, strings.Join(roots, ", "))

	for _, root := range roots {
		t.Run(root, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(work, root)
			step := func(name string, args ...string) bool {
				return t.Run(name, func(t *testing.T) {
					out, err := run(tf, dir, env, args...)
					if err != nil {
						t.Fatalf("in %s: terraform %s: %v\n%s", root, strings.Join(args, " "), err, out)
					}
					if name == "test" {
						t.Logf("%s: %s", root, lastLine(out))
					}
				})
			}
			if !step("init", "init", "-backend=false", "-input=false", "-no-color") {
				return
			}
			step("validate", "validate", "-no-color")
			if hasTests(dir) {
				step("test", "test", "-no-color")
			}
		})
	}
}

// findTerraform returns terraform from PATH or .tools/bin, at least 1.7
// (mock_provider).
func findTerraform(t *testing.T, repo string) string {
	t.Helper()
	tf, err := exec.LookPath("terraform")
	if err != nil {
		tf = filepath.Join(repo, ".tools", "bin", "terraform")
		if _, err := os.Stat(tf); err != nil {
			t.Fatalf("terraform is not on PATH nor in .tools/bin: run `make deps`, which installs it")
		}
	}
	out, err := exec.Command(tf, "version", "-json").Output()
	if err != nil {
		t.Fatalf("%s version -json: %v", tf, err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s version -json: %v\n%s", tf, err, out)
	}
	var major, minor int
	if _, err := fmt.Sscanf(v.Version, "%d.%d", &major, &minor); err != nil || major < 1 || (major == 1 && minor < 7) {
		t.Fatalf("%s is terraform %q; mock_provider needs 1.7 or later (`make deps` installs 1.11.4 into .tools/bin)", tf, v.Version)
	}
	return tf
}

// terraformEnv is the environment without the caller's TF_* settings.
func terraformEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "CHECKPOINT_") {
			env = append(env, kv)
		}
	}
	return append(env, "TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1")
}

func run(bin, dir string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// findRoots lists, relative to repo, the directories under trees that hold
// .tf or .tf.json files, skipping hidden ones (.terraform).
func findRoots(repo string, trees []string) ([]string, error) {
	seen := map[string]bool{}
	for _, tree := range trees {
		err := filepath.WalkDir(filepath.Join(repo, tree), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(d.Name(), ".tf") || strings.HasSuffix(d.Name(), ".tf.json")) {
				rel, err := filepath.Rel(repo, filepath.Dir(path))
				if err != nil {
					return err
				}
				seen[filepath.ToSlash(rel)] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var roots []string
	for r := range seen {
		roots = append(roots, r)
	}
	sort.Strings(roots)
	return roots, nil
}

func hasTests(dir string) bool {
	for _, pat := range []string{"*.tftest.hcl", "*.tftest.json", "tests/*.tftest.hcl", "tests/*.tftest.json"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
			return true
		}
	}
	return false
}

// copyTree copies src to dst, leaving out hidden directories (.terraform),
// lock files and state, which would tie a run to another provider build.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if name == ".terraform.lock.hcl" || strings.Contains(name, ".tfstate") {
			return nil
		}
		fi, err := os.Stat(path) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

// standIn builds tools/tfschema-provider into a filesystem mirror under
// .tools/tfschema-provider/<hash of its sources>/ unless it is there
// already, and returns the mirror directory and the provider version it
// poses as (from aws-schema.json).
func standIn(t *testing.T, repo string) (mirror, version string) {
	t.Helper()
	src := filepath.Join(repo, "tools", "tfschema-provider")
	data, err := os.ReadFile(filepath.Join(src, "aws-schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Source struct {
			ProviderVersion string `json:"provider_version"`
		} `json:"barge_source"`
	}
	if err := json.Unmarshal(data, &f); err != nil || f.Source.ProviderVersion == "" {
		t.Fatalf("aws-schema.json: no barge_source.provider_version (%v)", err)
	}
	version = f.Source.ProviderVersion

	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	key, err := sourceHash(src, runtime.Version())
	if err != nil {
		t.Fatal(err)
	}
	mirror = filepath.Join(repo, ".tools", "tfschema-provider", key)
	dir := filepath.Join(mirror, "registry.terraform.io", "hashicorp", "aws", version, runtime.GOOS+"_"+runtime.GOARCH)
	bin := filepath.Join(dir, "terraform-provider-aws_v"+version)
	if _, err := os.Stat(bin); err == nil {
		return mirror, version
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("building the stand-in provider (go build in tools/tfschema-provider): %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the hashicorp/aws stand-in in %v", time.Since(start).Round(time.Millisecond))
	return mirror, version
}

// sourceHash hashes the stand-in's sources (and the Go version building
// them), naming its cache directory.
func sourceHash(src, goVersion string) (string, error) {
	h := sha256.New()
	io.WriteString(h, goVersion+"\n")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if n := d.Name(); !strings.HasSuffix(n, ".go") && n != "go.mod" && n != "go.sum" && n != "aws-schema.json" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
