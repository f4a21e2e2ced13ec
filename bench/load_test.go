package bench

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// testConfig is a small load that finishes in about a second.
func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Addr = addr
	cfg.Conns = 8
	cfg.Pipeline = 4
	cfg.Keyspace = 1000
	cfg.ValueSize = 32
	cfg.Duration = time.Second
	cfg.KeyPrefix = "t:"
	return cfg
}

func run(t *testing.T, cfg Config) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestRunAgainstRedis(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(s.Addr())
	res := run(t, cfg)
	t.Logf("\n%s", res)

	if res.Ops <= 0 || res.Errors != 0 {
		t.Fatalf("ops %d errors %d (%v), want ops > 0 and no errors", res.Ops, res.Errors, res.ErrorSamples)
	}
	if got, want := res.Latency.Count(), res.Ops; got != want {
		t.Errorf("latency count %d, want one per op %d", got, want)
	}
	if !(res.P50 > 0 && res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
		t.Errorf("latencies not ordered: p50 %v p99 %v p99.9 %v max %v", res.P50, res.P99, res.P999, res.Max)
	}
	if res.Duration < cfg.Duration || res.Duration > cfg.Duration+ioGrace {
		t.Errorf("duration %v, want %v up to %v more", res.Duration, cfg.Duration, ioGrace)
	}
	if got, want := res.OpsPerSec, float64(res.Ops)/res.Duration.Seconds(); got != want {
		t.Errorf("OpsPerSec %v, want %v", got, want)
	}

	// The keys were really written, with the run's value, and only inside
	// the keyspace.
	ctx := context.Background()
	c := s.Client()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 || len(keys) > cfg.Keyspace {
		t.Fatalf("%d keys after the run, want 1..%d", len(keys), cfg.Keyspace)
	}
	want := string(valueBytes(cfg.ValueSize))
	for _, k := range keys {
		i, err := strconv.Atoi(strings.TrimPrefix(k, cfg.KeyPrefix))
		if !strings.HasPrefix(k, cfg.KeyPrefix) || err != nil || i < 0 || i >= cfg.Keyspace {
			t.Fatalf("key %q outside the keyspace %s0..%d", k, cfg.KeyPrefix, cfg.Keyspace-1)
		}
	}
	vals, err := c.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if v != want {
			t.Fatalf("%s = %v, want the run's value %q", keys[i], v, want)
		}
	}
}

func TestRunRequestsAndReadRatio(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(s.Addr())
	cfg.Conns, cfg.Pipeline = 3, 7 // 10000 is not a multiple of either
	cfg.Requests = 10000
	cfg.ReadRatio = 0.8
	cfg.Duration = 20 * time.Second
	res := run(t, cfg)
	if got := res.Ops + res.Errors; got != cfg.Requests || res.Errors != 0 {
		t.Fatalf("ops %d + errors %d = %d, want exactly %d and no errors", res.Ops, res.Errors, got, cfg.Requests)
	}
	if res.Duration >= cfg.Duration {
		t.Errorf("run took %v: it did not stop at Requests", res.Duration)
	}
	info, err := s.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	gets, sets := commandCalls(info, "get"), commandCalls(info, "set")
	if gets+sets != cfg.Requests {
		t.Fatalf("server saw %d GET + %d SET, want %d in all", gets, sets, cfg.Requests)
	}
	// 8000 expected; 4 standard deviations of the binomial are about 160.
	if gets < 7800 || gets > 8200 {
		t.Errorf("server saw %d GETs of %d, want about %.0f%%", gets, cfg.Requests, 100*cfg.ReadRatio)
	}
}

// commandCalls reads calls=N for cmd from INFO commandstats.
func commandCalls(info, cmd string) int64 {
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		return n
	}
	return 0
}

func TestRunReadOnlyWritesNothing(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(s.Addr())
	cfg.ReadRatio = 1
	cfg.Requests = 2000
	res := run(t, cfg)
	if res.Ops != cfg.Requests || res.Errors != 0 {
		t.Fatalf("ops %d errors %d, want %d and 0", res.Ops, res.Errors, cfg.Requests)
	}
	if n, err := s.Client().DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v after a read-only run, want 0", n, err)
	}
}

func TestRunCountsErrorReplies(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	// redistest waits for PING, which a server started with --requirepass
	// refuses; set it afterwards. The go-redis connection is already
	// authenticated and stays so.
	c := s.Client()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "requirepass", "x").Err(); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(s.Addr())
	cfg.Duration = 300 * time.Millisecond
	res := run(t, cfg)
	if res.Ops != 0 || res.Errors == 0 {
		t.Fatalf("without a password: ops %d errors %d, want 0 ops and errors", res.Ops, res.Errors)
	}
	if len(res.ErrorSamples) != 1 || !strings.HasPrefix(res.ErrorSamples[0], "NOAUTH") {
		t.Errorf("error samples %q, want the one NOAUTH error", res.ErrorSamples)
	}
	if !strings.Contains(res.String(), "NOAUTH") {
		t.Errorf("report does not show the error:\n%s", res)
	}

	cfg.Password = "x"
	res = run(t, cfg)
	if res.Ops == 0 || res.Errors != 0 {
		t.Fatalf("with the password: ops %d errors %d %q, want ops and no errors", res.Ops, res.Errors, res.ErrorSamples)
	}
	if res.Config.Password != "" || strings.Contains(res.String(), "x\n") {
		t.Errorf("the password leaks into the result: %+v", res.Config)
	}

	cfg.Password = "wrong"
	if _, err := Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Errorf("wrong password: Run error %v, want an auth failure", err)
	}
}

func TestRunRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := testConfig(addr)
	start := time.Now()
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Run against a closed port: %v, want an error naming %s", err, addr)
	}
	if time.Since(start) > dialTimeout {
		t.Errorf("Run took %v to fail", time.Since(start))
	}
	if _, err := Run(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "Addr") {
		t.Errorf("Run(Config{}) = %v, want a validation error", err)
	}
}

func TestRunCanceled(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(s.Addr())
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error %v, want the context's", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run took %v to stop after cancellation", took)
	}
	if res.Ops == 0 || res.Errors != 0 {
		t.Errorf("partial result: ops %d errors %d %q, want ops and no errors (interrupted commands are not failures)", res.Ops, res.Errors, res.ErrorSamples)
	}
}

func TestRunServerDies(t *testing.T) {
	s := redistest.Start(t)
	cfg := testConfig(s.Addr())
	cfg.Duration = 1500 * time.Millisecond
	time.AfterFunc(500*time.Millisecond, s.Kill)
	start := time.Now()
	res := run(t, cfg)
	if took := time.Since(start); took > cfg.Duration+ioGrace {
		t.Errorf("Run took %v with a dead server, want at most %v", took, cfg.Duration+ioGrace)
	}
	if res.Ops == 0 || res.Errors == 0 {
		t.Fatalf("ops %d errors %d, want both", res.Ops, res.Errors)
	}
	t.Logf("error samples: %q", res.ErrorSamples)
	var sawConnect bool
	for _, s := range res.ErrorSamples {
		sawConnect = sawConnect || strings.HasPrefix(s, "reconnect: dial ")
	}
	if !sawConnect {
		t.Errorf("error samples %q, want a failed reconnection", res.ErrorSamples)
	}
}

func TestCompare(t *testing.T) {
	servers := redistest.StartN(t, 2)
	cfg := testConfig("")
	cfg.Duration = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Compare(ctx, cfg, servers[0].Addr(), servers[1].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", c)
	if c.Proxy.Config.Addr != servers[0].Addr() || c.Direct.Config.Addr != servers[1].Addr() {
		t.Errorf("runs went to %s and %s", c.Proxy.Config.Addr, c.Direct.Config.Addr)
	}
	if c.Proxy.Ops == 0 || c.Direct.Ops == 0 || c.Proxy.Errors+c.Direct.Errors != 0 {
		t.Fatalf("proxy ops %d, direct ops %d, errors %d+%d", c.Proxy.Ops, c.Direct.Ops, c.Proxy.Errors, c.Direct.Errors)
	}
	if got, want := c.Ratio, c.Proxy.OpsPerSec/c.Direct.OpsPerSec; got != want {
		t.Errorf("Ratio %v, want %v", got, want)
	}
	if !strings.Contains(c.String(), "proxy/direct ops/s") {
		t.Errorf("report lacks the ratio:\n%s", c)
	}

	c, err = Compare(ctx, cfg, servers[0].Addr(), "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "direct") {
		t.Errorf("Compare with a dead direct address: %v, want an error naming the direct run", err)
	}
	if s := c.String(); !strings.Contains(s, "proxy:") || strings.Contains(s, "direct:") {
		t.Errorf("report of a failed comparison shows a run that did not happen:\n%s", s)
	}
}
