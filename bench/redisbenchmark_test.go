package bench

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// Output of `redis-benchmark -c 50 -n 20000 -t set,get,lrange_100,mset -q`
// (7.0.15), as the tool writes it: progress lines rewritten with '\r',
// padded with spaces, one final line per test ended by '\n'.
var redisBenchmark7Output = "\rSET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r" +
	strings.Repeat(" ", 40) + "\rSET: 94786.73 requests per second, p50=0.263 msec\n" +
	"\rGET: rps=15012.0 (overall: 96615.4) avg_msec=0.261 (overall: 0.261)\r" + strings.Repeat(" ", 40) +
	"\rGET: 93457.95 requests per second, p50=0.263 msec\n" +
	"\rLPUSH (needed to benchmark LRANGE): rps=32752.0 (overall: 109173.3) avg_msec=0.235 (overall: 0.235)\r  " +
	"\rLPUSH (needed to benchmark LRANGE): 109890.11 requests per second, p50=0.207 msec\n" +
	"\rLRANGE_100 (first 100 elements): 85470.09 requests per second, p50=0.367 msec\n" +
	"\rMSET (10 keys): 111731.84 requests per second, p50=0.311 msec\n\n"

func TestParseRedisBenchmark(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []RedisBenchmarkResult
	}{
		{"7.0", redisBenchmark7Output, []RedisBenchmarkResult{
			{"SET", 94786.73, 263 * time.Microsecond},
			{"GET", 93457.95, 263 * time.Microsecond},
			{"LPUSH (needed to benchmark LRANGE)", 109890.11, 207 * time.Microsecond},
			{"LRANGE_100 (first 100 elements)", 85470.09, 367 * time.Microsecond},
			{"MSET (10 keys)", 111731.84, 311 * time.Microsecond},
		}},
		// Before 6.2 there was no p50.
		{"5.0", "SET: 81967.21 requests per second\nGET: 86206.90 requests per second\r\n", []RedisBenchmarkResult{
			{"SET", 81967.21, 0},
			{"GET", 86206.90, 0},
		}},
		{"integer-rps", "PING_INLINE: 100000 requests per second, p50=1 msec\n", []RedisBenchmarkResult{
			{"PING_INLINE", 100000, time.Millisecond},
		}},
	}
	for _, tt := range tests {
		got, err := ParseRedisBenchmark([]byte(tt.out))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %d results %+v, want %+v", tt.name, len(got), got, tt.want)
			continue
		}
		for i := range got {
			g, w := got[i], tt.want[i]
			// p50 goes through a float; allow a nanosecond of rounding.
			if g.Test != w.Test || g.RPS != w.RPS || (g.P50-w.P50).Abs() > time.Nanosecond {
				t.Errorf("%s: result %d = %+v, want %+v", tt.name, i, g, w)
			}
		}
	}
	for _, bad := range []string{"", "Could not connect to Redis at 127.0.0.1:1: Connection refused\n", "SET: rps=123.0 (overall: 1.0) avg_msec=0.1 (overall: 0.1)\r"} {
		if got, err := ParseRedisBenchmark([]byte(bad)); err == nil {
			t.Errorf("ParseRedisBenchmark(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestRedisBenchmarkComparisonRatios(t *testing.T) {
	c := RedisBenchmarkComparison{
		Proxy:  []RedisBenchmarkResult{{"SET", 90, 0}, {"GET", 50, 0}, {"INCR", 10, 0}},
		Direct: []RedisBenchmarkResult{{"GET", 100, 0}, {"SET", 100, 0}},
	}
	got := c.Ratios()
	want := map[string]float64{"SET": 0.9, "GET": 0.5}
	if len(got) != len(want) || got["SET"] != want["SET"] || got["GET"] != want["GET"] {
		t.Errorf("Ratios() = %v, want %v", got, want)
	}
	if s := c.String(); !strings.Contains(s, "ratio 0.900") || !strings.Contains(s, "INCR") {
		t.Errorf("String() =\n%s", s)
	}
}

func requireRedisBenchmark(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		t.Skip("redis-benchmark not in PATH")
	}
}

func TestRedisBenchmarkRun(t *testing.T) {
	requireRedisBenchmark(t)
	servers := redistest.StartN(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	got, err := RedisBenchmark(ctx, servers[0].Addr(), "-c", "10", "-n", "5000", "-t", "set,get", "-P", "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Test != "SET" || got[1].Test != "GET" {
		t.Fatalf("results %+v, want SET then GET", got)
	}
	for _, r := range got {
		if r.RPS <= 0 || r.P50 <= 0 {
			t.Errorf("%+v: want positive rps and p50", r)
		}
	}
	if n, err := servers[0].Client().DBSize(ctx).Result(); err != nil || n == 0 {
		t.Errorf("DBSIZE %d, %v: redis-benchmark did not reach the server", n, err)
	}

	rounds, err := CompareRedisBenchmark(ctx, 2,
		RedisBenchmarkTarget{Addr: servers[0].Addr(), PID: servers[0].PID()},
		RedisBenchmarkTarget{Addr: servers[1].Addr()}, "-c", "10", "-n", "5000", "-t", "set,get")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rounds)
	if len(rounds) != 2 {
		t.Fatalf("%d rounds, want 2", len(rounds))
	}
	for i, c := range rounds {
		if r := c.Ratios(); len(r) != 2 || r["SET"] <= 0 || r["GET"] <= 0 {
			t.Errorf("round %d: Ratios() = %v, want SET and GET", i, r)
		}
		// Without a PID the direct side is not measured.
		if c.ProxyCPU < 0 || c.DirectCPU != 0 {
			t.Errorf("round %d: cpu proxy %v, direct %v; want >= 0 and 0", i, c.ProxyCPU, c.DirectCPU)
		}
	}
	if s := rounds.Summaries(); len(s) != 2 || s[0].Test != "SET" || s[1].Test != "GET" {
		t.Errorf("Summaries() = %+v, want SET then GET", s)
	}
	if _, err := CompareRedisBenchmark(ctx, 0, RedisBenchmarkTarget{Addr: servers[0].Addr()}, RedisBenchmarkTarget{Addr: servers[1].Addr()}); err == nil {
		t.Error("0 rounds were accepted")
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 4}, 4},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{0.9, 0.7, 1.3, 0.8, 0.85}, 0.85},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.xs)
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
		if !slices.Equal(in, tt.xs) {
			t.Errorf("median reordered its argument: %v, was %v", tt.xs, in)
		}
	}
	if got, want := SpreadOf([]float64{2, 9, 1, 5, 3}), (Spread{Min: 1, Median: 3, Max: 9}); got != want {
		t.Errorf("SpreadOf = %+v, want %+v", got, want)
	}
	if got := SpreadOf(nil); got != (Spread{}) {
		t.Errorf("SpreadOf(nil) = %+v, want the zero Spread", got)
	}
}

func TestAlternate(t *testing.T) {
	var got []string
	for round := range 4 {
		first, second := alternate(round, "proxy", "direct")
		got = append(got, first+","+second)
	}
	want := []string{"proxy,direct", "direct,proxy", "proxy,direct", "direct,proxy"}
	if !slices.Equal(got, want) {
		t.Errorf("orders %q, want %q", got, want)
	}
}

func TestRedisBenchmarkRoundsSummaries(t *testing.T) {
	rounds := RedisBenchmarkRounds{
		{
			Proxy:    []RedisBenchmarkResult{{"SET", 80, 0}, {"GET", 90, 0}},
			Direct:   []RedisBenchmarkResult{{"SET", 100, 0}, {"GET", 100, 0}},
			ProxyCPU: 100 * time.Millisecond, DirectCPU: 40 * time.Millisecond,
		},
		{
			// The direct run got no GET line: the round counts for SET only.
			Proxy:    []RedisBenchmarkResult{{"SET", 60, 0}, {"GET", 70, 0}},
			Direct:   []RedisBenchmarkResult{{"SET", 50, 0}},
			ProxyCPU: 300 * time.Millisecond, DirectCPU: 50 * time.Millisecond,
		},
		{
			Proxy:    []RedisBenchmarkResult{{"GET", 45, 0}, {"SET", 90, 0}},
			Direct:   []RedisBenchmarkResult{{"GET", 50, 0}, {"SET", 200, 0}},
			ProxyCPU: 200 * time.Millisecond, DirectCPU: 60 * time.Millisecond,
		},
	}
	got := rounds.Summaries()
	want := []RedisBenchmarkSummary{
		{Test: "SET", Ratio: Spread{Min: 0.45, Median: 0.8, Max: 1.2}, ProxyRPS: 80, DirectRPS: 100},
		{Test: "GET", Ratio: Spread{Min: 0.9, Median: 0.9, Max: 0.9}, ProxyRPS: 67.5, DirectRPS: 75},
	}
	if len(got) != len(want) {
		t.Fatalf("Summaries() = %+v, want %+v", got, want)
	}
	for i := range got {
		if !summaryNear(got[i], want[i]) {
			t.Errorf("summary %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := rounds.String(); !strings.Contains(s, "median 0.800") || !strings.Contains(s, "GET") {
		t.Errorf("String() =\n%s", s)
	}

	proxy, direct := rounds.CPUPerCommand(1000)
	if want := (Spread{Min: 100, Median: 200, Max: 300}); proxy != want {
		t.Errorf("proxy cpu per command %+v µs, want %+v", proxy, want)
	}
	if want := (Spread{Min: 40, Median: 50, Max: 60}); direct != want {
		t.Errorf("direct cpu per command %+v µs, want %+v", direct, want)
	}
	if got := RedisBenchmarkRounds(nil).Summaries(); got != nil {
		t.Errorf("no rounds: Summaries() = %+v, want none", got)
	}
}

// summaryNear compares summaries allowing for the rounding of the ratios'
// division.
func summaryNear(a, b RedisBenchmarkSummary) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.Test == b.Test && near(a.Ratio.Min, b.Ratio.Min) && near(a.Ratio.Median, b.Ratio.Median) &&
		near(a.Ratio.Max, b.Ratio.Max) && near(a.ProxyRPS, b.ProxyRPS) && near(a.DirectRPS, b.DirectRPS)
}

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until a clock tick (10 ms) is charged to this process; on a busy
	// machine that may take more wall time than CPU time.
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := processCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpu time stayed at %v for 10 s of spinning", now)
		}
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("processCPU(-1) succeeded")
	}
}

func TestRedisBenchmarkErrors(t *testing.T) {
	requireRedisBenchmark(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A dead address fails at once instead of leaving redis-benchmark
	// spinning.
	start := time.Now()
	if _, err := RedisBenchmark(ctx, "127.0.0.1:1", "-n", "10"); err == nil {
		t.Error("RedisBenchmark against a closed port succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("failing took %v", took)
	}
	for _, bad := range [][]string{{"-h", "x"}, {"-p", "1"}, {"--csv"}} {
		if _, err := RedisBenchmark(ctx, "127.0.0.1:1", bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("args %q: error %v, want one naming %s", bad, err, bad[0])
		}
	}
	if _, err := RedisBenchmark(ctx, "nohostport"); err == nil {
		t.Error("a bad address was accepted")
	}

	// Cancellation ends a long run.
	s := redistest.Start(t)
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancelShort()
	start = time.Now()
	_, err := RedisBenchmark(short, s.Addr(), "-c", "2", "-n", "100000000", "-t", "ping")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("canceled run: %v, want the context's error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("canceled run took %v to return", took)
	}
}
