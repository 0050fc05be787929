package protocol

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The cache keeps maxFetchSessions sessions and evicts the least recently
// used; ids are never 0 and never reused while live.
func TestFetchSessionCacheEvictsLeastRecentlyUsed(t *testing.T) {
	var fs fetchSessions
	first := fs.create()
	second := fs.create()
	for range maxFetchSessions - 2 {
		fs.create()
	}
	first.used = time.Now().Add(-time.Hour)
	second.used = time.Now().Add(time.Hour) // recently used
	third := fs.create()
	if fs.get(first.id) != nil {
		t.Error("the least recently used session survived a full cache")
	}
	if fs.get(second.id) == nil || fs.get(third.id) == nil {
		t.Error("a recent session was evicted")
	}
	if len(fs.byID) != maxFetchSessions {
		t.Errorf("%d sessions cached, want %d", len(fs.byID), maxFetchSessions)
	}
	// Sessions holding more partitions than the bound in all give way too.
	for _, s := range fs.byID {
		s.size.Store(maxSessionPartitions / maxFetchSessions * 2)
	}
	fs.create()
	if len(fs.byID) > maxFetchSessions/2+1 {
		t.Errorf("%d sessions of %d partitions each survive, want at most %d partitions in all",
			len(fs.byID), maxSessionPartitions/maxFetchSessions*2, maxSessionPartitions)
	}
	fs.nextID = -1 // wraps past MaxInt32
	if s := fs.create(); s.id <= 0 {
		t.Errorf("session id %d", s.id)
	}
}

// update adds and updates partitions in order and forgets those named;
// request rebuilds the full request grouped by topic.
func TestFetchSessionUpdate(t *testing.T) {
	s := &fetchSession{index: map[sessionKey]int{}}
	req := func(forget map[string][]int32, parts ...any) *kmsg.FetchRequest {
		r := kmsg.NewPtrFetchRequest()
		r.Version = 12
		for i := 0; i < len(parts); i += 3 {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = parts[i].(string)
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset = parts[i+1].(int32), parts[i+2].(int64)
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
		}
		for topic, ps := range forget {
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic, ft.Partitions = topic, ps
			r.ForgottenTopics = append(r.ForgottenTopics, ft)
		}
		return r
	}
	s.update(req(nil, "a", int32(0), int64(5), "b", int32(0), int64(1), "a", int32(1), int64(7)))
	s.update(req(map[string][]int32{"b": {0}}, "a", int32(0), int64(9)))
	full := s.request(req(nil))
	if len(full.Topics) != 1 || full.Topics[0].Topic != "a" || len(full.Topics[0].Partitions) != 2 {
		t.Fatalf("full request %+v", full.Topics)
	}
	if p := full.Topics[0].Partitions; p[0].Partition != 0 || p[0].FetchOffset != 9 || p[1].Partition != 1 || p[1].FetchOffset != 7 {
		t.Fatalf("partitions %+v", p)
	}
}
