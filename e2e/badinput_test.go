package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// TestBadInput: every kind of bad input gets Kafka's answer and harms no
// other client of the agent.
func TestBadInput(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// A well-behaved producer runs throughout; it must never notice.
			bystander := startBystander(t, a.Addr)
			defer bystander.check(t)

			t.Run("invalid topic names", func(t *testing.T) { invalidTopicNames(ctx, t, a.Addr) })
			t.Run("fewer partitions", func(t *testing.T) { fewerPartitions(ctx, t, a.Addr) })
			t.Run("record too large", func(t *testing.T) { recordTooLarge(ctx, t, a.Addr) })
			t.Run("bad crc", func(t *testing.T) { badCRC(ctx, t, a.Addr) })
			t.Run("timestamps out of bounds", func(t *testing.T) { timestampsOutOfBounds(ctx, t, a.Addr) })
			t.Run("unknown api and version", func(t *testing.T) { unknownAPI(t, a.Addr) })
			t.Run("garbage frames", func(t *testing.T) { garbageFrames(t, a.Addr) })
		})
	}
}

func invalidTopicNames(ctx context.Context, t *testing.T, addr string) {
	cl := client(t, addr)
	names := []string{"", strings.Repeat("x", 250), "has space", "slash/name", "star*", "é", ".", ".."}
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, n := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, 1, 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != len(names) {
		t.Fatalf("%d answers for %d topics", len(resp.Topics), len(names))
	}
	for _, rt := range resp.Topics {
		if rt.ErrorCode != kerr.InvalidTopicException.Code {
			t.Errorf("CreateTopics %q: error %v, want INVALID_TOPIC_EXCEPTION", rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
	// 249 characters is still fine.
	ok := strings.Repeat("y", 249)
	createTopic(t, addr, ok, 1, nil)

	// Auto-creation through Metadata refuses the same names.
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.AllowAutoTopicCreation = true
	for _, n := range names[1:] { // an empty name is not a Metadata topic
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(n)
		mreq.Topics = append(mreq.Topics, mt)
	}
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mresp.Topics {
		if mt.ErrorCode != kerr.InvalidTopicException.Code {
			t.Errorf("Metadata %q: error %v, want INVALID_TOPIC_EXCEPTION", *mt.Topic, kerr.ErrorForCode(mt.ErrorCode))
		}
	}
}

func fewerPartitions(ctx context.Context, t *testing.T, addr string) {
	createTopic(t, addr, "four", 4, nil)
	cl := client(t, addr)
	for _, count := range []int32{2, 4} {
		req := kmsg.NewPtrCreatePartitionsRequest()
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = "four", count
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Topics[0].ErrorCode; code != kerr.InvalidPartitions.Code {
			t.Errorf("CreatePartitions to %d: %v, want INVALID_PARTITIONS", count, kerr.ErrorForCode(code))
		}
	}
	// Growing works, and the new partitions take records.
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "four", 6
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("CreatePartitions to 6: %v %v", err, kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	if ends := endOffsets(t, addr, "four"); len(ends) != 6 {
		t.Fatalf("topic has %d partitions after growing to 6", len(ends))
	}
}

// produceRaw sends one ProduceRequest with the given records bytes to
// partition 0 of topic and returns the partition's error code.
func produceRaw(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, records []byte) int16 {
	t.Helper()
	resp, err := produceRequest(topic, records).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// produceRequest is an acks=all ProduceRequest of records to partition 0
// of topic.
func produceRequest(topic string, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// buildBatch returns one uncompressed batch of n records.
func buildBatch(t *testing.T, valueSize int, n ...int) []byte {
	t.Helper()
	count := 1
	if len(n) > 0 {
		count = n[0]
	}
	now := time.Now().UnixMilli()
	recs := make([]batch.Record, count)
	for i := range recs {
		recs[i] = batch.Record{OffsetDelta: int32(i), Key: []byte("k"), Value: make([]byte, valueSize)}
	}
	b, err := batch.Build(batch.Header{FirstTimestamp: now, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		batch.None, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recordTooLarge(ctx context.Context, t *testing.T, addr string) {
	createTopic(t, addr, "small", 1, map[string]*string{"max.message.bytes": kmsg.StringPtr("1000")})
	cl := client(t, addr)
	if code := produceRaw(ctx, t, cl, "small", buildBatch(t, 2000)); code != kerr.MessageTooLarge.Code {
		t.Errorf("2000-byte record: %v, want MESSAGE_TOO_LARGE", kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, "small", buildBatch(t, 100)); code != 0 {
		t.Errorf("100-byte record: %v, want success", kerr.ErrorForCode(code))
	}
	if ends := endOffsets(t, addr, "small"); ends[0] != 1 {
		t.Errorf("high watermark %d, want 1 (only the small record)", ends[0])
	}
}

func badCRC(ctx context.Context, t *testing.T, addr string) {
	createTopic(t, addr, "crc", 1, nil)
	cl := client(t, addr)
	b := buildBatch(t, 10)
	b[len(b)-1] ^= 0xff // a record byte: covered by the CRC
	if code := produceRaw(ctx, t, cl, "crc", b); code != kerr.CorruptMessage.Code {
		t.Errorf("bad CRC: %v, want CORRUPT_MESSAGE", kerr.ErrorForCode(code))
	}
	if code := produceRaw(ctx, t, cl, "crc", b[:len(b)-3]); code != kerr.CorruptMessage.Code {
		t.Errorf("truncated batch: %v, want CORRUPT_MESSAGE", kerr.ErrorForCode(code))
	}
	two := append(buildBatch(t, 10), buildBatch(t, 10)...)
	if code := produceRaw(ctx, t, cl, "crc", two); code != kerr.InvalidRecord.Code {
		t.Errorf("two batches for one partition: %v, want INVALID_RECORD", kerr.ErrorForCode(code))
	}
	if ends := endOffsets(t, addr, "crc"); ends[0] != 0 {
		t.Errorf("high watermark %d after rejected batches, want 0", ends[0])
	}
}

// timestampsOutOfBounds: a CreateTime topic refuses records further ahead
// of the agent's clock than message.timestamp.after.max.ms (Kafka 4.0's
// default, an hour) or further behind than message.timestamp.before.max.ms
// with INVALID_TIMESTAMP; a LogAppendTime topic takes them.
func timestampsOutOfBounds(ctx context.Context, t *testing.T, addr string) {
	createTopic(t, addr, "stamps", 1, map[string]*string{"message.timestamp.before.max.ms": kmsg.StringPtr("60000")})
	createTopic(t, addr, "stamped", 1, map[string]*string{"message.timestamp.type": kmsg.StringPtr("LogAppendTime")})
	cl := client(t, addr)
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		topic string
		ts    int64
		want  int16
	}{
		{"stamps", now + 2*time.Hour.Milliseconds(), kerr.InvalidTimestamp.Code},
		{"stamps", now - 10*time.Minute.Milliseconds(), kerr.InvalidTimestamp.Code},
		{"stamps", now, 0},
		{"stamps", now + 10*time.Minute.Milliseconds(), 0},
		{"stamped", now + 2*time.Hour.Milliseconds(), 0},
	} {
		if code := produceRaw(ctx, t, cl, tc.topic, timedBatch(t, batch.None, -1, 0, tc.ts)); code != tc.want {
			t.Errorf("%s at %+d ms: %v, want %v", tc.topic, tc.ts-now, kerr.ErrorForCode(code), kerr.ErrorForCode(tc.want))
		}
	}
	if ends := endOffsets(t, addr, "stamps"); ends[0] != 2 {
		t.Errorf("high watermark %d, want 2 (the records within bounds)", ends[0])
	}
}

// rawConn is a bare TCP connection speaking Kafka framing.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// send writes a request with header v1 (no tagged fields).
func (c *rawConn) send(t *testing.T, key, version int16, corr int32, body []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// recv reads one response and returns its correlation id and body.
func (c *rawConn) recv(t *testing.T) (int32, []byte) {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.r, b); err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:]
}

// closed reports whether the agent closed the connection: the next read
// meets EOF or a reset. A byte read means the agent answered, and a read
// deadline passing means it neither answered nor closed (it hangs, holding
// the connection and whatever it granted the frame), so neither counts.
func (c *rawConn) closed() (bool, error) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := c.r.ReadByte()
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return true, nil
	}
	if err == nil {
		return false, errors.New("the agent answered")
	}
	return false, err
}

func unknownAPI(t *testing.T, addr string) {
	c := dialRaw(t, addr)
	c.send(t, 999, 0, 7, nil) // no such API
	if corr, body := c.recv(t); corr != 7 || len(body) < 2 || int16(binary.BigEndian.Uint16(body)) != kerr.UnsupportedVersion.Code {
		t.Fatalf("unknown API: correlation %d body %x, want 7 and UNSUPPORTED_VERSION", corr, body)
	}
	c.send(t, 0, 99, 8, nil) // Produce v99
	if corr, body := c.recv(t); corr != 8 || len(body) < 2 || int16(binary.BigEndian.Uint16(body)) != kerr.UnsupportedVersion.Code {
		t.Fatalf("Produce v99: correlation %d body %x, want 8 and UNSUPPORTED_VERSION", corr, body)
	}
	// ApiVersions at an unknown version answers in v0 form with our table.
	c.send(t, 18, 99, 9, nil)
	corr, body := c.recv(t)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body); err != nil || corr != 9 || resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions v99: %v corr %d code %d keys %d", err, corr, resp.ErrorCode, len(resp.ApiKeys))
	}
	// The connection still works.
	c.send(t, 18, 0, 10, nil)
	if corr, body := c.recv(t); corr != 10 || len(body) < 2 || binary.BigEndian.Uint16(body) != 0 {
		t.Fatalf("ApiVersions v0 after errors: correlation %d body %x", corr, body)
	}
}

func garbageFrames(t *testing.T, addr string) {
	cases := map[string][]byte{
		"negative size":     {0xff, 0xff, 0xff, 0xfb},
		"huge size":         {0x7f, 0xff, 0xff, 0xff},
		"tiny frame":        {0, 0, 0, 2, 0, 1},
		"garbage body":      append([]byte{0, 0, 0, 20, 0, 3, 0, 9, 0, 0, 0, 1}, []byte("\xff\xff\x00\x05abcdefgh")...),
		"truncated request": {0, 0, 0, 100, 0, 18, 0, 0},
	}
	for name, frame := range cases {
		c := dialRaw(t, addr)
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		if name == "truncated request" {
			c.Conn.(*net.TCPConn).CloseWrite()
		}
		if ok, err := c.closed(); !ok {
			t.Errorf("%s: connection not closed by the agent: %v", name, err)
		}
	}
}

// bystander produces steadily on its own connection while bad input hits
// the agent, and checks at the end that every record was acknowledged.
type bystander struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	acked  int
	errs   []error
}

func startBystander(t *testing.T, addr string) *bystander {
	t.Helper()
	createTopic(t, addr, "bystander", 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	b := &bystander{cl: client(t, addr, kgo.DefaultProduceTopic("bystander")), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for ctx.Err() == nil {
			res := b.cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("steady")})
			if err := res.FirstErr(); err != nil {
				b.errs = append(b.errs, err)
				return
			}
			b.acked++
		}
	}()
	return b
}

func (b *bystander) check(t *testing.T) {
	t.Helper()
	b.cancel()
	<-b.done
	if len(b.errs) > 0 || b.acked == 0 {
		t.Fatalf("the bystander producer was disturbed: %d acked, errors %v", b.acked, b.errs)
	}
}
