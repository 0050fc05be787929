package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// The offsets a committed transaction of 10, an aborted one of 5 and a
// plain record take, as in Kafka: 0-9, the commit marker at 10, 11-15,
// the abort marker at 16, the plain record at 17.
const (
	txnCommittedOffsets   = "0 1 2 3 4 5 6 7 8 9 17"
	txnUncommittedOffsets = "0 1 2 3 4 5 6 7 8 9 11 12 13 14 15 17"
)

// checkKcatTxnOffsets reads topic with kcat under both isolation levels
// and checks the offsets it prints: the markers' offsets are skipped.
func checkKcatTxnOffsets(t *testing.T, addr, topic string) {
	t.Helper()
	for iso, want := range map[string]string{"read_committed": txnCommittedOffsets, "read_uncommitted": txnUncommittedOffsets} {
		out := kcat(t, time.Minute, nil, "-b", addr, "-C", "-t", topic, "-e", "-o", "beginning", "-q", "-X", "isolation.level="+iso, "-f", "%o\n")
		if got := strings.Join(lines(out), " "); got != want {
			t.Fatalf("kcat with %s printed offsets %q, want %q", iso, got, want)
		}
	}
}

// TestLibrdkafkaTransactions (issue 15, acceptance 2): librdkafka's
// transactional producer (confluent-kafka-python from Debian) commits one
// transaction and aborts another; its read_committed consumer sees only
// the committed records, read_uncommitted both; kcat shows the offsets the
// control records took.
func TestLibrdkafkaTransactions(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 10*time.Millisecond)
	createTopic(t, a.Addr, "py-txn", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := lines(runClient(t, exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "confluent_txn.py"), a.Addr, "py-txn", "py-tx"), nil))
	var committed, uncommitted []string
	for _, l := range out {
		if v, ok := strings.CutPrefix(l, "committed "); ok {
			committed = append(committed, v)
		} else if v, ok := strings.CutPrefix(l, "uncommitted "); ok {
			uncommitted = append(uncommitted, v)
		}
	}
	if got := strings.Join(committed, " "); got != "c-0 c-1 c-2 c-3 c-4 c-5 c-6 c-7 c-8 c-9 end" {
		t.Fatalf("read_committed saw %q", got)
	}
	if got := strings.Join(uncommitted, " "); got != "c-0 c-1 c-2 c-3 c-4 c-5 c-6 c-7 c-8 c-9 a-0 a-1 a-2 a-3 a-4 end" {
		t.Fatalf("read_uncommitted saw %q", got)
	}
	checkKcatTxnOffsets(t, a.Addr, "py-txn")
}

// TestKafkaJSTransactions (issue 15, acceptance 2): kafkajs commits one
// transaction and aborts another, then commits one with a group's offsets
// (sendOffsets); read_committed readers see only the committed records,
// read_uncommitted ones both, and the group's offset is the transaction's.
func TestKafkaJSTransactions(t *testing.T) {
	modules := filepath.Join(harness.RepoRoot(), ".tools", "node", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed in %s: run make test (make deps installs it)", modules)
	}
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 10*time.Millisecond)
	createTopic(t, a.Addr, "js-txn", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "kafkajs_txn.js"), a.Addr, "js-txn", "js-tx", "js-group")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	if out := strings.TrimSpace(string(runClient(t, cmd, nil))); out != "ok" {
		t.Fatalf("kafkajs printed %q", out)
	}
	hw := awaitStable(ctx, t, client(t, a.Addr), "js-txn", 1)
	if hw[0] != 20 { // ... then the offsets transaction's record at 18 and its marker at 19
		t.Fatalf("high watermark %d, want 20", hw[0])
	}
	committed := consumeIso(ctx, t, a.Addr, "js-txn", kgo.ReadCommitted(), 12)
	if got := strings.Join(committed, " "); got != "c-0 c-1 c-2 c-3 c-4 c-5 c-6 c-7 c-8 c-9 end offsets-txn" {
		t.Fatalf("read_committed saw %q", got)
	}
	all := consumeIso(ctx, t, a.Addr, "js-txn", kgo.ReadUncommitted(), 17)
	if len(all) != 17 || all[10] != "a-0" {
		t.Fatalf("read_uncommitted saw %q", all)
	}
	offs, err := kadm.NewClient(client(t, a.Addr)).FetchOffsets(ctx, "js-group")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("js-txn", 0); !ok || o.At != 5 {
		t.Fatalf("the group's offset after the transaction committed: %+v %v, want 5", o, ok)
	}
}
