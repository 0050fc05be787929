package objstore

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Open returns the Store a URL names:
//
//	file://DIR            a local directory, created if missing; relative
//	                      paths work (file://./data, file://data)
//	mem://                a fresh in-memory store
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=true]
//
// S3 credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID
// and friends, shared config, instance role).
func Open(ctx context.Context, rawURL string) (Store, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("objstore: store URL %q: want file://DIR, mem:// or s3://BUCKET", rawURL)
	}
	switch strings.ToLower(scheme) {
	case "file":
		// Not url.Parse: "file://./data" would put "." in the host.
		dir := rest
		if dir == "" {
			return nil, fmt.Errorf("objstore: store URL %q: missing directory", rawURL)
		}
		return NewFile(filepath.FromSlash(dir))
	case "mem", "memory":
		return NewMemory(), nil
	case "s3":
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("objstore: store URL %q: %w", rawURL, err)
		}
		cfg := S3Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
		q := u.Query()
		cfg.Endpoint = q.Get("endpoint")
		cfg.Region = q.Get("region")
		if v := q.Get("path_style"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("objstore: store URL %q: path_style: %w", rawURL, err)
			}
			cfg.PathStyle = b
		}
		for k := range q {
			switch k {
			case "endpoint", "region", "path_style":
			default:
				return nil, fmt.Errorf("objstore: store URL %q: unknown parameter %q", rawURL, k)
			}
		}
		return NewS3(ctx, cfg)
	default:
		return nil, fmt.Errorf("objstore: store URL %q: unknown scheme %q", rawURL, scheme)
	}
}
