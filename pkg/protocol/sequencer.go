package protocol

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// The metadata log's relay between agents (meta/sequencer.go): an agent
// sends its entries to the sequencer, and follows the sequencer's slots,
// over the peer address, in two Barge-private APIs that are served only on
// a connection that began as a peer's (forward.go) and never advertised:
//
//	Contribute (keyContribute) v0
//	  request:  budget ms (int32), entry (int32 length, bytes)
//	  response: error (int16 length, message; empty: none), then, only
//	            without one, slot (int64), the slot's bytes (int32 length,
//	            bytes)
//	Slots (keySlots) v0
//	  request:  after (int64), wait ms (int32), max bytes (int32)
//	  response: error (as above), then count (int32), each slot (int64)
//	            and its bytes (int32 length, bytes)
//
// The fields are kbin's (franz-go's Kafka primitives).
//
// Each rides the Kafka framing, so the listener's limits, drain and idle
// handling apply to it as to any request. An agent keeps one connection per
// API to the sequencer, since a connection answers in order and a Slots
// call waits for the next slot.
const (
	keyContribute int16 = 32000
	keySlots      int16 = 32001
)

// peerAPIs are the private APIs, served on peer connections only.
var peerAPIs = map[int16]api{
	keyContribute: {name: "BargeContribute", key: keyContribute, handle: handleContribute},
	keySlots:      {name: "BargeSlots", key: keySlots, handle: handleSlots},
}

// Bounds of the private APIs: a Slots answer holds at most slotsMaxBytes
// (and one slot at least; a slot is at most meta.MaxEntryBytes), and a
// call waits at most maxSlotsWait.
const (
	slotsMaxBytes = 4 << 20
	maxSlotsWait  = 30 * time.Second
)

func handleContribute(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
	r := kbin.Reader{Src: req.(*peerRequest).body}
	budget := time.Duration(r.Int32()) * time.Millisecond
	entry := r.Bytes()
	return func() kmsg.Response {
		if err := r.Complete(); err != nil {
			return peerAnswer(keyContribute, err, nil)
		}
		seq, data, err := s.log.Sequence(ctx, entry, budget)
		b := kbin.AppendInt64(nil, int64(seq))
		return peerAnswer(keyContribute, err, kbin.AppendBytes(b, data))
	}
}

func handleSlots(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
	r := kbin.Reader{Src: req.(*peerRequest).body}
	after, wait, maxBytes := uint64(r.Int64()), time.Duration(r.Int32())*time.Millisecond, int(r.Int32())
	return func() kmsg.Response {
		if err := r.Complete(); err != nil {
			return peerAnswer(keySlots, err, nil)
		}
		slots, err := s.log.Slots(ctx, after, min(wait, maxSlotsWait), min(max(maxBytes, 1), slotsMaxBytes))
		b := kbin.AppendInt32(nil, int32(len(slots)))
		for _, sl := range slots {
			b = kbin.AppendBytes(kbin.AppendInt64(b, int64(sl.Seq)), sl.Data)
		}
		return peerAnswer(keySlots, err, b)
	}
}

// peerAnswer is a private API's answer: the error's message (empty: none),
// then, without an error, the fields.
func peerAnswer(key int16, err error, fields []byte) kmsg.Response {
	msg := ""
	if err != nil {
		if msg = err.Error(); msg == "" {
			msg = "error"
		}
		msg, fields = msg[:min(len(msg), 1<<15-1)], nil
	}
	return &peerResponse{key: key, body: append(kbin.AppendString(nil, msg), fields...)}
}

// readAnswer reads a private API's answer's error and returns a reader of
// its fields.
func readAnswer(body []byte) (*kbin.Reader, error) {
	r := &kbin.Reader{Src: body}
	msg := r.String()
	if err := r.Complete(); err != nil {
		return nil, err
	}
	if msg != "" {
		return nil, fmt.Errorf("sequencer: %s", msg)
	}
	return r, nil
}

// SequencerClient is meta.Relay over the peer addresses: one connection
// per agent and API, dialled when first needed and again once broken.
type SequencerClient struct {
	token string
	tls   *tls.Config // the peers' listener speaks TLS
	mu    sync.Mutex
	conns map[peerConnKey]*peerConn
}

type peerConnKey struct {
	addr string
	key  int16
}

// peerConn is one connection, used by one call at a time: calls hold busy
// from dialling to the answer; r may be read (to close it) without it.
type peerConn struct {
	apiKey int16
	busy   sync.Mutex
	r      atomic.Pointer[relay]
}

// NewSequencerClient returns a client with no connections yet, greeting
// with the cluster's peer token.
func NewSequencerClient(token string, peerTLS *tls.Config) *SequencerClient {
	return &SequencerClient{token: token, tls: peerTLS, conns: map[peerConnKey]*peerConn{}}
}

var _ meta.Relay = (*SequencerClient)(nil)

// Contribute implements meta.Relay. The budget sent is what is left of it
// when the request is written, after any dialling.
func (c *SequencerClient) Contribute(ctx context.Context, addr string, entry []byte, budget time.Duration) (uint64, []byte, error) {
	until := time.Now().Add(budget)
	r, err := c.call(ctx, addr, keyContribute, func() ([]byte, error) {
		left := time.Until(until)
		if left <= 0 {
			return nil, fmt.Errorf("relay budget of %v spent before the entry was sent", budget)
		}
		return kbin.AppendBytes(kbin.AppendInt32(nil, int32(left.Milliseconds())), entry), nil
	})
	if err != nil {
		return 0, nil, err
	}
	seq, data := uint64(r.Int64()), r.Bytes()
	return seq, data, r.Complete()
}

// Slots implements meta.Relay. The call is bounded by wait and a margin,
// so that a follower of an agent that stopped answering moves on.
func (c *SequencerClient) Slots(ctx context.Context, addr string, after uint64, wait time.Duration) ([]meta.Slot, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+relayWriteTimeout)
	defer cancel()
	r, err := c.call(ctx, addr, keySlots, func() ([]byte, error) {
		b := kbin.AppendInt32(kbin.AppendInt64(nil, int64(after)), int32(wait.Milliseconds()))
		return kbin.AppendInt32(b, slotsMaxBytes), nil
	})
	if err != nil {
		return nil, err
	}
	n := int(r.Int32())
	if n < 0 || n > len(r.Src)/12 {
		return nil, errors.New("slots answer: bad count")
	}
	slots := make([]meta.Slot, 0, n)
	for range n {
		slots = append(slots, meta.Slot{Seq: uint64(r.Int64()), Data: r.Bytes()})
	}
	return slots, r.Complete()
}

// call sends one request, whose body body builds just before it is
// written, on the connection for (addr, key), and waits for its answer or
// ctx. A call that gives up closes the connection (the next call dials
// again): its answer would hold up every later one, and a peer that does
// not answer in time is best not waited on.
func (c *SequencerClient) call(ctx context.Context, addr string, key int16, body func() ([]byte, error)) (*kbin.Reader, error) {
	c.mu.Lock()
	if c.conns == nil {
		c.mu.Unlock()
		return nil, errors.New("sequencer client closed")
	}
	pc := c.conns[peerConnKey{addr, key}]
	if pc == nil {
		pc = &peerConn{apiKey: key}
		c.conns[peerConnKey{addr, key}] = pc
	}
	c.mu.Unlock()
	answer := make(chan relayAnswer, 1)
	go func() {
		pc.busy.Lock()
		defer pc.busy.Unlock()
		answer <- c.roundTrip(ctx, pc, addr, body)
	}()
	select {
	case a := <-answer:
		if a.err != nil {
			return nil, a.err
		}
		return readAnswer(a.frame[4:]) // after the correlation id
	case <-ctx.Done():
		if r := pc.r.Load(); r != nil {
			r.close()
		}
		return nil, ctx.Err()
	}
}

// roundTrip dials if need be, then writes the request and waits for its
// answer. pc.busy is held.
func (c *SequencerClient) roundTrip(ctx context.Context, pc *peerConn, addr string, body func() ([]byte, error)) relayAnswer {
	if ctx.Err() != nil {
		return relayAnswer{err: ctx.Err()}
	}
	r := pc.r.Load()
	if r == nil || r.broken() {
		var err error
		if r, err = dialRelay(ctx, addr, peerHello{token: c.token, tls: c.tls}, "barge-sequencer", 1); err != nil {
			return relayAnswer{err: err}
		}
		pc.r.Store(r)
		c.mu.Lock()
		closed := c.conns == nil
		c.mu.Unlock()
		if closed { // Close ran while this dialled
			r.close()
			return relayAnswer{err: errors.New("sequencer client closed")}
		}
	}
	b, err := body()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return relayAnswer{err: err}
	}
	wait, err := r.send(&peerRequest{key: pc.apiKey, body: b})
	if err != nil {
		return relayAnswer{err: err}
	}
	select {
	case a := <-wait:
		return a
	case <-ctx.Done():
		r.close() // its answer would come before the next one's
		return relayAnswer{err: ctx.Err()}
	}
}

// Close ends every connection; calls in flight fail.
func (c *SequencerClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range c.conns {
		if r := pc.r.Load(); r != nil {
			r.close()
		}
	}
	c.conns = nil
}

// peerRequest and peerResponse carry a private API's body as it is.
type peerRequest struct {
	key     int16
	version int16
	body    []byte
}

func (r *peerRequest) Key() int16                  { return r.key }
func (r *peerRequest) MaxVersion() int16           { return 0 }
func (r *peerRequest) SetVersion(v int16)          { r.version = v }
func (r *peerRequest) GetVersion() int16           { return r.version }
func (r *peerRequest) IsFlexible() bool            { return false }
func (r *peerRequest) AppendTo(b []byte) []byte    { return append(b, r.body...) }
func (r *peerRequest) ReadFrom(b []byte) error     { r.body = append([]byte(nil), b...); return nil }
func (r *peerRequest) ResponseKind() kmsg.Response { return &peerResponse{key: r.key} }

type peerResponse struct {
	key     int16
	version int16
	body    []byte
}

func (r *peerResponse) Key() int16                { return r.key }
func (r *peerResponse) MaxVersion() int16         { return 0 }
func (r *peerResponse) SetVersion(v int16)        { r.version = v }
func (r *peerResponse) GetVersion() int16         { return r.version }
func (r *peerResponse) IsFlexible() bool          { return false }
func (r *peerResponse) AppendTo(b []byte) []byte  { return append(b, r.body...) }
func (r *peerResponse) ReadFrom(b []byte) error   { r.body = append([]byte(nil), b...); return nil }
func (r *peerResponse) RequestKind() kmsg.Request { return &peerRequest{key: r.key} }
