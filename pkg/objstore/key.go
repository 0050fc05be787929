package objstore

import (
	"fmt"
	"strings"
)

// checkKey rejects keys that no backend can hold safely: empty keys, keys
// with a leading slash, empty or dot path segments (which would escape or
// alias a directory in File), and NUL bytes.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("objstore: empty key")
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("objstore: invalid key %q: leading or trailing slash", key)
	}
	if strings.ContainsRune(key, 0) || strings.ContainsRune(key, '\\') {
		return fmt.Errorf("objstore: invalid key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("objstore: invalid key %q: empty, . or .. segment", key)
		}
	}
	return nil
}

func checkRange(off, length int64) error {
	if off < 0 || length < 0 {
		return fmt.Errorf("objstore: invalid range off=%d length=%d", off, length)
	}
	return nil
}

// cutRange returns b[off:off+length], cut short at the end of b.
func cutRange(b []byte, off, length int64) []byte {
	n := int64(len(b))
	if off >= n {
		return nil
	}
	end := off + length
	if end > n || end < off {
		end = n
	}
	return b[off:end]
}
