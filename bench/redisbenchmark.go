package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoRedisBenchmark is returned when redis-benchmark is not in PATH.
var ErrNoRedisBenchmark = errors.New("bench: redis-benchmark not found in PATH")

// RedisBenchmarkResult is one test line of `redis-benchmark -q`.
type RedisBenchmarkResult struct {
	// Test is redis-benchmark's name for it: "SET", "GET",
	// "MSET (10 keys)", "LRANGE_100 (first 100 elements)", ...
	Test string
	// RPS is the requests per second it reported.
	RPS float64
	// P50 is its median latency; 0 for versions before 6.2, which do not
	// print it.
	P50 time.Duration
}

// One final line per test, e.g.
// "SET: 123456.79 requests per second, p50=0.215 msec". Progress lines
// ("SET: rps=... (overall: ...) avg_msec=...") do not match.
var redisBenchmarkLine = regexp.MustCompile(`^(.+?): ([0-9]+(?:\.[0-9]+)?) requests per second(?:, p50=([0-9]+(?:\.[0-9]+)?) msec)?$`)

// ParseRedisBenchmark extracts the per-test results from the output of
// `redis-benchmark -q`, in the order of the output. It returns an error when
// the output holds no result line.
func ParseRedisBenchmark(out []byte) ([]RedisBenchmarkResult, error) {
	var res []RedisBenchmarkResult
	// -q rewrites its progress line with '\r' and ends each test with '\n'.
	for _, seg := range strings.FieldsFunc(string(out), func(r rune) bool { return r == '\r' || r == '\n' }) {
		m := redisBenchmarkLine.FindStringSubmatch(strings.TrimSpace(seg))
		if m == nil {
			continue
		}
		rps, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("bench: redis-benchmark line %q: %w", seg, err)
		}
		r := RedisBenchmarkResult{Test: m[1], RPS: rps}
		if m[3] != "" {
			ms, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				return nil, fmt.Errorf("bench: redis-benchmark line %q: %w", seg, err)
			}
			r.P50 = time.Duration(ms * float64(time.Millisecond))
		}
		res = append(res, r)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("bench: no result line in redis-benchmark output %q", tail(out, 200))
	}
	return res, nil
}

// RedisBenchmark runs the system's redis-benchmark against addr with args
// (for example "-c", "50", "-n", "200000", "-t", "set,get", "-P", "1") and
// returns its per-test results. It adds -q when args lack it, and sets the
// target itself, so args must not contain -h, -p, -s or --csv.
//
// redis-benchmark spins forever when its server goes away, so RedisBenchmark
// first checks that addr accepts connections, and kills the process when ctx
// ends: give ctx a deadline. A password belongs in args (-a), where other
// local users can see it in the process list.
func RedisBenchmark(ctx context.Context, addr string, args ...string) ([]RedisBenchmarkResult, error) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return nil, ErrNoRedisBenchmark
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("bench: redis-benchmark address %q: %w", addr, err)
	}
	for _, a := range args {
		switch a {
		case "-h", "-p", "-s", "--csv":
			return nil, fmt.Errorf("bench: redis-benchmark argument %q is not allowed; the helper sets the target and parses -q output", a)
		}
	}
	if !slices.Contains(args, "-q") {
		args = append(slices.Clip(args), "-q")
	}
	d := net.Dialer{Timeout: dialTimeout}
	probe, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: redis-benchmark against %s: %w", addr, err)
	}
	probe.Close()

	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("bench: redis-benchmark against %s: %w: %s", addr, err, tail(append(stdout.Bytes(), stderr.Bytes()...), 200))
	}
	res, err := ParseRedisBenchmark(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w (stderr %q)", err, tail(stderr.Bytes(), 200))
	}
	return res, nil
}

// RedisBenchmarkTarget is a server redis-benchmark runs against.
type RedisBenchmarkTarget struct {
	Addr string
	// PID is the server's process, whose CPU time is read from /proc before
	// and after each run against it; 0 leaves CPU time unmeasured.
	PID int
}

// RedisBenchmarkComparison is one round: the same redis-benchmark
// invocation run against the proxy and against a direct redis-server.
type RedisBenchmarkComparison struct {
	Proxy, Direct []RedisBenchmarkResult
	// ProxyCPU and DirectCPU are the user and system CPU time each target's
	// process used during its own run; 0 when its PID was not given.
	ProxyCPU, DirectCPU time.Duration
}

// RedisBenchmarkRounds are the rounds of one CompareRedisBenchmark, in the
// order they ran.
type RedisBenchmarkRounds []RedisBenchmarkComparison

// CompareRedisBenchmark runs redis-benchmark with args against proxy and
// against direct, one run after the other, in rounds. The proxy runs first
// in the first round, the direct server in the second, and so on: on a
// shared machine throughput drifts over seconds, and the side that always
// ran second would carry the drift (and the other's leftover heat or page
// cache) as if it were its own.
//
// Compare the rounds' ratios, not the runs' throughputs: a ratio pairs two
// runs a few seconds apart, and its median over rounds discards the rounds
// a neighbour disturbed. If a run fails, CompareRedisBenchmark returns the
// error with the rounds completed so far.
func CompareRedisBenchmark(ctx context.Context, rounds int, proxy, direct RedisBenchmarkTarget, args ...string) (RedisBenchmarkRounds, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("compare: %d rounds, want at least 1", rounds)
	}
	var out RedisBenchmarkRounds
	for i := range rounds {
		var c RedisBenchmarkComparison
		runProxy := func() (err error) {
			c.Proxy, c.ProxyCPU, err = measuredRedisBenchmark(ctx, proxy, args)
			if err != nil {
				err = fmt.Errorf("proxy run: %w", err)
			}
			return err
		}
		runDirect := func() (err error) {
			c.Direct, c.DirectCPU, err = measuredRedisBenchmark(ctx, direct, args)
			if err != nil {
				err = fmt.Errorf("direct run: %w", err)
			}
			return err
		}
		first, second := alternate(i, runProxy, runDirect)
		if err := first(); err != nil {
			return out, fmt.Errorf("compare: round %d: %w", i+1, err)
		}
		if err := second(); err != nil {
			return out, fmt.Errorf("compare: round %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// measuredRedisBenchmark runs redis-benchmark against t and returns, with
// its results, the CPU time t's process used meanwhile.
func measuredRedisBenchmark(ctx context.Context, t RedisBenchmarkTarget, args []string) ([]RedisBenchmarkResult, time.Duration, error) {
	if t.PID == 0 {
		res, err := RedisBenchmark(ctx, t.Addr, args...)
		return res, 0, err
	}
	before, err := processCPU(t.PID)
	if err != nil {
		return nil, 0, err
	}
	res, err := RedisBenchmark(ctx, t.Addr, args...)
	if err != nil {
		return nil, 0, err
	}
	after, err := processCPU(t.PID)
	if err != nil {
		return nil, 0, err
	}
	return res, after - before, nil
}

// alternate returns a and b in the order round (counted from 0) runs them:
// a first in even rounds, b first in odd ones.
func alternate[T any](round int, a, b T) (first, second T) {
	if round%2 == 1 {
		return b, a
	}
	return a, b
}

// Ratios returns, per test that both runs report, proxy RPS / direct RPS.
func (c RedisBenchmarkComparison) Ratios() map[string]float64 {
	out := make(map[string]float64)
	for _, p := range c.Proxy {
		if d, ok := findRedisBenchmarkResult(c.Direct, p.Test); ok && d.RPS > 0 {
			out[p.Test] = p.RPS / d.RPS
		}
	}
	return out
}

// String formats one line per test: both RPS figures, the ratio, and both
// medians.
func (c RedisBenchmarkComparison) String() string {
	var b strings.Builder
	ratios := c.Ratios()
	for _, p := range c.Proxy {
		r, ok := ratios[p.Test]
		if !ok {
			fmt.Fprintf(&b, "%-20s proxy %12.2f rps   direct: not run\n", p.Test, p.RPS)
			continue
		}
		d, _ := findRedisBenchmarkResult(c.Direct, p.Test)
		fmt.Fprintf(&b, "%-20s proxy %12.2f rps  direct %12.2f rps  ratio %.3f  p50 %s / %s\n",
			p.Test, p.RPS, d.RPS, r, msec(p.P50), msec(d.P50))
	}
	return b.String()
}

func findRedisBenchmarkResult(rs []RedisBenchmarkResult, test string) (RedisBenchmarkResult, bool) {
	i := slices.IndexFunc(rs, func(r RedisBenchmarkResult) bool { return r.Test == test })
	if i < 0 {
		return RedisBenchmarkResult{}, false
	}
	return rs[i], true
}

// RedisBenchmarkSummary is one test over the rounds of a
// CompareRedisBenchmark.
type RedisBenchmarkSummary struct {
	Test string
	// Ratio spreads the rounds' proxy RPS / direct RPS.
	Ratio Spread
	// ProxyRPS and DirectRPS are the medians of each side's RPS over the
	// rounds, each taken on its own.
	ProxyRPS, DirectRPS float64
}

// Summaries returns one summary per test of the first round's proxy run,
// in its order, over the rounds in which both runs report the test.
func (r RedisBenchmarkRounds) Summaries() []RedisBenchmarkSummary {
	if len(r) == 0 {
		return nil
	}
	var out []RedisBenchmarkSummary
	for _, t := range r[0].Proxy {
		var ratios, proxyRPS, directRPS []float64
		for _, c := range r {
			p, okP := findRedisBenchmarkResult(c.Proxy, t.Test)
			d, okD := findRedisBenchmarkResult(c.Direct, t.Test)
			if okP && okD && d.RPS > 0 {
				ratios = append(ratios, p.RPS/d.RPS)
				proxyRPS = append(proxyRPS, p.RPS)
				directRPS = append(directRPS, d.RPS)
			}
		}
		if len(ratios) > 0 {
			out = append(out, RedisBenchmarkSummary{Test: t.Test, Ratio: SpreadOf(ratios), ProxyRPS: median(proxyRPS), DirectRPS: median(directRPS)})
		}
	}
	return out
}

// CPUPerCommand spreads, over the rounds, the CPU time in microseconds the
// proxy's and the direct server's process used per command of their run,
// given the commands one run sends (-n times the number of tests).
func (r RedisBenchmarkRounds) CPUPerCommand(commands int64) (proxy, direct Spread) {
	var p, d []float64
	for _, c := range r {
		p = append(p, cpuPerCommand(c.ProxyCPU, commands))
		d = append(d, cpuPerCommand(c.DirectCPU, commands))
	}
	return SpreadOf(p), SpreadOf(d)
}

// cpuPerCommand is cpu in microseconds per command; 0 without commands.
func cpuPerCommand(cpu time.Duration, commands int64) float64 {
	if commands == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(commands)
}

// String formats one line per test: the spread of the ratios, each round's
// ratio in the order the rounds ran, and each side's median RPS.
func (r RedisBenchmarkRounds) String() string {
	var b strings.Builder
	for _, s := range r.Summaries() {
		fmt.Fprintf(&b, "%-20s proxy/direct min %.3f  median %.3f  max %.3f   median rps proxy %12.2f  direct %12.2f\n",
			s.Test, s.Ratio.Min, s.Ratio.Median, s.Ratio.Max, s.ProxyRPS, s.DirectRPS)
	}
	return b.String()
}

// Spread is the smallest, median and largest of a set of figures.
type Spread struct {
	Min, Median, Max float64
}

// SpreadOf returns the spread of xs; the zero Spread when xs is empty.
func SpreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	return Spread{Min: slices.Min(xs), Median: median(xs), Max: slices.Max(xs)}
}

// median returns the middle value of xs, or the mean of the two middle
// values when their number is even; 0 when xs is empty. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

// processCPU is the user and system CPU time process pid has used so far,
// from /proc (so Linux only).
func processCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: cpu time of process %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th, in clock ticks
	// (USER_HZ, 100/s on every Linux port that matters here).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: cpu time of process %d: %d fields in /proc/%d/stat", pid, len(f), pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: cpu time of process %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// tail returns the last n bytes of b as a string, for error messages.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
