package proxy_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// swapTo moves the proxy onto fresh shards with the barrier held, as a
// cutover does (without copying data: these tests use keys that are empty).
func swapTo(t *testing.T, c *proxytest.Cluster, shards []*redistest.Server) *router.Table {
	t.Helper()
	table, _ := swapTimed(t, c, shards, nil)
	return table
}

// swapTimed is swapTo that first runs paused, if not nil, with the barrier
// held, and reports how long SwapTable took: all that time every client of
// the proxy waits.
func swapTimed(t *testing.T, c *proxytest.Cluster, shards []*redistest.Server, paused func()) (*router.Table, time.Duration) {
	t.Helper()
	table := evenTable(t, c.Proxy.Table().Epoch()+1, shards)
	prep := c.Proxy.PrepareTable(table)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resume, err := c.Proxy.Pause(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer resume()
	if paused != nil {
		paused()
	}
	start := time.Now()
	c.Proxy.SwapTable(prep)
	return table, time.Since(start)
}

func TestIntegrationSwapTable(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ctx := t.Context()
	cl := c.Client()

	blocked := dialRaw(t, c.Addr)
	blocked.send("BLPOP", "{s}queue", "0")
	timed := dialRaw(t, c.Addr)
	start := time.Now()
	timed.send("BRPOP", "{s}other", "1.5")
	raced := dialRaw(t, c.Addr)
	raced.send("BLPOP", "{s}race", "0")
	time.Sleep(300 * time.Millisecond)

	oldShard := c.ShardOf("{s}race").Client()
	newShards := redistest.StartN(t, 2)
	// An element the old shard hands to the blocked client just as the table
	// changes must reach it, not vanish.
	if err := oldShard.RPush(ctx, "{s}race", "in-flight").Err(); err != nil {
		t.Fatal(err)
	}
	table := swapTo(t, c, newShards)
	if got := render(raced.read()); got != `["{s}race", "in-flight"]` {
		t.Errorf("client blocked during the swap got %s, want the element pushed before it", got)
	}

	// New commands route by the new table.
	if err := cl.Set(ctx, "after", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v := newShards[table.ShardOf([]byte("after"))].Client().Get(ctx, "after").Val(); v != "1" {
		t.Errorf("SET after the swap is not on its new shard (got %q)", v)
	}

	// A client blocked before the swap now waits on the new shard.
	if err := cl.RPush(ctx, "{s}queue", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if got := render(blocked.read()); got != `["{s}queue", "x"]` {
		t.Errorf("blocked client after the swap got %s", got)
	}
	if n := newShards[table.ShardOf([]byte("{s}queue"))].Client().LLen(ctx, "{s}queue").Val(); n != 0 {
		t.Errorf("the element stayed on the new shard: LLEN %d", n)
	}

	// Its timeout still counts from when it was sent.
	if got := render(timed.read()); got != "(nil array)" {
		t.Errorf("BRPOP with a timeout = %s", got)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("BRPOP 1.5 s returned after %s", d)
	}
}

func TestIntegrationSwapTableSubscribers(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := t.Context()
	sub := dialRaw(t, c.Addr)
	subID, _ := strconv.ParseInt(strings.TrimPrefix(sub.do("CLIENT", "ID"), ":"), 10, 64)
	sub.send("SUBSCRIBE", "news")
	sub.send("PSUBSCRIBE", "n*")
	sub.send("SSUBSCRIBE", "{orders}new")
	for i := 0; i < 3; i++ {
		sub.read() // the three confirmations
	}
	newShards := redistest.StartN(t, 3)
	swapTo(t, c, newShards)
	// CLIENT LIST counts each subscription once, moved or not.
	if vals := clientLine(t, c.Client(), subID); vals["sub"] != "1" || vals["psub"] != "1" || vals["ssub"] != "1" {
		t.Errorf("after the swap: sub=%s psub=%s ssub=%s, want 1 1 1", vals["sub"], vals["psub"], vals["ssub"])
	}

	pub := c.Client()
	if n := pub.Publish(ctx, "news", "after-swap").Val(); n != 2 {
		t.Errorf("PUBLISH after the swap reached %d subscriptions, want 2 (channel and pattern)", n)
	}
	if n := pub.SPublish(ctx, "{orders}new", "shard-msg").Val(); n != 1 {
		t.Errorf("SPUBLISH after the swap reached %d, want 1", n)
	}
	want := map[string]bool{
		`["message", "news", "after-swap"]`:        true,
		`["pmessage", "n*", "news", "after-swap"]`: true,
		`["smessage", "{orders}new", "shard-msg"]`: true,
	}
	for i := 0; i < 3; i++ { // not "range want": the loop deletes from it
		got := render(sub.read())
		if !want[got] {
			t.Errorf("subscriber got %s, not one of the expected messages (no resubscribe confirmations may show)", got)
		}
		delete(want, got)
	}
	// The old shards no longer hold the subscriptions.
	for i, s := range c.Shards {
		if n := s.Client().PubSubNumSub(ctx, "news").Val()["news"]; n != 0 {
			t.Errorf("old shard %d still has %d subscriptions to news", i, n)
		}
	}
	if got := sub.do("UNSUBSCRIBE", "news"); got != `["unsubscribe", "news", :1]` {
		t.Errorf("UNSUBSCRIBE after the swap = %s", got)
	}
}

// A WATCH taken before a table swap cannot be honoured after it (the keys
// live elsewhere now): EXEC aborts with a null reply, as for a changed key,
// and writes nothing to the old shard.
func TestIntegrationSwapTableWatch(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	rc := dialRaw(t, c.Addr)
	if got := rc.do("WATCH", "{x}k"); got != "+OK" {
		t.Fatal(got)
	}
	old := c.ShardOf("{x}k").Client()
	swapTo(t, c, redistest.StartN(t, 2))
	for _, st := range []struct {
		args []string
		want string
	}{
		{[]string{"MULTI"}, "+OK"},
		{[]string{"SET", "{x}k", "1"}, "+QUEUED"},
		{[]string{"EXEC"}, "(nil array)"},
		{[]string{"WATCH", "{x}k"}, "+OK"}, // a new WATCH works on the new table
		{[]string{"MULTI"}, "+OK"},
		{[]string{"SET", "{x}k", "2"}, "+QUEUED"},
		{[]string{"EXEC"}, "[+OK]"},
	} {
		if got := rc.do(st.args...); got != st.want {
			t.Errorf("%q = %s, want %s", st.args, got, st.want)
		}
	}
	if n := old.Exists(t.Context(), "{x}k").Val(); n != 0 {
		t.Error("the transaction wrote to the old shard")
	}
}

// A transaction queued before a table swap and executed after it runs on
// the new table: its commands were only queued in the proxy.
func TestIntegrationSwapTableOpenTransaction(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	rc := dialRaw(t, c.Addr)
	rc.do("MULTI")
	rc.do("SET", "{tx}k", "v")
	rc.do("INCR", "{tx}n")
	newShards := redistest.StartN(t, 2)
	table := swapTo(t, c, newShards)
	if got := rc.do("EXEC"); got != "[+OK, :1]" {
		t.Fatalf("EXEC after the swap = %s", got)
	}
	owner := newShards[table.ShardOf([]byte("{tx}k"))].Client()
	if v := owner.Get(t.Context(), "{tx}k").Val(); v != "v" {
		t.Errorf("the transaction's write is not on the new shard (got %q)", v)
	}
	if n := c.ShardOf("{tx}k").Client().Exists(t.Context(), "{tx}k").Val(); n != 0 {
		t.Error("the transaction wrote to the old shard")
	}
}

// A subscriber whose command waits behind the barrier when the table
// changes must not hold the swap up (the barrier, and with it every client
// of the proxy, stays held while SwapTable runs), and must still hear what
// is published after the swap.
func TestIntegrationSwapTableSubscriberBehindBarrier(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := t.Context()
	sub := dialRaw(t, c.Addr)
	sub.send("SUBSCRIBE", "news")
	sub.read()
	_, took := swapTimed(t, c, redistest.StartN(t, 2), func() {
		sub.send("PING", "held") // served once the barrier opens
		time.Sleep(200 * time.Millisecond)
	})
	if took > 500*time.Millisecond {
		t.Errorf("SwapTable took %s with a subscriber's command waiting at the barrier", took)
	}
	if got := render(sub.read()); got != `["pong", "held"]` {
		t.Errorf("subscriber's PING = %s", got)
	}
	if n := c.Client().Publish(ctx, "news", "after-swap").Val(); n != 1 {
		t.Errorf("PUBLISH after the swap reached %d subscribers, want 1", n)
	}
	if got := render(sub.read()); got != `["message", "news", "after-swap"]` {
		t.Errorf("subscriber got %s after the swap", got)
	}
}
