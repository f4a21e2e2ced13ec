package proxy_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
)

// TestIntegrationPanic checks that a panic while serving one client ends
// that client alone: the proxy goes on serving the others, logs the panic
// with its stack, counts it in INFO, and leaves no lock held (the barrier
// still closes, and a subscriber's connections to the shards are freed).
// A test hook (Config.testHook) panics where the proxy's own code could:
// planning a command, in a blocking command's step outside the barrier's
// gate, in a subscriber's pub/sub loop and in its pump; and in a shared
// shard connection's reader, where the panic ends that connection.
func TestIntegrationPanic(t *testing.T) {
	var armed atomic.Value // where the hook panics next: "outside gate", "pump" or "shard reply"
	armed.Store("")
	cfg := proxy.DefaultConfig()
	proxy.SetTestHook(&cfg, func(where string, args [][]byte) {
		if where == "plan" && len(args) == 2 && string(args[1]) == "boom" {
			panic("test: a command that panics")
		}
		if where != "plan" && armed.CompareAndSwap(where, "") {
			panic("test: a panic in " + where)
		}
	})
	core, logs := observer.New(zap.ErrorLevel)
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Config: &cfg, Log: zap.New(core)})
	ctx := t.Context()
	other := c.Client() // a client that must not notice
	if err := other.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	panics := 0
	survived := func(t *testing.T) {
		t.Helper()
		panics++
		if v, err := other.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("another client after the panic: GET = %q, %v", v, err)
		}
		barrierCloses(t, c, "after the panic (a lock left held?)")
		info := other.Info(ctx, "proxy").Val()
		if want := "client_panics:" + string(rune('0'+panics)); !strings.Contains(info, want) {
			t.Errorf("INFO proxy does not say %s:\n%s", want, info)
		}
		if n := logs.FilterMessage("panic while serving a client, closing its connection").Len(); n != panics {
			t.Errorf("%d panics logged, want %d", n, panics)
		}
	}
	subscribers := func(t *testing.T, want int64) {
		t.Helper()
		for i := 0; ; i++ {
			got := other.PubSubNumSub(ctx, "ch").Val()["ch"]
			if got == want {
				return
			}
			if i == 200 {
				t.Fatalf("PUBSUB NUMSUB ch = %d, want %d", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	subscribed := func(t *testing.T) *rawConn {
		t.Helper()
		rc := dialRaw(t, c.Addr)
		if got := rc.do("SUBSCRIBE", "ch"); !strings.Contains(got, "subscribe") {
			t.Fatalf("SUBSCRIBE = %s", got)
		}
		subscribers(t, 1)
		return rc
	}

	t.Run("planning a command", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.write(encode("GET", "boom") + encode("SET", "a", "1"))
		rc.expectClosed(5 * time.Second)
		survived(t)
		if n := other.Exists(ctx, "a").Val(); n != 0 {
			t.Errorf("the command after the one that panicked ran")
		}
		entry := logs.FilterMessage("panic while serving a client, closing its connection").All()[0]
		if st, _ := entry.ContextMap()["stack"].(string); !strings.Contains(st, "proxy.(*session).plan") {
			t.Errorf("the log has no stack of the panic: %v", entry.ContextMap())
		}
	})

	t.Run("in a blocking command outside the barrier's gate", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		armed.Store("outside gate")
		rc.send("BLPOP", "list", "0.01")
		rc.expectClosed(5 * time.Second)
		survived(t)
	})

	t.Run("in a subscriber's pub/sub loop", func(t *testing.T) {
		rc := subscribed(t)
		rc.send("PING", "boom")
		rc.expectClosed(5 * time.Second)
		subscribers(t, 0) // its connection to the home shard was closed
		survived(t)
	})

	t.Run("in a subscriber's pump", func(t *testing.T) {
		rc := subscribed(t)
		armed.Store("pump")
		if err := other.Publish(ctx, "ch", "m").Err(); err != nil {
			t.Fatal(err)
		}
		rc.expectClosed(5 * time.Second)
		subscribers(t, 0)
		survived(t)
	})

	// A shared shard connection serves many clients: a panic there drops
	// that connection, as if the shard had gone, and no client.
	t.Run("reading a shard connection", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		armed.Store("shard reply")
		got := rc.do("GET", "k")
		if !strings.HasPrefix(got, "-ERR shard ") || !strings.Contains(got, "proxy internal error: test: a panic in shard reply") {
			t.Errorf("GET whose reply panicked = %s, want the shard unavailable error", got)
		}
		for i := 0; ; i++ { // the connection is made again
			if got = rc.do("GET", "k"); got == `"v"` {
				break
			}
			if i == 100 {
				t.Fatalf("GET on the same client after the panic = %s", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
		barrierCloses(t, c, "after the panic (a lock left held?)")
		if info := other.Info(ctx, "proxy").Val(); !strings.Contains(info, "shard_connection_panics:1") {
			t.Errorf("INFO proxy does not count the panic:\n%s", info)
		}
		if n := logs.FilterMessage("panic while reading a shard connection, dropping the connection").Len(); n != 1 {
			t.Errorf("%d panics logged, want 1", n)
		}
	})
}
