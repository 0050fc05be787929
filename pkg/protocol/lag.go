package protocol

import (
	"context"
	"time"
)

// An agent's view of the metadata log may lag the log by a poll interval
// or more. For most answers that only delays news; for some it says
// something false: that an offset does not exist (Fetch beyond the view's
// high watermark, which makes consumers apply auto.offset.reset), where a
// leader epoch ends (OffsetForLeaderEpoch, which Java consumers read as
// truncation), or what a group committed (OffsetFetch on a coordinator
// newly placed on this agent). Before those answers the agent reads the
// log's tail, waiting at most tailSyncTimeout; when it cannot, it answers
// a retriable error instead of the false answer.
const tailSyncTimeout = 5 * time.Second

// syncTail reads the log's tail now and reports whether the view is then
// known to hold every entry that existed when it was called.
func (s *Server) syncTail(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, tailSyncTimeout)
	defer cancel()
	if err := s.log.SyncTail(ctx); err != nil {
		s.cfg.Logger.Debug("reading the metadata log's tail", "err", err)
		return false
	}
	return true
}
