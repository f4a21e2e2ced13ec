package proxy_test

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// A subscriber that does not read its messages is disconnected once more
// than the pub/sub output buffer limit waits for it, as Redis disconnects it
// at client-output-buffer-limit pubsub; the proxy does not hold more for it,
// and other subscribers and publishers go on.
func TestIntegrationSlowSubscriberLimit(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.MaxPubsubOutputBuffer = 1 << 20
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	ctx := t.Context()
	slow := dialStuck(t, c.Addr)
	slow.send("SUBSCRIBE", "feed")
	reader := dialRaw(t, c.Addr)
	if got := reader.do("SUBSCRIBE", "feed"); got != `["subscribe", "feed", :1]` {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	// 20 MB: far more than the limit and the sockets' buffers, far less
	// than the shard's own limit for the proxy's subscription connection
	// (32 MB), so only the proxy's limit can drop the slow subscriber.
	msg := strings.Repeat("m", 100<<10)
	pub := c.Client()
	for range 200 {
		if err := pub.Publish(ctx, "feed", msg).Err(); err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
		// the other subscriber reads each message before the next
		if got := render(reader.read()); !strings.HasPrefix(got, `["message", "feed", "mmm`) {
			t.Fatalf("reading subscriber got %.60s", got)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		list := pub.ClientList(ctx).Val()
		if n := strings.Count(list, "flags=P"); n == 1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d subscribers left 5 s after 20 MB were published to one that does not read, want 1:\n%s", n, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The slow subscriber gets what was written before the limit, then
	// the connection ends.
	slow.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, slow.br); err != nil {
		t.Errorf("the slow subscriber's connection did not end cleanly: %v", err)
	}
	if n := pub.Publish(ctx, "feed", "after").Val(); n != 1 {
		t.Errorf("PUBLISH after the disconnection reached %d subscribers, want 1", n)
	}
	if n := gatherMetric(t, c.Proxy.Collector(), "reshard_pubsub_clients_dropped_total"); n != 1 {
		t.Errorf("reshard_pubsub_clients_dropped_total = %v, want 1", n)
	}
}

// gatherMetric is the value of the one sample of the metric name that c
// gives (a counter or a gauge).
func gatherMetric(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name || len(f.GetMetric()) != 1 {
			continue
		}
		m := f.GetMetric()[0]
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no single sample of %s", name)
	return 0
}

// A subscriber that has had more than the soft limit waiting for it for
// longer than the soft limit's time is disconnected when the next message
// comes, as Redis does; before that time it stays.
func TestIntegrationSlowSubscriberSoftLimit(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.MaxPubsubOutputBuffer = 64 << 20
	cfg.PubsubOutputBufferSoft = 1 << 20
	cfg.PubsubOutputBufferSoftTime = 2 * time.Second
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	ctx := t.Context()
	slow := dialStuck(t, c.Addr)
	if got := slow.do("SUBSCRIBE", "feed"); got != `["subscribe", "feed", :1]` {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	pub := c.Client()
	subscribers := func() int { return strings.Count(pub.ClientList(ctx).Val(), "flags=P") }
	msg := strings.Repeat("m", 100<<10)
	start := time.Now()
	// 16 MB: over the soft limit with what the sockets hold (8 MB once
	// left 1024380 bytes queued, the loopback buffers having taken the
	// rest under the full suite's load), under the 64 MB hard limit
	for range 160 {
		if err := pub.Publish(ctx, "feed", msg).Err(); err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
	}
	if omem := clientField(t, pub.ClientList(ctx).Val(), "flags=P", "omem"); omem <= 1<<20 {
		t.Fatalf("omem = %d, want over the soft limit", omem)
	}
	if n := subscribers(); n != 1 && time.Since(start) < cfg.PubsubOutputBufferSoftTime {
		t.Fatalf("the subscriber was disconnected before the soft limit's time (%d subscribers)", n)
	}
	// The queue went over the soft limit during the loop, so it has been
	// over it for longer than the time once this sleep ends.
	time.Sleep(cfg.PubsubOutputBufferSoftTime + 100*time.Millisecond)
	if n := subscribers(); n != 1 {
		t.Fatalf("the subscriber was disconnected with nothing more published (%d subscribers); Redis checks as it queues", n)
	}
	pub.Publish(ctx, "feed", "one more")
	deadline := time.Now().Add(5 * time.Second)
	for subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber was not disconnected past the soft limit's time")
		}
		time.Sleep(50 * time.Millisecond)
	}
	slow.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, slow.br); err != nil {
		t.Errorf("the slow subscriber's connection did not end cleanly: %v", err)
	}
}

// A table swap does not wait for a subscriber that does not read: its
// connections move to the new shards at once, and once it reads it gets
// every message, those published after the swap included.
func TestIntegrationSlowSubscriberSwap(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := t.Context()
	slow := dialStuck(t, c.Addr)
	if got := slow.do("SUBSCRIBE", "feed"); got != `["subscribe", "feed", :1]` {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	pub := c.Client()
	msg := strings.Repeat("m", 64<<10)
	const n = 256 // 16 MB: more than the sockets hold, less than the limit
	for i := range n {
		if err := pub.Publish(ctx, "feed", fmt.Sprint(i, msg)).Err(); err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
	}
	// what waits for it shows in CLIENT LIST, as Redis shows it
	if omem := clientField(t, pub.ClientList(ctx).Val(), "flags=P", "omem"); omem < 1<<20 {
		t.Errorf("CLIENT LIST omem of the subscriber that does not read = %d, want more than 1 MB", omem)
	}
	_, took := swapTimed(t, c, redistest.StartN(t, 2), nil)
	if took > 500*time.Millisecond {
		t.Errorf("SwapTable took %s with a subscriber that does not read", took)
	}
	if got := pub.Publish(ctx, "feed", "after").Val(); got != 1 {
		t.Errorf("PUBLISH after the swap reached %d subscribers, want 1", got)
	}
	for i := range n {
		got := render(slow.read())
		if want := fmt.Sprintf(`["message", "feed", "%d`, i); !strings.HasPrefix(got, want) {
			t.Fatalf("message %d = %.40s, want %s...", i, got, want)
		}
	}
	if got := render(slow.read()); got != `["message", "feed", "after"]` {
		t.Errorf("message after the swap = %s", got)
	}
}

// Messages an old shard sent before the swap, still on their way through
// the subscription connection when the table changes, reach the client:
// the connection is closed only once its pump has read them all.
func TestIntegrationSwapTableMessagesInFlight(t *testing.T) {
	c, slowPump := startSlowPump(t, 2*time.Millisecond)
	ctx := t.Context()
	sub := dialRaw(t, c.Addr)
	if got := sub.do("SUBSCRIBE", "feed"); got != `["subscribe", "feed", :1]` {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	slowPump.Store(true)
	pub := c.Client()
	const n = 200 // the pump takes 0.4 s to read them
	for i := range n {
		if err := pub.Publish(ctx, "feed", fmt.Sprint(i)).Err(); err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
	}
	swapTo(t, c, redistest.StartN(t, 2))
	slowPump.Store(false)
	pub.Publish(ctx, "feed", "after")
	for i := range n {
		if got, want := render(sub.read()), fmt.Sprintf(`["message", "feed", "%d"]`, i); got != want {
			t.Fatalf("message %d = %s, want %s", i, got, want)
		}
	}
	if got := render(sub.read()); got != `["message", "feed", "after"]` {
		t.Errorf("message after the swap = %s", got)
	}
}

// A subscription sent down just before the swap, whose confirmation has
// not come back yet, moves too.
func TestIntegrationSwapTableSubscriptionInFlight(t *testing.T) {
	c, slowPump := startSlowPump(t, 200*time.Millisecond)
	sub := dialRaw(t, c.Addr)
	if got := sub.do("SUBSCRIBE", "a"); got != `["subscribe", "a", :1]` {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	slowPump.Store(true)
	sub.send("SUBSCRIBE", "b")
	time.Sleep(50 * time.Millisecond) // sent on; its confirmation is held up
	swapTo(t, c, redistest.StartN(t, 2))
	slowPump.Store(false)
	if got := render(sub.read()); got != `["subscribe", "b", :2]` {
		t.Fatalf("SUBSCRIBE b = %s", got)
	}
	if n := c.Client().Publish(t.Context(), "b", "after").Val(); n != 1 {
		t.Errorf("PUBLISH to b after the swap reached %d subscribers, want 1", n)
	}
}

// clientField returns a numeric field of the CLIENT LIST line that
// contains match.
func clientField(t *testing.T, list, match, field string) int {
	t.Helper()
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, match) {
			continue
		}
		_, vals := clientFields(t, line)
		v, ok := vals[field]
		if !ok {
			t.Fatalf("CLIENT LIST line without %s: %s", field, line)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CLIENT LIST %s=%q", field, v)
		}
		return n
	}
	t.Fatalf("no CLIENT LIST line with %s:\n%s", match, list)
	return 0
}

// startSlowPump starts a proxy over two shards whose subscription pumps,
// while the returned flag is set, take delay over each reply they read.
func startSlowPump(t *testing.T, delay time.Duration) (*proxytest.Cluster, *atomic.Bool) {
	cfg := proxy.DefaultConfig()
	slow := new(atomic.Bool)
	proxy.SetTestHook(&cfg, func(where string, _ [][]byte) {
		if where == "pump" && slow.Load() {
			time.Sleep(delay)
		}
	})
	return proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg}), slow
}
