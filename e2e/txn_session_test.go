package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// A member of a consume-transform-produce job runs as a process of its
// own (this test binary, re-executed with txnMemberEnv set), so that the
// test can kill it as a machine dies: no leave, no abort, no heartbeat.
const txnMemberEnv = "BARGE_E2E_TXN_MEMBER"

// runTxnMember is a franz-go GroupTransactSession copying records from
// one topic to another, each poll's records in one transaction with its
// offsets, as Kafka Streams' exactly-once does. It prints "committed N"
// after each commit and runs until it is killed.
func runTxnMember() int {
	f := strings.Split(os.Getenv(txnMemberEnv), "|") // brokers, group, transactional id, input, output
	if len(f) != 5 {
		fmt.Fprintln(os.Stderr, "bad", txnMemberEnv)
		return 2
	}
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(strings.Split(f[0], ",")...), kgo.ConsumerGroup(f[1]), kgo.TransactionalID(f[2]), kgo.ConsumeTopics(f[3]), kgo.DefaultProduceTopic(f[4]),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.TransactionTimeout(5*time.Second), kgo.SessionTimeout(6*time.Second), kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	total := 0
	for {
		fs := sess.PollRecords(ctx, 1000) // many transactions, so that the kill lands in one
		fs.EachError(func(t string, p int32, err error) { fmt.Fprintf(os.Stderr, "fetch %s/%d: %v\n", t, p, err) })
		if err := sess.Begin(); err != nil {
			fmt.Fprintln(os.Stderr, "begin:", err)
			return 1
		}
		n := 0
		var produceErr error
		var mu sync.Mutex
		fs.EachRecord(func(r *kgo.Record) {
			n++
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					produceErr = err
					mu.Unlock()
				}
			})
		})
		committed, err := sess.End(ctx, kgo.TransactionEndTry(produceErr == nil))
		if err != nil {
			fmt.Fprintln(os.Stderr, "end:", err)
			continue
		}
		if committed {
			total += n
			fmt.Printf("committed %d\n", total)
		}
	}
}

// txnMember is a running member process.
type txnMember struct {
	cmd       *exec.Cmd
	committed chan int // each "committed N" it prints
}

func startTxnMember(t *testing.T, brokers, group, id, in, out string) *txnMember {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), txnMemberEnv+"="+strings.Join([]string{brokers, group, id, in, out}, "|"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(fmt.Sprintf("%s/%s.stderr", t.TempDir(), id))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &txnMember{cmd: cmd, committed: make(chan int, 1024)}
	go func() {
		defer close(m.committed) // it exited
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "committed ")); err == nil {
				select {
				case m.committed <- n:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(stderr.Name())
			t.Logf("member %s stderr (tail):\n%s", id, tail(string(b), 3000))
		}
	})
	return m
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestGroupTransactSessionExactlyOnce: three members of a franz-go
// GroupTransactSession job copy 200,000 records from one topic to another
// through two agents on MinIO; one member is killed mid-run (its open
// transaction is aborted at its timeout) and another joins. A
// read_committed consumer of the output sees every input record exactly
// once.
func TestGroupTransactSessionExactlyOnce(t *testing.T) {
	const records, partitions = 200_000, 6
	b := harness.MinIOBackend(t)
	args := []string{"--transaction-abort-interval=200ms", "--group-initial-rebalance-delay=0s"}
	a1 := startAgent(t, b, 20*time.Millisecond, args...)
	a2 := startAgent(t, b, 20*time.Millisecond, args...)
	createTopic(t, a1.Addr, "eos-in", partitions, nil)
	createTopic(t, a1.Addr, "eos-out", partitions, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	p := client(t, a1.Addr, kgo.ProducerLinger(5*time.Millisecond))
	for i := range records {
		p.Produce(ctx, &kgo.Record{Topic: "eos-in", Key: fmt.Appendf(nil, "%d", i%997), Value: fmt.Appendf(nil, "%d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("producing the input: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	brokers := a1.Addr + "," + a2.Addr
	members := []*txnMember{
		startTxnMember(t, brokers, "eos", "eos-0", "eos-in", "eos-out"),
		startTxnMember(t, brokers, "eos", "eos-1", "eos-in", "eos-out"),
		startTxnMember(t, brokers, "eos", "eos-2", "eos-in", "eos-out"),
	}
	// Kill one once it has committed some of its share, mid-stream.
	waitCommitted(ctx, t, members[1], records/20)
	if err := members[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	members = append(members, startTxnMember(t, brokers, "eos", "eos-3", "eos-in", "eos-out"))

	// Done when the group has committed every input offset.
	awaitGroupDone(ctx, t, a2.Addr, "eos", "eos-in", records)
	// A sentinel after the output in every partition: read_committed
	// reads up to it, so everything the job wrote is read.
	sentinel := client(t, a1.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range int32(partitions) {
		if err := sentinel.ProduceSync(ctx, &kgo.Record{Topic: "eos-out", Partition: i, Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	seen := make([]int, records)
	cons := client(t, a2.Addr, kgo.ConsumeTopics("eos-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got, ends := 0, 0
	for ends < partitions {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d copies of %d records and %d of %d sentinels: %v", got, records, ends, partitions, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "end" {
				ends++
				return
			}
			i, err := strconv.Atoi(string(r.Value))
			if err != nil || i < 0 || i >= records {
				t.Fatalf("a record %q that no input had", r.Value)
			}
			seen[i]++
			got++
		})
	}
	var missing, dup []int
	for i, n := range seen {
		switch {
		case n == 0:
			missing = append(missing, i)
		case n > 1:
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("output of %d records: %d inputs missing (first %v), %d duplicated (first %v)", got, len(missing), firstFew(missing), len(dup), firstFew(dup))
	}
}

func firstFew(v []int) []int { return v[:min(len(v), 5)] }

// waitCommitted waits until m has reported committing at least n records.
func waitCommitted(ctx context.Context, t *testing.T, m *txnMember, n int) {
	t.Helper()
	for {
		select {
		case got, ok := <-m.committed:
			if !ok {
				t.Fatalf("the member exited before committing %d records", n)
			}
			if got >= n {
				return
			}
		case <-ctx.Done():
			t.Fatalf("the member did not commit %d records: %v", n, ctx.Err())
		}
	}
}

// TestTransactionsSharedFleet: a GroupTransactSession job through HAProxy
// in front of three agents sharing its address: its TxnOffsetCommits are
// forwarded to the group's coordinator, its other transactional requests
// answered by whichever agent they reach; the output is exactly the input.
func TestTransactionsSharedFleet(t *testing.T) {
	const records = 20_000
	b := harness.MinIOBackend(t)
	_, lb := harness.SharedFleet(t, 3, b, harness.AgentConfig{FlushInterval: 10 * time.Millisecond,
		Args: []string{"--group-initial-rebalance-delay=0s", "--transaction-abort-interval=200ms"}})
	createTopic(t, lb.Addr(), "fleet-in", 4, nil)
	createTopic(t, lb.Addr(), "fleet-out", 4, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := client(t, lb.Addr(), kgo.ProducerLinger(5*time.Millisecond))
	for i := range records {
		p.Produce(ctx, &kgo.Record{Topic: "fleet-in", Value: fmt.Appendf(nil, "%d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("producing the input: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	startTxnMember(t, lb.Addr(), "fleet-eos", "fleet-0", "fleet-in", "fleet-out")
	startTxnMember(t, lb.Addr(), "fleet-eos", "fleet-1", "fleet-in", "fleet-out")
	awaitGroupDone(ctx, t, lb.Addr(), "fleet-eos", "fleet-in", records)
	seen := make([]int, records)
	for _, v := range consumeUntil(ctx, t, lb.Addr(), "fleet-out", make([]int64, 4)) {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 || i >= records {
			t.Fatalf("a record %q that no input had", v)
		}
		seen[i]++
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("input %d copied %d times", i, n)
		}
	}
}

// awaitGroupDone waits until group has committed offsets summing to n on
// topic: every input record's transaction committed.
func awaitGroupDone(ctx context.Context, t *testing.T, addr, group, topic string, n int) {
	t.Helper()
	adm := kadm.NewClient(client(t, addr))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		done := 0
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Err == nil && o.Topic == topic {
					done += int(o.At)
				}
			})
		}
		if done == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s committed %d of %d offsets: %v", group, done, n, err)
		case <-tick.C:
		}
	}
}
