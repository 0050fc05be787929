package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

// oldBuild is the agent built to act as the build before Format2: it
// understands, announces and writes the Format1 log only.
const oldBuild = "-X github.com/bargehq/barge/pkg/meta.maxFormatOverride=1"

// TestVersionSkew: a rolling upgrade of a fleet whose new build brings a
// new cluster format. While an agent of the old build is a member the
// cluster stays at the old format and both builds serve the same data;
// once the old agent has left (a clean shutdown says so) the new one
// raises the format; the old build started
// again stops at the first entry it cannot read — not ready, not serving
// Kafka, saying which format it needs — and, upgraded, resumes by itself
// with the same offsets as the others.
func TestVersionSkew(t *testing.T) {
	b := harness.MinIOBackend(t)
	oldBin, newBin := harness.AgentBinaryWith(t, oldBuild), harness.AgentBinary(t)
	start := func(bin string, unready bool) *harness.Agent {
		return harness.StartAgent(t, harness.AgentConfig{Store: b.URL, Env: b.Env, FlushInterval: 5 * time.Millisecond,
			Binary: bin, Unready: unready})
	}
	old := start(oldBin, false)
	newer := start(newBin, false)
	createTopic(t, newer.Addr, "skew", 2, nil)
	produce := func(addr string, from, n int) {
		t.Helper()
		cl := client(t, addr, kgo.DefaultProduceTopic("skew"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := from; i < from+n; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
				t.Fatalf("produce through %s: %v", addr, err)
			}
		}
	}
	produce(old.Addr, 0, 20)
	produce(newer.Addr, 20, 20)
	if f := scrape(t, newer.HTTPAddr)["barge_meta_format"]; f != 1 {
		t.Fatalf("cluster format %v with an old agent live, want 1", f)
	}
	ends := endOffsets(t, newer.Addr, "skew")
	for _, a := range []*harness.Agent{old, newer} {
		sameEnds(t, a, ends)
		checkValues(t, consumeAll(t, a.Addr, "skew", ends), 40)
	}

	// The old agent leaves; the format moves.
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, func() bool { return scrape(t, newer.HTTPAddr)["barge_meta_format"] == float64(meta.MaxFormat) },
		"the cluster format did not move to %d after the old agent left", meta.MaxFormat)
	produce(newer.Addr, 40, 20)
	ends = endOffsets(t, newer.Addr, "skew")

	// The old build comes back: it must not apply what it cannot read.
	old.RestartAs(t, oldBin, true)
	harness.Eventually(t, time.Minute, func() bool {
		return strings.Contains(old.Log(), fmt.Sprintf("needs cluster format %d", meta.MaxFormat))
	},
		"the old build did not say which format it needs; log:\n%s", old.Log())
	if old.Ready() {
		t.Fatal("the old build is ready on a log it cannot read")
	}
	if c, err := net.DialTimeout("tcp", old.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the old build serves Kafka on a log it cannot read")
	}
	if m := scrape(t, old.HTTPAddr); m["barge_meta_stalled"] != 1 || m["barge_meta_max_format"] != 1 {
		t.Fatalf("stalled %v, max format %v; want 1 and 1", m["barge_meta_stalled"], m["barge_meta_max_format"])
	}

	// Upgraded in place, it resumes with nothing to repair.
	old.RestartAs(t, newBin, false)
	sameEnds(t, old, ends)
	checkValues(t, consumeAll(t, old.Addr, "skew", ends), 60)
	produce(old.Addr, 60, 10)
	ends = endOffsets(t, old.Addr, "skew")
	checkValues(t, consumeAll(t, newer.Addr, "skew", ends), 70)
}

// sameEnds waits until agent a's view of topic skew's end offsets is
// ends (another agent's), which its next poll of the log brings.
func sameEnds(t *testing.T, a *harness.Agent, ends map[int32]int64) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, func() bool { return fmt.Sprint(endOffsetsSeen(t, a.Addr, "skew")) == fmt.Sprint(ends) },
		"%s: end offsets %v, another agent's %v", a, endOffsetsSeen(t, a.Addr, "skew"), ends)
}

// checkValues checks that the records are k<i>/v<i> for i in [0, n), each
// once.
func checkValues(t *testing.T, parts map[int32][]*kgo.Record, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, recs := range parts {
		for _, r := range recs {
			k, v := string(r.Key), string(r.Value)
			if "v"+strings.TrimPrefix(k, "k") != v || seen[k] {
				t.Fatalf("record %s=%s at %d/%d: wrong or repeated", k, v, r.Partition, r.Offset)
			}
			seen[k] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("read %d distinct records, want %d", len(seen), n)
	}
}

// TestOldAgentStallsWhileServing: an agent of the old build that was
// silent (paused) for longer than --cluster-format-grace when the others
// raised the format resumes, meets the first entry it cannot read, and
// stops serving at once: its clients' connections close, new ones are
// refused, it is not ready. (An agent built before formats existed could
// not stall, which is why the grace defaults to an hour.)
func TestOldAgentStallsWhileServing(t *testing.T) {
	b := harness.MinIOBackend(t)
	old := harness.StartAgent(t, harness.AgentConfig{Store: b.URL, Env: b.Env, FlushInterval: 5 * time.Millisecond,
		Binary: harness.AgentBinaryWith(t, oldBuild)})
	newer := startAgent(t, b, 5*time.Millisecond, "--cluster-format-grace=5s")
	createTopic(t, old.Addr, "stall", 1, nil)
	if !dialRaw(t, old.Addr).served(t) {
		t.Fatal("the old agent does not answer before the format moves")
	}
	conn := dialRaw(t, old.Addr) // a client connected before the stall

	if err := syscall.Kill(old.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, func() bool {
		return scrape(t, newer.HTTPAddr)["barge_meta_format"] == float64(meta.MaxFormat)
	}, "the format did not move while the old agent was paused")
	if err := syscall.Kill(old.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, func() bool { return scrape(t, old.HTTPAddr)["barge_meta_stalled"] == 1 },
		"the old agent did not stall on the new format")
	if old.Ready() {
		t.Fatal("a stalled agent is ready")
	}
	// Its client's next request closes the connection; new ones are
	// closed at once.
	conn.SetDeadline(time.Now().Add(time.Minute))
	if conn.served(t) {
		t.Fatal("the stalled agent answered a request")
	}
	if c, err := net.DialTimeout("tcp", old.Addr, 10*time.Second); err == nil {
		c.Close()
		again := dialRaw(t, old.Addr)
		if again.served(t) {
			t.Fatal("the stalled agent served a new connection")
		}
	}
	// The newer agent serves on.
	if ends := endOffsetsSeen(t, newer.Addr, "stall"); len(ends) != 1 {
		t.Fatalf("the newer agent's view of the topic: %v", ends)
	}
}
