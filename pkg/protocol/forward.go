package protocol

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/groups"
	"github.com/bargehq/barge/pkg/meta"
)

// Forwarding group requests between agents that share an address.
//
// When agents advertise one address (a load balancer's: --advertise lb:9092
// with --peer-advertise set to each agent's own), a client cannot choose
// which agent it reaches, yet a group has one coordinator. So an agent that
// gets a request for a group another such agent coordinates forwards it
// over that agent's peer address and relays the answer.
//
// Each client connection gets its own relay connection to each coordinator
// it needs, so the coordinator sees the client's requests on one
// connection, in the client's order, pipelined as the client sent them: a
// LeaveGroup then a JoinGroup keep their order, and a Heartbeat is not held
// up behind another member's JoinGroup. A relay connection begins with an
// ApiVersions request naming the client software peerSoftware, with the
// cluster's peer token (Config.PeerToken, a secret in the bucket that only
// agents read) as the software version, which marks it as a peer's: requests
// on it are never forwarded again, the private APIs (sequencer.go) are
// served on it, so agents whose
// views of the fleet differ for a moment answer NOT_COORDINATOR (the client
// looks the coordinator up again) instead of passing a request around. If
// the coordinator cannot be reached, or the relay breaks, the request is
// answered NOT_COORDINATOR too. The relay ends with the client's connection.
//
// The coordinator sees the forwarding agent as the member's host
// (DescribeGroups' client host) and the first request's client id as the
// client's.

// peerSoftware is the client software name of a relay connection.
const peerSoftware = "barge-peer"

// relayDialTimeout bounds connecting to a coordinator; relayWriteTimeout
// bounds sending it one request (the client's read loop waits meanwhile).
const (
	relayDialTimeout  = 5 * time.Second
	relayWriteTimeout = 10 * time.Second
)

// routed wraps the handler of a group API: a request whose groups another
// agent at this agent's advertised address coordinates is forwarded to it.
func routed[Req kmsg.Request](groupsOf func(Req) []string, h handler) handler {
	return func(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
		if owner, ok := s.forwardTarget(ctx, groupsOf(req.(Req))); ok {
			return s.forward(ctx, owner, req)
		}
		return h(ctx, s, req)
	}
}

// routedMany wraps the handler of an API that names many groups
// (DescribeGroups, DeleteGroups, OffsetFetch v8+): a client that sees the
// fleet as one broker sends it every group at once, so the request is split
// by coordinator, each part forwarded (or answered here), and the answers
// merged in the request's order. subset returns the request for some of
// its groups, by index; merge puts a part's answers at their indexes in
// the whole answer to n groups.
func routedMany[Req kmsg.Request](groupsOf func(Req) []string, subset func(Req, []int) Req,
	merge func(whole, part kmsg.Response, idx []int, n int), h handler) handler {
	one := routed(groupsOf, h)
	return func(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
		r := req.(Req)
		names := groupsOf(r)
		dests, idx := s.splitByCoordinator(ctx, names)
		if len(dests) < 2 {
			return one(ctx, s, req)
		}
		answers := make([]func() kmsg.Response, len(dests))
		for i, d := range dests {
			part := subset(r, idx[i])
			if d.Peer == "" {
				answers[i] = h(ctx, s, part)
			} else {
				answers[i] = s.forward(ctx, d, part)
			}
		}
		return func() kmsg.Response {
			whole := req.ResponseKind()
			whole.SetVersion(req.GetVersion())
			// A part's answer is one per group; whatever a short one left
			// out is answered as notCoordinator answers it.
			merge(whole, notCoordinator(req), seq(len(names)), len(names))
			for i, answer := range answers {
				merge(whole, answer(), idx[i], len(names))
			}
			return whole
		}
	}
}

// fannedOut wraps the handler of ListGroups: each agent lists the groups it
// coordinates, as each Kafka broker does, and a client that sees agents
// sharing an address as one broker asks only the one it reaches, so that
// agent asks the others at its address too and answers with every list.
func fannedOut(h handler) handler {
	return func(ctx context.Context, s *Server, req kmsg.Request) func() kmsg.Response {
		answers := []func() kmsg.Response{h(ctx, s, req)}
		if c, ok := ctx.Value(connKey{}).(*conn); ok && !c.peer {
			self := s.fleet.Self()
			for _, m := range s.fleet.Live() {
				if self.SharesAddr(m) {
					answers = append(answers, s.forward(ctx, m, req))
				}
			}
		}
		if len(answers) == 1 {
			return answers[0]
		}
		return func() kmsg.Response {
			whole := answers[0]().(*kmsg.ListGroupsResponse)
			for _, answer := range answers[1:] {
				part := answer().(*kmsg.ListGroupsResponse)
				if part.ErrorCode != 0 {
					whole.ErrorCode = part.ErrorCode // the client asks again
				}
				whole.Groups = append(whole.Groups, part.Groups...)
				whole.ThrottleMillis = max(whole.ThrottleMillis, part.ThrottleMillis)
			}
			return whole
		}
	}
}

// forwardTarget returns the coordinator a request for groups goes to: the
// one agent, not this one, that coordinates every group and that clients
// reach at this agent's advertised address. Requests on a relay connection
// are never forwarded.
func (s *Server) forwardTarget(ctx context.Context, names []string) (fleet.Member, bool) {
	dests, _ := s.splitByCoordinator(ctx, names)
	if len(dests) != 1 || dests[0].Peer == "" {
		return fleet.Member{}, false
	}
	return dests[0], true
}

// splitByCoordinator groups the indexes of names by where their requests
// go: to a coordinator that shares this agent's advertised address (which
// clients cannot reach but through it), or here (the zero Member: this
// agent coordinates them, or clients can reach their coordinator and are
// told NOT_COORDINATOR). Destinations are in order of first appearance.
// Nothing is split on a relay connection: requests there are answered here.
func (s *Server) splitByCoordinator(ctx context.Context, names []string) ([]fleet.Member, [][]int) {
	c, ok := ctx.Value(connKey{}).(*conn)
	if !ok || c.peer || len(names) == 0 {
		return nil, nil
	}
	p := s.fleet.Placement()
	self := s.fleet.Self()
	var dests []fleet.Member
	var idx [][]int
	for i, g := range names {
		var d fleet.Member
		if o := p.Owner(g); self.SharesAddr(o) {
			d = o
		}
		j := slices.IndexFunc(dests, func(m fleet.Member) bool { return m.Peer == d.Peer })
		if j < 0 {
			j = len(dests)
			dests, idx = append(dests, d), append(idx, nil)
		}
		idx[j] = append(idx[j], i)
	}
	return dests, idx
}

// forward sends req to owner over the connection's relay in phase one, so
// relayed requests keep the client's order, and waits for the answer in
// phase two.
func (s *Server) forward(ctx context.Context, owner fleet.Member, req kmsg.Request) func() kmsg.Response {
	c := ctx.Value(connKey{}).(*conn)
	r, err := c.relayTo(owner.Peer)
	var wait <-chan relayAnswer
	if err == nil {
		wait, err = r.send(req)
	}
	if err != nil {
		s.metrics.forwarded.WithLabelValues("failed").Inc()
		s.cfg.Logger.Info("forwarding a group request", "api", kmsg.NameForKey(req.Key()), "coordinator", owner.Peer, "err", err)
		resp := notCoordinator(req)
		return func() kmsg.Response { return resp }
	}
	return func() kmsg.Response {
		var a relayAnswer
		select {
		case a = <-wait:
		case <-ctx.Done():
			a.err = ctx.Err()
		}
		if a.err == nil {
			resp := req.ResponseKind()
			if a.err = readResponse(resp, req.GetVersion(), a.frame); a.err == nil {
				s.metrics.forwarded.WithLabelValues("ok").Inc()
				return resp
			}
		}
		s.metrics.forwarded.WithLabelValues("failed").Inc()
		s.cfg.Logger.Info("forwarding a group request", "api", kmsg.NameForKey(req.Key()), "coordinator", owner.Peer, "err", a.err)
		return notCoordinator(req)
	}
}

// relayTo returns the connection's relay to the agent at peer, dialling it
// if it has none or the last one broke. Phase one only (the read loop).
func (c *conn) relayTo(peer string) (*relay, error) {
	if r := c.relays[peer]; r != nil && !r.broken() {
		return r, nil
	}
	// The coordinator authorizes the forwarded requests as this
	// connection's principal, from this client's address (auth.go):
	// from cluster format 6, which every agent at the address then
	// understands (an older one would not know the greeting for a peer's).
	hello := peerHello{token: c.s.cfg.PeerToken, tls: c.s.cfg.Security.PeerTLS}
	if c.s.clusterFormat() >= meta.Format6 {
		hello.host, hello.principal = c.auth.host, c.auth.principal
	}
	r, err := dialRelay(context.Background(), peer, hello, c.client.ID, cap(c.queue))
	if err != nil {
		return nil, err
	}
	if c.relays == nil {
		c.relays = map[string]*relay{}
	} else if old := c.relays[peer]; old != nil {
		old.close()
	}
	c.relays[peer] = r
	return r, nil
}

// closeRelays ends the connection's relays, once its read loop has ended.
func (c *conn) closeRelays() {
	for _, r := range c.relays {
		r.close()
	}
}

// peerHello is what a peer connection greets with: the cluster's token
// and, for a relay of a client's connection, that client's address and
// principal, as which the coordinator authorizes the forwarded requests.
// It travels as the greeting's software version: the token alone for an
// agent's own connection (the sequencer's), authorized for everything, or
// "token relay host principal" (the token is hex and an address has no
// spaces; the principal may have them). A relay greeting without a
// principal is no peer's: nothing fails open to an agent's rights.
type peerHello struct {
	token           string
	tls             *tls.Config // the peers' listener speaks TLS
	host, principal string
}

func (h peerHello) String() string {
	if h.principal == "" {
		return h.token
	}
	return h.token + " relay " + h.host + " " + h.principal
}

// parsePeerHello splits a greeting's software version; ok is false for
// one that is malformed.
func parsePeerHello(v string) (token, host, principal string, ok bool) {
	token, rest, relay := strings.Cut(v, " ")
	if !relay {
		return token, "", "", true
	}
	rest, isRelay := strings.CutPrefix(rest, "relay ")
	host, principal, _ = strings.Cut(rest, " ")
	return token, host, principal, isRelay && host != "" && principal != ""
}

// relay is one connection to a coordinating agent on behalf of one client
// connection. Requests are written by the client's read loop; a reader
// goroutine hands each answer to the oldest waiting request, since the
// coordinator answers a connection's requests in order.
type relay struct {
	nc      net.Conn
	w       *bufio.Writer
	format  *kmsg.RequestFormatter
	nextID  int32
	waiting chan relayWait // in request order; as deep as the client's pipeline

	mu   sync.Mutex
	err  error // set once the relay broke
	done chan struct{}
}

type relayWait struct {
	id     int32
	answer chan relayAnswer
}

type relayAnswer struct {
	frame []byte // the answer after its size: correlation id, header, body
	err   error
}

func dialRelay(ctx context.Context, peer string, hello peerHello, clientID string, depth int) (*relay, error) {
	dctx, cancel := context.WithTimeout(ctx, relayDialTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", peer)
	if err != nil {
		return nil, err
	}
	if hello.tls != nil {
		conf := hello.tls.Clone()
		if conf.ServerName == "" {
			conf.ServerName, _, _ = net.SplitHostPort(peer)
		}
		tc := tls.Client(nc, conf)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS to %s: %w", peer, err)
		}
		nc = tc
	}
	if dl, ok := dctx.Deadline(); ok {
		nc.SetReadDeadline(dl) // the greeting's answer
	}
	r := &relay{nc: nc, w: bufio.NewWriter(nc), format: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)),
		waiting: make(chan relayWait, depth+1), done: make(chan struct{})}
	go r.readLoop()
	defer nc.SetReadDeadline(time.Time{})
	// A call given up on during the greeting ends it.
	stop := context.AfterFunc(dctx, r.close)
	defer stop()
	greet := kmsg.NewPtrApiVersionsRequest()
	greet.Version = 3
	greet.ClientSoftwareName, greet.ClientSoftwareVersion = peerSoftware, hello.String()
	wait, err := r.send(greet)
	if err != nil {
		r.close()
		return nil, err
	}
	a := <-wait
	if a.err == nil {
		resp := greet.ResponseKind().(*kmsg.ApiVersionsResponse)
		if a.err = readResponse(resp, greet.Version, a.frame); a.err == nil && resp.ErrorCode != 0 {
			a.err = kerr.ErrorForCode(resp.ErrorCode)
		}
	}
	if a.err != nil {
		r.close()
		return nil, fmt.Errorf("greeting %s: %w", peer, a.err)
	}
	return r, nil
}

// send writes req and returns where its answer will come.
func (r *relay) send(req kmsg.Request) (<-chan relayAnswer, error) {
	if r.broken() {
		return nil, r.failure()
	}
	r.nextID++
	w := relayWait{id: r.nextID, answer: make(chan relayAnswer, 1)}
	select {
	case r.waiting <- w:
	default: // deeper than the client's own pipeline: cannot happen
		return nil, errors.New("relay pipeline full")
	}
	r.nc.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
	frame := r.format.AppendRequest(nil, req, w.id)
	if _, err := r.w.Write(frame); err != nil {
		r.fail(err)
		return nil, err
	}
	if err := r.w.Flush(); err != nil {
		r.fail(err)
		return nil, err
	}
	return w.answer, nil
}

func (r *relay) readLoop() {
	br := bufio.NewReader(r.nc)
	var size [4]byte
	for {
		var w relayWait
		select {
		case w = <-r.waiting:
		case <-r.done:
			r.drain()
			return
		}
		frame, err := readFrame(br, size[:])
		if err == nil && int32(binary.BigEndian.Uint32(frame)) != w.id {
			err = fmt.Errorf("answer %d to request %d", int32(binary.BigEndian.Uint32(frame)), w.id)
		}
		if err != nil {
			r.fail(err)
			w.answer <- relayAnswer{err: err}
			r.drain()
			return
		}
		w.answer <- relayAnswer{frame: frame}
	}
}

// readFrame reads one size-prefixed answer; relayed answers are group
// answers, so a bound far below a Fetch's keeps a broken peer from making
// this agent allocate much.
func readFrame(br *bufio.Reader, size []byte) ([]byte, error) {
	if _, err := io.ReadFull(br, size); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size))
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("answer size %d out of bounds", n)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(br, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// drain fails every request still waiting, once the relay broke.
func (r *relay) drain() {
	err := r.failure()
	for {
		select {
		case w := <-r.waiting:
			w.answer <- relayAnswer{err: err}
		default:
			return
		}
	}
}

func (r *relay) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
		close(r.done)
		r.nc.Close()
	}
	r.mu.Unlock()
}

func (r *relay) close() { r.fail(errors.New("relay closed")) }

func (r *relay) broken() bool { return r.failure() != nil }

func (r *relay) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// readResponse decodes an answer frame (correlation id, header, body) into
// resp of version v.
func readResponse(resp kmsg.Response, v int16, frame []byte) error {
	resp.SetVersion(v)
	body := frame[4:]
	// Response header v1 (tagged fields) for flexible versions, except
	// ApiVersions, whose answer header is always v0.
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		var err error
		if body, err = skipTags(body); err != nil {
			return err
		}
	}
	return resp.ReadFrom(body)
}

// notCoordinator answers a group request NOT_COORDINATOR, so that the
// client looks up the coordinator again (ListGroups, which has no
// coordinator, COORDINATOR_NOT_AVAILABLE).
func notCoordinator(req kmsg.Request) kmsg.Response {
	code := kerr.NotCoordinator.Code
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return groups.JoinError(r, code)
	case *kmsg.SyncGroupRequest:
		resp.(*kmsg.SyncGroupResponse).ErrorCode = code
	case *kmsg.HeartbeatRequest:
		resp.(*kmsg.HeartbeatResponse).ErrorCode = code
	case *kmsg.LeaveGroupRequest:
		resp.(*kmsg.LeaveGroupResponse).ErrorCode = code
	case *kmsg.OffsetDeleteRequest:
		resp.(*kmsg.OffsetDeleteResponse).ErrorCode = code
	case *kmsg.ListGroupsRequest:
		// Some coordinator's list is missing: a retriable error, not a
		// short list.
		resp.(*kmsg.ListGroupsResponse).ErrorCode = kerr.CoordinatorNotAvailable.Code
	case *kmsg.OffsetCommitRequest:
		out := resp.(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			t := kmsg.NewOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetCommitResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, code
				t.Partitions = append(t.Partitions, p)
			}
			out.Topics = append(out.Topics, t)
		}
	case *kmsg.TxnOffsetCommitRequest:
		out := resp.(*kmsg.TxnOffsetCommitResponse)
		for _, rt := range r.Topics {
			t := kmsg.NewTxnOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, code
				t.Partitions = append(t.Partitions, p)
			}
			out.Topics = append(out.Topics, t)
		}
	case *kmsg.OffsetFetchRequest:
		out := resp.(*kmsg.OffsetFetchResponse)
		out.ErrorCode = code
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, code
			out.Groups = append(out.Groups, rg)
		}
	case *kmsg.DescribeGroupsRequest:
		out := resp.(*kmsg.DescribeGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, code
			out.Groups = append(out.Groups, rg)
		}
	case *kmsg.DeleteGroupsRequest:
		out := resp.(*kmsg.DeleteGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, code
			out.Groups = append(out.Groups, rg)
		}
	}
	return resp
}

// The groups each forwarded API names.
func joinGroups(r *kmsg.JoinGroupRequest) []string            { return []string{r.Group} }
func syncGroups(r *kmsg.SyncGroupRequest) []string            { return []string{r.Group} }
func heartbeatGroups(r *kmsg.HeartbeatRequest) []string       { return []string{r.Group} }
func leaveGroups(r *kmsg.LeaveGroupRequest) []string          { return []string{r.Group} }
func offsetCommitGroups(r *kmsg.OffsetCommitRequest) []string { return []string{r.Group} }
func txnOffsetCommitGroups(r *kmsg.TxnOffsetCommitRequest) []string {
	return []string{r.Group}
}
func offsetDeleteGroups(r *kmsg.OffsetDeleteRequest) []string { return []string{r.Group} }

func offsetFetchGroups(r *kmsg.OffsetFetchRequest) []string {
	if r.Version < 8 {
		return []string{r.Group}
	}
	gs := make([]string, len(r.Groups))
	for i, g := range r.Groups {
		gs[i] = g.Group
	}
	return gs
}

func describeGroupsGroups(r *kmsg.DescribeGroupsRequest) []string { return r.Groups }

func deleteGroupsGroups(r *kmsg.DeleteGroupsRequest) []string { return r.Groups }

// Splitting and merging the multi-group APIs (routedMany).

func pick[T any](all []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = all[i]
	}
	return out
}

// seq returns 0, 1, …, n-1.
func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// place puts part's elements at their indexes in *whole, which grows to n.
func place[T any](whole *[]T, n int, part []T, idx []int) {
	if len(*whole) < n {
		*whole = append(*whole, make([]T, n-len(*whole))...)
	}
	for j, i := range idx {
		if j < len(part) {
			(*whole)[i] = part[j]
		}
	}
}

// subsetOf returns a routedMany subset for a request whose groups are the
// slice groups points to.
func subsetOf[R any, G any](groups func(*R) *[]G) func(*R, []int) *R {
	return func(r *R, idx []int) *R {
		part := *r
		*groups(&part) = pick(*groups(r), idx)
		return &part
	}
}

// mergeOf returns a routedMany merge for an answer whose per-group answers
// and throttle time fields points to.
func mergeOf[R any, G any](fields func(*R) (*[]G, *int32)) func(whole, part kmsg.Response, idx []int, n int) {
	return func(whole, part kmsg.Response, idx []int, n int) {
		wg, wt := fields(any(whole).(*R))
		pg, pt := fields(any(part).(*R))
		*wt = max(*wt, *pt)
		place(wg, n, *pg, idx)
	}
}

var (
	describeGroupsSubset = subsetOf(func(r *kmsg.DescribeGroupsRequest) *[]string { return &r.Groups })
	describeGroupsMerge  = mergeOf(func(r *kmsg.DescribeGroupsResponse) (*[]kmsg.DescribeGroupsResponseGroup, *int32) {
		return &r.Groups, &r.ThrottleMillis
	})
	deleteGroupsSubset = subsetOf(func(r *kmsg.DeleteGroupsRequest) *[]string { return &r.Groups })
	deleteGroupsMerge  = mergeOf(func(r *kmsg.DeleteGroupsResponse) (*[]kmsg.DeleteGroupsResponseGroup, *int32) {
		return &r.Groups, &r.ThrottleMillis
	})
	offsetFetchSubset = subsetOf(func(r *kmsg.OffsetFetchRequest) *[]kmsg.OffsetFetchRequestGroup { return &r.Groups })
	offsetFetchMerge  = mergeOf(func(r *kmsg.OffsetFetchResponse) (*[]kmsg.OffsetFetchResponseGroup, *int32) {
		return &r.Groups, &r.ThrottleMillis
	})
)
