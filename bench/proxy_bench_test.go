package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redisproc"
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
// Throughput on a shared VM swings by 15-30% between back-to-back runs, so
// the redis-benchmark comparisons run in rounds (BENCH_ROUNDS, default 5)
// that alternate which side goes first, and report medians over the rounds:
// of the per-round ratios, and of the CPU time per command of the proxy and
// of the direct redis-server (the steadier figure there). The proxy's
// figure leaves out its shard's CPU time.
//
// The proxy is the `reshard proxy` binary run as its own process, as users
// run it: in-process it would share the Go scheduler with the load
// generator. BENCH_PROXY_FLAGS adds flags to its command line (for example
// "--procs 2" to compare runtime settings). BENCH_BASELINE_BIN names
// another reshard binary (built from an older commit, say) that runs the
// same redis-benchmark rounds as "baseline", in the same run: the before
// and after of a change to the command path, each against direct Redis.
func BenchmarkProxyVsDirect(b *testing.B) {
	rounds := benchRounds(b)
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
				before := benchProcessCPU(b, c.Pid())
				cmp, err = Compare(rctx, l.cfg, c.Addr, direct.Addr())
				cpu = benchProcessCPU(b, c.Pid()) - before
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

	// The same redis-benchmark rounds against twemproxy (Debian's nutcracker
	// package) in front of the same shards, when it is installed: the
	// reference the proxy's targets were set against, measured in the same
	// run on the same machine.
	type proxyTarget struct {
		name string
		RedisBenchmarkTarget
	}
	targets := []proxyTarget{{"redis-benchmark", RedisBenchmarkTarget{Addr: c.Addr, PID: c.Pid()}}}
	if bin := os.Getenv("BENCH_BASELINE_BIN"); bin != "" {
		base := proxytest.StartProcess(b, bin, b.TempDir(), addrs, strings.Fields(os.Getenv("BENCH_PROXY_FLAGS"))...)
		targets = append(targets, proxyTarget{"baseline/redis-benchmark", RedisBenchmarkTarget{Addr: base.Addr, PID: base.Pid()}})
	}
	// The proxy while a client uses CLIENT TRACKING (it reads nothing, so
	// it gets no message): every write pipeline then waits for its shard's
	// report of the write, the cost of client-side caching to the others.
	tracked := proxytest.StartProcess(b, proxytest.Build(b), b.TempDir(), addrs, strings.Fields(os.Getenv("BENCH_PROXY_FLAGS"))...)
	startTrackingClient(b, tracked.Addr)
	targets = append(targets, proxyTarget{"tracking/redis-benchmark", RedisBenchmarkTarget{Addr: tracked.Addr, PID: tracked.Pid()}})
	if tw, pid, ok := startTwemproxy(b, addrs); ok {
		targets = append(targets, proxyTarget{"twemproxy/redis-benchmark", RedisBenchmarkTarget{Addr: tw, PID: pid}})
	}
	// And against bench/floor, a multiplexing proxy cut down to framing,
	// routing and batching on one epoll loop: about the best ratio a proxy
	// of this kind reaches on this machine.
	if addr, pid, ok := startFloor(b, addrs); ok {
		targets = append(targets, proxyTarget{"floor/redis-benchmark", RedisBenchmarkTarget{Addr: addr, PID: pid}})
	}

	// -n per pipeline depth: on the 2-core VM these were sized on, each test
	// of a run (SET, then GET) lasts 1-2 s against either target. That is
	// long enough for 10 ms CPU ticks and redis-benchmark's start-up not to
	// matter, and short enough for 5 rounds at both depths to take about a
	// minute.
	for _, target := range targets {
		for _, depth := range []struct {
			pipeline string
			requests int64
		}{{"1", 100000}, {"16", 1000000}} {
			b.Run(target.name+"/P="+depth.pipeline, func(b *testing.B) {
				args := []string{"-c", "50", "-n", strconv.FormatInt(depth.requests, 10), "-t", "set,get", "-P", depth.pipeline}
				commands := 2 * depth.requests // one run sends -n SETs, then -n GETs
				var res RedisBenchmarkRounds
				for range b.N {
					var err error
					rctx, cancel := context.WithTimeout(ctx, time.Duration(rounds)*time.Minute)
					res, err = CompareRedisBenchmark(rctx, rounds, target.RedisBenchmarkTarget,
						RedisBenchmarkTarget{Addr: direct.Addr(), PID: direct.PID()}, args...)
					cancel()
					if errors.Is(err, ErrNoRedisBenchmark) {
						b.Skip(err)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				for _, s := range res.Summaries() {
					if s.Test == "SET" || s.Test == "GET" {
						b.ReportMetric(s.Ratio.Median, s.Test+"-proxy/direct")
					}
				}
				proxyCPU, directCPU := res.CPUPerCommand(commands)
				b.ReportMetric(proxyCPU.Median, "proxy-cpu-µs/cmd")
				b.ReportMetric(directCPU.Median, "direct-redis-cpu-µs/cmd")
				fmt.Fprintf(os.Stdout, "\n%s: redis-benchmark %s; rounds %d, alternating which side runs first:\n%s", target.name, strings.Join(args, " "), len(res), res)
				fmt.Fprintf(os.Stdout, "CPU per command, median (min-max): proxy %.2f µs (%.2f-%.2f), direct redis-server %.2f µs (%.2f-%.2f)\n",
					proxyCPU.Median, proxyCPU.Min, proxyCPU.Max, directCPU.Median, directCPU.Min, directCPU.Max)
			})
		}
	}
}

// startTrackingClient connects a client that turns CLIENT TRACKING on and
// stays connected until the benchmark ends, reading whatever comes.
func startTrackingClient(b *testing.B, addr string) {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	if _, err := nc.Write([]byte("HELLO 3\r\nCLIENT TRACKING ON\r\n")); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	got := ""
	for !strings.Contains(got, "+OK\r\n") {
		n, err := nc.Read(buf)
		if err != nil {
			b.Fatalf("CLIENT TRACKING ON: %v", err)
		}
		got += string(buf[:n])
	}
	go func() {
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
}

// startTwemproxy starts twemproxy (nutcracker) in front of shards, as a
// Redis pool with its defaults (ketama over fnv1a_64 hashes), and returns
// its address and process id; ok is false when nutcracker is not installed.
func startTwemproxy(b *testing.B, shards []string) (addr string, pid int, ok bool) {
	b.Helper()
	bin, err := exec.LookPath("nutcracker")
	if err != nil {
		b.Logf("nutcracker not installed (apt-get install nutcracker): no twemproxy reference")
		return "", 0, false
	}
	port, err := redisproc.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	stats, err := redisproc.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	var conf strings.Builder
	fmt.Fprintf(&conf, "pool:\n  listen: %s\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  preconnect: true\n  servers:\n", addr)
	for _, s := range shards {
		fmt.Fprintf(&conf, "   - %s:1\n", s)
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "nutcracker.yml")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "-o", filepath.Join(dir, "nutcracker.log"), "-s", strconv.Itoa(stats))
	return addr, startListening(b, cmd, "twemproxy", addr), true
}

// startFloor builds bench/floor and starts it in front of shards on one Go
// thread, and returns its address and process id; ok is false off Linux,
// where the floor does not build (it calls epoll).
func startFloor(b *testing.B, shards []string) (addr string, pid int, ok bool) {
	b.Helper()
	if runtime.GOOS != "linux" {
		b.Logf("bench/floor is Linux only: no floor reference")
		return "", 0, false
	}
	bin := proxytest.BuildCommand(b, "github.com/reshard/reshard/bench/floor")
	port, err := redisproc.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--listen", addr, "--shards", strings.Join(shards, ","))
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	return addr, startListening(b, cmd, "floor", addr), true
}

// startListening starts cmd, to be killed at cleanup, waits up to about 6 s
// for it to accept connections on addr, and returns its process id.
func startListening(b *testing.B, cmd *exec.Cmd, what, addr string) int {
	b.Helper()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
			return cmd.Process.Pid
		}
		if i > 300 {
			b.Fatalf("%s did not listen on %s: %v", what, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchRounds is how many rounds the redis-benchmark comparisons run:
// BENCH_ROUNDS, or 5. An odd number has a true median.
func benchRounds(b *testing.B) int {
	b.Helper()
	v := os.Getenv("BENCH_ROUNDS")
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("BENCH_ROUNDS=%q: want a positive number of rounds", v)
	}
	return n
}

// benchProcessCPU is processCPU for a benchmark, which fails when the
// process's CPU time cannot be read.
func benchProcessCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	cpu, err := processCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
