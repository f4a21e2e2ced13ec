package proxy_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
)

// A client that stops reading holds nothing but its own connection: the
// write barrier of a snapshot or a cutover still closes, and every other
// client is still served. Whatever the proxy owes such a client waits in
// its buffers, or in a write of the client's own goroutine, never in a
// write made while the barrier's gate is held, which the barrier would
// wait for until the client reads.
func TestIntegrationBarrierStuckReader(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := t.Context()
	big := strings.Repeat("v", 1<<20)
	if err := c.Client().Set(ctx, "{s}big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// 16 MB of replies: more than the proxy's send buffer (4 MB at most
	// here) and the stuck client's receive buffer hold together.
	bigReplies := strings.Repeat(encode("GET", "{s}big"), 16)

	// barrierClosesServed checks that the barrier closes while stuck has not
	// read, and that another client is served.
	barrierClosesServed := func(t *testing.T) {
		t.Helper()
		barrierCloses(t, c, "while a client does not read")
		if got := dialRaw(t, c.Addr).do("PING"); got != "+PONG" {
			t.Errorf("PING from another client = %s", got)
		}
	}

	for _, tc := range []struct {
		name string
		last string // sent after the replies the client does not read
	}{
		{"QUIT", encode("QUIT")},
		{"SUBSCRIBE", encode("SUBSCRIBE", "ch")},
		{"MONITOR", encode("MONITOR")},
		{"FLUSHDB", encode("FLUSHDB")},
	} {
		t.Run("replies unread, then "+tc.name, func(t *testing.T) {
			if tc.name == "FLUSHDB" {
				defer c.Client().Set(ctx, "{s}big", big, 0)
			}
			stuck := dialStuck(t, c.Addr)
			stuck.write(bigReplies + tc.last)
			time.Sleep(300 * time.Millisecond) // the proxy writes until the buffers fill
			barrierClosesServed(t)
		})
	}

	monitor := func(t *testing.T) *rawConn {
		m := dialStuck(t, c.Addr)
		if got := m.do("MONITOR"); got != "+OK" {
			t.Fatalf("MONITOR = %s", got)
		}
		// 16 MB of monitor lines the monitor does not read
		pipe := c.Client().Pipeline()
		for range 16 {
			pipe.Set(ctx, "{s}line", big, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("clients stalled behind a monitor that does not read: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
		return m
	}
	t.Run("monitor unread, then RESET", func(t *testing.T) {
		monitor(t).send("RESET")
		time.Sleep(100 * time.Millisecond)
		barrierClosesServed(t)
	})
	t.Run("monitor unread, then PING", func(t *testing.T) {
		monitor(t).send("PING")
		time.Sleep(100 * time.Millisecond)
		barrierClosesServed(t)
	})
}

// dialStuck connects with a small receive buffer, so that what the proxy
// writes and the client does not read fills the connection quickly.
func dialStuck(t *testing.T, addr string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	if err := c.nc.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	return c
}
