package bench

import (
	"context"
	"errors"
	"os/exec"
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

	c, err := CompareRedisBenchmark(ctx, servers[0].Addr(), servers[1].Addr(), "-c", "10", "-n", "5000", "-t", "set,get")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", c)
	if r := c.Ratios(); len(r) != 2 || r["SET"] <= 0 || r["GET"] <= 0 {
		t.Errorf("Ratios() = %v, want SET and GET", r)
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
