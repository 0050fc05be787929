package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Image is an image tarball as Read finds it.
type Image struct {
	Config Config
	// RepoTags are manifest.json's (docker load), RefName the OCI index's
	// org.opencontainers.image.ref.name.
	RepoTags []string
	RefName  string
	// Files is the layer's file system, by absolute path ("/etc/passwd";
	// directories without a trailing slash).
	Files map[string]*File
}

// File is one entry of the layer.
type File struct {
	Header tar.Header
	Data   []byte
}

// Read reads an image tarball written by Write (or any single-image OCI
// layout tarball with uncompressed layers and a docker-save
// manifest.json) and checks that it holds together: every blob is where
// its digest says and of the size its descriptor says, the OCI index and
// manifest.json name the same config and layers, and the config's diff ids
// are the layers'.
func Read(file string) (*Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("image: %s: %w", file, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("image: %s: %w", file, err)
		}
		entries[path.Clean(h.Name)] = b
	}
	blob := func(d descriptor, mediaType string) ([]byte, error) {
		if d.MediaType != mediaType {
			return nil, fmt.Errorf("image: blob %s is a %q, want %q", d.Digest, d.MediaType, mediaType)
		}
		b, ok := entries[blobPath(d)]
		if !ok {
			return nil, fmt.Errorf("image: no blob %s", d.Digest)
		}
		if got := describe(mediaType, b); got.Digest != d.Digest || got.Size != d.Size {
			return nil, fmt.Errorf("image: blob %s holds %s (%d bytes), want %d bytes", d.Digest, got.Digest, got.Size, d.Size)
		}
		return b, nil
	}
	if string(entries["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		return nil, fmt.Errorf("image: %s has no oci-layout of version 1.0.0", file)
	}
	var idx index
	if err := json.Unmarshal(entries["index.json"], &idx); err != nil {
		return nil, fmt.Errorf("image: index.json: %w", err)
	}
	if idx.SchemaVersion != 2 || len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("image: index.json: schema %d with %d manifests, want 2 with one", idx.SchemaVersion, len(idx.Manifests))
	}
	mb, err := blob(idx.Manifests[0], mediaManifest)
	if err != nil {
		return nil, err
	}
	var man manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, fmt.Errorf("image: manifest: %w", err)
	}
	cb, err := blob(man.Config, mediaConfig)
	if err != nil {
		return nil, err
	}
	img := &Image{RefName: idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"], Files: map[string]*File{}}
	if err := json.Unmarshal(cb, &img.Config); err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	var docker []dockerManifest
	if err := json.Unmarshal(entries["manifest.json"], &docker); err != nil {
		return nil, fmt.Errorf("image: manifest.json: %w", err)
	}
	if len(docker) != 1 || docker[0].Config != blobPath(man.Config) || len(docker[0].Layers) != len(man.Layers) {
		return nil, fmt.Errorf("image: manifest.json %+v does not name the OCI manifest's config and layers", docker)
	}
	img.RepoTags = docker[0].RepoTags
	if len(img.Config.RootFS.DiffIDs) != len(man.Layers) {
		return nil, fmt.Errorf("image: %d diff ids for %d layers", len(img.Config.RootFS.DiffIDs), len(man.Layers))
	}
	for i, l := range man.Layers {
		lb, err := blob(l, mediaLayer)
		if err != nil {
			return nil, err
		}
		if docker[0].Layers[i] != blobPath(l) || img.Config.RootFS.DiffIDs[i] != l.Digest {
			return nil, fmt.Errorf("image: layer %d is %s, manifest.json names %s, the diff id is %s", i, l.Digest, docker[0].Layers[i], img.Config.RootFS.DiffIDs[i])
		}
		lr := tar.NewReader(bytes.NewReader(lb))
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("image: layer %d: %w", i, err)
			}
			b, err := io.ReadAll(lr)
			if err != nil {
				return nil, fmt.Errorf("image: layer %d: %w", i, err)
			}
			img.Files["/"+strings.TrimSuffix(path.Clean(h.Name), "/")] = &File{Header: *h, Data: b}
		}
	}
	return img, nil
}
