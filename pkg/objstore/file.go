package objstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// tmpDir is the directory under the root where File stages writes. It is
// never listed, and keys inside it are rejected.
const tmpDir = ".tmp"

// File is a Store on a local directory: key "a/b/c" is the file dir/a/b/c.
//
// Put writes a temporary file in dir/.tmp, fsyncs it, renames it over the
// final path and fsyncs the parent directory. PutIfAbsent instead hard-links
// the temporary file to the final path: link(2) fails with EEXIST when the
// name is taken, so exactly one of any number of concurrent creators wins,
// across processes too. Readers never see a partly written object.
//
// Objects are whole files; they are not locked, so a reader racing a Put of
// the same key sees the old or the new object, never a mix.
type File struct {
	dir string
}

// NewFile returns a File store rooted at dir, creating dir (and its staging
// directory) if needed.
func NewFile(dir string) (*File, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: file store %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("objstore: file store: %w", err)
	}
	return &File{dir: abs}, nil
}

// Dir returns the absolute root directory of the store.
func (f *File) Dir() string { return f.dir }

func (f *File) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", fmt.Errorf("objstore: invalid key %q: %s is reserved", key, tmpDir)
	}
	return filepath.Join(f.dir, filepath.FromSlash(key)), nil
}

// writeTemp writes data to a new fsynced file in the staging directory and
// returns its path.
func (f *File) writeTemp(data []byte) (string, error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	name := filepath.Join(f.dir, tmpDir, hex.EncodeToString(rnd[:]))
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		os.Remove(name)
		return "", err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		os.Remove(name)
		return "", err
	}
	if err := fh.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// mkdirs creates the parent directories of p, fsyncing each directory that
// gained an entry so the new path survives a crash.
func (f *File) mkdirs(p string) error {
	parent := filepath.Dir(p)
	if _, err := os.Stat(parent); err == nil {
		return nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	for d := parent; d != f.dir && strings.HasPrefix(d, f.dir); d = filepath.Dir(d) {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// place creates p's parent directories and runs op (a rename or link to p).
// A concurrent Delete may remove an emptied parent between the two, so it
// retries a few times when op finds the directory missing.
func (f *File) place(p string, op func() error) error {
	var err error
	for range 10 {
		if err = f.mkdirs(p); err != nil {
			// MkdirAll reports EEXIST when a directory it found
			// existing was removed before it could check it.
			if isNotExist(err) || errors.Is(err, fs.ErrExist) {
				continue
			}
			return err
		}
		if err = op(); err == nil || !isNotExist(err) {
			return err
		}
	}
	return err
}

func (f *File) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := f.path(key)
	if err != nil {
		return err
	}
	tmp, err := f.writeTemp(data)
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := f.place(p, func() error { return os.Rename(tmp, p) }); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return nil
}

func (f *File) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := f.path(key)
	if err != nil {
		return err
	}
	tmp, err := f.writeTemp(data)
	if err != nil {
		return fmt.Errorf("objstore: put-if-absent %s: %w", key, err)
	}
	linkErr := f.place(p, func() error { return os.Link(tmp, p) })
	os.Remove(tmp)
	if linkErr != nil {
		if errors.Is(linkErr, fs.ErrExist) || errors.Is(linkErr, syscall.EEXIST) {
			return ErrExists
		}
		return fmt.Errorf("objstore: put-if-absent %s: %w", key, linkErr)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("objstore: put-if-absent %s: %w", key, err)
	}
	return nil
}

func (f *File) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		if isNotExist(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	return b, nil
}

// GetRange reads length bytes at off. A range that runs past the end of the
// object is cut short; one that starts at or past the end returns no bytes
// and no error. All backends behave the same way.
func (f *File) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkRange(off, length); err != nil {
		return nil, err
	}
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(p)
	if err != nil {
		if isNotExist(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("objstore: get range %s: %w", key, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("objstore: get range %s: %w", key, err)
	}
	size := st.Size()
	if off >= size {
		return []byte{}, nil
	}
	if length > size-off {
		length = size - off
	}
	buf := make([]byte, length)
	n, err := fh.ReadAt(buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == length) {
		return nil, fmt.Errorf("objstore: get range %s: %w", key, err)
	}
	return buf[:n], nil
}

// List walks the directory tree. Keys are compared bytewise, which a
// directory walk does not give ("a/b" < "a.b" but the walk would yield
// a.b first), so it collects and sorts; fine for the embedded default.
func (f *File) List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Walk only the deepest directory that contains every matching key.
	root := f.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		root = filepath.Join(f.dir, filepath.FromSlash(prefix[:i]))
	}
	var out []ObjectInfo
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil // a directory removed under us, or no such prefix
			}
			return err
		}
		rel, rerr := filepath.Rel(f.dir, p)
		if rerr != nil {
			return rerr
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == tmpDir {
				return filepath.SkipDir
			}
			// Prune directories that cannot hold a matching key.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || key <= startAfter {
			return nil
		}
		info, ierr := d.Info()
		if ierr != nil {
			if isNotExist(ierr) {
				return nil
			}
			return ierr
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Delete removes the object and then any parent directories it left empty
// (best effort: a concurrent Put may recreate one).
func (f *File) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	// A concurrent Delete may already have removed the emptied parent,
	// which takes our entry with it.
	if err := syncDir(filepath.Dir(p)); err != nil && !isNotExist(err) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	for d := filepath.Dir(p); d != f.dir && strings.HasPrefix(d, f.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil { // not empty, or gone
			break
		}
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
