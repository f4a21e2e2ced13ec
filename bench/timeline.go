package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// The timeline: a load run while phases (a reshard's) happen, recorded as
// latency per window, then the sequence keys read back for lost writes.
// Its workers are in timeline_worker.go, its record in timeline_series.go.

// TimelineOptions tune RunTimeline beyond the load's Config.
type TimelineOptions struct {
	// Window is the width of one point of the latency-over-time series.
	Window time.Duration
	// Rate bounds the whole load in commands per second, split evenly over
	// the connections (each paces its batches); 0 runs flat out.
	Rate float64
	// Tail is how long the load goes on after the phase channel is closed
	// (the event it tracked is over); the run also ends at Config.Duration.
	Tail time.Duration
	// Margin widens the cutover window on both sides (see CutoverSummary).
	Margin time.Duration
}

// DefaultTimelineOptions returns 50 ms windows, no rate bound, a 1 s tail
// and a 100 ms cutover margin.
func DefaultTimelineOptions() TimelineOptions {
	return TimelineOptions{Window: 50 * time.Millisecond, Tail: time.Second, Margin: 100 * time.Millisecond}
}

func (o TimelineOptions) validate() error {
	switch {
	case o.Window < time.Millisecond:
		return fmt.Errorf("bench: Window %v must be at least 1ms", o.Window)
	case !(o.Rate >= 0) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("bench: Rate %v must be a finite number >= 0", o.Rate)
	case o.Tail < 0 || o.Margin < 0:
		return fmt.Errorf("bench: Tail %v and Margin %v must not be negative", o.Tail, o.Margin)
	}
	return nil
}

// Phase marks the moment something changed during a run, e.g. a reshard
// state ("copying", "cutover", "done") at the time the proxy reports.
type Phase struct {
	Name string
	At   time.Time
}

// Window is one point of the series: the commands whose reply arrived in
// [Start, Start+width).
type Window struct {
	Start  time.Time
	Ops    int64
	Errors int64
	P999   time.Duration // upper bound of a ~6% wide bucket, at most Max
	Max    time.Duration
}

// Summary is the figures of a span of windows.
type Summary struct {
	From, To time.Time
	Ops      int64
	Errors   int64
	P999     time.Duration
	Max      time.Duration
}

func (s Summary) String() string {
	return fmt.Sprintf("%.3fs  ops=%d errors=%d p99.9=%s max=%s", s.To.Sub(s.From).Seconds(), s.Ops, s.Errors, msec(s.P999), msec(s.Max))
}

// TimelineResult is a Result with the latency series, the phases, the
// reconnects and the verdict of the lost-write checker.
type TimelineResult struct {
	Result
	Options    TimelineOptions
	Start      time.Time
	Windows    []Window
	Phases     []Phase
	Reconnects int64
	// Checked is the number of sequence keys read back (one per
	// connection); Lost counts those holding less than their last
	// acknowledged value. LostSamples describes a few.
	Checked     int
	Lost        int
	LostSamples []string

	hists []windowHist // parallel to Windows, for Span
}

// Span sums the windows that overlap [from, to].
func (r *TimelineResult) Span(from, to time.Time) Summary {
	s := Summary{From: from, To: to}
	var h windowHist
	for i, w := range r.Windows {
		if w.Start.After(to) || !w.Start.Add(r.Options.Window).After(from) {
			continue
		}
		s.Ops += w.Ops
		s.Errors += w.Errors
		h.merge(&r.hists[i])
	}
	s.P999, s.Max = h.quantile(0.999), time.Duration(h.max)
	return s
}

// Phase returns the time of the first phase called name.
func (r *TimelineResult) Phase(name string) (time.Time, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.At, true
		}
	}
	return time.Time{}, false
}

// BeforeSummary is the load before the reshard: from the start of the run
// to the "reshard" phase. ok is false when the run saw no reshard.
func (r *TimelineResult) BeforeSummary() (s Summary, ok bool) {
	to, ok := r.Phase("reshard")
	if !ok || !to.After(r.Start) {
		return Summary{}, false
	}
	return r.Span(r.Start, to), true
}

// CopySummary is the copy: from the "copying" phase (the job started) to
// "catching_up" (every source's RDB written into the targets), when the
// catch-up of the streams begins.
func (r *TimelineResult) CopySummary() (s Summary, ok bool) {
	from, ok := r.Phase("copying")
	to, ok2 := r.Phase("catching_up")
	if !ok || !ok2 {
		return Summary{}, false
	}
	return r.Span(from, to), true
}

// CutoverSummary is the cutover window: from the "cutover" phase to the
// first of "done", "aborted" or "failed", widened by Options.Margin on both
// sides, though never back into the copy (before "catching_up"). ok is
// false when the run saw no cutover.
func (r *TimelineResult) CutoverSummary() (s Summary, ok bool) {
	from, ok := r.Phase("cutover")
	if !ok {
		return Summary{}, false
	}
	start := from.Add(-r.Options.Margin)
	if caught, ok := r.Phase("catching_up"); ok && caught.After(start) {
		start = caught
	}
	to := time.Time{}
	for _, name := range []string{"done", "aborted", "failed"} {
		if t, ok := r.Phase(name); ok && (to.IsZero() || t.Before(to)) {
			to = t
		}
	}
	if to.IsZero() || to.Before(from) {
		to = from
	}
	return r.Span(start, to.Add(r.Options.Margin)), true
}

func (r TimelineResult) String() string {
	var b strings.Builder
	b.WriteString(r.Result.String())
	fmt.Fprintf(&b, "  reconnects  %d\n", r.Reconnects)
	fmt.Fprintf(&b, "  lost writes %d of %d keys checked\n", r.Lost, r.Checked)
	for _, s := range r.LostSamples {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "  phase       %-12s at %7.3fs\n", p.Name, p.At.Sub(r.Start).Seconds())
	}
	if len(r.Windows) > 0 {
		fmt.Fprintf(&b, "  whole run   %s\n", r.Span(r.Start, r.Windows[len(r.Windows)-1].Start))
	}
	if s, ok := r.BeforeSummary(); ok {
		fmt.Fprintf(&b, "  before      %s\n", s)
	}
	if s, ok := r.CopySummary(); ok {
		fmt.Fprintf(&b, "  copy        %s (from %.3fs)\n", s, s.From.Sub(r.Start).Seconds())
	}
	if s, ok := r.CutoverSummary(); ok {
		fmt.Fprintf(&b, "  cutover     %s (from %.3fs, margin %s, not into the copy)\n", s, s.From.Sub(r.Start).Seconds(), r.Options.Margin)
	}
	return b.String()
}

// RunTimeline runs cfg's load like Run and also records a latency series
// of opt.Window wide points, the phases received on phases, reconnects,
// and whether acknowledged writes survived: every batch's first write sets
// the connection's own key (KeyPrefix + "seq:" + n) to the next sequence
// number, and after the load the keys are read back; one holding less
// than its last acknowledged number (or missing) is lost.
//
// The run ends at cfg.Duration, or opt.Tail after phases is closed (nil:
// never), or when ctx ends. Latency is measured from the write of a batch
// to each reply, and a command is counted in the window its reply arrived
// in. Phase times are taken as given: from a remote proxy they carry its
// clock's skew.
func RunTimeline(ctx context.Context, cfg Config, opt TimelineOptions, phases <-chan Phase) (TimelineResult, error) {
	if err := cfg.validate(); err != nil {
		return TimelineResult{}, err
	}
	if err := opt.validate(); err != nil {
		return TimelineResult{}, err
	}
	workers := make([]*tlWorker, cfg.Conns)
	conns := make([]*worker, cfg.Conns)
	for i := range workers {
		workers[i] = &tlWorker{worker: newWorker(&cfg, i), seqKey: []byte(seqKey(cfg.KeyPrefix, i))}
		conns[i] = workers[i].worker
	}
	if err := connectAll(ctx, &cfg, conns); err != nil {
		return TimelineResult{}, err
	}

	start := time.Now()
	end := start.Add(cfg.Duration)
	ser := &series{start: start, width: opt.Window}
	var interval time.Duration
	if opt.Rate > 0 {
		interval = time.Duration(float64(cfg.Conns*cfg.Pipeline) / opt.Rate * float64(time.Second))
	}
	stop := make(chan struct{}) // closed by the collector: the tail is over
	quit := make(chan struct{}) // closed here: the workers are done
	var (
		mu  sync.Mutex
		got []Phase
	)
	collectDone := make(chan struct{})
	go func() { // owned here: ends on quit at the latest
		defer close(collectDone)
		for in := phases; in != nil; {
			select {
			case p, ok := <-in:
				if !ok {
					in = nil
					break
				}
				mu.Lock()
				got = append(got, p)
				mu.Unlock()
			case <-quit:
				return
			}
		}
		if phases == nil {
			<-quit
			return
		}
		t := time.NewTimer(opt.Tail)
		defer t.Stop()
		select {
		case <-t.C:
			close(stop)
		case <-quit:
		}
	}()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			defer w.close()
			w.runTimeline(ctx, end, stop, ser, interval)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(quit)
	<-collectDone

	res := TimelineResult{Options: opt, Start: start}
	base := make([]*worker, len(workers))
	for i, w := range workers {
		base[i] = w.worker
		res.Reconnects += w.reconnects
	}
	res.Result = summarize(cfg, elapsed, base)
	res.Windows, res.hists = ser.windows()
	mu.Lock()
	res.Phases = slices.Clone(got)
	mu.Unlock()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench: run against %s interrupted: %w", cfg.Addr, err)
	}
	acked := make([]int64, len(workers))
	for i, w := range workers {
		acked[i] = w.acked
	}
	vals, err := readSeqKeys(ctx, cfg, len(workers))
	if err != nil {
		return res, fmt.Errorf("bench: read back the sequence keys: %w", err)
	}
	res.Checked = len(vals)
	res.Lost, res.LostSamples = checkLost(cfg.KeyPrefix, acked, vals)
	return res, nil
}

func seqKey(prefix string, i int) string { return prefix + "seq:" + strconv.Itoa(i) }

// checkLost compares each key's value read back (-1: missing) with the
// last acknowledged one (0: none acknowledged).
func checkLost(prefix string, acked, got []int64) (lost int, samples []string) {
	for i, a := range acked {
		if a > 0 && got[i] < a {
			lost++
			if len(samples) < maxSamples {
				samples = append(samples, fmt.Sprintf("%s = %d, last acknowledged %d", seqKey(prefix, i), got[i], a))
			}
		}
	}
	return lost, samples
}

// readSeqKeys GETs the n sequence keys on one new connection; a missing
// key or a non-number reads as -1.
func readSeqKeys(ctx context.Context, cfg Config, n int) ([]int64, error) {
	a, err := dialAdmin(ctx, cfg.Addr, cfg.Password)
	if err != nil {
		return nil, err
	}
	defer a.close()
	var buf []byte
	for i := range n {
		buf = resp.AppendCommand(buf, cmdGet, []byte(seqKey(cfg.KeyPrefix, i)))
	}
	a.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := a.conn.Write(buf); err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i := range out {
		v, err := a.reply()
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", seqKey(cfg.KeyPrefix, i), err)
		}
		out[i] = -1
		if x, ok := resp.ParseInt([]byte(v)); ok && v != "" {
			out[i] = x
		}
	}
	return out, nil
}
