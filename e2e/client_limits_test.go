package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// The limits a careless or hostile client could otherwise exceed, each
// under its Kafka name (pkg/protocol/client_limits.go).

// fetchRequest is a Fetch v11 (the newest without flexible headers) of one
// partition from offset, without a fetch session. rackPad bytes of rack id
// make the frame as large as a test needs.
func fetchRequest(topic string, partition int32, offset int64, maxWaitMs, maxBytes int32, rackPad int) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID, req.SessionEpoch = -1, -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWaitMs, 1, maxBytes
	req.Rack = strings.Repeat("r", rackPad)
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = partition, offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// fetched decodes the answer to a fetchRequest and returns its one
// partition.
func fetched(t *testing.T, body []byte) kmsg.FetchResponseTopicPartition {
	t.Helper()
	resp := answer(t, fetchRequest("", 0, 0, 0, 0, 0), body).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch answer: error %v, %d topics", kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch answer: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p
}

// batchSizes returns the sizes of the whole batches in b, failing the test
// on a partial one.
func batchSizes(t *testing.T, b []byte) []int {
	t.Helper()
	var sizes []int
	for len(b) > 0 {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatalf("a partial or bad batch in a fetch answer: %v", err)
		}
		n := 12 + int(rb.Length)
		sizes = append(sizes, n)
		b = b[n:]
	}
	return sizes
}

// TestFetchMaxBytes: a Fetch answer holds at most --fetch-max-bytes
// (fetch.max.bytes) of batches whatever the client asks, and the request's
// own MaxBytes when smaller, but always the first batch whole (KIP-74).
func TestFetchMaxBytes(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--fetch-max-bytes", "4096")
	createTopic(t, a.Addr, "capped", 2, nil)
	c := dialRaw(t, a.Addr)
	for range 10 {
		c.produce(t, produceTo("capped", 0, buildBatch(t, 1000)))
	}
	for _, tc := range []struct {
		maxBytes int32
		limit    int
	}{{1 << 20, 4096}, {2500, 2500}} {
		p := fetched(t, c.roundTrip(t, []kmsg.Request{fetchRequest("capped", 0, 0, 0, tc.maxBytes, 0)})[0])
		sizes := batchSizes(t, p.RecordBatches)
		total := 0
		for _, n := range sizes {
			total += n
		}
		if len(sizes) == 0 || total > tc.limit || total+sizes[0] <= tc.limit {
			t.Errorf("MaxBytes %d: %d batches, %d bytes (batches of %d); want as many whole batches as fit in %d",
				tc.maxBytes, len(sizes), total, sizes, tc.limit)
		}
	}

	// One batch larger than the bound is still returned, whole.
	big := buildBatch(t, 8000)
	c.produce(t, produceTo("capped", 1, big))
	p := fetched(t, c.roundTrip(t, []kmsg.Request{fetchRequest("capped", 1, 0, 0, 1<<20, 0)})[0])
	if sizes := batchSizes(t, p.RecordBatches); len(sizes) != 1 || sizes[0] != len(big) {
		t.Errorf("a batch over fetch.max.bytes: got batches of %v bytes, want the one of %d", sizes, len(big))
	}
}

// TestQueuedMaxRequestBytes: once the requests read and not yet answered
// reach --queued-max-request-bytes (queued.max.request.bytes), the agent
// reads no more on any connection until answers are written. Long-polling
// fetches hold the budget here until another agent on the bucket commits
// the record they wait for.
func TestQueuedMaxRequestBytes(t *testing.T) {
	b := harness.FileBackend(t)
	const budget = 8192
	// Without the sequencer: its peer connections between the two would
	// wait for room as well and blur the count of read loops waiting.
	a := startAgent(t, b, 0, "--queued-max-request-bytes", "8192", "--meta-sequencer=false")
	other := startAgent(t, b, 0, "--meta-sequencer=false")
	createTopic(t, a.Addr, "held", 1, nil)
	harness.Eventually(t, time.Minute, func() bool { return knowsTopic(t, other.Addr, "held") }, "the other agent never learned the topic")

	// Six fetches of about 2 KiB that wait up to a minute for a record:
	// three fit the budget, the fourth waits for room.
	const fetches = 6
	var reqs []kmsg.Request
	for range fetches {
		reqs = append(reqs, fetchRequest("held", 0, 0, 60000, 1<<20, 2000))
	}
	frame := len(frames(reqs[:1], 0))
	holder := dialRaw(t, a.Addr)
	holder.SetDeadline(time.Now().Add(2 * time.Minute))
	written := holder.sendAll(reqs, 0)
	metric := func(name string) float64 { return scrape(t, a.HTTPAddr)[name] }
	harness.Eventually(t, time.Minute, func() bool { return metric("barge_queued_request_waits") == 1 },
		"the holder's read loop never waited for room")

	// Another connection's request is not read either.
	var produced atomic.Bool
	bystander := dialRaw(t, a.Addr)
	bystander.SetDeadline(time.Now().Add(2 * time.Minute))
	bystander.send(t, 18, 0, 99, nil) // ApiVersions v0
	harness.Eventually(t, time.Minute, func() bool { return metric("barge_queued_request_waits") == 2 },
		"the bystander's read loop never waited for room")
	if q := metric("barge_queued_request_bytes"); q > budget || q+float64(frame) <= budget {
		t.Errorf("%v bytes of requests queued, want as many frames of %d as fit in %d", q, frame, budget)
	}

	answered := make(chan error, 1)
	go func() { // not the test's goroutine: no t.Fatal here
		var head [8]byte
		_, err := io.ReadFull(bystander.r, head[:])
		if err == nil && !produced.Load() {
			err = errors.New("answered before the fetches holding the budget were")
		}
		answered <- err
	}()
	produced.Store(true)
	// On a bare connection: a client would ask either agent for metadata
	// and producer ids, and the first would not read it.
	dialRaw(t, other.Addr).produce(t, produceTo("held", 0, buildBatch(t, 10)))
	for i := range fetches {
		corr, body := holder.recv(t)
		if p := fetched(t, body); corr != int32(i) || len(p.RecordBatches) == 0 {
			t.Fatalf("fetch answer %d (correlation %d) holds %d bytes, want the record", i, corr, len(p.RecordBatches))
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Errorf("the bystander's ApiVersions: %v", err)
	}
	harness.Eventually(t, time.Minute, func() bool {
		m := scrape(t, a.HTTPAddr)
		return m["barge_queued_request_bytes"] == 0 && m["barge_queued_request_waits"] == 0
	}, "queued request bytes not given back after every answer")
}

// knowsTopic reports whether the agent at addr has topic, asking on a bare
// connection so that no client picks another agent.
func knowsTopic(t *testing.T, addr, topic string) bool {
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = 8, false // v8: the newest without flexible headers
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	c := dialRaw(t, addr)
	defer c.Close()
	resp := answer(t, req, c.roundTrip(t, []kmsg.Request{req})[0]).(*kmsg.MetadataResponse)
	return len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0
}

// produce sends req and fails the test unless its one partition succeeds.
func (c *rawConn) produce(t *testing.T, req *kmsg.ProduceRequest) {
	t.Helper()
	resp := answer(t, req, c.roundTrip(t, []kmsg.Request{req})[0]).(*kmsg.ProduceResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce to %s: %v", req.Topics[0].Topic, kerr.ErrorForCode(code))
	}
}

// eof reads from c until the agent closes it, failing the test if it does
// not within a minute or sends anything meanwhile.
func (c *rawConn) eof(t *testing.T, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := c.r.Read(make([]byte, 1))
	switch {
	case n > 0:
		t.Errorf("%s: the agent answered, want the connection closed", what)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		t.Errorf("%s: %v, want the connection closed", what, err)
	}
}

// TestConnectionsMaxIdle: a connection with no request read and none in
// flight for --connections-max-idle (connections.max.idle.ms) is closed, a
// frame left half sent counts as idle, and a request in flight longer than
// that keeps its connection until answered.
func TestConnectionsMaxIdle(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--connections-max-idle", "1s")
	createTopic(t, a.Addr, "quiet", 1, nil)

	silent := dialRaw(t, a.Addr)
	half := dialRaw(t, a.Addr)
	if _, err := half.Write([]byte{0, 0}); err != nil { // half a size prefix
		t.Fatal(err)
	}
	polling := dialRaw(t, a.Addr)
	written := polling.sendAll([]kmsg.Request{fetchRequest("quiet", 0, 0, 4000, 1<<20, 0)}, 0)

	silent.eof(t, "a connection that never sent a request")
	half.eof(t, "a connection that stopped halfway through a size prefix")
	polling.SetReadDeadline(time.Now().Add(time.Minute))
	if corr, body := polling.recv(t); corr != 0 || len(fetched(t, body).RecordBatches) != 0 {
		t.Errorf("the 4 s long poll: correlation %d", corr)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	polling.eof(t, "a connection idle since its answer")
	// The test's admin client idles too, so it may be closed as well.
	if n := scrape(t, a.HTTPAddr)["barge_connections_idle_closed_total"]; n < 3 {
		t.Errorf("%v idle connections closed, want at least these 3", n)
	}
}

// TestStalledRequestBodies: connections that send the first 12 bytes of a
// 100 MiB frame and never the rest, and reconnect each time the agent
// closes them, hold no more of --queued-max-request-bytes
// (queued.max.request.bytes, 256 MiB here) than one address's share and
// only for --request-body-timeout, so a healthy client beside them keeps
// producing and fetching. From one address they get one frame's worth and
// never delay it; from several they can fill the budget, but only until
// the agent closes them for falling behind the body's pace.
func TestStalledRequestBodies(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--request-body-timeout", "1s")
	createTopic(t, a.Addr, "busy", 8, nil)
	// An 8 MB Produce, one batch of 1 MB to each partition: a large
	// frame whose body the agent reads at its pace, in several reads.
	large := produceTo("busy", 0, buildBatch(t, 1_000_000))
	for p := range int32(7) {
		rp := large.Topics[0].Partitions[0]
		rp.Partition = p + 1
		large.Topics[0].Partitions = append(large.Topics[0].Partitions, rp)
	}
	healthy := dialFrom(t, "127.0.0.1", a.Addr)
	metric := func(name string) float64 { return scrape(t, a.HTTPAddr)[name] }
	const frame = 100 << 20 // socket.request.max.bytes
	var offset int64
	stalls := 0
	for _, tc := range []struct {
		name  string
		ips   []string
		check func() bool // while they stall
	}{
		{"one address", []string{"127.0.0.2", "127.0.0.2", "127.0.0.2"}, func() bool {
			// Its share (one frame: a quarter of the budget is less)
			// is taken, and its other connections wait for it
			// though the budget has room.
			return metric("barge_queued_request_bytes") == frame && metric("barge_queued_request_waits") == 2
		}},
		{"several addresses", []string{"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}, func() bool {
			return metric("barge_queued_request_bytes") >= 2*frame
		}},
	} {
		var stop atomic.Bool
		var closed atomic.Int64
		errs := make(chan error, len(tc.ips))
		for _, ip := range tc.ips {
			go func() { // not the test's goroutine: no t.Fatal here
				for !stop.Load() {
					if err := stallFrom(ip, a.Addr, frame); err != nil {
						errs <- fmt.Errorf("a stalled connection from %s: %w", ip, err)
						return
					}
					closed.Add(1)
				}
				errs <- nil
			}()
		}
		harness.Eventually(t, time.Minute, func() bool { return metric("barge_queued_request_bytes") >= frame },
			"%s: the stalled connections never took any budget", tc.name)
		// Bounded at a minute, far below the 10 minutes of
		// connections.max.idle that once held the budget; the real
		// bound is the body timeout, once per wave of stalls.
		healthy.SetDeadline(time.Now().Add(time.Minute))
		resp := answer(t, large, healthy.roundTrip(t, []kmsg.Request{large})[0]).(*kmsg.ProduceResponse)
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("%s: the large produce to partition %d: %v", tc.name, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
		offset++
		for i := range 5 {
			healthy.SetDeadline(time.Now().Add(time.Minute))
			healthy.produce(t, produceTo("busy", 0, buildBatch(t, 1000)))
			p := fetched(t, healthy.roundTrip(t, []kmsg.Request{fetchRequest("busy", 0, offset, 0, 1<<20, 0)})[0])
			if len(p.RecordBatches) == 0 {
				t.Fatalf("%s: round %d: fetch from %d returned nothing", tc.name, i, offset)
			}
			offset++
		}
		harness.Eventually(t, time.Minute, tc.check, "%s: the stalled connections never held the budget as expected", tc.name)
		harness.Eventually(t, time.Minute, func() bool { return closed.Load() >= int64(len(tc.ips)) },
			"%s: the stalled connections were not closed", tc.name)
		stop.Store(true)
		for range tc.ips {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		stalls += int(closed.Load())
		harness.Eventually(t, time.Minute, func() bool {
			m := scrape(t, a.HTTPAddr)
			return m["barge_queued_request_bytes"] == 0 && m["barge_queued_request_waits"] == 0
		}, "%s: the stalled frames' budget was not given back", tc.name)
	}
	if n := metric("barge_connections_slow_closed_total"); n != float64(stalls) {
		t.Errorf("%v connections counted as closed for a slow body, want the %d stalled ones", n, stalls)
	}
}

// stallFrom connects to addr from the loopback address ip, sends the size
// prefix and header of a Produce frame of size bytes but none of its body,
// and returns once the agent has closed the connection.
func stallFrom(ip, addr string, size uint32) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	head := binary.BigEndian.AppendUint32(nil, size)
	head = append(head, 0, 0, 0, 8, 0, 0, 0, 1) // Produce v8, correlation id 1
	if _, err := nc.Write(head); err != nil {
		return err
	}
	switch n, err := nc.Read(make([]byte, 1)); {
	case n > 0:
		return errors.New("answered a frame it never got")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	default:
		return fmt.Errorf("not closed: %w", err)
	}
}

// dialFrom connects to addr from the loopback address ip.
func dialFrom(t *testing.T, ip, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(time.Minute))
	return &rawConn{Conn: nc, r: bufio.NewReader(nc)}
}

// served reports whether the agent answers an ApiVersions on c (else it
// closed c at once).
func (c *rawConn) served(t *testing.T) bool {
	t.Helper()
	_, err := c.Write(frames([]kmsg.Request{kmsg.NewPtrApiVersionsRequest()}, 0))
	if err == nil {
		var size [4]byte
		_, err = io.ReadFull(c.r, size[:])
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return false
	}
	t.Fatalf("neither answered nor closed: %v", err)
	return false
}

// TestMaxConnections: a connection over --max-connections-per-ip
// (max.connections.per.ip) from one address is closed at once; at
// --max-connections (max.connections) the agent stops accepting, as
// Kafka's acceptor does (KIP-402), so one more waits in the listen backlog
// and is served once a slot frees; the others keep working throughout.
func TestMaxConnections(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--max-connections", "4", "--max-connections-per-ip", "2")
	var open []*rawConn
	for _, ip := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"} {
		c := dialFrom(t, ip, a.Addr)
		if !c.served(t) {
			t.Fatalf("connection %d from %s refused, under both caps", len(open)+1, ip)
		}
		open = append(open, c)
		if len(open) == 2 && dialFrom(t, ip, a.Addr).served(t) {
			t.Errorf("a third connection from %s was served, over max.connections.per.ip 2", ip)
		}
	}
	harness.Eventually(t, time.Minute, func() bool { return scrape(t, a.HTTPAddr)["barge_accept_paused"] == 1 },
		"the agent kept accepting at max.connections 4")

	// The kernel completes the fifth's handshake; the agent neither
	// serves nor closes it while full.
	fifth := dialFrom(t, "127.0.0.3", a.Addr)
	var freed atomic.Bool
	served := make(chan error, 1)
	go func() { // not the test's goroutine: no t.Fatal here
		_, err := fifth.Write(frames([]kmsg.Request{kmsg.NewPtrApiVersionsRequest()}, 0))
		if err == nil {
			var size [4]byte
			_, err = io.ReadFull(fifth.r, size[:])
		}
		if err == nil && !freed.Load() {
			err = errors.New("served while max.connections were open")
		}
		served <- err
	}()
	for i, c := range open {
		if !c.served(t) {
			t.Errorf("connection %d stopped being served", i+1)
		}
	}
	freed.Store(true)
	open[0].Close()
	if err := <-served; err != nil {
		t.Errorf("the connection waiting for a slot: %v", err)
	}
	m := scrape(t, a.HTTPAddr)
	if n := m[`barge_connections_refused_total{limit="max.connections.per.ip"}`]; n < 1 {
		t.Errorf("%v connections counted as refused for max.connections.per.ip", n)
	}
}

// TestPprofOnlyWhenAsked: the agent serves /debug/pprof/ on its --http
// listener only with --pprof.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, http.StatusNotFound}, {[]string{"--pprof"}, http.StatusOK}} {
		a := startAgent(t, harness.FileBackend(t), 0, tc.args...)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/allocs"} {
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + a.HTTPAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%v: %s: %s, want %d", tc.args, path, resp.Status, tc.want)
			}
		}
	}
}
