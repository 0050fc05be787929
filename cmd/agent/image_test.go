package main

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/image"
)

// TestImage builds the image as make image does (the agent cross-built
// statically; the build cache makes it a link after the first time) and
// reads it back, no container engine: the user is not root and has a
// passwd entry, the entrypoint is the agent, there in the layer as an
// executable static ELF for the image's architecture, and the image's
// default settings (its Cmd and environment) parse with the agent's own
// parser into a listener on every address and a file store in a
// directory the user owns and may write.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	out := filepath.Join(t.TempDir(), "barge-image.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := image.Build(ctx, image.Options{Out: out}); err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))
	img, err := image.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	c := img.Config.Config

	uid, gid, ok := strings.Cut(c.User, ":")
	if !ok || uid == "0" || uid == "root" || gid == "0" {
		t.Fatalf("User %q, want a non-root uid:gid", c.User)
	}
	if p := img.Files["/etc/passwd"]; p == nil || !strings.Contains(string(p.Data), ":x:"+uid+":"+gid+":") {
		t.Errorf("no passwd entry for %s", c.User)
	}

	if len(c.Entrypoint) != 1 || c.Entrypoint[0] != image.AgentPath {
		t.Fatalf("Entrypoint %q, want [%s]", c.Entrypoint, image.AgentPath)
	}
	bin := img.Files[c.Entrypoint[0]]
	if bin == nil || !bin.Header.FileInfo().Mode().IsRegular() {
		t.Fatalf("the entrypoint %s is not a file in the layer", c.Entrypoint[0])
	}
	if bin.Header.Mode&0o111 != 0o111 || bin.Header.Mode&0o022 != 0 || strconv.Itoa(bin.Header.Uid) == uid {
		t.Errorf("the agent's mode %o, owner %d: want executable by all, writable by root only", bin.Header.Mode, bin.Header.Uid)
	}
	ef, err := elf.NewFile(bytes.NewReader(bin.Data))
	if err != nil {
		t.Fatalf("the agent is not an ELF file: %v", err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if img.Config.Architecture != runtime.GOARCH || ef.Machine != machine || ef.Type != elf.ET_EXEC {
		t.Errorf("image for %s, ELF %v %v: want an executable for this machine (%s)", img.Config.Architecture, ef.Machine, ef.Type, runtime.GOARCH)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the agent has a %v program header: dynamically linked", p.Type)
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the agent needs %v", libs)
	}

	// What docker run with no arguments starts.
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := parseConfig(c.Cmd, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the image's defaults (Cmd %q, Env %q) do not parse: %v", c.Cmd, c.Env, err)
	}
	for _, addr := range []string{cfg.Listen, cfg.HTTP} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
			t.Errorf("listens at %q, want every address", addr)
		}
		if _, ok := c.ExposedPorts[port+"/tcp"]; !ok {
			t.Errorf("port %s of %s is not exposed: %v", port, addr, c.ExposedPorts)
		}
	}
	dir, ok := strings.CutPrefix(cfg.Store, "file://")
	if !ok {
		t.Fatalf("store %q, want a file store", cfg.Store)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(c.WorkingDir, dir)
	}
	// The store creates its directory inside one the user owns.
	owned := img.Files[filepath.Dir(dir)]
	if owned == nil || !owned.Header.FileInfo().IsDir() || fmt.Sprint(owned.Header.Uid) != uid || owned.Header.Mode&0o300 != 0o300 {
		t.Errorf("store %s: %s is not a directory the user (%s) owns and may write: %+v", cfg.Store, filepath.Dir(dir), c.User, owned)
	}
	if !slices.Contains([]string{"", "/"}, c.WorkingDir) && img.Files[c.WorkingDir] == nil {
		t.Errorf("working directory %s is not in the layer", c.WorkingDir)
	}
}
