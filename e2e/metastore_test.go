package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestMetaStore: --meta-store puts the metadata log in a second MinIO
// bucket while segments stay in --store. Records produced through one agent
// are read back after a restart; the data bucket holds segments and the
// cluster id that binds it, the metadata bucket the log. A data bucket
// already bound to another cluster, or one that holds a log of its own, is
// refused at start-up instead of being swept as orphans by an empty log.
func TestMetaStore(t *testing.T) {
	const topic = "split"
	data, metaB := harness.MinIOBackend(t), harness.MinIOBackend(t)
	start := func() *harness.Agent {
		return harness.StartAgent(t, harness.AgentConfig{Store: data.URL, Env: data.Env, FlushInterval: 20 * time.Millisecond,
			Args: []string{"--meta-store", metaB.URL}})
	}
	a := start()
	createTopic(t, a.Addr, topic, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
	for i := range 30 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Append(nil, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		b          harness.Backend
		prefix     string
		want, name string
	}{
		{data, "seg/", "some", "the data bucket's segments"},
		{data, "meta/log/", "none", "the data bucket's log"},
		{data, "meta/cluster-id", "some", "the data bucket's cluster id"},
		{metaB, "meta/log/", "some", "the metadata bucket's log"},
		{metaB, "seg/", "none", "the metadata bucket's segments"},
	} {
		if n := len(c.b.List(t, c.prefix)); (n > 0) != (c.want == "some") {
			t.Errorf("%s: %d objects under %s, want %s", c.name, n, c.prefix, c.want)
		}
	}

	// A restarted agent reads the log from the metadata bucket and the
	// records from the data bucket.
	b := start()
	ends := endOffsets(t, b.Addr, topic)
	var total int64
	for _, e := range ends {
		total += e
	}
	read := 0
	for _, rs := range consumeAll(t, b.Addr, topic, ends) {
		read += len(rs)
	}
	if total != 30 || read != 30 {
		t.Fatalf("after a restart: high watermarks sum to %d, %d records read; want 30", total, read)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	refused := func(why string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, harness.AgentBinary(t), append([]string{"--listen", "127.0.0.1:0", "--advertise", "127.0.0.1:1", "--http", ""}, args...)...)
		cmd.Env = append(cmd.Environ(), data.Env...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil || err == nil || !strings.Contains(string(out), why) {
			t.Fatalf("agent with %v: %v, %v; want it to stop saying %q\n%s", args, ctx.Err(), err, why, out)
		}
	}
	// Another metadata bucket for the same data: refused, by cluster id.
	other := harness.MinIOBackend(t)
	refused("not one cluster's buckets", "--store", data.URL, "--meta-store", other.URL)
	// A single-bucket cluster's bucket as someone else's data bucket:
	// refused, by its log.
	refused("holds a metadata log of its own", "--store", metaB.URL, "--meta-store", other.URL)
}
