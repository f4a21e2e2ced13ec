package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

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

// CutoverSummary is the cutover window: from the "cutover" phase to the
// first of "done", "aborted" or "failed", widened by Options.Margin on both
// sides. ok is false when the run saw no cutover.
func (r *TimelineResult) CutoverSummary() (s Summary, ok bool) {
	from, ok := r.Phase("cutover")
	if !ok {
		return Summary{}, false
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
	return r.Span(from.Add(-r.Options.Margin), to.Add(r.Options.Margin)), true
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
	if s, ok := r.CutoverSummary(); ok {
		fmt.Fprintf(&b, "  cutover     %s (from %.3fs, margin %s)\n", s, s.From.Sub(r.Start).Seconds(), r.Options.Margin)
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

// tlWorker is a load connection that also writes its sequence key and
// feeds the series.
type tlWorker struct {
	*worker
	seqKey     []byte
	seq        int64
	acked      int64
	reconnects int64
	seqBuf     []byte

	win    int // index of cur
	cur    windowHist
	curOps int64
	curErr int64
}

func (w *tlWorker) runTimeline(ctx context.Context, end time.Time, stop <-chan struct{}, ser *series, interval time.Duration) {
	defer w.flush(ser)
	if w.conn != nil {
		w.setDeadline(ctx, end.Add(ioGrace))
	}
	next := time.Now()
	for ctx.Err() == nil && time.Now().Before(end) {
		select {
		case <-stop:
			return
		default:
		}
		if w.conn == nil {
			before := w.errors
			if !w.reconnect(ctx, end) {
				w.accountErrs(ser, time.Now(), w.errors-before)
				return
			}
			w.reconnects++
			w.accountErrs(ser, time.Now(), w.errors-before)
		}
		if interval > 0 {
			now := time.Now()
			if d := next.Sub(now); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
				case <-stop:
				case <-t.C:
				}
				t.Stop()
			} else if -d > 100*time.Millisecond {
				next = now // far behind (a stall): do not burst to catch up
			}
			next = next.Add(interval)
		}
		w.timelineBatch(ctx, ser)
	}
}

// timelineBatch is worker.batch with the sequence write as the first write.
func (w *tlWorker) timelineBatch(ctx context.Context, ser *series) {
	n := w.cfg.Pipeline
	buf := w.wbuf[:0]
	seqAt := -1
	for i := range n {
		isRead := w.rng.Float64() < w.cfg.ReadRatio
		w.key = strconv.AppendInt(append(w.key[:0], w.cfg.KeyPrefix...), int64(w.rng.IntN(w.cfg.Keyspace)), 10)
		switch {
		case isRead:
			buf = resp.AppendCommand(buf, cmdGet, w.key)
		case seqAt < 0:
			seqAt = i
			w.seq++
			w.seqBuf = strconv.AppendInt(w.seqBuf[:0], w.seq, 10)
			buf = resp.AppendCommand(buf, cmdSet, w.seqKey, w.seqBuf)
		default:
			buf = resp.AppendCommand(buf, cmdSet, w.key, w.value)
		}
	}
	w.wbuf = buf
	t0 := time.Now()
	if _, err := w.conn.Write(buf); err != nil {
		before := w.errors
		w.broken(ctx, n, err)
		w.accountErrs(ser, time.Now(), w.errors-before)
		return
	}
	for i := range n {
		isErr, text, err := w.readResult()
		now := time.Now()
		if err != nil {
			before := w.errors
			w.broken(ctx, n-i, err)
			w.accountErrs(ser, now, w.errors-before)
			return
		}
		if isErr {
			w.errors++
			w.sample(text)
			w.accountErrs(ser, now, 1)
			continue
		}
		if i == seqAt {
			w.acked = w.seq
		}
		lat := now.Sub(t0)
		w.hist.Record(lat)
		w.ops++
		w.account(ser, now, lat)
	}
}

// account adds one reply of latency lat at now to the worker's current
// window, handing the window to ser first when now is past it.
func (w *tlWorker) account(ser *series, now time.Time, lat time.Duration) {
	w.moveTo(ser, now)
	w.cur.record(lat)
	w.curOps++
}

// accountErrs adds n errors at now, like account.
func (w *tlWorker) accountErrs(ser *series, now time.Time, n int64) {
	if n <= 0 {
		return
	}
	w.moveTo(ser, now)
	w.curErr += n
}

func (w *tlWorker) moveTo(ser *series, now time.Time) {
	if idx := int(now.Sub(ser.start) / ser.width); idx != w.win {
		w.flush(ser)
		w.win = idx
	}
}

func (w *tlWorker) flush(ser *series) {
	if w.curOps == 0 && w.curErr == 0 {
		return
	}
	ser.add(w.win, &w.cur, w.curOps, w.curErr)
	w.cur = windowHist{}
	w.curOps, w.curErr = 0, 0
}

// series is the shared latency-over-time record; workers add to it under
// its lock once per window each.
type series struct {
	start time.Time
	width time.Duration
	mu    sync.Mutex
	wins  []winAcc
}

type winAcc struct {
	h         windowHist
	ops, errs int64
}

func (s *series) add(idx int, h *windowHist, ops, errs int64) {
	if idx < 0 {
		idx = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.wins) <= idx {
		s.wins = append(s.wins, winAcc{})
	}
	a := &s.wins[idx]
	a.h.merge(h)
	a.ops += ops
	a.errs += errs
}

func (s *series) windows() ([]Window, []windowHist) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Window, len(s.wins))
	hs := make([]windowHist, len(s.wins))
	for i, a := range s.wins {
		out[i] = Window{
			Start: s.start.Add(time.Duration(i) * s.width),
			Ops:   a.ops, Errors: a.errs,
			P999: a.h.quantile(0.999), Max: time.Duration(a.h.max),
		}
		hs[i] = a.h
	}
	return out, hs
}

// windowHist is a small latency histogram for one window: 16 buckets per
// power of two (values within ~6%), 2.4 KB, against Histogram's 32 KB, so
// a long run's thousands of windows stay cheap. Its max is exact.
type windowHist struct {
	counts [wBuckets]uint32
	n      uint64
	max    int64
}

const (
	wSubBits = 4
	wSub     = 1 << wSubBits
	wMaxBits = 40 // ~18 minutes in ns; longer values are clamped
	wBuckets = (wMaxBits - wSubBits + 1) * wSub
)

func wBucket(v uint64) int {
	if v >= 1<<wMaxBits {
		v = 1<<wMaxBits - 1
	}
	if v < wSub {
		return int(v)
	}
	shift := bits.Len64(v) - wSubBits - 1
	return wSub*(shift+1) + int(v>>uint(shift)) - wSub
}

func wBucketHigh(b int) int64 {
	if b < wSub {
		return int64(b)
	}
	shift := b/wSub - 1
	sub := int64(b%wSub + wSub)
	return (sub+1)<<uint(shift) - 1
}

func (h *windowHist) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[wBucket(uint64(v))]++
	h.n++
	h.max = max(h.max, v)
}

func (h *windowHist) merge(o *windowHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *windowHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(h.n))), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(min(wBucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// maxAdminReply bounds one reply on an admin connection: statuses,
// PROXY RESHARD STATUS and sequence numbers are all far smaller.
const maxAdminReply = 1 << 20

// adminConn is a plain RESP connection for commands whose replies matter:
// PROXY RESHARD, and reading the sequence keys back.
type adminConn struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte // the last reply
}

func dialAdmin(ctx context.Context, addr, password string) (*adminConn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &adminConn{conn: conn, br: bufio.NewReaderSize(conn, readBufSize)}
	if password != "" {
		if _, err := a.do(ctx, "AUTH", password); err != nil {
			a.close()
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return a, nil
}

func (a *adminConn) close() { a.conn.Close() }

// do sends one command and returns its reply as text: a status, an
// integer or a bulk string ("" for nil); an array is skipped as "".
func (a *adminConn) do(ctx context.Context, args ...string) (string, error) {
	buf := resp.AppendCommandString(nil, args...)
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	a.conn.SetDeadline(deadline)
	if _, err := a.conn.Write(buf); err != nil {
		return "", err
	}
	return a.reply()
}

// reply reads one reply: see do.
func (a *adminConn) reply() (string, error) {
	var err error
	a.buf, err = resp.ReadReply(a.br, a.buf[:0], maxAdminReply)
	if err != nil {
		return "", err
	}
	text, _ := resp.Payload(a.buf)
	if a.buf[0] == '-' {
		return "", errors.New(string(text))
	}
	return string(text), nil
}
