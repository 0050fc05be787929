package objstore

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get and GetRange when the key does not exist.
var ErrNotFound = errors.New("objstore: object not found")

// ErrExists is returned by PutIfAbsent when the key already exists (an S3
// 412 Precondition Failed). The caller lost the race for that key.
var ErrExists = errors.New("objstore: object already exists")

// ObjectInfo describes one listed object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time // when the object was last written (S3 LastModified)
}

// Store is the whole contract Barge needs from a bucket. Keys are
// slash-separated and compared bytewise; List returns them in that order.
type Store interface {
	// Put writes the object, replacing any previous one. When Put
	// returns nil the object is durable.
	Put(ctx context.Context, key string, data []byte) error
	// PutIfAbsent creates the object only if no object has the key, and
	// returns ErrExists otherwise. Exactly one of many concurrent
	// creators wins. When it returns nil the object is durable.
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	// Get reads a whole object.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange reads length bytes at off.
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	// List returns up to limit objects whose keys start with prefix and
	// sort after startAfter (all of them when limit <= 0), in key order.
	List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}
