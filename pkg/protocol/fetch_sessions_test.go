package protocol

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A full cache makes room only by evicting a session idle for
// sessionIdleEvict; with every session in use a new client goes without
// one. Ids are random, positive and distinct.
func TestFetchSessionCache(t *testing.T) {
	var fs fetchSessions
	ids := map[int32]bool{}
	var first *fetchSession
	for i := range maxFetchSessions {
		s := fs.create(1, false)
		if s == nil || s.id <= 0 || ids[s.id] {
			t.Fatalf("session %d: %+v", i, s)
		}
		ids[s.id] = true
		if first == nil {
			first = s
		}
	}
	if s := fs.create(1, false); s != nil {
		t.Fatal("a full cache of sessions in use evicted one")
	}
	first.used = time.Now().Add(-sessionIdleEvict - time.Second)
	if s := fs.create(1, false); s == nil || fs.get(first.id) != nil {
		t.Fatal("an idle session did not make room")
	}
	// The partition bound: sessions in use holding it all leave no room.
	for _, s := range fs.byID {
		s.size.Store(maxSessionPartitions / maxFetchSessions * 2)
	}
	fs.remove(first.id)
	if s := fs.create(1, false); s != nil {
		t.Fatal("a session was made past the partition bound")
	}
}

// trim: the first answer is whole; then only partitions with records, an
// error, or a new high watermark or log start; an error is told again when
// it clears; partitions that returned records move to the end, and the
// full request follows the new order.
func TestFetchSessionTrim(t *testing.T) {
	s := &fetchSession{index: map[sessionKey]int{}}
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "a"
	for p := range int32(3) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	s.update(req)
	answer := func(hw [3]int64, records [3]bool, errs [3]int16) []int32 {
		resp := kmsg.NewPtrFetchResponse()
		t := kmsg.NewFetchResponseTopic()
		t.Topic = "a"
		for p := range int32(3) {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition, rp.HighWatermark, rp.ErrorCode = p, hw[p], errs[p]
			if records[p] {
				rp.RecordBatches = []byte{1}
			}
			t.Partitions = append(t.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, t)
		s.trim(12, resp)
		var got []int32
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				got = append(got, p.Partition)
			}
		}
		return got
	}
	check := func(what string, got []int32, want ...int32) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: answered %v, want %v", what, got, want)
		}
	}
	check("first answer", answer([3]int64{5, 5, 5}, [3]bool{}, [3]int16{}), 0, 1, 2)
	check("nothing new", answer([3]int64{5, 5, 5}, [3]bool{}, [3]int16{}))
	check("new high watermark", answer([3]int64{5, 6, 5}, [3]bool{}, [3]int16{}), 1)
	check("an error", answer([3]int64{5, 6, 5}, [3]bool{}, [3]int16{0, 0, 3}), 2)
	check("the error cleared", answer([3]int64{5, 6, 5}, [3]bool{}, [3]int16{}), 2)
	check("records in 0", answer([3]int64{5, 6, 5}, [3]bool{true}, [3]int16{}), 0)
	full := s.request(req)
	var order []int32
	for _, t := range full.Topics {
		for _, p := range t.Partitions {
			order = append(order, p.Partition)
		}
	}
	check("order after serving 0", order, 1, 2, 0)
	if len(full.Topics) != 1 {
		t.Errorf("one topic's partitions in %d entries", len(full.Topics))
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

// A session that grows past the cache's partition bound through
// incremental adds is closed: that request is answered whole, without a
// session.
func TestFetchSessionGrownPastBound(t *testing.T) {
	srv := &Server{metrics: newMetrics(nil)}
	req := func(epoch, id int32, parts ...int32) *kmsg.FetchRequest {
		r := kmsg.NewPtrFetchRequest()
		r.Version, r.ReplicaID, r.SessionEpoch, r.SessionID = 12, -1, epoch, id
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "a"
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
		return r
	}
	_, sess, errResp := srv.beginSession(req(0, 0, 0))
	if sess == nil || errResp != nil {
		t.Fatalf("no session: %v", errResp)
	}
	sess.mu.Unlock()
	other := srv.sessions.create(1, false) // another consumer's, holding the rest of the bound
	other.size.Store(maxSessionPartitions - 1)
	full, again, errResp := srv.beginSession(req(1, sess.id, 1))
	if again != nil || errResp != nil || len(full.Topics) != 1 || len(full.Topics[0].Partitions) != 2 {
		t.Fatalf("grown session: session %v, answer %v, request %+v", again, errResp, full.Topics)
	}
	if srv.sessions.get(sess.id) != nil {
		t.Fatal("the grown session is still cached")
	}
}
