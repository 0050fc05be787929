package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// openLog opens a metadata log on dir as writer id, at the newest format.
func openLog(t *testing.T, store objstore.Store, id string) *meta.Log {
	t.Helper()
	ctx := context.Background()
	l, err := meta.Open(ctx, store, meta.Options{WriterID: id, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return l
}

// waitFor polls cond until it holds or a minute has passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestHeartbeatRejoinsOrStops runs Heartbeat on a real log (a local
// directory): expired by another writer, the agent joins again by itself;
// replaced by a new process at its peer address, it stops with
// ErrReplaced instead of pushing the newcomer out.
func TestHeartbeatRejoinsOrStops(t *testing.T) {
	store, err := objstore.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	agent, other := openLog(t, store, "agent"), openLog(t, store, "other")
	hb := meta.AgentHeartbeat{Addr: "h1:9092"}
	for _, l := range []*meta.Log{agent, agent, agent} { // register, announce, raise the format
		if _, err := l.Append(ctx, hb); err != nil {
			t.Fatal(err)
		}
		if err := l.StepFormat(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var format meta.Format
	agent.View(func(st *meta.State) { format = st.Format() })
	if format < meta.Format4 {
		t.Fatalf("format %d, want membership (%d)", format, meta.Format4)
	}

	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	result := make(chan error, 1)
	go func() { result <- Heartbeat(hbCtx, agent, hb, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	// Expired: it joins again.
	var epoch int32
	waitFor(t, "the agent is expired", func() bool {
		var op meta.ExpireAgent
		other.View(func(st *meta.State) {
			a, _ := st.AgentByID("agent")
			op, epoch = meta.ExpireAgent{ID: "agent", LastMs: a.LastMs}, st.MembershipEpoch()
		})
		res, err := other.Append(ctx, op)
		return err == nil && res[0].Err == nil
	})
	waitFor(t, "the expired agent joins again", func() bool {
		var in bool
		other.View(func(st *meta.State) { in = st.IsMember("agent") && st.MembershipEpoch() >= epoch+2 })
		return in
	})

	// Replaced: a new process registers at its address; it stops.
	if _, err := other.Append(ctx, hb); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if !errors.Is(err, ErrReplaced) {
			t.Fatalf("Heartbeat of a replaced agent returned %v, want ErrReplaced", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the replaced agent's Heartbeat went on")
	}
	other.View(func(st *meta.State) {
		if !st.IsMember("other") || st.IsMember("agent") {
			t.Fatal("the replaced agent pushed the newcomer out")
		}
	})
}
