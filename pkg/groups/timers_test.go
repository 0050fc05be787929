package groups

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The timers of timers.go under a fake clock: each test runs in a synctest
// bubble, where time moves only when every goroutine in it is blocked, so
// the durations asserted are exact.

// timed is an answer and when it came, counted from the bubble's start.
type timed[T any] struct {
	resp T
	at   time.Duration
}

// joinAs builds a JoinGroup of the given version ("range" protocol).
func joinAs(version int16, group, member string, session, rebalance time.Duration) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
	req.SessionTimeoutMillis = int32(session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(rebalance / time.Millisecond)
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	req.Protocols = append(req.Protocols, p)
	return req
}

// waitJoin takes j's answer in a goroutine of the bubble (which gives up
// when the test ends).
func waitJoin(t *testing.T, start time.Time, j Joining) chan timed[*kmsg.JoinGroupResponse] {
	ch := make(chan timed[*kmsg.JoinGroupResponse], 1)
	go func() {
		resp := j.Answer(t.Context())
		ch <- timed[*kmsg.JoinGroupResponse]{resp, time.Since(start)}
	}()
	return ch
}

// waitSync takes s's answer in a goroutine of the bubble (which gives up
// when the test ends).
func waitSync(t *testing.T, start time.Time, s Syncing) chan timed[*kmsg.SyncGroupResponse] {
	ch := make(chan timed[*kmsg.SyncGroupResponse], 1)
	go func() {
		resp := s.Answer(t.Context())
		ch <- timed[*kmsg.SyncGroupResponse]{resp, time.Since(start)}
	}()
	return ch
}

// pending checks, once the bubble is idle, that nothing came on ch.
func pending[T any](t *testing.T, ch chan timed[T], what string) {
	t.Helper()
	synctest.Wait()
	select {
	case a := <-ch:
		t.Fatalf("%s answered at %v: %+v", what, a.at, a.resp)
	default:
	}
}

// answered returns what came on ch, once the bubble is idle.
func answered[T any](t *testing.T, ch chan timed[T], what string) timed[T] {
	t.Helper()
	synctest.Wait()
	select {
	case a := <-ch:
		return a
	default:
		t.Fatalf("%s not answered", what)
		panic("unreachable")
	}
}

// sleepUntil sleeps until d after start.
func sleepUntil(start time.Time, d time.Duration) { time.Sleep(d - time.Since(start)) }

// memberIDsOf lists the group's members and its state, from View.
func memberIDsOf(t *testing.T, c *Coordinator, group string) ([]string, string) {
	t.Helper()
	v, ok := c.View(group)
	if !ok {
		t.Fatalf("group %s unknown", group)
	}
	var ids []string
	for _, m := range v.Members {
		ids = append(ids, m.MemberID)
	}
	slices.Sort(ids)
	return ids, v.State
}

func wantMembers(t *testing.T, c *Coordinator, group, state string, ids ...string) {
	t.Helper()
	slices.Sort(ids)
	got, st := memberIDsOf(t, c, group)
	if !slices.Equal(got, ids) || st != state {
		t.Fatalf("group %s: %s with %v, want %s with %v", group, st, got, state, ids)
	}
}

func syncAs(group, member string, gen int32, assign ...string) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 3
	req.Group, req.MemberID, req.Generation = group, member, gen
	for _, id := range assign {
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = id, []byte(id)
		req.GroupAssignment = append(req.GroupAssignment, a)
	}
	return req
}

func heartbeatOf(c *Coordinator, group, member string, gen int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = group, member, gen
	return c.Heartbeat(req)
}

// joinNow joins with a v3 JoinGroup (no MEMBER_ID_REQUIRED) and expects the
// answer at once, with no error.
func joinNow(t *testing.T, c *Coordinator, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	t.Helper()
	resp := c.Join(req, Client{ID: "cl"}).Answer(context.Background())
	if resp.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp
}

// group.initial.rebalance.delay: an empty group's first join phase ends
// the delay after its first member joined; a member joining within a
// delay extends the phase by another (Kafka's InitialDelayedJoin), never
// past the longest rebalance timeout. With a 3 s delay and a 10 s
// rebalance timeout the phase ends at 3 s, at 6 s with one joiner at 2 s,
// and at 10 s (3+3+3, then the 1 s left) with joiners at 2, 5 and 8 s.
func TestInitialRebalanceDelay(t *testing.T) {
	const delay, rebalance = 3 * time.Second, 10 * time.Second
	for _, tc := range []struct {
		name    string
		joiners []time.Duration // when members after the first join
		ends    time.Duration
	}{
		{"alone", nil, 3 * time.Second},
		{"one more", []time.Duration{2 * time.Second}, 6 * time.Second},
		{"up to the rebalance timeout", []time.Duration{2 * time.Second, 5 * time.Second, 8 * time.Second}, rebalance},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := newCoordinator(t, true, Config{InitialRebalanceDelay: delay})
				start := time.Now()
				var answers []chan timed[*kmsg.JoinGroupResponse]
				join := func() {
					j := c.Join(joinAs(3, "g", "", 30*time.Second, rebalance), Client{ID: "cl"})
					answers = append(answers, waitJoin(t, start, j))
				}
				join()
				for _, at := range tc.joiners {
					sleepUntil(start, at)
					pending(t, answers[0], "first member's join")
					join()
				}
				sleepUntil(start, tc.ends-time.Millisecond)
				for _, ch := range answers {
					pending(t, ch, "join before the delay ran out")
				}
				sleepUntil(start, tc.ends)
				for i, ch := range answers {
					a := answered(t, ch, "join once the delay ran out")
					if a.resp.ErrorCode != 0 || a.resp.Generation != 1 || a.at != tc.ends {
						t.Fatalf("member %d: %v, generation %d, at %v; want generation 1 at %v",
							i, kerr.ErrorForCode(a.resp.ErrorCode), a.resp.Generation, a.at, tc.ends)
					}
				}
				if ids, _ := memberIDsOf(t, c, "g"); len(ids) != len(answers) {
					t.Fatalf("%d members, want %d", len(ids), len(answers))
				}
			})
		})
	}
}

// stableOf makes a Stable group of one member (v3 join, answered at once
// with no initial delay, then the leader's sync) and returns the join.
func stableOf(t *testing.T, c *Coordinator, group string, session, rebalance time.Duration) *kmsg.JoinGroupResponse {
	t.Helper()
	j := joinNow(t, c, joinAs(3, group, "", session, rebalance))
	if resp := c.Sync(syncAs(group, j.MemberID, j.Generation, j.MemberID)).Answer(t.Context()); resp.ErrorCode != 0 {
		t.Fatalf("sync: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return j
}

// The rebalance timeout: a join phase ends when it runs out, counted from
// the rebalance's start, without the members that did not rejoin. A
// member that does not rejoin a Stable group another member joined is
// still one 1 ms before, and the new member's join is answered at exactly
// the timeout with a generation it leads alone.
func TestRebalanceTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const session, rebalance = 30 * time.Second, 10 * time.Second
		c, _ := newCoordinator(t, true, Config{})
		old := stableOf(t, c, "g", session, rebalance)
		start := time.Now()
		ch := waitJoin(t, start, c.Join(joinAs(3, "g", "", session, rebalance), Client{ID: "cl"}))
		sleepUntil(start, rebalance-time.Millisecond)
		pending(t, ch, "new member's join")
		wantMembers(t, c, "g", "PreparingRebalance", old.MemberID, otherMember(t, c, "g", old.MemberID))
		sleepUntil(start, rebalance)
		a := answered(t, ch, "new member's join")
		if a.at != rebalance || a.resp.ErrorCode != 0 || a.resp.Generation != old.Generation+1 || a.resp.LeaderID != a.resp.MemberID {
			t.Fatalf("join answered at %v: %v, generation %d, leader %q; want at %v, generation %d, leading",
				a.at, kerr.ErrorForCode(a.resp.ErrorCode), a.resp.Generation, a.resp.LeaderID, rebalance, old.Generation+1)
		}
		if len(a.resp.Members) != 1 {
			t.Fatalf("the leader was given %d members, want itself only", len(a.resp.Members))
		}
		wantMembers(t, c, "g", "CompletingRebalance", a.resp.MemberID)
		if code := heartbeatOf(c, "g", old.MemberID, old.Generation); code != kerr.UnknownMemberID.Code {
			t.Fatalf("heartbeat of the member that did not rejoin: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
		}
	})
}

// otherMember is the one member of group other than old.
func otherMember(t *testing.T, c *Coordinator, group, old string) string {
	t.Helper()
	ids, _ := memberIDsOf(t, c, group)
	for _, id := range ids {
		if id != old {
			return id
		}
	}
	t.Fatalf("group %s has no member but %s", group, old)
	return ""
}

// twoStable makes a Stable group of two members: a first one alone, then
// a second joins and the first rejoins, and both sync. It returns their
// joins of the last generation, the leader's first, and when the leader
// synced.
func twoStable(t *testing.T, c *Coordinator, group string, session, rebalance time.Duration) (lead, follow *kmsg.JoinGroupResponse, synced time.Time) {
	t.Helper()
	first := stableOf(t, c, group, session, rebalance)
	start := time.Now()
	ch := waitJoin(t, start, c.Join(joinAs(3, group, "", session, rebalance), Client{ID: "cl"}))
	lead = joinNow(t, c, joinAs(3, group, first.MemberID, session, rebalance))
	follow = answered(t, ch, "second member's join").resp
	if follow.ErrorCode != 0 || lead.LeaderID != first.MemberID {
		t.Fatalf("second join: %v, leader %q", kerr.ErrorForCode(follow.ErrorCode), lead.LeaderID)
	}
	fs := waitSync(t, start, c.Sync(syncAs(group, follow.MemberID, follow.Generation)))
	synced = time.Now()
	if resp := c.Sync(syncAs(group, lead.MemberID, lead.Generation, lead.MemberID, follow.MemberID)).Answer(t.Context()); resp.ErrorCode != 0 {
		t.Fatalf("leader's sync: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if a := answered(t, fs, "follower's sync"); a.resp.ErrorCode != 0 {
		t.Fatalf("follower's sync: %v", kerr.ErrorForCode(a.resp.ErrorCode))
	}
	return lead, follow, synced
}

// The session timeout: a member that stops heartbeating is removed after
// exactly its session timeout since its last contact (its SyncGroup), not
// before, and the group rebalances: the member left heartbeating is told
// REBALANCE_IN_PROGRESS and rejoins into a generation of its own.
func TestSessionTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const session, rebalance = 10 * time.Second, 20 * time.Second
		c, _ := newCoordinator(t, true, Config{})
		silent, beating, start := twoStable(t, c, "g", session, rebalance) // the silent member's sync, its last contact
		for at := 3 * time.Second; at < session; at += 3 * time.Second {
			sleepUntil(start, at)
			if code := heartbeatOf(c, "g", beating.MemberID, beating.Generation); code != 0 {
				t.Fatalf("heartbeat at %v: %v", at, kerr.ErrorForCode(code))
			}
		}
		sleepUntil(start, session-time.Millisecond)
		synctest.Wait()
		wantMembers(t, c, "g", "Stable", silent.MemberID, beating.MemberID)
		sleepUntil(start, session)
		synctest.Wait()
		wantMembers(t, c, "g", "PreparingRebalance", beating.MemberID)
		if code := heartbeatOf(c, "g", beating.MemberID, beating.Generation); code != kerr.RebalanceInProgress.Code {
			t.Fatalf("heartbeat after the other's session ran out: %v, want REBALANCE_IN_PROGRESS", kerr.ErrorForCode(code))
		}
		j := joinNow(t, c, joinAs(3, "g", beating.MemberID, session, rebalance))
		if j.Generation != beating.Generation+1 || len(j.Members) != 1 {
			t.Fatalf("rejoin: generation %d with %d members, want %d with 1", j.Generation, len(j.Members), beating.Generation+1)
		}
	})
}

// The sync deadline: a group whose join phase completed waits for its
// members' SyncGroups for the rebalance timeout. When the leader never
// sends its own, it is removed at exactly that deadline, not 1 ms before;
// the follower waiting in SyncGroup is told REBALANCE_IN_PROGRESS then and
// rejoins into a generation of its own.
func TestSyncDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const session, rebalance = 30 * time.Second, 10 * time.Second
		c, _ := newCoordinator(t, true, Config{})
		first := stableOf(t, c, "g", session, rebalance)
		start := time.Now()
		ch := waitJoin(t, start, c.Join(joinAs(3, "g", "", session, rebalance), Client{ID: "cl"}))
		lead := joinNow(t, c, joinAs(3, "g", first.MemberID, session, rebalance)) // the join phase completes now
		follow := answered(t, ch, "second member's join").resp
		if lead.LeaderID != lead.MemberID || follow.Generation != lead.Generation {
			t.Fatalf("joins: leader %q, generations %d and %d", lead.LeaderID, lead.Generation, follow.Generation)
		}
		sleepUntil(start, time.Second)
		fs := waitSync(t, start, c.Sync(syncAs("g", follow.MemberID, follow.Generation)))
		sleepUntil(start, rebalance-time.Millisecond)
		pending(t, fs, "follower's sync")
		wantMembers(t, c, "g", "CompletingRebalance", lead.MemberID, follow.MemberID)
		sleepUntil(start, rebalance)
		a := answered(t, fs, "follower's sync")
		if a.at != rebalance || a.resp.ErrorCode != kerr.RebalanceInProgress.Code {
			t.Fatalf("follower's sync answered at %v: %v; want REBALANCE_IN_PROGRESS at %v", a.at, kerr.ErrorForCode(a.resp.ErrorCode), rebalance)
		}
		wantMembers(t, c, "g", "PreparingRebalance", follow.MemberID)
		if code := heartbeatOf(c, "g", lead.MemberID, lead.Generation); code != kerr.UnknownMemberID.Code {
			t.Fatalf("heartbeat of the leader that did not sync: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
		}
		j := joinNow(t, c, joinAs(3, "g", follow.MemberID, session, rebalance))
		if j.Generation != follow.Generation+1 || j.LeaderID != follow.MemberID || len(j.Members) != 1 {
			t.Fatalf("rejoin: generation %d, leader %q, %d members; want %d, itself, 1", j.Generation, j.LeaderID, len(j.Members), follow.Generation+1)
		}
	})
}

// A member id handed out with MEMBER_ID_REQUIRED (KIP-394) is held for the
// session timeout its first join asked for: coming back with it 1 ms
// before joins the group, at the timeout it is UNKNOWN_MEMBER_ID (and the
// group it alone kept is freed), and a join phase waiting for it ends
// exactly when it expires.
func TestPendingMemberIDExpires(t *testing.T) {
	const session = 10 * time.Second
	required := func(t *testing.T, c *Coordinator, group string, session time.Duration) string {
		t.Helper()
		resp := c.Join(joinAs(5, group, "", session, session), Client{ID: "cl"}).Answer(t.Context())
		if resp.ErrorCode != kerr.MemberIDRequired.Code || resp.MemberID == "" {
			t.Fatalf("first join: %v, member id %q; want MEMBER_ID_REQUIRED", kerr.ErrorForCode(resp.ErrorCode), resp.MemberID)
		}
		return resp.MemberID
	}
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  int16
	}{
		{"back in time", session - time.Millisecond, 0},
		{"back too late", session, kerr.UnknownMemberID.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := newCoordinator(t, true, Config{})
				start := time.Now()
				id := required(t, c, "g", session)
				sleepUntil(start, tc.after)
				synctest.Wait()
				resp := c.Join(joinAs(5, "g", id, session, session), Client{ID: "cl"}).Answer(t.Context())
				if resp.ErrorCode != tc.want {
					t.Fatalf("join with the id at %v: %v, want %v", tc.after, kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(tc.want))
				}
				if _, known := c.View("g"); known != (tc.want == 0) {
					t.Fatalf("group known: %v", known)
				}
			})
		})
	}
	t.Run("holds a join phase", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const held, rebalance = 6 * time.Second, 10 * time.Second
			c, _ := newCoordinator(t, true, Config{})
			first := stableOf(t, c, "g", 30*time.Second, rebalance)
			start := time.Now()
			required(t, c, "g", held) // never comes back
			ch := waitJoin(t, start, c.Join(joinAs(3, "g", "", 30*time.Second, rebalance), Client{ID: "cl"}))
			rejoin := waitJoin(t, start, c.Join(joinAs(3, "g", first.MemberID, 30*time.Second, rebalance), Client{ID: "cl"}))
			sleepUntil(start, held-time.Millisecond)
			pending(t, ch, "join while an id is held")
			pending(t, rejoin, "rejoin while an id is held")
			sleepUntil(start, held)
			for _, ch := range []chan timed[*kmsg.JoinGroupResponse]{ch, rejoin} {
				a := answered(t, ch, "join once the id expired")
				if a.at != held || a.resp.ErrorCode != 0 || a.resp.Generation != first.Generation+1 {
					t.Fatalf("join answered at %v: %v, generation %d; want at %v, generation %d",
						a.at, kerr.ErrorForCode(a.resp.ErrorCode), a.resp.Generation, held, first.Generation+1)
				}
			}
		})
	})
}
