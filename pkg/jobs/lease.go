package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// Job leases (see the package doc): one entry asks for the leases of a
// pass's jobs, the granted ones run while a goroutine renews their leases
// every LeaseDuration/3, and one entry releases them. A job whose renewal
// is refused, or has not landed when the lease would end by this agent's
// clock, has its context cancelled: another agent may take it from then.

// DefaultLeaseDuration is how long a job lease lasts unless renewed.
const DefaultLeaseDuration = 2 * time.Minute

// errLeaseLost ends a job whose lease this agent no longer holds.
var errLeaseLost = errors.New("jobs: lease lost")

// releaseTimeout bounds the release entry, which is only a courtesy: an
// unreleased lease ends by itself.
const releaseTimeout = 10 * time.Second

// leaseHold is the granted part of one acquisition, renewed until release.
type leaseHold struct {
	r       *Runner
	granted []string

	mu      sync.Mutex
	live    map[string]bool                    // granted, not finished, not lost
	lost    map[string]bool                    // the lease may be another agent's now
	running map[string]context.CancelCauseFunc // the job running now
	expiry  *time.Timer                        // fires when the leases end by our clock

	stop    context.CancelFunc
	stopped chan struct{}
}

// acquire asks for the leases of jobs in one entry and returns the granted
// ones, renewed in the background until release. It writes nothing when
// jobs is empty.
func (r *Runner) acquire(ctx context.Context, jobs []string) (*leaseHold, error) {
	h := &leaseHold{r: r, live: map[string]bool{}, lost: map[string]bool{}, running: map[string]context.CancelCauseFunc{}}
	if len(jobs) == 0 {
		return h, nil
	}
	ops := make([]meta.Op, len(jobs))
	for i, j := range jobs {
		if j == "" {
			return nil, errors.New("jobs: lease of an unnamed job")
		}
		ops[i] = r.leaseOp(j)
	}
	// The lease runs from the entry's time, which is later than this.
	asked := time.Now()
	res, err := r.log.Append(ctx, ops...)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while the entry was on its way: it may land yet,
			// granting leases nobody would release. A release by a
			// writer that does not hold a lease is ignored, and this
			// one comes after the ask in the log, so release them all.
			r.releaseAll(ctx, jobs)
		}
		return nil, fmt.Errorf("jobs: acquire leases: %w", err)
	}
	for i, j := range jobs {
		switch err := res[i].Err; {
		case err == nil:
			h.granted = append(h.granted, j)
			h.live[j] = true
			r.leases.WithLabelValues("granted").Inc()
		case errors.Is(err, meta.ErrLeaseHeld):
			r.leases.WithLabelValues("held").Inc()
			r.cfg.Logger.Debug("job lease held by another agent", "job", j)
		default: // not an outcome the state gives a named job and a positive duration
			return nil, fmt.Errorf("jobs: lease of %s: %w", j, err)
		}
	}
	if len(h.granted) > 0 {
		h.expiry = time.AfterFunc(time.Until(asked.Add(r.cfg.LeaseDuration)), h.expire)
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		h.stop, h.stopped = stop, make(chan struct{})
		go h.renew(rctx)
	}
	return h, nil
}

func (r *Runner) leaseOp(job string) meta.AcquireLease {
	return meta.AcquireLease{Job: job, DurationMs: r.cfg.LeaseDuration.Milliseconds()}
}

// renew renews the live leases every LeaseDuration/3 until stopped.
func (h *leaseHold) renew(ctx context.Context) {
	defer close(h.stopped)
	d := h.r.cfg.LeaseDuration
	Every(ctx, d/3, func(ctx context.Context) {
		h.mu.Lock()
		var jobs []string
		for _, j := range h.granted {
			if h.live[j] {
				jobs = append(jobs, j)
			}
		}
		h.mu.Unlock()
		if len(jobs) == 0 {
			return
		}
		ops := make([]meta.Op, len(jobs))
		for i, j := range jobs {
			ops[i] = h.r.leaseOp(j)
		}
		asked := time.Now()
		actx, cancel := context.WithTimeout(ctx, d/3)
		res, err := h.r.log.Append(actx, ops...)
		cancel()
		if err != nil {
			// Not renewed, or not known to be: the expiry timer stops
			// the jobs unless a later renewal gets through.
			if ctx.Err() == nil {
				h.r.cfg.Logger.Warn("renewing job leases", "jobs", jobs, "err", err)
			}
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, j := range jobs {
			if res[i].Err != nil {
				h.loseLocked(j)
				h.r.cfg.Logger.Warn("job lease lost", "job", j, "err", res[i].Err)
			}
		}
		// A timer that fired already has cancelled the jobs; they stay so.
		h.expiry.Reset(time.Until(asked.Add(d)))
	})
}

// expire stops every job of the hold: its leases may have ended.
func (h *leaseHold) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, j := range h.granted {
		if h.live[j] {
			h.loseLocked(j)
			h.r.cfg.Logger.Warn("job lease not renewed in time", "job", j)
		}
	}
}

func (h *leaseHold) loseLocked(job string) {
	delete(h.live, job)
	h.lost[job] = true
	if cancel := h.running[job]; cancel != nil {
		cancel(errLeaseLost)
	}
}

// start returns the context to run job in, cancelled if its lease is lost,
// or false if it is lost already.
func (h *leaseHold) start(ctx context.Context, job string) (context.Context, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost[job] {
		return nil, false
	}
	jctx, cancel := context.WithCancelCause(ctx)
	h.running[job] = cancel
	return jctx, true
}

// finish ends job's run: its lease is no longer renewed.
func (h *leaseHold) finish(job string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cancel := h.running[job]; cancel != nil {
		cancel(nil)
		delete(h.running, job)
	}
	delete(h.live, job)
}

// release stops renewing and gives up the granted leases in one entry.
func (h *leaseHold) release(ctx context.Context) {
	if len(h.granted) == 0 {
		return
	}
	h.stop()
	<-h.stopped
	h.expiry.Stop()
	h.r.releaseAll(ctx, h.granted)
}

// releaseAll gives up the leases of jobs in one entry, even when ctx has
// ended (shutdown): a restarted agent has a new writer id and would
// otherwise wait for the leases to run out.
func (r *Runner) releaseAll(ctx context.Context, jobs []string) {
	ops := make([]meta.Op, len(jobs))
	for i, j := range jobs {
		ops[i] = meta.ReleaseLease{Job: j}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if _, err := r.log.Append(rctx, ops...); err != nil {
		r.cfg.Logger.Warn("releasing job leases", "jobs", jobs, "err", err)
	}
}

// leased runs run for each of jobs whose lease this agent gets, one after
// another, holding the leases meanwhile (see above). Ask only for jobs
// with work to do: each call writes two entries when any is granted. It
// stops at the first error other than a lost lease and returns it.
func (r *Runner) leased(ctx context.Context, jobs []string, run func(ctx context.Context, job string) error) error {
	h, err := r.acquire(ctx, jobs)
	if err != nil {
		return err
	}
	defer h.release(ctx)
	var lost []error
	for _, job := range h.granted {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		jctx, ok := h.start(ctx, job)
		if !ok {
			lost = append(lost, fmt.Errorf("%s: %w", job, errLeaseLost))
			continue
		}
		err := run(jctx, job)
		h.finish(job)
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(jctx), errLeaseLost) {
			lost = append(lost, fmt.Errorf("%s: %w", job, errLeaseLost))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", job, err)
		}
	}
	return errors.Join(lost...)
}
