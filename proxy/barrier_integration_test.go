package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
)

// busyScript keeps a shard busy for about ms milliseconds, as a command in
// flight would.
const busyScript = "local t = redis.call('TIME'); local start = t[1]*1000 + t[2]/1000; " +
	"repeat t = redis.call('TIME') until t[1]*1000 + t[2]/1000 - start >= tonumber(ARGV[1]); return 1"

func TestIntegrationBarrier(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()

	t.Run("new commands wait, then run in order", func(t *testing.T) {
		resume, err := c.Proxy.Pause(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rc := dialRaw(t, c.Addr)
		rc.send("SET", "{b}k", "1")
		rc.send("INCR", "{b}k")
		time.Sleep(200 * time.Millisecond)
		shard := c.ShardOf("{b}k").Client()
		if n := shard.Exists(ctx, "{b}k").Val(); n != 0 {
			t.Fatal("a command ran while the barrier was closed")
		}
		resume()
		if got := render(rc.read()); got != "+OK" {
			t.Errorf("SET = %s", got)
		}
		if got := render(rc.read()); got != ":2" {
			t.Errorf("INCR = %s", got)
		}
	})

	t.Run("in-flight commands drain first", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("EVAL", busyScript, "1", "{busy}k", "300")
		time.Sleep(50 * time.Millisecond) // the script is running on its shard
		start := time.Now()
		resume, err := c.Proxy.Pause(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waited := time.Since(start)
		resume()
		if waited < 150*time.Millisecond {
			t.Errorf("Pause returned after %s, before the in-flight script finished", waited)
		}
		if got := render(rc.read()); got != ":1" {
			t.Errorf("EVAL = %s", got)
		}
	})

	t.Run("a blocked client does not hold it", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("BLPOP", "{never}q", "0")
		time.Sleep(100 * time.Millisecond)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resume, err := c.Proxy.Pause(pctx)
		if err != nil {
			t.Fatalf("Pause with a client blocked in BLPOP: %v", err)
		}
		resume()
	})

	t.Run("timeout leaves the proxy serving", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		rc.send("EVAL", busyScript, "1", "{slow}k", "500")
		time.Sleep(50 * time.Millisecond)
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := c.Proxy.Pause(pctx); err == nil {
			t.Fatal("Pause returned no error although the drain outlasted its context")
		}
		rc.read()
		if got := dialRaw(t, c.Addr).do("PING"); got != "+PONG" {
			t.Errorf("PING after a timed-out Pause = %s", got)
		}
	})
}
