package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
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

// RedisBenchmarkComparison is one redis-benchmark invocation run against
// the proxy and against a direct redis-server.
type RedisBenchmarkComparison struct {
	Proxy, Direct []RedisBenchmarkResult
}

// CompareRedisBenchmark runs redis-benchmark with args against proxyAddr,
// then against directAddr.
func CompareRedisBenchmark(ctx context.Context, proxyAddr, directAddr string, args ...string) (RedisBenchmarkComparison, error) {
	var c RedisBenchmarkComparison
	var err error
	if c.Proxy, err = RedisBenchmark(ctx, proxyAddr, args...); err != nil {
		return c, fmt.Errorf("compare: proxy run: %w", err)
	}
	if c.Direct, err = RedisBenchmark(ctx, directAddr, args...); err != nil {
		return c, fmt.Errorf("compare: direct run: %w", err)
	}
	return c, nil
}

// Ratios returns, per test that both runs report, proxy RPS / direct RPS.
func (c RedisBenchmarkComparison) Ratios() map[string]float64 {
	out := make(map[string]float64)
	for _, p := range c.Proxy {
		for _, d := range c.Direct {
			if d.Test == p.Test && d.RPS > 0 {
				out[p.Test] = p.RPS / d.RPS
			}
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
		i := slices.IndexFunc(c.Direct, func(d RedisBenchmarkResult) bool { return d.Test == p.Test })
		d := c.Direct[i]
		fmt.Fprintf(&b, "%-20s proxy %12.2f rps  direct %12.2f rps  ratio %.3f  p50 %s / %s\n",
			p.Test, p.RPS, d.RPS, r, msec(p.P50), msec(d.P50))
	}
	return b.String()
}

// tail returns the last n bytes of b as a string, for error messages.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
