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
	next, end int64
}

func (p *producerIDs) nextID(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == p.end {
		res, err := p.log.Append(ctx, meta.ReserveProducers{Count: producerIDBlock})
		if err != nil {
			return 0, err
		}
		p.next, p.end = res[0].FirstProducerID, res[0].FirstProducerID+producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}
