package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/bargehq/barge/internal/harness"
)

// shortSessionIdle builds an agent whose fetch sessions may be evicted as
// soon as they are idle at all, instead of after 2 minutes.
const shortSessionIdle = "-X github.com/bargehq/barge/pkg/protocol.sessionIdleEvictOverride=0s"

// maxSessions is the agent's session cache size, Kafka's
// max.incremental.fetch.session.cache.slots.
const maxSessions = 1000

// sessionCase holds what the eviction test needs to open and use sessions
// on one agent.
type sessionCase struct {
	cl *kgo.Client
	id [16]byte
}

func newSessionCase(ctx context.Context, t *testing.T, a *harness.Agent) *sessionCase {
	t.Helper()
	createTopic(t, a.Addr, "evict", 1, nil)
	cl := client(t, a.Addr)
	if code := produceRaw(ctx, t, cl, "evict", buildBatch(t, 10, 3)); code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	meta := metadataFor(ctx, t, cl, false, "evict")
	return &sessionCase{cl: cl, id: meta.Topics[0].TopicID}
}

// fetch sends a Fetch with the session fields given; a full request
// (epoch 0 or -1) names partition 0 at offset 0, an incremental one names
// nothing.
func (sc *sessionCase) fetch(ctx context.Context, session, epoch int32) (*kmsg.FetchResponse, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 50, 0, 1<<20
	req.SessionID, req.SessionEpoch = session, epoch
	if epoch <= 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "evict", sc.id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = 0, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	return req.RequestWith(ctx, sc.cl)
}

// open starts a new session and returns its id (0: none was made) and
// the number of records its answer carried.
func (sc *sessionCase) open(ctx context.Context, t *testing.T) (int32, int) {
	t.Helper()
	resp, err := sc.fetch(ctx, 0, 0)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("new session: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
	}
	n := 0
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			for _, b := range batchesIn(t, p.RecordBatches) {
				n += int(b[1])
			}
		}
	}
	return resp.SessionID, n
}

// openMany opens n sessions at once and returns their ids.
func (sc *sessionCase) openMany(ctx context.Context, t *testing.T, n int) []int32 {
	t.Helper()
	ids := make([]int32, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range ids {
		g.Go(func() error {
			resp, err := sc.fetch(gctx, 0, 0)
			switch {
			case err != nil:
				return err
			case resp.ErrorCode != 0:
				return kerr.ErrorForCode(resp.ErrorCode)
			case resp.SessionID == 0:
				return fmt.Errorf("session %d of %d: none given", i, n)
			}
			ids[i] = resp.SessionID
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("opening %d sessions: %v", n, err)
	}
	return ids
}

// code returns the error code of an incremental fetch of session at epoch.
func (sc *sessionCase) code(ctx context.Context, t *testing.T, session, epoch int32) int16 {
	t.Helper()
	resp, err := sc.fetch(ctx, session, epoch)
	if err != nil {
		t.Fatalf("fetch in session %d: %v", session, err)
	}
	return resp.ErrorCode
}

// TestFetchSessionEviction: the README's fetch-sessions row. An agent keeps
// up to 1000 sessions (Kafka's max.incremental.fetch.session.cache.slots).
// With all of them in use, a new client is served without a session (a
// whole answer, session id 0) and no session is evicted. Once sessions have
// been idle for the eviction time (2 minutes; a test build makes it 0), a
// new session evicts the least recently used one, whose next fetch gets
// FETCH_SESSION_ID_NOT_FOUND, while the others go on.
func TestFetchSessionEviction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("all in use", func(t *testing.T) {
		a := startAgent(t, harness.FileBackend(t), 0)
		sc := newSessionCase(ctx, t, a)
		ids := sc.openMany(ctx, t, maxSessions)
		for range 2 {
			if id, n := sc.open(ctx, t); id != 0 || n != 3 {
				t.Fatalf("session %d over the limit of %d, answer with %d records; want none (0) and the 3 records", id, maxSessions, n)
			}
		}
		for _, i := range []int{0, 1, maxSessions / 2, maxSessions - 1} {
			if code := sc.code(ctx, t, ids[i], 1); code != 0 {
				t.Errorf("session %d of %d after the cache was full: %v", i, maxSessions, kerr.ErrorForCode(code))
			}
		}
	})

	t.Run("least recently used evicted", func(t *testing.T) {
		a := harness.StartAgent(t, harness.AgentConfig{Store: harness.FileBackend(t).URL, Binary: harness.AgentBinaryWith(t, shortSessionIdle)})
		sc := newSessionCase(ctx, t, a)
		// first and second are opened before the others, then first is
		// used again: second is the least recently used.
		first, _ := sc.open(ctx, t)
		second, _ := sc.open(ctx, t)
		if first == 0 || second == 0 {
			t.Fatalf("sessions %d and %d, want two", first, second)
		}
		rest := sc.openMany(ctx, t, maxSessions-2)
		if code := sc.code(ctx, t, first, 1); code != 0 {
			t.Fatalf("first session: %v", kerr.ErrorForCode(code))
		}
		newest, n := sc.open(ctx, t)
		if newest == 0 || n != 3 {
			t.Fatalf("session %d with %d records over a full cache of idle sessions; want one, with the 3 records", newest, n)
		}
		if code := sc.code(ctx, t, second, 1); code != kerr.FetchSessionIDNotFound.Code {
			t.Errorf("the least recently used session after eviction: %v, want FETCH_SESSION_ID_NOT_FOUND", kerr.ErrorForCode(code))
		}
		for name, s := range map[string]struct{ id, epoch int32 }{
			"first": {first, 2}, "third": {rest[0], 1}, "last": {rest[len(rest)-1], 1}, "newest": {newest, 1},
		} {
			if code := sc.code(ctx, t, s.id, s.epoch); code != 0 {
				t.Errorf("%s session after one eviction: %v", name, kerr.ErrorForCode(code))
			}
		}
		// The evicted client starts over and gets a session again (the
		// next least recently used makes room).
		if id, _ := sc.open(ctx, t); id == 0 {
			t.Errorf("the evicted client's new session: none")
		}
	})
}
