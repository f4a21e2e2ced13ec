package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/proxy/control"
)

// CLIENT PAUSE through the proxy, as one server gives it (Redis's
// tests/unit/pause.tcl): under WRITE reads are answered and writes held
// until CLIENT UNPAUSE, each client's in order; under ALL everything is
// held until the timeout; a second pause extends the first and makes it
// the stricter; the shards expire nothing meanwhile; a BGSAVE during a
// pause completes, the held writes staying held.
func TestIntegrationClientPause(t *testing.T) {
	cfg := control.Config{SnapshotDir: t.TempDir()}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Control: &cfg, ShardArgs: []string{"--repl-diskless-sync-delay", "0"}})
	ctx := context.Background()
	// held commands may wait longer than go-redis's default 3 s
	patient := func() *redis.Client {
		cl := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 2, ReadTimeout: time.Minute})
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	admin, other := c.Client(), patient()
	other.Set(ctx, "k", "before", 0)

	for _, bad := range [][]any{{"CLIENT", "PAUSE", "x"}, {"CLIENT", "PAUSE", "-1"}, {"CLIENT", "PAUSE", "10", "SOME"}} {
		if err := admin.Do(ctx, bad...).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR") {
			t.Errorf("%v: %v, want an ERR", bad, err)
		}
	}

	// WRITE: reads flow, writes wait for UNPAUSE, in order; the shards
	// expire nothing meanwhile
	for _, s := range c.Shards {
		s.Client().Do(ctx, "SET", "short", "v", "PX", 300)
	}
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	for i, s := range c.Shards {
		if n := s.Client().DBSize(ctx).Val(); n == 0 {
			t.Errorf("shard %d expired a key during the pause", i)
		}
	}
	if v, err := other.Get(ctx, "k").Result(); err != nil || v != "before" {
		t.Fatalf("GET under CLIENT PAUSE WRITE = %q, %v", v, err)
	}
	writer := patient()
	set := proxytest.InBackground(func() error {
		pipe := writer.Pipeline()
		pipe.Set(ctx, "k", "during", 0)
		get := pipe.Get(ctx, "k")
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		if get.Val() != "during" {
			return context.Canceled
		}
		return nil
	})
	proxytest.Held(t, set, "SET under CLIENT PAUSE WRITE", 300*time.Millisecond)
	eval := proxytest.InBackground(func() error { return other.Eval(ctx, "return 1", nil).Err() })
	proxytest.Held(t, eval, "EVAL under CLIENT PAUSE WRITE", 100*time.Millisecond)

	// a snapshot meanwhile: the barrier closes (held writes are outside
	// it), the cut is taken, the writes stay held
	if err := admin.Do(ctx, "BGSAVE").Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS"); !strings.Contains(st, "state:done") {
		t.Fatalf("snapshot during CLIENT PAUSE WRITE: %s", st)
	}
	proxytest.Held(t, set, "SET under CLIENT PAUSE WRITE, after a snapshot", 100*time.Millisecond)

	// the shards are paused again after the snapshot's cut unpaused them
	for i, s := range c.Shards {
		if n := s.Client().DBSize(ctx).Val(); n == 0 {
			t.Errorf("shard %d expired a key during the pause, after the snapshot", i)
		}
	}

	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	proxytest.Released(t, set, "SET then GET after CLIENT UNPAUSE", 10*time.Second)
	proxytest.Released(t, eval, "EVAL after CLIENT UNPAUSE", 10*time.Second)

	// ALL: a read waits for the timeout; WRITE given then ALL is ALL,
	// until the later end
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 800, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 100, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	get := proxytest.InBackground(func() error { return other.Get(ctx, "k").Err() })
	proxytest.Held(t, get, "GET under CLIENT PAUSE ALL", 300*time.Millisecond)
	proxytest.Released(t, get, "GET after CLIENT PAUSE ALL ended", 10*time.Second)
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("GET held %s: the pause ended before the first one's end", took)
	}

	// in a transaction the pause starts once EXEC has run the rest
	tx := admin.TxPipeline()
	tx.Set(ctx, "{t}1", "v", 0)
	tx.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE")
	tx.Set(ctx, "{t}2", "v", 0)
	if _, err := tx.Exec(ctx); err != nil {
		t.Fatalf("MULTI SET CLIENT PAUSE SET EXEC: %v", err)
	}
	if n := other.Exists(ctx, "{t}1", "{t}2").Val(); n != 2 {
		t.Errorf("%d of the transaction's writes done before its pause began, want 2", n)
	}
	held := proxytest.InBackground(func() error { return writer.Set(ctx, "{t}3", "v", 0).Err() })
	proxytest.Held(t, held, "SET after a transaction's CLIENT PAUSE WRITE", 300*time.Millisecond)
	if b := other.Info(ctx, "clients").Val(); !strings.Contains(b, "blocked_clients:1\r\n") {
		t.Errorf("INFO clients with one client held by the pause:\n%s", b)
	}
	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	proxytest.Released(t, held, "SET after CLIENT UNPAUSE", 10*time.Second)

	// INFO stats sums the shards' expired_keys, which a pause holds back
	if st := other.Info(ctx, "stats").Val(); !strings.Contains(st, "expired_keys:") || !strings.Contains(st, "keyspace_hits:") {
		t.Errorf("INFO stats lacks the shards' figures:\n%s", st)
	}
}
