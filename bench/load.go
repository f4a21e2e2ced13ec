package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

const (
	// dialTimeout bounds one connection attempt, AUTH included.
	dialTimeout = 5 * time.Second
	// ioGrace is how long after the end of the run a batch already sent may
	// still wait for its replies before they count as failed.
	ioGrace = 2 * time.Second
	// maxSamples is how many distinct error texts a Result keeps.
	maxSamples = 5
	// readBufSize is each connection's read buffer; larger GET replies
	// are skipped through it without being held whole.
	readBufSize = 64 << 10
)

// Result is the outcome of one Run.
type Result struct {
	// Config is the load that ran, with Password blanked.
	Config Config
	// Ops is the number of commands answered with a reply that is not an
	// error.
	Ops int64
	// Errors counts commands answered with an error reply, commands lost
	// to an I/O error (each command of the broken batch that had no reply
	// yet), and failed reconnection attempts.
	Errors int64
	// ErrorSamples holds the first few distinct error texts.
	ErrorSamples []string
	// Duration is the measured time, from the first batch to the last reply.
	Duration time.Duration
	// OpsPerSec is Ops / Duration.
	OpsPerSec float64
	// Latency is the distribution of per-command latencies of successful
	// commands: from the write of a command's batch to the arrival of its
	// reply. P50, P99, P999 and Max are read from it.
	Latency        *Histogram
	P50, P99, P999 time.Duration
	Max            time.Duration
}

// String formats the result as a short multi-line report.
func (r Result) String() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "%s  conns=%d pipeline=%d read-ratio=%.2f value-size=%d keyspace=%d\n",
		c.Addr, c.Conns, c.Pipeline, c.ReadRatio, c.ValueSize, c.Keyspace)
	fmt.Fprintf(&b, "  throughput  %.0f ops/s (%d ops in %.2fs)\n", r.OpsPerSec, r.Ops, r.Duration.Seconds())
	fmt.Fprintf(&b, "  latency     p50=%s p99=%s p99.9=%s max=%s\n", msec(r.P50), msec(r.P99), msec(r.P999), msec(r.Max))
	fmt.Fprintf(&b, "  errors      %d\n", r.Errors)
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	return b.String()
}

// msec formats a latency in milliseconds, as redis-benchmark does.
func msec(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// Run drives the load cfg describes and returns what it measured.
//
// It first opens all cfg.Conns connections (authenticating with
// cfg.Password when set); if any cannot be opened, Run returns an error and
// no result. Then each connection, in a goroutine of its own, sends batches
// of cfg.Pipeline commands and reads their replies, until cfg.Duration has
// passed or cfg.Requests commands have been sent. A connection that breaks
// is opened again (with backoff) for as long as the run lasts, so a load can
// span a proxy restart or a cutover.
//
// When ctx ends first, Run stops all connections at once and returns the
// result so far together with ctx's error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	workers := make([]*worker, cfg.Conns)
	for i := range workers {
		workers[i] = newWorker(&cfg, i)
	}
	if err := connectAll(ctx, &cfg, workers); err != nil {
		return Result{}, err
	}

	start := time.Now()
	end := start.Add(cfg.Duration)
	b := &budget{limit: cfg.Requests}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			defer w.close()
			w.run(ctx, end, b)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := summarize(cfg, elapsed, workers)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench: run against %s interrupted: %w", cfg.Addr, err)
	}
	return res, nil
}

// budget hands out the commands of a run with a Requests limit.
type budget struct {
	limit int64 // 0: unlimited
	taken atomic.Int64
}

// take claims up to n commands and returns how many it got (0: none left).
func (b *budget) take(n int) int {
	if b.limit == 0 {
		return n
	}
	after := b.taken.Add(int64(n))
	if after <= b.limit {
		return n
	}
	over := after - b.limit
	if over >= int64(n) {
		return 0
	}
	return n - int(over)
}

// worker is one connection of a run and the goroutine that drives it. Its
// counters are its own until Run reads them after the goroutine ended.
// summarize merges the workers' counts and histograms into a Result.
func summarize(cfg Config, elapsed time.Duration, workers []*worker) Result {
	res := Result{Config: cfg, Duration: elapsed, Latency: new(Histogram)}
	res.Config.Password = ""
	for _, w := range workers {
		res.Ops += w.ops
		res.Errors += w.errors
		res.Latency.Merge(&w.hist)
		for _, s := range w.samples {
			if len(res.ErrorSamples) < maxSamples && !slices.Contains(res.ErrorSamples, s) {
				res.ErrorSamples = append(res.ErrorSamples, s)
			}
		}
	}
	if elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	}
	res.P50 = res.Latency.Quantile(0.50)
	res.P99 = res.Latency.Quantile(0.99)
	res.P999 = res.Latency.Quantile(0.999)
	res.Max = res.Latency.Max()
	return res
}

type worker struct {
	cfg   *Config
	rng   *rand.Rand
	value []byte
	key   []byte
	wbuf  []byte

	conn     net.Conn
	br       *bufio.Reader
	rbuf     []byte      // the last error reply, for readResult
	stopWake func() bool // unregisters the ctx watcher of conn

	hist    Histogram
	ops     int64
	errors  int64
	samples []string
}

func newWorker(cfg *Config, i int) *worker {
	seed := uint64(cfg.Seed) + uint64(i)
	return &worker{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		value: valueBytes(cfg.ValueSize),
		key:   make([]byte, 0, len(cfg.KeyPrefix)+20),
		br:    bufio.NewReaderSize(nil, readBufSize),
	}
}

// valueBytes returns the value every SET of a run writes: a recognizable
// pattern, so a reader can tell it from other data.
func valueBytes(n int) []byte {
	const pattern = "0123456789abcdefghijklmnopqrstuvwxyz"
	v := make([]byte, n)
	for i := range v {
		v[i] = pattern[i%len(pattern)]
	}
	return v
}

// connect opens the worker's connection and authenticates it. dialTimeout
// and, when set, deadline bound it; the run sets the connection's deadline
// for its I/O afterwards. While the connection is open, the end of ctx
// interrupts any read or write on it.
func (w *worker) connect(ctx context.Context, deadline time.Time) error {
	d := net.Dialer{Timeout: dialTimeout, Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", w.cfg.Addr)
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	w.conn = conn
	w.br.Reset(conn)
	// A deadline in the past fails pending and future I/O at once; Close
	// from this callback could race with the worker's own Close.
	w.stopWake = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if w.cfg.Password == "" {
		return nil
	}
	authDeadline := time.Now().Add(dialTimeout)
	if !deadline.IsZero() && deadline.Before(authDeadline) {
		authDeadline = deadline
	}
	w.setDeadline(ctx, authDeadline)
	if _, err := conn.Write(resp.AppendCommandString(nil, "AUTH", w.cfg.Password)); err != nil {
		w.close()
		return fmt.Errorf("auth: %w", err)
	}
	isErr, text, err := w.readResult()
	if err != nil {
		w.close()
		return fmt.Errorf("auth: %w", err)
	}
	if isErr {
		msg := string(text) // text does not survive close
		w.close()
		return fmt.Errorf("auth: %s", msg)
	}
	w.setDeadline(ctx, time.Time{})
	return nil
}

// setDeadline sets the connection's I/O deadline without undoing an
// interruption: once ctx has ended, the deadline stays in the past.
func (w *worker) setDeadline(ctx context.Context, t time.Time) {
	w.conn.SetDeadline(t)
	if ctx.Err() != nil {
		w.conn.SetDeadline(time.Unix(1, 0))
	}
}

// close closes the connection, if open. It is idempotent.
func (w *worker) close() {
	if w.conn == nil {
		return
	}
	w.stopWake()
	w.conn.Close()
	w.conn = nil
}

// run sends batches until end, the budget is spent, or ctx ends.
func (w *worker) run(ctx context.Context, end time.Time, b *budget) {
	if w.conn != nil {
		w.setDeadline(ctx, end.Add(ioGrace))
	}
	for ctx.Err() == nil && time.Now().Before(end) {
		if w.conn == nil && !w.reconnect(ctx, end) {
			return
		}
		n := b.take(w.cfg.Pipeline)
		if n == 0 {
			return
		}
		w.batch(ctx, n)
	}
}

// batch sends n commands in one write and reads their n replies.
func (w *worker) batch(ctx context.Context, n int) {
	buf := w.wbuf[:0]
	for range n {
		w.key = strconv.AppendInt(append(w.key[:0], w.cfg.KeyPrefix...), int64(w.rng.IntN(w.cfg.Keyspace)), 10)
		if w.rng.Float64() < w.cfg.ReadRatio {
			buf = resp.AppendCommand(buf, cmdGet, w.key)
		} else {
			buf = resp.AppendCommand(buf, cmdSet, w.key, w.value)
		}
	}
	w.wbuf = buf
	t0 := time.Now()
	if _, err := w.conn.Write(buf); err != nil {
		w.broken(ctx, n, err)
		return
	}
	for i := range n {
		isErr, text, err := w.readResult()
		if err != nil {
			w.broken(ctx, n-i, err)
			return
		}
		if isErr {
			w.errors++
			w.sample(text)
			continue
		}
		w.hist.Record(time.Since(t0))
		w.ops++
	}
}

// broken handles an I/O error that left lost commands without a reply: it
// counts them as failed (unless the run was canceled, which caused the
// error) and closes the connection, to be opened again.
func (w *worker) broken(ctx context.Context, lost int, err error) {
	w.close()
	if ctx.Err() != nil {
		return
	}
	w.errors += int64(lost)
	w.sampleString(ioErrText(err))
}

// ioErrText describes an I/O error without the local port, which differs
// per connection and would make every sample distinct.
func ioErrText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		if oe.Addr != nil {
			return oe.Op + " " + oe.Addr.String() + ": " + oe.Err.Error()
		}
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

// reconnect opens the connection again, retrying with backoff until it
// succeeds (true) or the run ends (false). Each failed attempt counts as
// an error.
func (w *worker) reconnect(ctx context.Context, end time.Time) bool {
	backoff := 50 * time.Millisecond
	for {
		err := w.connect(ctx, end.Add(ioGrace))
		if err == nil {
			w.setDeadline(ctx, end.Add(ioGrace))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.errors++
		w.sampleString("reconnect: " + ioErrText(err))
		wait := min(backoff, time.Until(end))
		if wait <= 0 {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (w *worker) sample(text []byte) {
	if len(w.samples) >= maxSamples {
		return
	}
	for _, s := range w.samples {
		if s == string(text) { // no allocation for the comparison
			return
		}
	}
	w.samples = append(w.samples, string(text))
}

func (w *worker) sampleString(s string) {
	if len(w.samples) < maxSamples && !slices.Contains(w.samples, s) {
		w.samples = append(w.samples, s)
	}
}

// connectAll connects every worker, or closes them all and says which
// connection failed.
func connectAll(ctx context.Context, cfg *Config, workers []*worker) error {
	for i, w := range workers {
		if err := w.connect(ctx, time.Time{}); err != nil {
			for _, w := range workers {
				w.close()
			}
			return fmt.Errorf("bench: connection %d of %d to %s: %w", i+1, cfg.Conns, cfg.Addr, err)
		}
	}
	return nil
}
