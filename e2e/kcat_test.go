package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// kcat runs kcat with args and stdin, failing the test on a non-zero exit or
// when it has not finished within timeout. It returns stdout.
func kcat(t *testing.T, timeout time.Duration, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %q: %v (ctx: %v)\nstderr:\n%s", args, err, ctx.Err(), lastBytes(stderr.Bytes(), 4<<10))
	}
	return stdout.Bytes()
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestKcatRoundTrip: librdkafka (kcat) lists the agent as a broker, and an
// idempotent kcat producer's 100,000 keyed records with headers come back
// from a kcat consumer exactly once, in order, with every compression codec
// Kafka has. It runs on the embedded default store (file://./data in the
// agent's directory, what `barge agent` uses with no flags) and on MinIO.
func TestKcatRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not installed: `make test` installs it (apt-get install kcat)")
	}
	backends := []harness.Backend{{Name: "embedded"}, harness.MinIOBackend(t)}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)

			meta := string(kcat(t, 30*time.Second, nil, "-b", a.Addr, "-L"))
			if !strings.Contains(meta, "broker 0 at "+a.Addr) {
				t.Fatalf("kcat -L does not list broker 0 at %s:\n%s", a.Addr, meta)
			}

			const n = 100_000
			var in bytes.Buffer
			for i := range n {
				fmt.Fprintf(&in, "key%d:value-%d\n", i%100, i)
			}
			for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
				t.Run(codec, func(t *testing.T) {
					topic := "kcat-" + codec
					createTopic(t, a.Addr, topic, 4, nil)
					kcat(t, 2*time.Minute, in.Bytes(), "-b", a.Addr, "-P", "-t", topic, "-K:",
						"-H", "h1=v1", "-H", "h2=v2", "-z", codec, "-X", "enable.idempotence=true")
					out := kcat(t, 2*time.Minute, nil, "-b", a.Addr, "-C", "-t", topic, "-e", "-o", "beginning", "-q",
						"-f", "%p\t%o\t%k\t%s\t%h\n")
					checkKcatOutput(t, out, n)
					checkCodec(t, a.Addr, topic, codec)
				})
			}
		})
	}
}

// checkKcatOutput checks what `kcat -C -f '%p\t%o\t%k\t%s\t%h\n'` printed
// for the n records `key<i%100>:value-<i>` produced with headers h1=v1,h2=v2.
func checkKcatOutput(t *testing.T, out []byte, n int) {
	t.Helper()
	seen := make([]bool, n)
	nextOffset := map[int]int64{} // per partition
	lastI := map[string]int{}     // per key: the last i read
	keyPart := map[string]int{}   // per key: its partition
	count := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("line %d: %q: want 5 tab-separated fields", count+1, line)
		}
		p, err1 := strconv.Atoi(f[0])
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		i, err3 := strconv.Atoi(strings.TrimPrefix(f[3], "value-"))
		if err1 != nil || err2 != nil || err3 != nil || !strings.HasPrefix(f[3], "value-") || i < 0 || i >= n {
			t.Fatalf("line %d: %q: cannot parse", count+1, line)
		}
		if o != nextOffset[p] {
			t.Fatalf("partition %d: offset %d after %d records (line %q)", p, o, nextOffset[p], line)
		}
		nextOffset[p]++
		if want := fmt.Sprintf("key%d", i%100); f[2] != want {
			t.Fatalf("value-%d has key %q, want %q", i, f[2], want)
		}
		if seen[i] {
			t.Fatalf("value-%d read twice (partition %d offset %d)", i, p, o)
		}
		seen[i] = true
		k := f[2]
		if last, ok := lastI[k]; ok && i <= last {
			t.Fatalf("key %s: value-%d read after value-%d", k, i, last)
		}
		lastI[k] = i
		if kp, ok := keyPart[k]; ok && kp != p {
			t.Fatalf("key %s in partitions %d and %d", k, kp, p)
		}
		keyPart[k] = p
		if f[4] != "h1=v1,h2=v2" {
			t.Fatalf("value-%d: headers %q, want h1=v1,h2=v2", i, f[4])
		}
		count++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("read %d records, want %d (per partition: %v)", count, n, nextOffset)
	}
	if len(nextOffset) < 2 {
		t.Fatalf("all records in partitions %v: the keys were not spread", nextOffset)
	}
}

// checkCodec reads the first fetch of topic with franz-go and checks that
// its batches are stored with the codec kcat was told to use, so that the
// test really covers each codec: librdkafka silently sends uncompressed
// batches to a broker it thinks lacks the codec.
func checkCodec(t *testing.T, addr, topic, codec string) {
	t.Helper()
	want := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: no records fetched", topic)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		if fs.NumRecords() == 0 {
			continue
		}
		// librdkafka sends a batch uncompressed when compressing does not
		// make it smaller (a batch of one record, say), so most records,
		// not all, come in batches of the codec.
		with := 0
		fs.EachRecord(func(r *kgo.Record) {
			switch got := r.Attrs.CompressionType(); got {
			case want:
				with++
			case 0:
			default:
				t.Fatalf("%s/%d offset %d: stored with codec %d, want %d (kcat -z %s)", topic, r.Partition, r.Offset, got, want, codec)
			}
		})
		if with <= fs.NumRecords()/2 {
			t.Fatalf("%s: %d of %d records fetched are in batches of codec %d (kcat -z %s)", topic, with, fs.NumRecords(), want, codec)
		}
		return
	}
}
