package meta

import "hash/fnv"

// Rendezvous picks the owner of key among candidates by highest random
// weight: every agent computes the same owner from the same live set, and
// when one agent leaves only the keys it owned move. pkg/fleet places
// partitions, groups and jobs with it; the log picks its sequencer with it
// (sequencer.go).
func Rendezvous(key string, candidates []string) string {
	best, bestScore := "", uint64(0)
	for _, c := range candidates {
		h := fnv.New64a()
		h.Write([]byte(c))
		h.Write([]byte{0})
		h.Write([]byte(key))
		if s := mix(h.Sum64()); best == "" || s > bestScore || s == bestScore && c < best {
			best, bestScore = c, s
		}
	}
	return best
}

// mix is splitmix64's finaliser: FNV alone spreads similar keys poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
