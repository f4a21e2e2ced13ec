package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// DEBUG through the proxy gives what one server holding the same keys
// gives: DIGEST (merged from the shards') and DIGEST-VALUE equal a
// reference redis-server's, OBJECT reports the key's encoding from its
// shard, the settings go to every shard, PROTOCOL answers RESP3 types,
// and what acts on a whole server process is refused by name.
func TestIntegrationDebug(t *testing.T) {
	enable := []string{"--enable-debug-command", "local"}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, ShardArgs: enable})
	ref := redistest.Start(t, enable...).Client()
	ctx := t.Context()
	cl := c.Client()
	digest := func(cl *redis.Client) string {
		t.Helper()
		d, err := cl.Do(ctx, "DEBUG", "DIGEST").Text()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if got, want := digest(cl), digest(ref); got != want {
		t.Errorf("empty: DEBUG DIGEST through the proxy %s, one server %s", got, want)
	}
	// 1, 2, then 3 shards holding keys: odd and even counts of non-empty
	// shards merge differently
	for _, n := range []int{1, 2, 40} {
		for _, x := range []*redis.Client{cl, ref} {
			for i := range n {
				x.Set(ctx, fmt.Sprint("k:", i), i, 0)
				x.HSet(ctx, fmt.Sprint("h:", i), "f", i)
			}
			x.Expire(ctx, "k:0", time.Hour)
		}
		if got, want := digest(cl), digest(ref); got != want {
			t.Errorf("%d keys: DEBUG DIGEST through the proxy %s, one server %s", 2*n, got, want)
		}
	}
	for _, args := range [][]any{
		{"DEBUG", "DIGEST-VALUE", "h:3"},
		{"DEBUG", "DIGEST-VALUE", "{h}a", "{h}b"},
		{"PFSELFTEST"},
		{"DEBUG", "SLEEP", "0"},
		{"DEBUG", "SET-ACTIVE-EXPIRE", "1"},
		{"DEBUG", "STRUCTSIZE"},
		{"DEBUG", "HTSTATS-KEY", "h:3"},
	} {
		got, gerr := cl.Do(ctx, args...).Result()
		want, werr := ref.Do(ctx, args...).Result()
		if fmt.Sprint(got, gerr) != fmt.Sprint(want, werr) {
			t.Errorf("%v: through the proxy %v %v, one server %v %v", args, got, gerr, want, werr)
		}
	}
	obj, err := cl.Do(ctx, "DEBUG", "OBJECT", "h:7").Text()
	if err != nil || !strings.Contains(obj, "encoding:listpack") {
		t.Errorf("DEBUG OBJECT h:7 = %q, %v", obj, err)
	}
	if err := cl.Do(ctx, "DEBUG", "DIGEST-VALUE", "k:1", "k:2").Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
		t.Errorf("DIGEST-VALUE over two slots: %v, want CROSSSLOT", err)
	}
	// DEBUG RELOAD: every shard saves and loads its dataset again
	before := digest(cl)
	if err := cl.Do(ctx, "DEBUG", "RELOAD").Err(); err != nil {
		t.Fatalf("DEBUG RELOAD: %v", err)
	}
	if after := digest(cl); after != before {
		t.Errorf("DEBUG DIGEST after DEBUG RELOAD %s, before %s", after, before)
	}
	for i, s := range c.Shards {
		loaded := infoFields(s.Client().Info(ctx, "persistence").Val())["persistence"]["rdb_last_load_keys_loaded"]
		if n := s.Client().DBSize(ctx).Val(); loaded != fmt.Sprint(n) {
			t.Errorf("shard %d: rdb_last_load_keys_loaded %q after DEBUG RELOAD, holds %d keys", i, loaded, n)
		}
	}
	for _, sub := range []string{"POPULATE", "RESTART", "CHANGE-REPL-ID"} {
		err := cl.Do(ctx, "DEBUG", sub).Err()
		if err == nil || !strings.Contains(err.Error(), "DEBUG "+sub+" is not supported by the proxy") {
			t.Errorf("DEBUG %s: %v, want a refusal naming it", sub, err)
		}
	}
	// DEBUG SET-ACTIVE-EXPIRE reached every shard
	if err := cl.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "0").Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Shards {
		s.Client().Set(ctx, "gone", "v", 10*time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	for i, s := range c.Shards {
		if n := s.Client().DBSize(ctx).Val(); n == 0 {
			t.Errorf("shard %d: active expiry still on after DEBUG SET-ACTIVE-EXPIRE 0", i)
		}
	}
	cl.Do(ctx, "DEBUG", "SET-ACTIVE-EXPIRE", "1")

	r3 := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 3})
	defer r3.Close()
	m, err := r3.Do(context.Background(), "DEBUG", "PROTOCOL", "map").Result()
	if _, ok := m.(map[any]any); err != nil || !ok {
		t.Errorf("DEBUG PROTOCOL map over RESP3 = %#v, %v; want a map", m, err)
	}
}
