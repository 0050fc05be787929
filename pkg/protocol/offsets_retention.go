package protocol

import (
	"context"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// ExpireOffsets applies offsets.retention.minutes (KIP-211): a group this
// agent coordinates that has no members and whose newest commit is older
// than retention is deleted, offsets and all, in one log entry. Groups
// with members keep their offsets however old. It returns the groups it
// deleted.
func (s *Server) ExpireOffsets(ctx context.Context, retention time.Duration) ([]string, error) {
	cutoff := time.Now().Add(-retention).UnixMilli()
	var candidates []string
	s.log.View(func(st *meta.State) {
		for _, name := range st.GroupNames() {
			g, _ := st.Group(name)
			if len(g.Members) > 0 {
				continue
			}
			newest := int64(-1)
			for _, o := range st.CommittedOffsets(name) {
				newest = max(newest, o.CommitMs)
			}
			if newest < cutoff {
				candidates = append(candidates, name)
			}
		}
	})
	var op meta.DeleteGroups
	for _, name := range candidates {
		// remove refuses a group that has members in memory.
		if s.coordinates(name) && s.groups.Remove(name) == 0 {
			op.Groups = append(op.Groups, name)
		}
	}
	if len(op.Groups) == 0 {
		return nil, nil
	}
	if _, err := s.log.Append(ctx, op); err != nil {
		return nil, err
	}
	return op.Groups, nil
}
