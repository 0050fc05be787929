package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// The requests of one connection take effect in the order they were sent,
// as in Kafka, while their answers stay pipelined. Each run writes every
// request of the connection in one write, so that the agent reads them back
// to back, and only then reads the answers.

// orderingRuns is how many times each ordering test repeats per backend.
// Before requests were ordered, 23 of 80 runs of 1,000 commits ended on an
// older offset (so 20 runs on two backends all pass by chance about once in
// a million), and every CreatePartitions run failed at its first Produce.
const orderingRuns = 20

// TestOrderedOffsetCommits: 1,000 OffsetCommits with rising offsets, back to
// back on one connection, leave the last one committed.
func TestOrderedOffsetCommits(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			createTopic(t, a.Addr, "ordered", 1, nil)
			adm := kadm.NewClient(client(t, a.Addr))
			const commits = 1000
			for run := range orderingRuns {
				group := fmt.Sprintf("async-committer-%d", run)
				c := dialRaw(t, a.Addr)
				c.SetDeadline(time.Now().Add(2 * time.Minute))
				var reqs []kmsg.Request
				for i := range commits {
					req := kmsg.NewPtrOffsetCommitRequest()
					req.Version = 7 // the newest without flexible headers
					req.Group, req.Generation = group, -1
					rt := kmsg.NewOffsetCommitRequestTopic()
					rt.Topic = "ordered"
					rp := kmsg.NewOffsetCommitRequestTopicPartition()
					rp.Offset, rp.LeaderEpoch = int64(i+1), -1
					rt.Partitions = append(rt.Partitions, rp)
					req.Topics = append(req.Topics, rt)
					reqs = append(reqs, req)
				}
				for i, body := range c.roundTrip(t, reqs) {
					resp := answer(t, reqs[i], body).(*kmsg.OffsetCommitResponse)
					if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
						t.Fatalf("run %d: commit %d: %v", run, i+1, kerr.ErrorForCode(code))
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				offs, err := adm.FetchOffsets(ctx, group)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if o, ok := offs.Lookup("ordered", 0); !ok || o.At != commits {
					t.Errorf("run %d: committed offset %d after committing 1..%d in order, want %d", run, o.At, commits, commits)
				}
				c.Close()
			}
		})
	}
}

// TestOrderedCreatePartitionsAndProduce: on one connection, a topic is
// created and then grown a partition at a time, each CreatePartitions
// followed at once by a Produce to the partition it adds; every Produce
// finds its partition.
func TestOrderedCreatePartitionsAndProduce(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			const grow = 20
			for run := range orderingRuns {
				topic := fmt.Sprintf("growing-%d", run)
				create := kmsg.NewPtrCreateTopicsRequest()
				create.Version = 4 // the newest without flexible headers
				ct := kmsg.NewCreateTopicsRequestTopic()
				ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 1, 1
				create.Topics = append(create.Topics, ct)
				reqs := []kmsg.Request{create, produceTo(topic, 0, buildBatch(t, 10))}
				for p := int32(1); p <= grow; p++ {
					cp := kmsg.NewPtrCreatePartitionsRequest()
					cp.Version, cp.TimeoutMillis = 1, 30000
					rt := kmsg.NewCreatePartitionsRequestTopic()
					rt.Topic, rt.Count = topic, p+1
					cp.Topics = append(cp.Topics, rt)
					reqs = append(reqs, cp, produceTo(topic, p, buildBatch(t, 10)))
				}
				c := dialRaw(t, a.Addr)
				c.SetDeadline(time.Now().Add(2 * time.Minute))
				for i, body := range c.roundTrip(t, reqs) {
					var code int16
					switch resp := answer(t, reqs[i], body).(type) {
					case *kmsg.CreateTopicsResponse:
						code = resp.Topics[0].ErrorCode
					case *kmsg.CreatePartitionsResponse:
						code = resp.Topics[0].ErrorCode
					case *kmsg.ProduceResponse:
						code = resp.Topics[0].Partitions[0].ErrorCode
					}
					if code != 0 {
						t.Fatalf("run %d: request %d (%s): %v", run, i, kmsg.NameForKey(reqs[i].Key()), kerr.ErrorForCode(code))
					}
				}
				c.Close()
				ends := endOffsets(t, a.Addr, topic)
				for p := int32(0); p <= grow; p++ {
					if ends[p] != 1 {
						t.Errorf("run %d: partition %d holds %d records, want 1", run, p, ends[p])
					}
				}
			}
		})
	}
}

// produceTo is an acks=all Produce of one batch to one partition.
func produceTo(topic string, partition int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 8 // the newest without flexible headers
	req.Acks, req.TimeoutMillis = -1, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// answer decodes body as the answer to req.
func answer(t *testing.T, req kmsg.Request, body []byte) kmsg.Response {
	t.Helper()
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decoding the %s answer: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// roundTrip writes every request (non-flexible versions) in one write, with
// correlation ids 0, 1, …, then reads the answers and returns their bodies
// in request order.
func (c *rawConn) roundTrip(t *testing.T, reqs []kmsg.Request) [][]byte {
	t.Helper()
	written := c.sendAll(reqs, 0)
	out := make([][]byte, len(reqs))
	for i := range reqs {
		corr, body := c.recv(t)
		if corr != int32(i) {
			t.Fatalf("answer %d has correlation id %d", i, corr)
		}
		out[i] = body
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	return out
}

// sendAll writes the requests (non-flexible versions) in one write, with
// correlation ids from corr on, from another goroutine: the agent stops
// reading while its answers wait for us to read them. The channel yields
// the write's error.
func (c *rawConn) sendAll(reqs []kmsg.Request, corr int32) <-chan error {
	b := frames(reqs, corr)
	written := make(chan error, 1)
	go func() { _, err := c.Write(b); written <- err }()
	return written
}

// frames encodes requests as a client sends them, with header v1 (a null
// client id) and correlation ids from corr on.
func frames(reqs []kmsg.Request, corr int32) []byte {
	var b []byte
	for i, req := range reqs {
		start := len(b)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
		b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
		b = binary.BigEndian.AppendUint32(b, uint32(corr+int32(i)))
		b = binary.BigEndian.AppendUint16(b, 0xffff)
		b = req.AppendTo(b)
		binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	}
	return b
}

// TestOrderedGroupMembership: a static member's JoinGroup and then its
// LeaveGroup, back to back on one connection, take effect in that order:
// the leave finds the member the join added (and the join, still waiting
// for its rebalance, is answered that the member left).
func TestOrderedGroupMembership(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay=0s")
	for run := range orderingRuns {
		group, instance := fmt.Sprintf("static-%d", run), "instance"
		join := kmsg.NewPtrJoinGroupRequest()
		join.Version = 5 // the newest without flexible headers
		join.Group, join.InstanceID, join.ProtocolType = group, &instance, "consumer"
		join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		join.Protocols = append(join.Protocols, p)
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Version = 3
		leave.Group = group
		m := kmsg.NewLeaveGroupRequestMember()
		m.InstanceID = &instance
		leave.Members = append(leave.Members, m)

		c := dialRaw(t, a.Addr)
		c.SetDeadline(time.Now().Add(time.Minute))
		bodies := c.roundTrip(t, []kmsg.Request{join, leave})
		lr := answer(t, leave, bodies[1]).(*kmsg.LeaveGroupResponse)
		if lr.ErrorCode != 0 || len(lr.Members) != 1 || lr.Members[0].ErrorCode != 0 {
			code := lr.ErrorCode
			if len(lr.Members) == 1 {
				code = lr.Members[0].ErrorCode
			}
			t.Fatalf("run %d: the leave right after the join: %v, want the member it joined to leave", run, kerr.ErrorForCode(code))
		}
		c.Close()
	}
}
