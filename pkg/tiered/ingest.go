package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("tiered: ingest closed")

// ErrStorage wraps a segment that could not be written or committed; the
// producer is told to retry and nothing was acknowledged.
var ErrStorage = errors.New("tiered: segment not stored")

// TopicPartition names a partition by topic id.
type TopicPartition struct {
	Topic     meta.TopicID
	Partition int32
}

// Batch is one validated record batch as the producer sent it.
type Batch struct {
	Data   []byte
	Header batch.Header
}

// IngestConfig tunes the shared ingest buffer.
type IngestConfig struct {
	FlushInterval time.Duration // seal this long after the first append
	FlushBytes    int64         // or once this many bytes are buffered
	MaxInflight   int           // sealed segments uploading at once
	PutAttempts   int           // tries per segment PUT before failing it
	// WriteTimeout bounds a segment from its seal to its commit landing
	// (the agent's --write-timeout): past it the upload or the commit is
	// given up and its producers get a retriable error, so that no commit
	// lands later than --orphan-grace after its object was written.
	WriteTimeout time.Duration
	WriterID     string // names this agent's objects
	Logger       *slog.Logger
}

// The open segment is sealed before its flush interval is up, once it
// holds earlySealShare of FlushBytes, when producers have stopped sending:
//   - at once when every producer with a request waiting has as many
//     waiting as it keeps in flight (Ingest.Hold): nothing more can arrive
//     until a segment is answered;
//   - else after FlushInterval/quietShare without a request held on it: a
//     client's window is not always the most it has had in flight (a
//     client waits for a partition's batch to fill or linger, and has
//     other work), so the window rule alone leaves some segments to the
//     timer while every producer waits for answers.
//
// Holding the segment open then only adds latency. Below the floor it is
// held anyway: a small object's PUT is what the flush interval is set to
// save, and its records wait one flush, as at any load below the size.
const (
	earlySealShare = 4 // seal early only from FlushBytes/earlySealShare
	quietShare     = 8 // after FlushInterval/quietShare without a request
)

// Ingest is the one buffer every connection and partition appends to.
//
// Lifecycle of a segment: open (accepting appends) → sealed (by time, by
// size, or early once producers stop sending: Hold) → uploaded (one PUT,
// concurrently with others) → committed (one metadata-log entry, in seal
// order) → answered. Memory is bounded: when
// MaxInflight sealed segments are still in the pipeline, sealing blocks and
// with it every Append (back-pressure on producers).
type Ingest struct {
	cfg     IngestConfig
	store   objstore.Store
	log     *meta.Log
	cache   *cache.Cache
	metrics ingestMetrics
	objects atomic.Uint64

	mu     sync.Mutex
	cur    *segment
	closed bool
	// waiting is how many producers have a request held (Hold) whose
	// segment is not yet answered, and full how many of those have as many
	// held as they keep in flight. Guarded by pmu, with every Producer and
	// segment.holders: the pipeline releases producers without mu, which a
	// seal holds while the pipeline is full.
	pmu           sync.Mutex
	waiting, full int

	sealed    chan *segment      // in seal order, awaiting upload then commit
	finishing chan pendingCommit // submitted to the log, awaiting the result
	done      sync.WaitGroup
}

type segment struct {
	parts    []*segPart
	index    map[TopicPartition]int
	size     int64
	timer    *time.Timer
	quiet    *time.Timer // armed once the segment is past the early-seal floor
	lastHold time.Time   // of the latest request held on the segment
	sealAt   time.Time
	deadline time.Time // sealAt + WriteTimeout
	since    uint64    // the log slot applied at the seal, before the upload began
	key      string
	obj      []byte
	commit   meta.Commit
	appendMs int64 // LogAppendTime stamped into batches of such topics

	// holders are the producers with a request answered with this
	// segment (Hold), once per request.
	holders []*Producer

	uploadedAt, doneAt time.Time // for Ticket.Stages

	uploaded chan struct{}
	done     chan struct{}
	err      error
	results  [][]meta.BatchResult
}

// Producer is one connection's produce requests as Ingest sees them, to
// tell when a client can send nothing more before the open segment is
// answered. The zero value is ready; guarded by Ingest.pmu.
type Producer struct {
	pending int // requests held and not yet answered
	most    int // the most ever pending at once: what the client keeps in flight
}

type segPart struct {
	tp            TopicPartition
	batches       []Batch
	logAppendTime bool
}

type pendingCommit struct {
	seg *segment
	p   *meta.Pending
}

// sealReason says why a segment was sealed (barge_segment_seals_total).
type sealReason int

const (
	sealTime    sealReason = iota // its flush interval was up
	sealSize                      // it reached FlushBytes
	sealWaiting                   // every waiting producer waited on it (Hold)
	sealQuiet                     // no request was held on it for a while
	sealClose                     // the ingest closed
	sealReasons
)

var sealReasonNames = [sealReasons]string{"time", "size", "waiting", "quiet", "close"}

type ingestMetrics struct {
	seals         [sealReasons]prometheus.Counter
	flushBytes    prometheus.Histogram
	flushSeconds  prometheus.Histogram
	flushBatches  prometheus.Histogram
	flushFailures prometheus.Counter
}

// NewIngest starts the pipeline; Close stops it.
func NewIngest(cfg IngestConfig, store objstore.Store, log *meta.Log, c *cache.Cache, reg prometheus.Registerer) *Ingest {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 250 * time.Millisecond
	}
	if cfg.FlushBytes <= 0 {
		cfg.FlushBytes = 8 << 20
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 4
	}
	if cfg.PutAttempts <= 0 {
		cfg.PutAttempts = 5
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Ingest{
		cfg: cfg, store: store, log: log, cache: c,
		sealed:    make(chan *segment, cfg.MaxInflight),
		finishing: make(chan pendingCommit, cfg.MaxInflight),
		metrics: ingestMetrics{
			flushBytes: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "barge_flush_bytes",
				Help: "Size of each segment object written.", Buckets: prometheus.ExponentialBuckets(1024, 4, 10)}),
			flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "barge_flush_seconds",
				Help: "Time from sealing a segment to its commit.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
			flushBatches: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "barge_flush_batches",
				Help: "Record batches per segment object.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
			flushFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_flush_failures_total",
				Help: "Segments whose upload or commit failed; their producers got a retriable error."}),
		},
	}
	sealsVec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "barge_segment_seals_total",
		Help: "Segments sealed, by reason: time (the flush interval was up), size (it reached the flush size), waiting (every producer with a request waiting had all the requests it keeps in flight waiting), quiet (no request for an eighth of the flush interval) or close."},
		[]string{"reason"})
	for r, name := range sealReasonNames {
		in.metrics.seals[r] = sealsVec.WithLabelValues(name)
	}
	if reg != nil {
		reg.MustRegister(sealsVec, in.metrics.flushBytes, in.metrics.flushSeconds, in.metrics.flushBatches, in.metrics.flushFailures)
	}
	in.done.Add(2)
	go in.commitLoop()
	go in.finishLoop()
	return in
}

// Ticket is the handle of one Append.
type Ticket struct {
	seg         *segment
	part, first int
	n           int
	appendedAt  time.Time
}

// Result is what a producer is told about one partition of its request.
type Result struct {
	BaseOffset    int64
	LogAppendTime int64 // -1 unless the topic uses LogAppendTime
	Err           error // a meta error, ErrStorage or a context error
}

// Append adds one partition's batches to the open segment. It blocks only
// for back-pressure. Batches of one partition keep the order of Append calls.
func (in *Ingest) Append(tp TopicPartition, batches []Batch, logAppendTime bool) (*Ticket, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, ErrClosed
	}
	seg := in.cur
	if seg == nil {
		seg = &segment{index: map[TopicPartition]int{}, uploaded: make(chan struct{}), done: make(chan struct{})}
		seg.timer = time.AfterFunc(in.cfg.FlushInterval, func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			if in.cur == seg {
				in.sealLocked(sealTime)
			}
		})
		in.cur = seg
	}
	i, ok := seg.index[tp]
	if !ok {
		i = len(seg.parts)
		seg.index[tp] = i
		seg.parts = append(seg.parts, &segPart{tp: tp, logAppendTime: logAppendTime})
	}
	p := seg.parts[i]
	t := &Ticket{seg: seg, part: i, first: len(p.batches), n: len(batches), appendedAt: time.Now()}
	p.batches = append(p.batches, batches...)
	for _, b := range batches {
		seg.size += int64(len(b.Data))
	}
	if seg.size >= in.cfg.FlushBytes {
		in.sealLocked(sealSize)
	}
	return t, nil
}

// Hold tells the ingest that a request of producer p will be answered when
// last (its request's last Append) is: the producer waits on that segment.
// Requests that are not answered (acks=0) are not held. The open segment
// is sealed early by the rules at earlySealShare: when every waiting
// producer has as many requests waiting as it has ever had in flight, on
// this segment or earlier ones (no record can arrive before a segment is
// answered, and sealing now puts this one's PUT beside the earlier ones'
// instead of after their commits), or once no request has been held on it
// for FlushInterval/quietShare.
func (in *Ingest) Hold(p *Producer, last *Ticket) {
	in.mu.Lock()
	defer in.mu.Unlock()
	seg := last.seg
	if in.holdLocked(p, seg) {
		in.sealLocked(sealWaiting)
		return
	}
	if seg != in.cur || seg.size < in.cfg.FlushBytes/earlySealShare {
		return
	}
	seg.lastHold = time.Now()
	if seg.quiet == nil {
		quiet := in.cfg.FlushInterval / quietShare
		var check func()
		check = func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			if in.cur != seg {
				return
			}
			if idle := time.Since(seg.lastHold); idle < quiet {
				seg.quiet = time.AfterFunc(quiet-idle, check)
				return
			}
			in.sealLocked(sealQuiet)
		}
		seg.quiet = time.AfterFunc(quiet, check)
	}
}

// holdLocked does Hold's accounting and reports whether to seal.
func (in *Ingest) holdLocked(p *Producer, seg *segment) bool {
	in.pmu.Lock()
	defer in.pmu.Unlock()
	seg.holders = append(seg.holders, p)
	if p.pending == 0 {
		in.waiting++
	}
	if p.pending == p.most && p.pending > 0 {
		in.full-- // counted again below, at its new most
	}
	p.pending++
	p.most = max(p.most, p.pending)
	if p.pending == p.most {
		in.full++
	}
	return seg == in.cur && in.full == in.waiting && seg.size >= in.cfg.FlushBytes/earlySealShare
}

// release lets the producers of an answered segment's requests go.
func (in *Ingest) release(seg *segment) {
	in.pmu.Lock()
	defer in.pmu.Unlock()
	for _, p := range seg.holders {
		if p.pending == p.most {
			in.full--
		}
		if p.pending--; p.pending == 0 {
			in.waiting--
		}
	}
	seg.holders = nil
}

// sealLocked hands the open segment to the pipeline. Sending may block when
// the pipeline is full; holding mu meanwhile is the back-pressure.
func (in *Ingest) sealLocked(why sealReason) {
	in.metrics.seals[why].Inc()
	seg := in.cur
	in.cur = nil
	seg.timer.Stop()
	if seg.quiet != nil {
		seg.quiet.Stop()
	}
	seg.sealAt = time.Now()
	seg.deadline = seg.sealAt.Add(in.cfg.WriteTimeout)
	seg.since = in.log.Seq()
	in.sealed <- seg
	go in.upload(seg)
}

// Close seals what is buffered, waits until it is committed and answered,
// and stops the pipeline.
func (in *Ingest) Close() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	if in.cur != nil {
		in.sealLocked(sealClose)
	}
	in.closed = true
	close(in.sealed)
	in.mu.Unlock()
	in.done.Wait()
}

// Wait returns the outcome of the appended batches once their segment is
// committed (or failed).
func (t *Ticket) Wait(ctx context.Context) Result {
	select {
	case <-t.seg.done:
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
	if t.seg.err != nil {
		return Result{Err: t.seg.err}
	}
	res := Result{LogAppendTime: -1}
	if t.seg.parts[t.part].logAppendTime {
		res.LogAppendTime = t.seg.appendMs
	}
	for i, br := range t.seg.results[t.part][t.first : t.first+t.n] {
		if i == 0 {
			res.BaseOffset = br.BaseOffset
		}
		if br.Err != nil && res.Err == nil {
			res.Err = br.Err
		}
	}
	return res
}

// Stages says where an answered ticket's time went: from its Append to its
// segment's seal, from the seal to the object being in the bucket, and from
// there to the commit being applied. Valid once Wait has returned without a
// context error.
func (t *Ticket) Stages() (sealWait, put, commit time.Duration) {
	s := t.seg
	return s.sealAt.Sub(t.appendedAt), s.uploadedAt.Sub(s.sealAt), s.doneAt.Sub(s.uploadedAt)
}

// AppendedAt is when the Append returned the ticket.
func (t *Ticket) AppendedAt() time.Time { return t.appendedAt }

// upload lays the segment out (the one copy of batch bytes between the
// socket and the bucket) and PUTs it.
func (in *Ingest) upload(seg *segment) {
	defer func() {
		seg.uploadedAt = time.Now()
		close(seg.uploaded)
	}()
	nb := 0
	for _, p := range seg.parts {
		nb += len(p.batches)
	}
	seg.appendMs = time.Now().UnixMilli()
	// The object is joined from its pieces (joinSegment): zeroing 8 MiB
	// and then overwriting it cost a tenth of the agent's CPU while
	// producing.
	header := make([]byte, segHeaderSize)
	copy(header, segMagic)
	header[4] = segVersion
	pieces := make([][]byte, 0, nb+2)
	pieces = append(pieces, header)
	pos := int64(segHeaderSize)
	footer := make([]SegmentPart, len(seg.parts))
	seg.commit.Parts = make([]meta.CommitPart, len(seg.parts))
	for i, p := range seg.parts {
		start := pos
		cbs := make([]meta.CommitBatch, len(p.batches))
		for j := range p.batches {
			b := &p.batches[j]
			pieces = append(pieces, b.Data)
			maxTs := b.Header.MaxTimestamp
			if p.logAppendTime {
				maxTs = seg.appendMs
			}
			cbs[j] = meta.CommitBatch{Pos: pos, Len: int64(len(b.Data)), Records: b.Header.LastOffsetDelta + 1,
				MaxTimestamp: maxTs, ProducerID: b.Header.ProducerID, ProducerEpoch: b.Header.ProducerEpoch,
				BaseSequence: b.Header.BaseSequence, Transactional: b.Header.IsTransactional()}
			pos += int64(len(b.Data))
		}
		footer[i] = SegmentPart{Topic: p.tp.Topic, Partition: p.tp.Partition, Pos: start, Len: pos - start, Batches: len(p.batches)}
		seg.commit.Parts[i] = meta.CommitPart{Topic: p.tp.Topic, Partition: p.tp.Partition, Batches: cbs}
	}
	pieces = append(pieces, appendFooter(nil, footer))
	obj := joinSegment(pieces, func(obj []byte) {
		for i, p := range seg.parts {
			for j := range p.batches {
				if p.logAppendTime {
					cb := seg.commit.Parts[i].Batches[j]
					batch.SetLogAppendTime(obj[cb.Pos:cb.Pos+cb.Len], seg.appendMs)
				}
				p.batches[j].Data = nil // let the request buffer go
			}
		}
	})
	seg.obj = obj
	seg.key = meta.DataKey(meta.SegmentPrefix, seg.appendMs, in.cfg.WriterID, int64(in.objects.Add(1)))
	seg.commit.Object, seg.commit.Size, seg.commit.Since = seg.key, int64(len(obj)), seg.since
	in.metrics.flushBytes.Observe(float64(len(obj)))
	in.metrics.flushBatches.Observe(float64(nb))

	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ctx, cancel2 := context.WithDeadline(ctx, seg.deadline)
		err := in.store.Put(ctx, seg.key, obj)
		cancel2()
		cancel()
		if err == nil {
			return
		}
		if attempt >= in.cfg.PutAttempts || !time.Now().Add(backoff).Before(seg.deadline) {
			in.cfg.Logger.Error("segment upload failed", "key", seg.key, "attempts", attempt, "err", err)
			seg.err = fmt.Errorf("%w: %v", ErrStorage, err)
			return
		}
		in.cfg.Logger.Warn("segment upload failed, retrying", "key", seg.key, "attempt", attempt, "err", err)
		time.Sleep(backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
}

// commitLoop submits commits in seal order, without waiting for each to be
// applied, so that the log can group several flushes into one entry.
func (in *Ingest) commitLoop() {
	defer in.done.Done()
	defer close(in.finishing)
	for seg := range in.sealed {
		<-seg.uploaded
		if seg.err != nil {
			in.finishing <- pendingCommit{seg: seg}
			continue
		}
		// Fetches wake as soon as the commit applies, before finishLoop
		// can publish the object: have them wait for it, not GET it.
		in.cache.Expect(seg.key)
		in.finishing <- pendingCommit{seg: seg, p: in.log.SubmitBy(seg.deadline, seg.commit)}
	}
}

func (in *Ingest) finishLoop() {
	defer in.done.Done()
	for pc := range in.finishing {
		seg := pc.seg
		if pc.p != nil {
			res, err := pc.p.Wait(context.Background())
			if err != nil {
				seg.err = fmt.Errorf("%w: %v", ErrStorage, err)
			} else {
				seg.results = res[0].Parts
				in.publish(seg)
			}
		}
		if seg.err != nil {
			in.metrics.flushFailures.Inc()
			in.cache.Abandon(seg.key)
		}
		seg.doneAt = time.Now()
		in.metrics.flushSeconds.Observe(seg.doneAt.Sub(seg.sealAt).Seconds())
		seg.obj = nil
		in.release(seg)
		close(seg.done)
	}
}

// publish patches the final offsets into the object's batches and hands it
// to the cache, so that tail reads never go to the bucket.
func (in *Ingest) publish(seg *segment) {
	for i, part := range seg.commit.Parts {
		for j, b := range part.Batches {
			if r := seg.results[i][j]; r.Err == nil {
				bb := seg.obj[b.Pos : b.Pos+b.Len]
				batch.SetBaseOffset(bb, r.BaseOffset)
				batch.SetPartitionLeaderEpoch(bb, 0)
			}
		}
	}
	in.cache.PutObject(seg.key, seg.obj)
}
