package fleet

import "github.com/bargehq/barge/pkg/meta"

// Rendezvous picks the owner of key among candidates (meta.Rendezvous:
// highest random weight, so that when one agent leaves only the keys it
// owned move).
func Rendezvous(key string, candidates []string) string { return meta.Rendezvous(key, candidates) }
