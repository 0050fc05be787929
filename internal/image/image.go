// Package image builds the agent's container image without a container
// engine (`make image`): the agent cross-built statically, in one layer
// with CA certificates, a passwd entry for a non-root user and a data
// directory that user owns. The output is one tar file that is both an OCI
// image layout (oci-layout, index.json, blobs/sha256/) and a docker-save
// archive (manifest.json naming the same blobs), as `docker save` writes
// since Docker 25, so `docker load` and `podman load` both take it.
//
// The Dockerfile at the repository's root builds the same image with an
// engine; TestDockerfileMatches keeps the two alike.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// What the image is, as its config says it.
const (
	// AgentPath is the agent binary in the image, its entrypoint.
	AgentPath = "/usr/local/bin/barge-agent"
	// DataDir is the working directory and the default file store's
	// parent, owned by the user.
	DataDir = "/var/lib/barge"
	// UID and GID are distroless's "nonroot".
	UID, GID = 65532, 65532
	// User is the config's User.
	User = "65532:65532"
	// CACertsPath is where Go's crypto/x509 looks first on Linux.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// AgentPackage is what is built into AgentPath.
	AgentPackage = "github.com/bargehq/barge/cmd/agent"
)

// Env is the image's environment: the agent's defaults spelled out, and a
// file store in DataDir. They are variables, not a Cmd, so that either a
// -e BARGE_...=... or a flag after the image name overrides each one (the
// agent's flags win over its BARGE_* variables, so a default given as a
// flag would silently beat the user's variable).
var Env = []string{
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"BARGE_LISTEN=:9092",
	"BARGE_HTTP=:9644",
	"BARGE_STORE=file://" + DataDir + "/data",
}

// Ports are the Kafka listener's and the HTTP one's (/metrics, /healthz,
// /readyz).
var Ports = []string{"9092/tcp", "9644/tcp"}

// Media types of the OCI image spec.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Options say what Build makes.
type Options struct {
	// Out is the tar file written (build/barge-image.tar for make image).
	Out string
	// Arch is the GOARCH built for and the image's architecture
	// (amd64, arm64); empty is the host's.
	Arch string
	// Tag names the image once loaded; empty is barge:latest.
	Tag string
	// CACerts is the PEM bundle copied to CACertsPath; empty is the build
	// machine's /etc/ssl/certs/ca-certificates.crt.
	CACerts string
	// Dir is where go build runs: any directory of the module.
	Dir string
	// Created is the config's creation time and every file's; zero is
	// the Unix epoch, so that one source and toolchain build one image.
	Created time.Time
}

// Build cross-builds the agent (static: CGO_ENABLED=0, -trimpath) and
// writes the image to o.Out.
func Build(ctx context.Context, o Options) error {
	if o.Arch == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOARCH").Output()
		if err != nil {
			return fmt.Errorf("image: go env GOARCH: %w", err)
		}
		o.Arch = strings.TrimSpace(string(out))
	}
	if o.CACerts == "" {
		o.CACerts = CACertsPath
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return fmt.Errorf("image: CA certificates: %w", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return fmt.Errorf("image: %s holds no PEM certificate", o.CACerts)
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	bin := o.Out + ".agent.tmp"
	defer os.Remove(bin)
	if err := BuildAgent(ctx, o.Dir, o.Arch, bin); err != nil {
		return err
	}
	agent, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	tmp := o.Out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer os.Remove(tmp)
	err = Write(f, Spec{Agent: agent, CACerts: certs, Arch: o.Arch, Tag: o.Tag, Created: o.Created})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("image: writing %s: %w", o.Out, err)
	}
	return os.Rename(tmp, o.Out)
}

// BuildAgent builds the agent for linux/arch into out, statically linked
// and without the build machine's paths, as the Dockerfile does.
func BuildAgent(ctx context.Context, dir, arch, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, AgentPackage)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: go build %s for linux/%s: %v\n%s", AgentPackage, arch, err, b)
	}
	return nil
}

// Spec is what Write lays out.
type Spec struct {
	Agent   []byte // the agent, a static linux ELF for Arch
	CACerts []byte // PEM
	Arch    string
	Tag     string // empty: barge:latest
	Created time.Time
}

// Config is the part of the OCI image config this package writes (a
// Docker image config reads the same).
type Config struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       struct {
		User         string              `json:"User"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd,omitempty"`
		WorkingDir   string              `json:"WorkingDir"`
		Labels       map[string]string   `json:"Labels,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// dockerManifest is one entry of a docker-save archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Write writes the image as one tar stream.
func Write(w io.Writer, s Spec) error {
	if s.Tag == "" {
		s.Tag = "barge:latest"
	}
	if s.Created.IsZero() {
		s.Created = time.Unix(0, 0)
	}
	s.Created = s.Created.UTC()
	layer, err := rootFS(s)
	if err != nil {
		return err
	}
	layerDesc := describe(mediaLayer, layer)

	var cfg Config
	cfg.Created, cfg.Architecture, cfg.OS = s.Created, s.Arch, "linux"
	cfg.Config.User = User
	cfg.Config.ExposedPorts = map[string]struct{}{}
	for _, p := range Ports {
		cfg.Config.ExposedPorts[p] = struct{}{}
	}
	cfg.Config.Env = Env
	cfg.Config.Entrypoint = []string{AgentPath}
	cfg.Config.WorkingDir = DataDir
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "barge",
		"org.opencontainers.image.description": "Barge agent: a Kafka-compatible broker that keeps its data in a bucket",
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{layerDesc.Digest} // the layer is not compressed
	cfg.History = append(cfg.History, struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	}{s.Created, "make image (internal/image): " + AgentPath + ", CA certificates, passwd, " + DataDir})
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgDesc := describe(mediaConfig, cfgJSON)
	man, err := json.Marshal(manifest{SchemaVersion: 2, MediaType: mediaManifest, Config: cfgDesc, Layers: []descriptor{layerDesc}})
	if err != nil {
		return err
	}
	manDesc := describe(mediaManifest, man)
	manDesc.Annotations = map[string]string{
		"io.containerd.image.name":          fullName(s.Tag),
		"org.opencontainers.image.ref.name": tagOf(s.Tag),
	}
	manDesc.Platform = &platform{Architecture: s.Arch, OS: "linux"}
	idx, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: []descriptor{manDesc}})
	if err != nil {
		return err
	}
	docker, err := json.Marshal([]dockerManifest{{Config: blobPath(cfgDesc), RepoTags: []string{s.Tag}, Layers: []string{blobPath(layerDesc)}}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: s.Created, Format: tar.FormatPAX})
	}
	file := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: s.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	for _, b := range [][]byte{layer, cfgJSON, man} {
		if err := file(blobPath(describe("", b)), b); err != nil {
			return err
		}
	}
	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := file("index.json", idx); err != nil {
		return err
	}
	if err := file("manifest.json", docker); err != nil {
		return err
	}
	return tw.Close()
}

// rootFS is the one layer: a tar of the image's file system.
func rootFS(s Spec) ([]byte, error) {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := "root:x:0:\n" + fmt.Sprintf("nonroot:x:%d:\n", GID)
	type entry struct {
		name     string
		mode     int64
		uid, gid int
		data     []byte // nil for a directory
	}
	entries := []entry{
		{"etc/", 0o755, 0, 0, nil},
		{"etc/group", 0o644, 0, 0, []byte(group)},
		{"etc/passwd", 0o644, 0, 0, []byte(passwd)},
		{"etc/ssl/", 0o755, 0, 0, nil},
		{"etc/ssl/certs/", 0o755, 0, 0, nil},
		{strings.TrimPrefix(CACertsPath, "/"), 0o644, 0, 0, s.CACerts},
		{"home/", 0o755, 0, 0, nil},
		{"home/nonroot/", 0o700, UID, GID, nil},
		{"tmp/", 0o1777, 0, 0, nil},
		{"usr/", 0o755, 0, 0, nil},
		{"usr/local/", 0o755, 0, 0, nil},
		{"usr/local/bin/", 0o755, 0, 0, nil},
		{strings.TrimPrefix(AgentPath, "/"), 0o755, 0, 0, s.Agent},
		{"var/", 0o755, 0, 0, nil},
		{"var/lib/", 0o755, 0, 0, nil},
		{strings.TrimPrefix(DataDir, "/") + "/", 0o750, UID, GID, nil},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: s.Created, Format: tar.FormatPAX}
		if e.data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if e.uid == UID {
			h.Uname, h.Gname = "nonroot", "nonroot"
		} else {
			h.Uname, h.Gname = "root", "root"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func describe(mediaType string, b []byte) descriptor {
	sum := sha256.Sum256(b)
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

func blobPath(d descriptor) string { return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:") }

// tagOf is the tag of a reference ("latest" for "barge").
func tagOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

// fullName is a reference as containerd names it: docker.io/library/barge:latest.
func fullName(ref string) string {
	if i := strings.LastIndex(ref, ":"); i <= strings.LastIndex(ref, "/") {
		ref += ":latest"
	}
	first, _, hasSlash := strings.Cut(ref, "/")
	switch {
	case !hasSlash:
		return "docker.io/library/" + ref
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + ref
	}
	return ref
}
