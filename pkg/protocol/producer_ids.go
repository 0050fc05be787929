package protocol

import (
	"context"
	"sync"

	"github.com/bargehq/barge/pkg/meta"
)

// producerIDBlock is how many producer ids one log entry reserves, so that
// a thousand producers starting do not mean a thousand bucket writes.
const producerIDBlock = 1000

// producerIDs hands out idempotent producer ids from blocks reserved in
// the metadata log; ids are unique across all agents on the bucket.
type producerIDs struct {
	log *meta.Log

	mu        sync.Mutex
	next, end int64    // the block in hand
	reserving *idBlock // the next block, while its reservation is in flight
}

// idBlock is a reservation in flight; its first claimed ids are promised
// to the callers that found the block in hand used up.
type idBlock struct {
	pending *meta.Pending
	claimed int64
}

// take is phase one of InitProducerID: it takes an id from the block in
// hand or claims one of the block being reserved, submitting that
// reservation (in the connection's order) if none is in flight. The
// function it returns yields the id, waiting for the reservation if need be.
func (p *producerIDs) take(ctx context.Context) func() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next < p.end {
		id := p.next
		p.next++
		return func() (int64, error) { return id, nil }
	}
	if p.reserving == nil || p.reserving.claimed == producerIDBlock {
		// TrySubmit: waiting for room in the log's queue here would hold
		// up every connection's InitProducerID behind this lock.
		pending, err := p.log.TrySubmit(meta.ReserveProducers{Count: producerIDBlock})
		if err != nil {
			return func() (int64, error) { return 0, err }
		}
		p.reserving = &idBlock{pending: changed(ctx, pending)}
	}
	b, idx := p.reserving, p.reserving.claimed
	b.claimed++
	return func() (int64, error) {
		res, err := b.pending.Wait(ctx)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.reserving == b && (err == nil || ctx.Err() == nil) {
			// The first waiter to see the outcome ends the reservation and,
			// if it landed, keeps the ids no one claimed as the block in hand.
			p.reserving = nil
			if err == nil {
				p.next, p.end = res[0].FirstProducerID+b.claimed, res[0].FirstProducerID+producerIDBlock
			}
		}
		if err != nil {
			return 0, err
		}
		return res[0].FirstProducerID + idx, nil
	}
}
