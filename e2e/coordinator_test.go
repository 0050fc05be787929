package e2e

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// TestFindCoordinator: a lone agent coordinates every group itself; empty
// group ids and unknown coordinator types get Kafka's errors; it
// coordinates transactional ids too.
func TestFindCoordinator(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, port, _ := net.SplitHostPort(a.Addr)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = []string{"orders", ""}
	resp, err := req.RequestWith(ctx, client(t, a.Addr))
	if err != nil || len(resp.Coordinators) != 2 {
		t.Fatalf("FindCoordinator: %v, %d answers", err, len(resp.Coordinators))
	}
	// franz-go may split a batched request by key: match answers by key.
	byKey := map[string]kmsg.FindCoordinatorResponseCoordinator{}
	for _, c := range resp.Coordinators {
		byKey[c.Key] = c
	}
	if c := byKey["orders"]; c.ErrorCode != 0 || c.Host != host || strconv.Itoa(int(c.Port)) != port {
		t.Errorf("group orders: %+v, want this agent at %s", c, a.Addr)
	}
	if c, ok := byKey[""]; !ok || c.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("empty group id: %v, want INVALID_REQUEST", kerr.ErrorForCode(c.ErrorCode))
	}
	req.CoordinatorType, req.CoordinatorKeys = 1, []string{"txn"}
	if resp, err = req.RequestWith(ctx, client(t, a.Addr)); err != nil || resp.Coordinators[0].ErrorCode != 0 ||
		resp.Coordinators[0].Host != host || strconv.Itoa(int(resp.Coordinators[0].Port)) != port {
		t.Errorf("transactional id: %v %+v, want this agent at %s", err, resp.Coordinators, a.Addr)
	}
	req.CoordinatorType, req.CoordinatorKeys = 2, []string{"x"}
	if resp, err = req.RequestWith(ctx, client(t, a.Addr)); err != nil || resp.Coordinators[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("coordinator type 2: %v %+v, want INVALID_REQUEST", err, resp.Coordinators)
	}
}
