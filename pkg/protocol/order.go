package protocol

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// Kafka applies the requests of one connection in the order they were sent.
// Barge pipelines them instead, so it keeps that order with a barrier per
// connection:
//
//   - A handler that changes state (other than Produce) reads the state and
//     submits its log ops in phase one, on the read loop, so the ops of one
//     connection reach the log in request order (the log appends one agent's
//     submissions in the order they were made), and waits for them in phase
//     two.
//   - Phase one of the connection's next request, whatever it is, first waits
//     until that change is applied, so it sees its effects: a Produce right
//     after CreatePartitions finds the new partition, an OffsetFetch after an
//     OffsetCommit reads the commit. The answers stay pipelined: the writer
//     sends earlier answers while the read loop waits.
//   - OffsetCommits in a row do not wait for each other: a commit changes
//     only committed offsets, which no commit's phase one reads, and the log
//     keeps their order anyway, so back-to-back commits share log entries.
//   - Produce keeps its own order through the ingest buffer (batches appended
//     in phase one, committed in seal order) and never holds up later
//     requests until its flush, which would end pipelining.
//
// If a change is not applied within Config.OrderWait (30 s: the bucket is
// down), the connection is closed rather than running later requests out
// of order; by then a client with Kafka's request.timeout.ms (30 s) has
// given up on the earlier request, and it retries the later ones on a new
// connection. A change that fails (the log gives up after its bounded
// retries) counts as done: the requests after it run and see the state
// without it, as they would in Kafka.

var errOrderWait = errors.New("an earlier request's change was not applied in time")

// changed records p as the newest state change of the connection that ctx
// belongs to: the connection's later requests start once it is applied.
// Only phase one may call it, since it runs on the read loop.
func changed(ctx context.Context, p *meta.Pending) *meta.Pending {
	if c, ok := ctx.Value(connKey{}).(*conn); ok && p != nil {
		c.change = p
	}
	return p
}

// submit queues ops as one log entry in the connection's order (nil when
// there are none). Phase one only.
func (s *Server) submit(ctx context.Context, ops ...meta.Op) *meta.Pending {
	if len(ops) == 0 {
		return nil
	}
	return changed(ctx, s.log.Submit(ops...))
}

// settle waits for p (nil: nothing was submitted) and reports each of its n
// ops' outcomes to set: the append's error if it failed, else the op's own
// result.
func settle(ctx context.Context, p *meta.Pending, n int, set func(i int, res meta.Result, err error)) {
	if p == nil {
		return
	}
	results, err := p.Wait(ctx)
	for i := range n {
		if err != nil {
			set(i, meta.Result{}, err)
		} else {
			set(i, results[i], results[i].Err)
		}
	}
}

// whenApplied is phase two of a request whose answer changes only where
// its ops fail: it waits for p and hands each failed op to fail.
func whenApplied(ctx context.Context, p *meta.Pending, n int, resp kmsg.Response, fail func(k int, err error)) func() kmsg.Response {
	return func() kmsg.Response {
		settle(ctx, p, n, func(k int, _ meta.Result, err error) {
			if err != nil {
				fail(k, err)
			}
		})
		return resp
	}
}

// awaitChange waits, before phase one of a request with the given key,
// until the connection's last state change is applied.
func (c *conn) awaitChange(ctx context.Context, key int16) error {
	if c.change == nil || key == kmsg.OffsetCommit.Int16() && c.commitsOnly {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.s.cfg.OrderWait)
	defer cancel()
	// The log finishes one agent's submissions in the order they were
	// made (their queue deadlines are in that order too), so the last
	// being done means every earlier one is.
	if _, err := c.change.Wait(wctx); err != nil && wctx.Err() != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w (%v)", errOrderWait, c.s.cfg.OrderWait)
	}
	c.change = nil
	return nil
}

// phaseOne runs a request's first phase after the barrier and keeps track
// of whether the connection's unapplied changes are all OffsetCommits.
func (c *conn) phaseOne(ctx context.Context, key int16, h handler, req kmsg.Request) func() kmsg.Response {
	before := c.change
	finish := h(ctx, c.s, req)
	if c.change != before {
		c.commitsOnly = (before == nil || c.commitsOnly) && key == kmsg.OffsetCommit.Int16()
	}
	return finish
}
