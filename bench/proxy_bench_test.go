package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// BenchmarkProxyVsDirect measures, in one run, the proxy in front of 3 shards
// against one plain redis-server: first with this package's load generator
// (keys spread over all shards), then with redis-benchmark's standard
// `-c 50 -t set,get` (which uses one key, so one shard). Load generator,
// proxy and shards share this machine's cores, as the targets assume.
// Metrics are ratios proxy/direct and the proxy's CPU time per command;
// the figures go to stdout as a table.
//
// The proxy is the `reshard proxy` binary run as its own process, as users
// run it: in-process it would share the Go scheduler with the load
// generator. BENCH_PROXY_FLAGS adds flags to its command line (for example
// "--procs 2" to compare runtime settings).
func BenchmarkProxyVsDirect(b *testing.B) {
	direct := redistest.Start(b)
	var addrs []string
	for _, s := range redistest.StartN(b, 3) {
		addrs = append(addrs, s.Addr())
	}
	c := proxytest.StartProcess(b, proxytest.Build(b), b.TempDir(), addrs, strings.Fields(os.Getenv("BENCH_PROXY_FLAGS"))...)
	ctx := context.Background()

	for _, l := range benchLoads("") {
		b.Run("loadgen/"+l.name, func(b *testing.B) {
			var cmp Comparison
			var cpu time.Duration
			for range b.N {
				var err error
				rctx, cancel := context.WithTimeout(ctx, 2*benchDuration+time.Minute)
				before := processCPU(b, c.Pid())
				cmp, err = Compare(rctx, l.cfg, c.Addr, direct.Addr())
				cpu = processCPU(b, c.Pid()) - before
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
			if cmp.Proxy.Errors+cmp.Direct.Errors > 0 {
				b.Fatalf("errors: proxy %d %q, direct %d %q", cmp.Proxy.Errors, cmp.Proxy.ErrorSamples, cmp.Direct.Errors, cmp.Direct.ErrorSamples)
			}
			b.ReportMetric(cmp.Proxy.OpsPerSec, "proxy-ops/s")
			b.ReportMetric(cmp.Direct.OpsPerSec, "direct-ops/s")
			b.ReportMetric(cmp.Ratio, "proxy/direct")
			perCmd := cpuPerCommand(cpu, cmp.Proxy.Ops)
			b.ReportMetric(perCmd, "proxy-cpu-µs/cmd")
			fmt.Fprintf(os.Stdout, "\nloadgen %s (%d conns, keyspace %d):\n%sproxy CPU per command: %.2f µs\n", l.name, l.cfg.Conns, l.cfg.Keyspace, cmp, perCmd)
		})
	}

	const requests = 300000
	for _, p := range []string{"1", "16"} {
		b.Run("redis-benchmark/P="+p, func(b *testing.B) {
			var cmp RedisBenchmarkComparison
			var cpu time.Duration
			for range b.N {
				var err error
				rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				before := processCPU(b, c.Pid())
				cmp, err = CompareRedisBenchmark(rctx, c.Addr, direct.Addr(), "-c", "50", "-n", strconv.Itoa(requests), "-t", "set,get", "-P", p)
				cpu = processCPU(b, c.Pid()) - before
				cancel()
				if errors.Is(err, ErrNoRedisBenchmark) {
					b.Skip(err)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			ratios := cmp.Ratios()
			b.ReportMetric(ratios["SET"], "SET-proxy/direct")
			b.ReportMetric(ratios["GET"], "GET-proxy/direct")
			perCmd := cpuPerCommand(cpu, 2*requests)
			b.ReportMetric(perCmd, "proxy-cpu-µs/cmd")
			fmt.Fprintf(os.Stdout, "\nredis-benchmark -c 50 -n %d -t set,get -P %s:\n%sproxy CPU per command: %.2f µs\n", requests, p, cmp, perCmd)
		})
	}
}

// processCPU is the user and system CPU time pid has used so far.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th, in clock ticks (100/s
	// on Linux).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func cpuPerCommand(cpu time.Duration, commands int64) float64 {
	if commands == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(commands)
}
