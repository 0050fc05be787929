package groups

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

const testSession = 10 * time.Second

// newCoordinator returns a coordinator over a metadata log in memory; the
// log runs (applies what is submitted) only if run is set. Call it inside a
// synctest bubble, so that the log's queue and timers belong to it.
func newCoordinator(t *testing.T, run bool, cfg Config) (*Coordinator, *meta.Log) {
	t.Helper()
	l, err := meta.Open(context.Background(), objstore.NewMemory(), meta.Options{WriterID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if run {
		runLog(t, l)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return New(l, cfg), l
}

// runLog runs l until the test ends.
func runLog(t *testing.T, l *meta.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func joinRequest(group, member string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
	req.SessionTimeoutMillis = int32(testSession / time.Millisecond)
	req.RebalanceTimeoutMillis = req.SessionTimeoutMillis
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	req.Protocols = append(req.Protocols, p)
	return req
}

// joined joins a new member to group (MEMBER_ID_REQUIRED, then with the
// id) and returns the join's answer, the group's new generation.
func joined(t *testing.T, c *Coordinator, group string) *kmsg.JoinGroupResponse {
	t.Helper()
	resp, _ := c.join(joinRequest(group, ""), Client{ID: "cl", Host: "/h"})
	if resp == nil || resp.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("%s: first join: %+v", group, resp)
	}
	resp, ch := c.join(joinRequest(group, resp.MemberID), Client{ID: "cl", Host: "/h"})
	if ch == nil {
		t.Fatalf("%s: join answered at once: %+v", group, resp)
	}
	if resp = <-ch; resp.ErrorCode != 0 {
		t.Fatalf("%s: join: %v", group, kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp
}

// leaderSync sends the leader's SyncGroup and returns its answer, without
// waiting for the generation's log append (Syncing.Answer would).
func leaderSync(c *Coordinator, group string, j *kmsg.JoinGroupResponse) syncAnswer {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.Generation, req.MemberID = group, j.Generation, j.MemberID
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = j.MemberID, []byte("all")
	req.GroupAssignment = append(req.GroupAssignment, a)
	ans, ch, _ := c.sync(req)
	if ch != nil {
		ans = <-ch
	}
	return ans
}

// stable joins one member to group and syncs it.
func stable(t *testing.T, c *Coordinator, group string) *kmsg.JoinGroupResponse {
	t.Helper()
	j := joined(t, c, group)
	if ans := leaderSync(c, group, j); ans.code != 0 {
		t.Fatalf("%s: sync: %v", group, kerr.ErrorForCode(ans.code))
	}
	return j
}

// leaveGroup sends a LeaveGroup for one member.
func leaveGroup(t *testing.T, c *Coordinator, group, member string) {
	t.Helper()
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = member
	if code, codes := c.Leave(group, []kmsg.LeaveGroupRequestMember{m}); code != 0 || codes[0] != 0 {
		t.Fatalf("%s: leave: %d %v", group, code, codes)
	}
}

// rejoinsAtThree checks that a group that had a synced generation (1) and
// then became empty (2) is joined at generation 3, whether from memory or
// from the log.
func rejoinsAtThree(t *testing.T, c *Coordinator, group string) {
	t.Helper()
	if j := joined(t, c, group); j.Generation != 3 {
		t.Fatalf("%s joined again at generation %d, want 3", group, j.Generation)
	}
}

func groupCount(c *Coordinator) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.groups)
}

// Thousands of groups that are joined, synced and left leave no group in
// memory once their last generations are in the log; a group joined again
// continues past them. (Not in a synctest bubble: the race detector's
// runtime trips over this many goroutines in one, golang/go#78156.)
func TestGroupsFreedWhenEmpty(t *testing.T) {
	c, _ := newCoordinator(t, true, Config{})
	const groups = 3000
	for i := range groups {
		name := fmt.Sprint("g", i)
		j := joined(t, c, name)
		ans := leaderSync(c, name, j)
		if ans.code != 0 {
			t.Fatalf("%s: sync: %v", name, kerr.ErrorForCode(ans.code))
		}
		// As SyncGroup answers once the generation is logged, so that
		// the log's queue does not fill up.
		if _, err := ans.wait.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		leaveGroup(t, c, name, j.MemberID)
	}
	harness.Eventually(t, time.Minute, func() bool { return groupCount(c) == 0 },
		"empty groups still in memory")
	rejoinsAtThree(t, c, "g7")
}

// A group that became empty stays in memory until its last generation is
// applied to the log's state, where a new incarnation would read it: a
// member joining before that continues from memory, not from the log's
// older generation.
func TestGroupKeptUntilGenerationLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l := newCoordinator(t, false, Config{}) // the log applies nothing yet
		for _, name := range []string{"g", "h"} {
			leaveGroup(t, c, name, stable(t, c, name).MemberID)
		}
		synctest.Wait()
		if n := groupCount(c); n != 2 {
			t.Fatalf("%d groups in memory, want both: their generations are not in the log yet", n)
		}
		rejoinsAtThree(t, c, "h") // from memory
		runLog(t, l)
		synctest.Wait()
		c.mu.Lock()
		g, h := c.groups["g"], c.groups["h"]
		c.mu.Unlock()
		if g != nil || h == nil {
			t.Fatalf("in memory once logged: g %v, h %v; want only h, which has a member", g != nil, h != nil)
		}
		rejoinsAtThree(t, c, "g") // from the log
	})
}

// Member ids handed out with MEMBER_ID_REQUIRED that never come back are
// dropped when their timers fire, and so are members whose sessions run
// out; groups left with nothing else are freed.
func TestGroupTimersFreeMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newCoordinator(t, true, Config{})
		for i := range 100 {
			resp, _ := c.join(joinRequest(fmt.Sprint("p", i), ""), Client{ID: "cl"})
			if resp.ErrorCode != kerr.MemberIDRequired.Code {
				t.Fatalf("join: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
		}
		for i := range 50 {
			stable(t, c, fmt.Sprint("s", i)) // and never heartbeats
		}
		// A Stable group with a pending id of its own keeps its member.
		j := stable(t, c, "live")
		if resp, _ := c.join(joinRequest("live", ""), Client{ID: "cl"}); resp.ErrorCode != kerr.MemberIDRequired.Code {
			t.Fatalf("join: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		for range 3 { // past the session timeout, heartbeating
			time.Sleep(testSession / 2)
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Group, hb.MemberID, hb.Generation = "live", j.MemberID, j.Generation
			if code := c.Heartbeat(hb); code != 0 {
				t.Fatalf("heartbeat: %v", kerr.ErrorForCode(code))
			}
		}
		synctest.Wait()
		c.mu.Lock()
		n, g := len(c.groups), c.groups["live"]
		pending := -1
		if g != nil {
			pending = len(g.pending)
		}
		c.mu.Unlock()
		if n != 1 || pending != 0 {
			t.Fatalf("%d groups in memory, %d pending ids in the live one; want only it, with none", n, pending)
		}
		rejoinsAtThree(t, c, "s7")
	})
}

// With the log's queue full, commits and the leader's sync get
// COORDINATOR_NOT_AVAILABLE (which clients retry) at once instead of
// holding the coordinator's lock until there is room, other groups keep
// answering, and once the queue drains the retried commit lands after the
// generation it was checked against.
func TestFullLogQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, l := newCoordinator(t, false, Config{}) // nothing leaves the queue yet
		a, b := stable(t, c, "a"), stable(t, c, "b")
		jc := joined(t, c, "c") // awaits its leader's sync
		for {
			if _, err := l.TrySubmit(meta.AgentHeartbeat{}); err != nil {
				break
			}
		}
		commitReq := func(group string, j *kmsg.JoinGroupResponse) *kmsg.OffsetCommitRequest {
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Group, req.Generation, req.MemberID = group, -1, ""
			if j != nil {
				req.Generation, req.MemberID = j.Generation, j.MemberID
			}
			return req
		}
		op := meta.CommitOffsets{Group: "a", Offsets: []meta.GroupOffset{{Topic: meta.TopicID{1}, Offset: 5}}}
		type result struct {
			code int16
			p    *meta.Pending
		}
		done := make(chan result, 1)
		go func() {
			code, p := c.Commit(commitReq("a", a), op)
			done <- result{code, p}
		}()
		synctest.Wait()
		var res result
		select {
		case res = <-done:
		default:
			t.Fatal("a commit waits for room in the log's queue, holding the coordinator's lock")
		}
		if res.code != kerr.CoordinatorNotAvailable.Code || res.p != nil {
			t.Fatalf("commit on a full queue: %v, %v", kerr.ErrorForCode(res.code), res.p)
		}
		// A commit from outside group management is refused the same way
		// and leaves no group behind.
		if code, _ := c.Commit(commitReq("solo", nil), meta.CommitOffsets{Group: "solo"}); code != kerr.CoordinatorNotAvailable.Code {
			t.Fatalf("simple commit on a full queue: %v", kerr.ErrorForCode(code))
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.MemberID, hb.Generation = "b", b.MemberID, b.Generation
		if code := c.Heartbeat(hb); code != 0 {
			t.Fatalf("heartbeat of another group: %v", kerr.ErrorForCode(code))
		}
		// The leader's sync cannot log its generation: the group
		// rebalances, as Kafka's does when storing a generation fails.
		if ans := leaderSync(c, "c", jc); ans.code != kerr.CoordinatorNotAvailable.Code {
			t.Fatalf("sync on a full queue: %v", kerr.ErrorForCode(ans.code))
		}
		c.mu.Lock()
		state, solo := c.groups["c"].state, c.groups["solo"]
		c.mu.Unlock()
		if state != groupPreparingRebalance || solo != nil {
			t.Fatalf("group c %v after the failed sync, solo in memory: %v", state, solo != nil)
		}

		runLog(t, l)
		synctest.Wait() // the queue drained
		code, p := c.Commit(commitReq("a", a), op)
		if code != 0 {
			t.Fatalf("commit after the queue drained: %v", kerr.ErrorForCode(code))
		}
		if results, err := p.Wait(context.Background()); err != nil || results[0].Err != nil {
			t.Fatalf("commit after the queue drained: %v %v", err, results)
		}
		// The rebalanced group completes once its member rejoins.
		resp, ch := c.join(joinRequest("c", jc.MemberID), Client{ID: "cl"})
		if ch != nil {
			resp = <-ch
		}
		if resp.ErrorCode != 0 || resp.Generation <= jc.Generation {
			t.Fatalf("rejoin: %v at generation %d", kerr.ErrorForCode(resp.ErrorCode), resp.Generation)
		}
		if ans := leaderSync(c, "c", resp); ans.code != 0 {
			t.Fatalf("sync after the queue drained: %v", kerr.ErrorForCode(ans.code))
		}
	})
}
