package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/bargehq/barge/internal/harness"
)

// TestOtherGoClients: sarama and kafka-go, with their own defaults apart
// from what a round trip needs, produce and read back keyed records.
func TestOtherGoClients(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	const n = 2000 // kafka-go batches; sarama's sync producer sends one at a time, so it sends n/5

	t.Run("sarama", func(t *testing.T) {
		createTopic(t, a.Addr, "sarama", 3, nil)
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V3_6_0_0
		cfg.Producer.Return.Successes = true
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Idempotent = true
		cfg.Producer.Compression = sarama.CompressionZSTD
		cfg.Net.MaxOpenRequests = 1
		prod, err := sarama.NewSyncProducer([]string{a.Addr}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		want := map[string]string{}
		for i := 0; i < n/5; i++ {
			k, v := fmt.Sprint("k", i%10), fmt.Sprint("v", i)
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama", Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			want[v] = k
		}
		cons, err := sarama.NewConsumer([]string{a.Addr}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		got := 0
		for p := int32(0); p < 3; p++ {
			pc, err := cons.ConsumePartition("sarama", p, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			hwm := pc.HighWaterMarkOffset()
			for next := int64(0); next < hwm; next++ {
				select {
				case m := <-pc.Messages():
					if m.Offset != next || want[string(m.Value)] != string(m.Key) {
						t.Fatalf("partition %d: offset %d %s=%s, want offset %d", p, m.Offset, m.Key, m.Value, next)
					}
					got++
				case err := <-pc.Errors():
					t.Fatal(err)
				case <-time.After(time.Minute):
					t.Fatalf("partition %d: stuck at %d of %d", p, next, hwm)
				}
			}
			pc.Close()
		}
		if got != n/5 {
			t.Fatalf("read %d of %d", got, n/5)
		}
	})

	t.Run("kafka-go", func(t *testing.T) {
		createTopic(t, a.Addr, "kafkago", 1, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		w := &kafkago.Writer{Addr: kafkago.TCP(a.Addr), Topic: "kafkago", RequiredAcks: kafkago.RequireAll, Compression: kafkago.Snappy, BatchTimeout: 5 * time.Millisecond}
		defer w.Close()
		msgs := make([]kafkago.Message, n)
		for i := range msgs {
			msgs[i] = kafkago.Message{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i)),
				Headers: []kafkago.Header{{Key: "h", Value: []byte("x")}}}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{a.Addr}, Topic: "kafkago", Partition: 0, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		for i := 0; i < n; i++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			if m.Offset != int64(i) || string(m.Value) != fmt.Sprint("v", i) || len(m.Headers) != 1 {
				t.Fatalf("message %d: offset %d value %s headers %v", i, m.Offset, m.Value, m.Headers)
			}
		}
	})
}

// TestKafkaJS: kafkajs (from npm, installed by `make deps`) produces
// idempotently with gzip; its admin client reads the high watermarks and
// franz-go reads every record back.
func TestKafkaJS(t *testing.T) {
	modules := filepath.Join(harness.RepoRoot(), ".tools", "node", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed in %s: run make test (make deps installs it)", modules)
	}
	a := startAgent(t, harness.FileBackend(t), 0)
	createTopic(t, a.Addr, "js", 2, nil)
	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "kafkajs_produce.js"), a.Addr, "js", fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kafkajs: %v\n%s%s", err, out, stderr)
	}
	var offsets []struct {
		Partition int    `json:"partition"`
		High      string `json:"high"`
	}
	if err := json.Unmarshal(out, &offsets); err != nil {
		t.Fatalf("kafkajs output %q: %v", out, err)
	}
	ends := map[int32]int64{}
	total := int64(0)
	for _, o := range offsets {
		h, _ := strconv.ParseInt(o.High, 10, 64)
		ends[int32(o.Partition)] = h
		total += h
	}
	if total != n || len(ends) != 2 {
		t.Fatalf("kafkajs sees high watermarks %v, want %d records over 2 partitions", offsets, n)
	}
	seen := map[string]bool{}
	for p, recs := range consumeAll(t, a.Addr, "js", ends) {
		for _, r := range recs {
			if len(r.Headers) != 1 || string(r.Headers[0].Value) != "kafkajs" || seen[string(r.Value)] {
				t.Fatalf("partition %d offset %d: %s headers %v", p, r.Offset, r.Value, r.Headers)
			}
			seen[string(r.Value)] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("read %d distinct records of %d", len(seen), n)
	}
}
