package proxy_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
)

// TestIntegrationShutdown checks Shutdown's drain: the listener closes at
// once; a pipeline in flight gets every reply before its connection closes;
// idle, blocked, subscribed and monitoring clients are closed; the shard
// connections are closed; Shutdown returns nil.
func TestIntegrationShutdown(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := t.Context()

	idle := dialIdle(t, c.Addr)
	sub := dialRaw(t, c.Addr)
	sub.send("SUBSCRIBE", "ch")
	if got := render(sub.read()); !strings.Contains(got, "subscribe") {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	mon := dialRaw(t, c.Addr)
	if got := mon.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	blocked := dialRaw(t, c.Addr)
	blocked.send("BLPOP", "{never}q", "0")
	busy := dialRaw(t, c.Addr)
	// one pipeline, one batch: it is in flight while the script runs
	busy.write(encode("SET", "{s}k", "1") + encode("EVAL", busyScript, "1", "{s}k", "400") + encode("GET", "{s}k"))
	time.Sleep(100 * time.Millisecond) // BLPOP blocks, the script runs

	done := make(chan error, 1)
	go func() { done <- c.Proxy.Shutdown(ctx) }()

	refused := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		nc, err := net.DialTimeout("tcp", c.Addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		nc.Close()
	}
	if !refused {
		t.Error("new connections still accepted 2 s after Shutdown started")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a pipeline was in flight", err)
	default:
	}
	for _, want := range []string{"+OK", ":1", `"1"`} {
		if got := render(busy.read()); got != want {
			t.Errorf("in-flight pipeline's reply = %s, want %s", got, want)
		}
	}
	busy.expectClosed(2 * time.Second)
	idle.expectClosed(2 * time.Second)
	blocked.expectClosed(2 * time.Second)
	sub.expectClosed(2 * time.Second)
	closedAfterData(t, mon, 2*time.Second) // it may see the busy pipeline's lines first

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return 5 s after its clients were closed")
	}
	noProxyConns(t, c)
}

// TestIntegrationShutdownBound checks that a Shutdown whose context ends
// before a pipeline in flight is answered returns the context's error with
// every connection closed, as Close leaves them.
func TestIntegrationShutdownBound(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	idle := dialIdle(t, c.Addr)
	busy := dialRaw(t, c.Addr)
	busy.send("EVAL", busyScript, "1", "{s}k", "1000")
	time.Sleep(100 * time.Millisecond) // the script runs

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Proxy.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
	}
	if took := time.Since(start); took > 700*time.Millisecond {
		t.Errorf("Shutdown took %s with a 200 ms context", took)
	}
	busy.expectClosed(2 * time.Second)
	idle.expectClosed(2 * time.Second)
	if nc, err := net.DialTimeout("tcp", c.Addr, time.Second); err == nil {
		nc.Close()
		t.Error("a new connection was accepted after Shutdown")
	}
	time.Sleep(time.Second) // the script ends: the shard answers CLIENT LIST again
	noProxyConns(t, c)
}

// dialIdle returns a client that has been answered and sends no more.
func dialIdle(t *testing.T, addr string) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr)
	if got := rc.do("PING"); got != "+PONG" {
		t.Fatalf("PING = %s", got)
	}
	return rc
}

// closedAfterData reads whatever comes until the connection closes, within
// limit.
func closedAfterData(t *testing.T, rc *rawConn, limit time.Duration) {
	t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 4096)
	for {
		if _, err := rc.br.Read(buf); err != nil {
			if !isClosed(err) {
				t.Errorf("expected the connection to be closed within %s, got %v", limit, err)
			}
			return
		}
	}
}

// noProxyConns checks that the shards see no connection of the proxy left:
// only the one asking.
func noProxyConns(t *testing.T, c *proxytest.Cluster) {
	t.Helper()
	for _, sh := range c.Shards {
		cl := sh.Client()
		var list string
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			list = cl.ClientList(t.Context()).Val()
			if strings.Count(strings.TrimSpace(list), "\n") == 0 {
				break
			}
		}
		if n := strings.Count(strings.TrimSpace(list), "\n") + 1; n != 1 {
			t.Errorf("shard %s still has %d clients, want only the test's:\n%s", sh.Addr(), n, list)
		}
	}
}
