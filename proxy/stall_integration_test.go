package proxy_test

import (
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// A shard that stops answering (SIGSTOP: the process is alive, its
// connections open) fails the requests routed to it after --shard-timeout
// with an error naming it, instead of holding them, and every later one on
// the same connection, until TCP gives up. The other shard keeps serving;
// when the shard comes back the proxy reconnects, in step. A connection
// with nothing outstanding is never dropped, however long it is idle.
func TestIntegrationShardStalled(t *testing.T) {
	const timeout = 400 * time.Millisecond
	cfg := proxy.DefaultConfig()
	cfg.ShardTimeout = timeout
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	ctx := t.Context()
	stuck, other := keyOn(t, c, "stall:", 0), keyOn(t, c, "stall:", 1)
	cl := c.Client()
	for _, k := range []string{stuck, other} {
		if err := cl.Set(ctx, k, "before", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	time.Sleep(4 * timeout) // idle: nothing outstanding, nothing dropped
	info := cl.Info(ctx, "proxy").Val()
	if strings.Count(info, "reconnects=0") != 2 {
		t.Fatalf("idle connections were dropped:\n%s", info)
	}
	// INFO proxy asks no shard, so it answers even while one is stopped,
	// when an operator needs it: the shards' request counts do not move
	shardLines := regexp.MustCompile(`(?m)^shard\d+:.*$`)
	before := shardLines.FindAllString(info, -1)
	if after := shardLines.FindAllString(cl.Info(ctx, "proxy").Val(), -1); len(before) != 2 || !slices.Equal(before, after) {
		t.Errorf("INFO proxy sent requests to the shards:\n%q\nthen\n%q", before, after)
	}

	if err := c.Shards[0].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			c.Shards[0].Signal(syscall.SIGCONT)
		}
	}
	defer resume()

	got := make(chan error, 1)
	go func() { got <- cl.Get(ctx, stuck).Err() }()
	other2 := c.Client()
	if v, err := other2.Get(ctx, other).Result(); err != nil || v != "before" {
		t.Errorf("GET on the healthy shard while the other is stopped = %q, %v", v, err)
	}
	// INFO shows the request pending on the stopped shard
	pendingOn0 := regexp.MustCompile(`shard0:addr=` + regexp.QuoteMeta(c.Shards[0].Addr()) + `,[^\r\n]*,pending=[1-9]`)
	var err error
	for seen := false; !seen; time.Sleep(10 * time.Millisecond) {
		select {
		case err = <-got:
			t.Fatalf("the GET ended (%v) before INFO proxy showed it pending:\n%s", err, other2.Info(ctx, "proxy").Val())
		default:
		}
		seen = pendingOn0.MatchString(other2.Info(ctx, "proxy").Val())
	}
	err = <-got
	want := "shard " + c.Shards[0].Addr() + " is unavailable: no reply for " + timeout.String()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("GET on the stopped shard = %v, want an error with %q", err, want)
	}

	resume()
	var v string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = cl.Set(ctx, stuck, "after", 0).Err(); err != nil {
			continue
		}
		if v, err = cl.Get(ctx, stuck).Result(); err == nil {
			break
		}
	}
	if err != nil || v != "after" {
		t.Fatalf("after SIGCONT: GET = %q, %v, want \"after\"", v, err)
	}
	for i := 0; i < 200; i++ { // replies stay matched to their requests
		want := strings.Repeat("x", i)
		if err := cl.Set(ctx, stuck, want, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := cl.Get(ctx, stuck).Result(); err != nil || v != want {
			t.Fatalf("GET after SET %d = %q, %v", i, v, err)
		}
	}
}

// A large reply that arrives slowly is progress, not a stall: through a
// relay that lets the shard's bytes out 32 KiB every 50 ms, a 1 MiB value
// takes about four times --shard-timeout to arrive, and must.
func TestIntegrationShardSlowReply(t *testing.T) {
	const timeout = 400 * time.Millisecond
	shard := redistest.Start(t)
	value := strings.Repeat("v", 1<<20)
	if err := shard.Client().Set(t.Context(), "big", value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	spec, err := router.ParseShardArgs([]string{slowRelay(t, shard.Addr(), 32<<10, 50*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	table, err := router.NewTable(1, spec)
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	cfg.ShardTimeout = timeout
	addr, stop := serveTable(t, cfg, control.Config{}, table, nil)
	defer stop()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, ReadTimeout: 30 * time.Second})
	defer cl.Close()
	start := time.Now()
	got, err := cl.Get(t.Context(), "big").Result()
	if err != nil || got != value {
		t.Fatalf("GET of a slowly arriving 1 MiB value = %d bytes, %v", len(got), err)
	}
	if took := time.Since(start); took < 2*timeout {
		t.Fatalf("the relay let the reply through in %s: the test shows nothing", took)
	}
}

// slowRelay forwards connections to addr, letting at most chunk bytes of
// the server's side through every pause; it returns its address.
func slowRelay(t *testing.T, addr string, chunk int, pause time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			go io.Copy(out, in)
			go func() {
				buf := make([]byte, chunk)
				for {
					n, err := out.Read(buf)
					if n > 0 {
						if _, werr := in.Write(buf[:n]); werr != nil {
							return
						}
						time.Sleep(pause)
					}
					if err != nil {
						in.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A command that keeps a shard busy for longer than --shard-timeout (KEYS
// over a large keyspace, a synchronous FLUSHALL) is legitimate, not a stall:
// it runs over dedicated connections, which the watchdog does not watch, so
// it gets its reply and the shared connections, with every other client's
// requests, are not dropped. A busy shard looks exactly like a stopped one
// from outside, so SIGSTOP stands in for the long command.
func TestIntegrationShardBusyWithLongCommand(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cfg := proxy.DefaultConfig()
	cfg.ShardTimeout = timeout
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	ctx := t.Context()
	cl := c.Client()
	want := []string{keyOn(t, c, "busy:", 0), keyOn(t, c, "busy:", 1)}
	slices.Sort(want)
	for _, k := range want {
		if err := cl.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	busy := func(run func() error) error {
		t.Helper()
		if err := c.Shards[0].Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { got <- run() }()
		time.Sleep(4 * timeout)
		c.Shards[0].Signal(syscall.SIGCONT)
		return <-got
	}

	var keys []string
	err := busy(func() (err error) {
		keys, err = cl.Keys(ctx, "busy:*").Result()
		return err
	})
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, want) {
		t.Errorf("KEYS while a shard is busy = %q, %v, want %q", keys, err, want)
	}
	if err := busy(func() error { return cl.FlushAll(ctx).Err() }); err != nil {
		t.Errorf("FLUSHALL while a shard is busy: %v", err)
	}
	if n, err := cl.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after FLUSHALL = %d, %v", n, err)
	}
	if info := cl.Info(ctx, "proxy").Val(); strings.Count(info, "reconnects=0") != 2 {
		t.Errorf("a shared connection was dropped:\n%s", info)
	}
}
