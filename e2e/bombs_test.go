package e2e

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// TestDecompressionBombs: compressed batches of a few bytes whose headers
// claim 64 MiB, and batches whose records really inflate to 30 MiB, sent
// at once over many connections, cost the agent memory in proportion to
// what they really decompress to and within its decompression budget: the
// lies are CORRUPT_MESSAGE, the real ones are stored, the agent stays up
// and a bystander producer never notices. Decompression does not depend on
// the bucket, so the file backend suffices. The agent runs as in a
// container, with GOMEMLIMIT: its collector then keeps the heap under
// 512 MiB as long as what is live fits, which the budget sees to.
func TestDecompressionBombs(t *testing.T) {
	backend := harness.FileBackend(t)
	a := harness.StartAgent(t, harness.AgentConfig{Store: backend.URL, Env: append(backend.Env, "GOMEMLIMIT=512MiB")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bystander := startBystander(t, a.Addr)
	defer bystander.check(t)
	createTopic(t, a.Addr, "bombs", 1, nil)
	const conns, rounds = 32, 10
	clients := make([]*kgo.Client, conns)
	for i := range clients {
		clients[i] = client(t, a.Addr)
	}
	// each runs fn on every client at once, each on its own connection.
	each := func(fn func(cl *kgo.Client) []int16) [][]int16 {
		out := make([][]int16, conns)
		var wg sync.WaitGroup
		for i, cl := range clients {
			wg.Go(func() { out[i] = fn(cl) })
		}
		wg.Wait()
		return out
	}

	good := recordsBatch(t, []string{"x"}, nil, nil, time.Now().UnixMilli(), time.Now().UnixMilli())
	lies := map[string][]byte{
		"zstd frame content size": reframe(good, batch.Zstd, lyingZstdFrame()),
		"snappy decoded length":   reframe(good, batch.Snappy, lyingSnappyBlock(64<<20)),
		"xerial chunk":            reframe(good, batch.Snappy, xerialOf(lyingSnappyBlock(64<<20))),
	}
	before := scrape(t, a.HTTPAddr)["go_memstats_alloc_bytes_total"]
	codes := each(func(cl *kgo.Client) []int16 {
		var codes []int16
		for range rounds {
			for _, b := range lies {
				codes = append(codes, produceCode(ctx, cl, "bombs", b))
			}
		}
		return codes
	})
	allocated := scrape(t, a.HTTPAddr)["go_memstats_alloc_bytes_total"] - before
	for i, cs := range codes {
		for _, code := range cs {
			if code != kerr.CorruptMessage.Code {
				t.Fatalf("connection %d: a lying batch got %v, want CORRUPT_MESSAGE", i, kerr.ErrorForCode(code))
			}
		}
	}
	// They claim 60 GiB between them. What the agent allocates meanwhile
	// is its ordinary work (the requests, the bystander's produces and
	// flushes), tens of MiB; 1 GiB leaves room for a busy machine.
	claimed := float64(conns * rounds * len(lies) * 64 << 20)
	t.Logf("refusing %d lying batches claiming %.0f MiB, the agent allocated %.0f MiB", conns*rounds*len(lies), claimed/(1<<20), allocated/(1<<20))
	if allocated > 1<<30 {
		t.Errorf("the agent allocated %.0f MiB while refusing %d lying batches that claim %.0f MiB", allocated/(1<<20), conns*rounds*len(lies), claimed/(1<<20))
	}

	// Real ones: a record of 30 MiB of zeros in a zstd batch (a few KiB)
	// and in a gzip batch (30 KiB) from every connection at once, 1.9 GiB
	// to decompress, no more than the 256 MiB budget of it at a time.
	now := time.Now().UnixMilli()
	genuine := map[string][]byte{}
	for _, c := range []batch.Codec{batch.Zstd, batch.Gzip} {
		b, err := batch.Build(batch.Header{FirstTimestamp: now, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
			c, []batch.Record{{Key: []byte("k"), Value: make([]byte, 30<<20)}})
		if err != nil {
			t.Fatal(err)
		}
		genuine[c.String()] = b
	}
	codes = each(func(cl *kgo.Client) []int16 {
		var codes []int16
		for _, b := range genuine {
			codes = append(codes, produceCode(ctx, cl, "bombs", b))
		}
		return codes
	})
	for i, cs := range codes {
		for _, code := range cs {
			if code != 0 {
				t.Fatalf("connection %d: a batch of 30 MiB of zeros got %v, want success", i, kerr.ErrorForCode(code))
			}
		}
	}
	if ends := endOffsets(t, a.Addr, "bombs"); ends[0] != conns*int64(len(genuine)) {
		t.Errorf("high watermark %d, want %d: every real batch and no lying one", ends[0], conns*len(genuine))
	}
	if !a.Running() || !a.Ready() {
		t.Fatalf("the agent is down after the bombs")
	}
	// Its resident memory stayed near GOMEMLIMIT, not at the 1.9 GiB the
	// real batches would hold were they all decompressed at once.
	peak, err := harness.PeakRSS(a.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the agent's resident memory peaked at %d MiB", peak>>20)
	if peak > 768<<20 {
		t.Errorf("the agent's resident memory peaked at %d MiB", peak>>20)
	}
}

// produceCode is produceRaw for any goroutine: a failed request is
// reported as its error's code rather than by t.Fatal.
func produceCode(ctx context.Context, cl *kgo.Client, topic string, records []byte) int16 {
	resp, err := produceRequest(topic, records).RequestWith(ctx, cl)
	if err != nil {
		return kerr.UnknownServerError.Code
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// lyingZstdFrame is 16 bytes of zstd whose header declares 64 MiB of
// content around one raw block of 4 bytes.
func lyingZstdFrame() []byte {
	f := binary.LittleEndian.AppendUint32([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0}, 64<<20)
	return append(f, 4<<3|1, 0, 0, 'b', 'o', 'm', 'b')
}

// lyingSnappyBlock is a raw snappy block whose preamble declares n bytes
// around one literal of 4.
func lyingSnappyBlock(n int) []byte {
	return append(binary.AppendUvarint(nil, uint64(n)), 3<<2, 'b', 'o', 'm', 'b')
}

// xerialOf frames snappy blocks as the Java producer's SnappyOutputStream.
func xerialOf(blocks ...[]byte) []byte {
	b := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}
	for _, block := range blocks {
		b = binary.BigEndian.AppendUint32(b, uint32(len(block)))
		b = append(b, block...)
	}
	return b
}
