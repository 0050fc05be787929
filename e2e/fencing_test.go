package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// TestExpiredAgentIsFenced: an agent recorded gone in the metadata log
// (here by another writer on the bucket, as a member does after the TTL of
// silence) acknowledges no write until it has joined again. Produce
// requests sent to it straight after its expiry are answered either
// NOT_LEADER_OR_FOLLOWER, with nothing stored, or, once it has joined again,
// with success; replaying the log shows every commit it wrote between its
// expiry and its return refused, and every acknowledged record stored once.
// The first request reaches it before it can have read its expiry, so its
// commit lands while it is out; the test repeats until it has seen that,
// at most five times.
func TestExpiredAgentIsFenced(t *testing.T) {
	const topic = "fenced"
	b := harness.FileBackend(t)
	other := startAgent(t, b, 5*time.Millisecond)
	victim := startAgent(t, b, 5*time.Millisecond)
	createTopic(t, other.Addr, topic, 1, nil)
	harness.Eventually(t, time.Minute, func() bool { return sees(victim.Addr, topic, 2) }, "%s never saw the topic and both agents", victim)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	expirer, err := meta.Open(ctx, b.Open(t), meta.Options{WriterID: "expirer", PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	logCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { expirer.Run(logCtx); close(done) }()
	defer func() { stop(); <-done }()

	broker := client(t, victim.Addr).SeedBrokers()[0]
	acked := 0
	for round := 1; ; round++ {
		// Expire the victim: the op applies only if nothing was heard
		// from it since the state the expirer read, so try until it does.
		harness.Eventually(t, time.Minute, func() bool {
			var op meta.ExpireAgent
			expirer.View(func(st *meta.State) {
				for _, a := range st.Members() {
					if a.Addr == victim.Addr {
						op = meta.ExpireAgent{ID: a.ID, LastMs: a.LastMs}
					}
				}
			})
			if op.ID == "" {
				return false // not back yet from the last round
			}
			res, err := expirer.Append(ctx, op)
			return err == nil && res[0].Err == nil
		}, "round %d: the victim could not be expired", round)

		var codes []int16
		for range 3 {
			resp, err := produceRequest(topic, timedBatch(t, batch.None, -1, 0, time.Now().UnixMilli())).RequestWith(ctx, broker)
			if err != nil {
				t.Fatal(err)
			}
			code := resp.Topics[0].Partitions[0].ErrorCode
			switch code {
			case 0:
				acked++
			case kerr.NotLeaderForPartition.Code:
			default:
				t.Fatalf("round %d: produce to the expired agent: %v, want success or NOT_LEADER_OR_FOLLOWER", round, kerr.ErrorForCode(code))
			}
			codes = append(codes, code)
		}
		fenced := checkFencing(t, b.Open(t), victim.Addr)
		t.Logf("round %d: produce answers %v; commits refused while out of the fleet so far: %d", round, codes, fenced)
		if fenced > 0 {
			break
		}
		if round == 5 {
			t.Fatalf("in five rounds the expired agent never wrote a commit before joining again")
		}
	}
	// It joins again by itself and acknowledges writes once more.
	harness.Eventually(t, time.Minute, func() bool {
		resp, err := produceRequest(topic, timedBatch(t, batch.None, -1, 0, time.Now().UnixMilli())).RequestWith(ctx, broker)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Topics[0].Partitions[0].ErrorCode != 0 {
			return false
		}
		acked++
		return true
	}, "the expired agent never joined the fleet again")
	var hwm int64
	harness.Eventually(t, time.Minute, func() bool { hwm = endOffsets(t, other.Addr, topic)[0]; return hwm == int64(acked) },
		"high watermark %v, want the %d acknowledged records and nothing else", lazy(func() string { return fmt.Sprint(hwm) }), acked)
}

// checkFencing replays the metadata log and checks that no commit by the
// agent at addr was accepted while it was out of the fleet (expired, before
// its next heartbeat). It returns how many of its batches were refused
// (the caller checks that they took no offsets).
func checkFencing(t *testing.T, store objstore.Store, addr string) int {
	t.Helper()
	st := meta.NewState()
	refused := 0
	for i, en := range harness.LogEntries(t, store) {
		key := meta.EntryKey(uint64(i + 1))
		// Whether each writer in the slot (the entry's, and those of the
		// contributions a sequencer put in it) was out before it.
		type writer struct{ victim, out bool }
		before := map[string]writer{}
		for _, ap := range meta.Appends(en, nil) {
			a, known := st.AgentByID(ap.Writer)
			before[ap.Writer] = writer{victim: known && a.Addr == addr, out: known && a.Addr == addr && !st.IsMember(ap.Writer)}
		}
		res := st.Apply(uint64(i+1), en)
		for _, ap := range meta.Appends(en, res) {
			w := before[ap.Writer]
			for j, op := range ap.Ops {
				if _, ok := op.(meta.AgentHeartbeat); ok {
					w.out = false // joined again: its later ops are a member's
					continue
				}
				c, ok := op.(meta.Commit)
				if !ok || !w.victim {
					continue
				}
				for _, part := range ap.Results[j].Parts {
					for _, br := range part {
						switch {
						case w.out && !errors.Is(br.Err, meta.ErrFenced):
							t.Fatalf("%s: a commit of %s by the agent at %s while it was out of the fleet: %v", key, c.Object, addr, br.Err)
						case errors.Is(br.Err, meta.ErrFenced):
							refused++
						}
					}
				}
			}
		}
	}
	return refused
}
