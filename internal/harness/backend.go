package harness

import (
	"context"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

// Backend is one kind of bucket a behaviour test runs against, freshly
// created for the test.
type Backend struct {
	// Name is "file" or "minio", for subtest names.
	Name string
	// URL is the agent's --store value.
	URL string
	// Env is what an agent needs in its environment to use URL.
	Env []string
	// List returns the keys under prefix, in key order, read directly from
	// the backend (not through the code under test).
	List func(t testing.TB, prefix string) []string

	open func(t testing.TB) objstore.Store
}

// Backends returns a fresh local-directory backend and a fresh MinIO
// bucket. Use them as
//
//	for _, b := range harness.Backends(t) {
//		t.Run(b.Name, func(t *testing.T) { ... b.URL ... })
//	}
func Backends(t testing.TB) []Backend {
	t.Helper()
	return []Backend{FileBackend(t), MinIOBackend(t)}
}

// FileBackend returns a backend on a fresh temporary directory.
func FileBackend(t testing.TB) Backend {
	t.Helper()
	dir := t.TempDir()
	openFile := func(t testing.TB) objstore.Store {
		t.Helper()
		s, err := objstore.NewFile(dir)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		return s
	}
	return Backend{
		Name: "file",
		URL:  "file://" + dir,
		List: func(t testing.TB, prefix string) []string {
			t.Helper()
			return listKeys(t, openFile(t), prefix)
		},
		open: openFile,
	}
}

// MinIOBackend returns a backend on a fresh bucket of the shared MinIO.
func MinIOBackend(t testing.TB) Backend {
	t.Helper()
	m := StartMinIO(t)
	bucket := m.newBucketName(t)
	return Backend{
		Name: "minio",
		URL:  m.storeURL(bucket),
		Env:  m.Env(),
		List: func(t testing.TB, prefix string) []string {
			t.Helper()
			return m.ListKeys(t, bucket, prefix)
		},
		open: func(t testing.TB) objstore.Store {
			t.Helper()
			s, err := objstore.NewS3(context.Background(), objstore.S3Config{
				Bucket:    bucket,
				Endpoint:  m.Endpoint,
				Region:    "us-east-1",
				PathStyle: true,
				AccessKey: m.AccessKey,
				SecretKey: m.SecretKey,
			})
			if err != nil {
				t.Fatalf("harness: %v", err)
			}
			return s
		},
	}
}

// Open returns a Store on the backend, for reading or seeding what the
// agent sees.
func (b Backend) Open(t testing.TB) objstore.Store {
	t.Helper()
	return b.open(t)
}

func listKeys(t testing.TB, s objstore.Store, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objs, err := s.List(ctx, prefix, "", 0)
	if err != nil {
		t.Fatalf("harness: list %q: %v", prefix, err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys
}
