package main

import (
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

// Latencies is the delay added before each kind of bucket call.
type Latencies struct {
	PutIfAbsent time.Duration // a conditional PUT (If-None-Match: *)
	Put         time.Duration
	Get         time.Duration // Get and GetRange
	List        time.Duration
	Delete      time.Duration
}

// s3Standard is roughly what S3 Standard answers in from inside its region
// for small objects: a conditional PUT about 30 ms, a GET or a List 15 ms.
var s3Standard = Latencies{PutIfAbsent: 30 * time.Millisecond, Put: 20 * time.Millisecond,
	Get: 15 * time.Millisecond, List: 15 * time.Millisecond, Delete: 20 * time.Millisecond}

// withLatency has s answer in a bucket's time: every call waits its kind's
// latency first (objstore.Faulty's delays, which end with the call's
// context), so a fast store (objstore.Memory) answers as a bucket does and
// concurrent callers race for a key over that whole window.
func withLatency(s objstore.Store, lat Latencies) objstore.Store {
	f := objstore.NewFaulty(s)
	for op, d := range map[objstore.Op]time.Duration{objstore.OpPutIfAbsent: lat.PutIfAbsent, objstore.OpPut: lat.Put,
		objstore.OpGet: lat.Get, objstore.OpGetRange: lat.Get, objstore.OpList: lat.List, objstore.OpDelete: lat.Delete} {
		f.SetDelay(op, d)
	}
	return f
}
