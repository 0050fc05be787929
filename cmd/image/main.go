// Command image builds the agent's container image without a container
// engine (make image): an OCI layout tarball that docker load and podman
// load accept. See internal/image.
//
//	go run ./cmd/image -o build/barge-image.tar [-arch arm64] [-tag barge:dev] [-ca FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/bargehq/barge/internal/image"
)

func main() {
	var o image.Options
	flag.StringVar(&o.Out, "o", "build/barge-image.tar", "the image tarball to write")
	flag.StringVar(&o.Arch, "arch", "", "GOARCH to build for, amd64 or arm64 (default: the host's)")
	flag.StringVar(&o.Tag, "tag", "barge:latest", "the name the image is loaded as")
	flag.StringVar(&o.CACerts, "ca", image.CACertsPath, "PEM bundle of CA certificates to copy into the image")
	flag.Parse()
	// SOURCE_DATE_EPOCH, as reproducible builds set it; else the epoch.
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "image: SOURCE_DATE_EPOCH:", err)
			os.Exit(2)
		}
		o.Created = time.Unix(sec, 0)
	}
	start := time.Now()
	if err := image.Build(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, _ := os.Stat(o.Out)
	fmt.Printf("wrote %s (%d MB) in %v; load it with: docker load -i %s (or podman load -i)\n",
		o.Out, st.Size()>>20, time.Since(start).Round(100*time.Millisecond), o.Out)
}
