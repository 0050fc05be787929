package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// produceTxn runs one transaction of n records with values prefix-i on
// topic and ends it with commit.
func produceTxn(ctx context.Context, t *testing.T, cl *kgo.Client, topic, prefix string, n int, commit bool) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("producing in a transaction: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("ending the transaction (commit %v): %v", commit, err)
	}
}

// consumeAll reads topic from the start up to its high watermark with
// the isolation level given, and returns the values, per partition in
// order, and the offsets of the records it saw.
func consumeIso(ctx context.Context, t *testing.T, addr, topic string, iso kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d: %v", len(got), want, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// TestTransactionsCommitAndAbort: a transactional producer commits one
// transaction and aborts the next; a read_committed consumer sees only the
// committed records, a read_uncommitted one sees both, and each marker
// takes an offset, as in Kafka: 10 records, a commit marker, 5 records, an
// abort marker: the high watermark is 17, the last stable offset too.
func TestTransactionsCommitAndAbort(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	createTopic(t, a.Addr, "txn", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := client(t, a.Addr, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("txn"))
	produceTxn(ctx, t, p, "txn", "c", 10, true)
	produceTxn(ctx, t, p, "txn", "a", 5, false)
	// A record after both, outside any transaction, ends both reads.
	plain := client(t, a.Addr)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "txn", Value: []byte("last")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if hw := endOffsets(t, a.Addr, "txn")[0]; hw != 18 {
		t.Fatalf("high watermark %d, want 18 (10 + commit marker + 5 + abort marker + 1)", hw)
	}
	committed := consumeIso(ctx, t, a.Addr, "txn", kgo.ReadCommitted(), 11)
	if len(committed) != 11 || committed[0] != "c-0" || committed[9] != "c-9" || committed[10] != "last" {
		t.Fatalf("read_committed saw %q", committed)
	}
	all := consumeIso(ctx, t, a.Addr, "txn", kgo.ReadUncommitted(), 16)
	if len(all) != 16 || all[10] != "a-0" || all[15] != "last" {
		t.Fatalf("read_uncommitted saw %q", all)
	}
	for outcome, want := range map[string]float64{"commit": 1, "abort": 1} {
		if n := metricValue(t, a, `barge_transactions_ended_total{outcome="`+outcome+`"}`); n != want {
			t.Fatalf("transactions ended by %s: %v, want %v", outcome, n, want)
		}
	}
}

// TestTransactionOpenHoldsLastStableOffset: while a transaction is open,
// read_committed stops at its first offset (ListOffsets latest under
// read_committed answers it) and sees nothing of it; once it commits,
// everything.
func TestTransactionOpenHoldsLastStableOffset(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	createTopic(t, a.Addr, "lso", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plain := client(t, a.Addr)
	for i := range 3 {
		if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "lso", Value: fmt.Appendf(nil, "p-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p := client(t, a.Addr, kgo.TransactionalID("tx-lso"))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "lso", Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "lso", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lso := func() (int64, int64) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = 1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lso"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, plain)
		if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("ListOffsets: %v %+v", err, resp)
		}
		return resp.Topics[0].Partitions[0].Offset, endOffsets(t, a.Addr, "lso")[0]
	}
	if stable, hw := lso(); stable != 3 || hw != 5 {
		t.Fatalf("with a transaction open at 3: last stable offset %d, high watermark %d; want 3 and 5", stable, hw)
	}
	// read_committed returns the three before it, then waits.
	got := consumeIso(ctx, t, a.Addr, "lso", kgo.ReadCommitted(), 3)
	if len(got) != 3 || got[2] != "p-2" {
		t.Fatalf("read_committed during the transaction saw %q", got)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if stable, hw := lso(); stable != 6 || hw != 6 {
		t.Fatalf("after the commit: last stable offset %d, high watermark %d; want 6 and 6", stable, hw)
	}
	got = consumeIso(ctx, t, a.Addr, "lso", kgo.ReadCommitted(), 5)
	if fmt.Sprint(got) != "[p-0 p-1 p-2 open after]" {
		t.Fatalf("read_committed after the commit saw %q", got)
	}
}

// TestZombieFencing: a second producer with the same transactional id
// fences the first: the first's transaction is aborted, and its next
// produce and its commit are refused as fenced.
func TestZombieFencing(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	createTopic(t, a.Addr, "zombie", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	zombie := client(t, a.Addr, kgo.TransactionalID("tx-z"))
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "zombie", Partition: 0, Value: []byte("z1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := client(t, a.Addr, kgo.TransactionalID("tx-z"))
	produceTxn(ctx, t, fresh, "zombie", "fresh", 2, true) // InitProducerID fences the zombie
	err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "zombie", Value: []byte("z2")}).FirstErr()
	if !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("the zombie's produce: %v, want INVALID_PRODUCER_EPOCH or PRODUCER_FENCED", err)
	}
	if err := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the zombie committed")
	}
	got := consumeIso(ctx, t, a.Addr, "zombie", kgo.ReadCommitted(), 2)
	for _, v := range got {
		if v == "z1" || v == "z2" {
			t.Fatalf("read_committed saw the zombie's %q", v)
		}
	}
}

// TestTransactionBadInput: Kafka's error codes for requests out of turn.
func TestTransactionBadInput(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	createTopic(t, a.Addr, "bad", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, a.Addr)
	initReq := kmsg.NewPtrInitProducerIDRequest()
	initReq.TransactionalID, initReq.TransactionTimeoutMillis = kmsg.StringPtr("tx-bad"), 60000
	init, err := initReq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if init.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v", kerr.ErrorForCode(init.ErrorCode))
	}
	pid, epoch := init.ProducerID, init.ProducerEpoch

	endTxn := func(id string, pid int64, epoch int16) error {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, true
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	if err := endTxn("tx-unknown", pid, epoch); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("EndTxn of an unknown id: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
	if err := endTxn("tx-bad", pid+1, epoch); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("EndTxn by another producer: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
	if err := endTxn("tx-bad", pid, epoch); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("EndTxn with nothing open: %v, want INVALID_TXN_STATE", err)
	}
	if err := endTxn("tx-bad", pid, epoch-1); !errors.Is(err, kerr.ProducerFenced) {
		t.Fatalf("EndTxn of an older epoch: %v, want PRODUCER_FENCED", err)
	}

	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "tx-bad", pid, epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "bad", Partitions: []int32{0}}, {Topic: "no-such-topic", Partitions: []int32{0}}}
	addResp, err := add.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]error{}
	for _, rt := range addResp.Topics {
		codes[rt.Topic] = kerr.ErrorForCode(rt.Partitions[0].ErrorCode)
	}
	if !errors.Is(codes["no-such-topic"], kerr.UnknownTopicOrPartition) || !errors.Is(codes["bad"], kerr.OperationNotAttempted) {
		t.Fatalf("AddPartitionsToTxn with an unknown topic: %v", codes)
	}

	// A transactional produce to a partition the transaction did not add.
	add = kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "tx-bad", pid, epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "bad", Partitions: []int32{0}}}
	if addResp, err = add.RequestWith(ctx, cl); err != nil || addResp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("AddPartitionsToTxn: %v %+v", err, addResp)
	}
	// v4's batched form, as a broker sends it to verify a transactional
	// produce (KIP-890): partition 0 was added, 1 was not; 0 named twice.
	verify := kmsg.NewPtrAddPartitionsToTxnRequest()
	verify.Version = 4
	verify.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{{TransactionalID: "tx-bad", ProducerID: pid, ProducerEpoch: epoch,
		VerifyOnly: true, Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "bad", Partitions: []int32{0, 1, 0}}}}}
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := cl.Broker(int(md.Brokers[0].NodeID)).RetriableRequest(ctx, verify)
	if err != nil {
		t.Fatal(err)
	}
	var verified []int16
	for _, p := range vr.(*kmsg.AddPartitionsToTxnResponse).Transactions[0].Topics[0].Partitions {
		verified = append(verified, p.ErrorCode)
	}
	if want := []int16{0, kerr.InvalidTxnState.Code, 0}; fmt.Sprint(verified) != fmt.Sprint(want) {
		t.Fatalf("AddPartitionsToTxn v4 VerifyOnly answered %v, want %v", verified, want)
	}

	now := time.Now().UnixMilli()
	rec, err := batch.Build(batch.Header{Attributes: 0x10 /* transactional */, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0}, batch.None, []batch.Record{{Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	prod := kmsg.NewPtrProduceRequest()
	prod.TransactionID, prod.Acks, prod.TimeoutMillis = kmsg.StringPtr("tx-bad"), -1, 30000
	prod.Topics = []kmsg.ProduceRequestTopic{{Topic: "bad", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: rec}}}}
	presp, err := prod.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(presp.Topics[0].Partitions[0].ErrorCode); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("a transactional produce to a partition not added: %v, want INVALID_TXN_STATE", err)
	}
	// Batches of one transactional id's producer sent under another id
	// (the one the principal was authorized for) are refused.
	initReq.TransactionalID = kmsg.StringPtr("tx-other")
	if init, err = initReq.RequestWith(ctx, cl); err != nil || init.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v %+v", err, init)
	}
	prod.TransactionID = kmsg.StringPtr("tx-other")
	prod.Topics[0].Partitions[0].Partition = 0
	if presp, err = prod.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(presp.Topics[0].Partitions[0].ErrorCode); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("tx-bad's batch sent as tx-other's: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
}

// lastStable returns read_committed's ListOffsets latest (the last stable
// offset) and the high watermark of each of topic's partitions, asked of
// their leaders.
func lastStable(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partitions int32) (lso, hw []int64) {
	t.Helper()
	lso, hw, err := tryLastStable(ctx, cl, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return lso, hw
}

func tryLastStable(ctx context.Context, cl *kgo.Client, topic string, partitions int32) (lso, hw []int64, err error) {
	for _, iso := range []int8{1, 0} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = iso
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for p := range partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		out := make([]int64, partitions)
		for _, sh := range cl.RequestSharded(ctx, req) {
			if sh.Err != nil {
				return nil, nil, fmt.Errorf("ListOffsets: %w", sh.Err)
			}
			for _, p := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions {
				if p.ErrorCode != 0 {
					return nil, nil, fmt.Errorf("ListOffsets %s/%d: %w", topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				}
				out[p.Partition] = p.Offset
			}
		}
		if iso == 1 {
			lso = out
		} else {
			hw = out
		}
	}
	return lso, hw, nil
}

// awaitStable waits until no transaction is open in any of topic's
// partitions: the last stable offsets are the high watermarks. Failed
// asks are asked again (a leader may be gone).
func awaitStable(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partitions int32) []int64 {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		lso, hw, err := tryLastStable(ctx, cl, topic, partitions)
		if err == nil && fmt.Sprint(lso) == fmt.Sprint(hw) {
			return hw
		}
		select {
		case <-ctx.Done():
			t.Fatalf("transactions still open: last stable offsets %v, high watermarks %v (%v)", lso, hw, err)
		case <-tick.C:
		}
	}
}

// TestTransactionTimeoutAborts: a transaction left open past its timeout
// is aborted by its coordinator: the last stable offset moves on,
// read_committed never sees its records, and its producer is fenced.
func TestTransactionTimeoutAborts(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--transaction-abort-interval=100ms")
	createTopic(t, a.Addr, "timeout", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := client(t, a.Addr, kgo.TransactionalID("tx-timeout"), kgo.TransactionTimeout(time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "timeout", Value: []byte("left-open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	plain := client(t, a.Addr)
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: "timeout", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if lso, hw := lastStable(ctx, t, plain, "timeout", 1); lso[0] != 0 || hw[0] != 2 {
		t.Fatalf("with the transaction open: LSO %v HWM %v, want 0 and 2", lso, hw)
	}
	if hw := awaitStable(ctx, t, plain, "timeout", 1); hw[0] != 3 {
		t.Fatalf("after the abort the high watermark is %d, want 3 (its marker)", hw[0])
	}
	if got := consumeIso(ctx, t, a.Addr, "timeout", kgo.ReadCommitted(), 1); got[0] != "after" {
		t.Fatalf("read_committed saw %q", got)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("a transaction aborted at its timeout committed")
	}
	if !strings.Contains(a.Log(), "aborted a transaction past its timeout") {
		t.Fatal("the agent did not log the abort")
	}
	if n := metricValue(t, a, `barge_transactions_ended_total{outcome="timeout"}`); n != 1 {
		t.Fatalf("barge_transactions_ended_total{outcome=\"timeout\"} = %v, want 1", n)
	}
}

// TestTransactionCoordinatorKilledMidCommit: the coordinator's agent is
// killed while a commit of a transaction over three partitions is in
// flight. The producer's retry reaches the other agent, which completes
// the commit, or the transaction stays open until its timeout aborts it:
// either way every partition ends the same, never half committed.
func TestTransactionCoordinatorKilledMidCommit(t *testing.T) {
	const partitions, each = 3, 10
	b := harness.MinIOBackend(t)
	args := []string{"--transaction-abort-interval=200ms"}
	agents := []*harness.Agent{startAgent(t, b, 20*time.Millisecond, args...), startAgent(t, b, 20*time.Millisecond, args...)}
	createTopic(t, agents[0].Addr, "killed", partitions, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := client(t, agents[0].Addr, kgo.SeedBrokers(agents[0].Addr, agents[1].Addr), kgo.TransactionalID("tx-killed"),
		kgo.TransactionTimeout(5*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for part := range int32(partitions) {
		for i := range each {
			if err := p.ProduceSync(ctx, &kgo.Record{Topic: "killed", Partition: part, Value: fmt.Appendf(nil, "%d-%d", part, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorType, fc.CoordinatorKey = 1, "tx-killed"
	fcr, err := fc.RequestWith(ctx, p)
	if err != nil || fcr.ErrorCode != 0 {
		t.Fatalf("FindCoordinator: %v %+v", err, fcr)
	}
	var coordinator, survivor *harness.Agent
	for _, a := range agents {
		if a.Addr == fmt.Sprintf("%s:%d", fcr.Host, fcr.Port) {
			coordinator = a
		} else {
			survivor = a
		}
	}
	if coordinator == nil {
		t.Fatalf("the coordinator %s:%d is neither agent", fcr.Host, fcr.Port)
	}
	ended := make(chan error, 1)
	go func() { ended <- p.EndTransaction(ctx, kgo.TryCommit) }()
	coordinator.Kill()
	err = <-ended
	t.Logf("commit with its coordinator killed: %v", err)

	check := client(t, survivor.Addr)
	hw := awaitStable(ctx, t, check, "killed", partitions)
	counts := make([]int, partitions)
	for _, v := range consumeUntil(ctx, t, survivor.Addr, "killed", hw) {
		var part, i int
		fmt.Sscanf(v, "%d-%d", &part, &i)
		counts[part]++
	}
	if err == nil && fmt.Sprint(counts) != fmt.Sprint([]int{each, each, each}) {
		t.Fatalf("the commit succeeded but read_committed saw %v records per partition", counts)
	}
	if fmt.Sprint(counts) != fmt.Sprint([]int{each, each, each}) && fmt.Sprint(counts) != "[0 0 0]" {
		t.Fatalf("a transaction half committed: %v records per partition", counts)
	}
}

// consumeUntil reads topic with read_committed from the start until each
// partition's position reaches hw (with sentinels: a plain record after
// hw in each partition, which the read stops at), and returns the values
// before them.
func consumeUntil(ctx context.Context, t *testing.T, addr, topic string, hw []int64) []string {
	t.Helper()
	prod := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range hw {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []string
	for ends := 0; ends < len(hw); {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d sentinels of %d: %v", ends, len(hw), ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "end" {
				ends++
			} else {
				out = append(out, string(r.Value))
			}
		})
	}
	return out
}

// TestTransactionAdminAPIs: kadm's DescribeTransactions, ListTransactions
// and DescribeProducers show an open transaction, its partitions and its
// first offset, then its completion.
func TestTransactionAdminAPIs(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	createTopic(t, a.Addr, "admin-txn", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := client(t, a.Addr, kgo.TransactionalID("tx-admin"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "admin-txn", Partition: 1, Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(client(t, a.Addr))
	described, err := adm.DescribeTransactions(ctx, "tx-admin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := described.On("tx-admin", nil)
	if err != nil || d.State != "Ongoing" || d.StartTimestamp <= 0 || !d.Topics.Lookup("admin-txn", 1) || d.Topics.Lookup("admin-txn", 0) {
		t.Fatalf("DescribeTransactions: %+v %v", d, err)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil || len(listed) != 1 || listed["tx-admin"].ProducerID != d.ProducerID {
		t.Fatalf("ListTransactions: %+v %v", listed, err)
	}
	producers, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"admin-txn": {1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	var found []kadm.DescribedProducer
	producers.EachProducer(func(dp kadm.DescribedProducer) { found = append(found, dp) })
	if len(found) != 1 || found[0].ProducerID != d.ProducerID || found[0].CurrentTxnStartOffset != 0 || found[0].LastSequence != 0 {
		t.Fatalf("DescribeProducers: %+v", found)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if described, err = adm.DescribeTransactions(ctx, "tx-admin"); err != nil {
		t.Fatal(err)
	}
	if d, _ = described.On("tx-admin", nil); d.State != "CompleteCommit" || len(d.Topics) != 0 {
		t.Fatalf("after the commit: %+v", d)
	}
	if _, err := described.On("tx-none", nil); err == nil {
		t.Fatal("an unknown id described")
	}
}

// TestInternalTopics: __consumer_offsets and __transaction_state are
// listed in Metadata as internal topics (kadm leaves them out of
// ListTopics, as Kafka's tools do, and lists them with internal ones),
// read as empty, and refuse produce, deletion and changes.
func TestInternalTopics(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, a.Addr)
	adm := kadm.NewClient(cl)
	var all kadm.TopicDetails
	harness.Eventually(t, 30*time.Second, func() bool {
		var err error
		all, err = adm.ListTopicsWithInternal(ctx)
		return err == nil && all.Has("__consumer_offsets") && all.Has("__transaction_state")
	}, "the internal topics to be listed")
	for _, name := range []string{"__consumer_offsets", "__transaction_state"} {
		if d := all[name]; !d.IsInternal || len(d.Partitions) != 1 {
			t.Fatalf("%s: internal %v, %d partitions", name, d.IsInternal, len(d.Partitions))
		}
	}
	if user, err := adm.ListTopics(ctx); err != nil || user.Has("__consumer_offsets") {
		t.Fatalf("ListTopics lists an internal topic: %v %v", user.Names(), err)
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "__consumer_offsets", Key: []byte("k"), Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("producing to __consumer_offsets: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
	del, err := adm.DeleteTopics(ctx, "__transaction_state")
	if err != nil || !errors.Is(del["__transaction_state"].Err, kerr.InvalidRequest) {
		t.Fatalf("deleting __transaction_state: %v %+v", err, del)
	}
	if lso, hw := lastStable(ctx, t, cl, "__consumer_offsets", 1); lso[0] != 0 || hw[0] != 0 {
		t.Fatalf("__consumer_offsets offsets: %v %v, want empty", lso, hw)
	}
}
