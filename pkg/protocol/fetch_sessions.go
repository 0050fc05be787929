package protocol

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Incremental fetch sessions (KIP-227, Fetch v7+). A consumer of many
// partitions sends them all once; the agent keeps them with their fetch
// offsets under a session id, and later requests carry only what changed
// (new offsets, added and forgotten partitions). Answers then carry only
// the partitions with something to say: records, an error, or a new high
// watermark or log start. On 10,000 idle partitions this turns each poll
// from a 10,000-partition request and answer into nearly empty ones.
//
// Sessions live in the agent that created them, as in Kafka they live in
// one broker; a client that reaches another agent, or whose session was
// evicted, gets FETCH_SESSION_ID_NOT_FOUND and starts a new one. Ids are
// random, so that a client cannot meet another's session by accident.
// Partitions that returned records move to the end of their session, as
// in Kafka, so that a backlog on the first partitions cannot starve the
// rest once MaxBytes is reached.

// maxFetchSessions bounds the sessions an agent keeps, as Kafka's
// max.incremental.fetch.session.cache.slots (1000) does. When the cache is
// full, a session idle for sessionIdleEvict makes room; if none is, the
// new client fetches without a session, as Kafka answers, rather than
// evicting a session in use (which would only send its client back here).
const maxFetchSessions = 1000

// sessionIdleEvict is how long a session must go unused before a new one
// may take its place (Kafka's eviction of stale sessions, 120 s).
const sessionIdleEvict = 2 * time.Minute

// sessionIdleEvictOverride shortens sessionIdleEvict (a Go duration) in a
// build made for end-to-end tests of eviction, which cannot wait minutes:
//
//	go build -ldflags "-X github.com/bargehq/barge/pkg/protocol.sessionIdleEvictOverride=0s" ./cmd/agent
var sessionIdleEvictOverride string

// sessionEvictAfter is sessionIdleEvict, or its override when shorter.
var sessionEvictAfter = func() time.Duration {
	if d, err := time.ParseDuration(sessionIdleEvictOverride); err == nil && d >= 0 && d < sessionIdleEvict {
		return d
	}
	return sessionIdleEvict
}()

// maxSessionPartitions bounds the partitions all sessions hold together
// (about 100 bytes each), so that a thousand consumers of 10,000
// partitions each cannot take a gigabyte. Idle sessions make room as
// above; past it, clients fetch without a session.
const maxSessionPartitions = 1 << 20

// Session epochs with a meaning of their own (FetchMetadata in Kafka).
const (
	sessionInitialEpoch = 0  // create a session from this full request
	sessionFinalEpoch   = -1 // no session: a full request, full answer
)

// sessionKey names a partition as the request does: by topic id from v13,
// by name before.
type sessionKey struct {
	id        [16]byte
	topic     string
	partition int32
}

// sessionPart is a partition of a session: what the client last asked for
// and what it was last told.
type sessionPart struct {
	key         sessionKey
	fetchOffset int64
	maxBytes    int32
	epoch       int32 // CurrentLeaderEpoch
	told        bool  // answered at least once
	hw          int64
	lso         int64
	logStart    int64
}

type fetchSession struct {
	mu      sync.Mutex
	id      int32
	usesIDs bool  // created by a v13+ request: partitions keyed by topic id
	epoch   int32 // the epoch the next request must carry
	parts   []*sessionPart
	index   map[sessionKey]int
	used    time.Time
	size    atomic.Int64 // len(parts), read without mu by the cache
}

// fetchSessions is the agent's session cache.
type fetchSessions struct {
	mu   sync.Mutex
	byID map[int32]*fetchSession
}

// get returns the session or nil; it counts as a use.
func (fs *fetchSessions) get(id int32) *fetchSession {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	s := fs.byID[id]
	if s != nil {
		s.used = time.Now()
	}
	return s
}

func (fs *fetchSessions) remove(id int32) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.byID, id)
}

// create makes a session for size partitions, or returns nil when the
// cache is full of sessions in use.
func (fs *fetchSessions) create(size int, usesIDs bool) *fetchSession {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.byID == nil {
		fs.byID = map[int32]*fetchSession{}
	}
	for len(fs.byID) >= maxFetchSessions || fs.partitions()+int64(size) > maxSessionPartitions {
		var oldest *fetchSession
		for _, s := range fs.byID {
			if oldest == nil || s.used.Before(oldest.used) {
				oldest = s
			}
		}
		if oldest == nil || time.Since(oldest.used) < sessionEvictAfter {
			return nil
		}
		delete(fs.byID, oldest.id)
	}
	id := rand.Int32N(math.MaxInt32-1) + 1 // 0 means "no session"
	for fs.byID[id] != nil {
		id = rand.Int32N(math.MaxInt32-1) + 1
	}
	s := &fetchSession{id: id, usesIDs: usesIDs, epoch: 1, index: map[sessionKey]int{}, used: time.Now()}
	fs.byID[s.id] = s
	return s
}

// total returns how many partitions the sessions hold.
func (fs *fetchSessions) total() int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.partitions()
}

// partitions returns how many partitions the sessions hold; fs.mu held.
func (fs *fetchSessions) partitions() int64 {
	var n int64
	for _, s := range fs.byID {
		n += s.size.Load()
	}
	return n
}

func keyOf(version int16, topic string, id [16]byte, partition int32) sessionKey {
	if version >= 13 {
		return sessionKey{id: id, partition: partition}
	}
	return sessionKey{topic: topic, partition: partition}
}

// update folds a request's partitions and forgotten topics into the
// session.
func (s *fetchSession) update(req *kmsg.FetchRequest) {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			k := keyOf(req.Version, t.Topic, t.TopicID, p.Partition)
			if i, ok := s.index[k]; ok {
				sp := s.parts[i]
				sp.fetchOffset, sp.maxBytes, sp.epoch = p.FetchOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch
				continue
			}
			s.index[k] = len(s.parts)
			s.parts = append(s.parts, &sessionPart{key: k, fetchOffset: p.FetchOffset, maxBytes: p.PartitionMaxBytes, epoch: p.CurrentLeaderEpoch})
		}
	}
	defer func() { s.size.Store(int64(len(s.parts))) }()
	forget := map[sessionKey]bool{}
	for _, t := range req.ForgottenTopics {
		for _, p := range t.Partitions {
			forget[keyOf(req.Version, t.Topic, t.TopicID, p)] = true
		}
	}
	if len(forget) == 0 {
		return
	}
	kept := s.parts[:0]
	clear(s.index)
	for _, sp := range s.parts {
		if !forget[sp.key] {
			s.index[sp.key] = len(kept)
			kept = append(kept, sp)
		}
	}
	clear(s.parts[len(kept):])
	s.parts = kept
}

// request returns the full request the session stands for: every
// partition, in the session's order, a topic entry for each run of one
// topic's partitions (a topic may appear more than once, as in Kafka).
func (s *fetchSession) request(req *kmsg.FetchRequest) *kmsg.FetchRequest {
	full := *req
	full.Topics = nil
	full.ForgottenTopics = nil
	for i, sp := range s.parts {
		if i == 0 || sp.key.topic != s.parts[i-1].key.topic || sp.key.id != s.parts[i-1].key.id {
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = sp.key.topic, sp.key.id
			full.Topics = append(full.Topics, t)
		}
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes, p.CurrentLeaderEpoch = sp.key.partition, sp.fetchOffset, sp.maxBytes, sp.epoch
		t := &full.Topics[len(full.Topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	return &full
}

// trim drops from an answer to the session's full request the partitions
// with nothing new for the client (no records, no error, the same high
// watermark, last stable offset and log start as last told), remembers what it tells, and
// moves the partitions that returned records to the end of the session.
// The first answer of a session is whole.
func (s *fetchSession) trim(version int16, resp *kmsg.FetchResponse) {
	var served []*sessionPart
	topics := resp.Topics[:0]
	for _, t := range resp.Topics {
		parts := t.Partitions[:0]
		for _, p := range t.Partitions {
			i, ok := s.index[keyOf(version, t.Topic, t.TopicID, p.Partition)]
			if !ok {
				continue
			}
			sp := s.parts[i]
			if sp.told && len(p.RecordBatches) == 0 && p.ErrorCode == 0 && p.HighWatermark == sp.hw &&
				p.LastStableOffset == sp.lso && p.LogStartOffset == sp.logStart {
				continue
			}
			sp.told, sp.hw, sp.lso, sp.logStart = true, p.HighWatermark, p.LastStableOffset, p.LogStartOffset
			if p.ErrorCode != 0 {
				sp.hw, sp.lso, sp.logStart = -1, -1, -1 // told again once it recovers
			}
			if len(p.RecordBatches) > 0 {
				served = append(served, sp)
			}
			parts = append(parts, p)
		}
		if len(parts) > 0 {
			t.Partitions = parts
			topics = append(topics, t)
		}
	}
	resp.Topics = topics
	if len(served) == 0 {
		return
	}
	moved := make(map[*sessionPart]bool, len(served))
	for _, sp := range served {
		moved[sp] = true
	}
	order := make([]*sessionPart, 0, len(s.parts))
	for _, sp := range s.parts {
		if !moved[sp] {
			order = append(order, sp)
		}
	}
	s.parts = append(order, served...)
	for i, sp := range s.parts {
		s.index[sp.key] = i
	}
}

// beginSession works out which session a Fetch request belongs to. It
// returns the full request to answer and the session (nil: sessionless),
// locked until the answer is trimmed, or an answer carrying a session
// error.
func (s *Server) beginSession(req *kmsg.FetchRequest) (*kmsg.FetchRequest, *fetchSession, *kmsg.FetchResponse) {
	if req.Version < 7 {
		return req, nil, nil
	}
	switch {
	case req.SessionEpoch == sessionFinalEpoch:
		if req.SessionID != 0 {
			s.sessions.remove(req.SessionID)
		}
		return req, nil, nil
	case req.SessionEpoch == sessionInitialEpoch:
		if req.SessionID != 0 {
			s.sessions.remove(req.SessionID)
		}
		size := 0
		for _, t := range req.Topics {
			size += len(t.Partitions)
		}
		if req.ReplicaID >= 0 || size == 0 {
			return req, nil, nil // not a consumer, or nothing to keep
		}
		sess := s.sessions.create(size, req.Version >= 13)
		if sess == nil {
			return req, nil, nil // the cache is full of sessions in use
		}
		sess.mu.Lock()
		sess.update(req)
		return sess.request(req), sess, nil
	}
	sess := s.sessions.get(req.SessionID)
	if sess == nil {
		return nil, nil, sessionError(req, kerr.FetchSessionIDNotFound.Code)
	}
	sess.mu.Lock()
	if req.SessionEpoch != sess.epoch {
		sess.mu.Unlock()
		return nil, nil, sessionError(req, kerr.InvalidFetchSessionEpoch.Code)
	}
	if sess.usesIDs != (req.Version >= 13) {
		// The session's partitions are keyed one way and the request
		// names them the other (the client changed versions).
		sess.mu.Unlock()
		s.sessions.remove(sess.id)
		return nil, nil, sessionError(req, kerr.FetchSessionTopicIDError.Code)
	}
	sess.epoch++
	if sess.epoch < 1 {
		sess.epoch = 1 // after MaxInt32, as Kafka wraps
	}
	sess.update(req)
	s.metrics.incremental.Inc()
	if len(sess.parts) == 0 {
		// Everything forgotten: Kafka closes the session and answers
		// without one.
		sess.mu.Unlock()
		s.sessions.remove(sess.id)
		return req, nil, nil
	}
	if s.sessions.total() > maxSessionPartitions {
		// Grown past the cache's bound: answered whole, without a
		// session, as a client whose session could not be made is.
		full := sess.request(req)
		sess.mu.Unlock()
		s.sessions.remove(sess.id)
		return full, nil, nil
	}
	return sess.request(req), sess, nil
}

func sessionError(req *kmsg.FetchRequest, code int16) *kmsg.FetchResponse {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.ErrorCode = code
	return resp
}
