package proxy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/proxy"
)

const shardPassword = "shard-secret-4f1c"

// passwordShards are redis-server arguments for shards that need AUTH.
var passwordShards = []string{"--requirepass", shardPassword, "--repl-diskless-sync-delay", "0"}

// shardClient reads a password-protected shard directly.
func shardClient(t *testing.T, addr string) *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: addr, Password: shardPassword, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// noSecret fails the test if the shard password shows in the proxy's log or
// in text it gave a client.
func noSecret(t *testing.T, logs *observer.ObservedLogs, texts ...string) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, shardPassword) {
			t.Errorf("the shard password is in a log entry: %s", line)
		}
	}
	for _, s := range texts {
		if strings.Contains(s, shardPassword) {
			t.Errorf("the shard password is in a reply: %s", s)
		}
	}
}

// Every path the proxy takes to a shard authenticates: the multiplexed
// connections (RESP2 and RESP3), the dedicated ones (blocking commands,
// transactions, pub/sub), the snapshot capture, a restore, and a reshard
// onto new shards that need the same password.
func TestIntegrationShardPassword(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	cfg := proxy.DefaultConfig()
	cfg.ShardPassword = shardPassword
	cfg.StateDir = t.TempDir()
	cfg.SnapshotDir = t.TempDir()
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Config: &cfg, ShardArgs: passwordShards, Log: zap.New(core)})
	ctx := t.Context()
	cl := c.Client()

	keys := make([]string, 300)
	pipe := cl.Pipeline()
	for i := range keys {
		keys[i] = fmt.Sprint("auth:", i)
		pipe.Set(ctx, keys[i], i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	vals, err := cl.MGet(ctx, keys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if v != fmt.Sprint(i) {
			t.Fatalf("MGET %s = %v, want %d", keys[i], v, i)
		}
	}
	for _, k := range keys[:30] {
		if got, err := shardClient(t, c.ShardOf(k).Addr()).Get(ctx, k).Result(); err != nil || got == "" {
			t.Errorf("key %s on its shard: %q, %v", k, got, err)
		}
	}

	resp3 := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 3})
	defer resp3.Close()
	if got, err := resp3.Get(ctx, keys[7]).Result(); err != nil || got != "7" {
		t.Errorf("RESP3 GET = %q, %v", got, err)
	}

	cl.RPush(ctx, "auth:list", "x")
	if got, err := cl.BLPop(ctx, time.Second, "auth:list").Result(); err != nil || got[1] != "x" {
		t.Errorf("BLPOP = %v, %v", got, err)
	}
	if _, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "auth:counter")
		p.Incr(ctx, "auth:counter")
		return nil
	}); err != nil {
		t.Errorf("MULTI/EXEC: %v", err)
	}
	sub := cl.Subscribe(ctx, "auth:news")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if err := cl.Publish(ctx, "auth:news", "hi").Err(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.ReceiveMessage(ctx); err != nil || m.Payload != "hi" {
		t.Errorf("message = %v, %v", m, err)
	}

	id, err := cl.Do(ctx, "PROXY", "SNAPSHOT", "auth-test").Text()
	if err != nil {
		t.Fatal(err)
	}
	status := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS")
	if !strings.Contains(status, "state:done") {
		t.Fatalf("snapshot with shard passwords:\n%s", status)
	}
	restored := redistest.Start(t, passwordShards...)
	if err := cl.Do(ctx, "PROXY", "RESTORE", id, restored.Addr()).Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "RESTORE", "STATUS"); !strings.Contains(st, "state:done") {
		t.Errorf("restore onto a shard with a password:\n%s", st)
	}
	if n, err := shardClient(t, restored.Addr()).DBSize(ctx).Result(); err != nil || n < int64(len(keys)) {
		t.Errorf("restored shard holds %d keys (%v), want at least %d", n, err, len(keys))
	}

	targets := redistest.StartN(t, 2, passwordShards...)
	if err := cl.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()).Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitReshard(t, cl, "done", "failed", "aborted"); !strings.Contains(st, "state:done") {
		t.Fatalf("reshard onto shards with passwords:\n%s", st)
	}
	if got, err := cl.Get(ctx, keys[42]).Result(); err != nil || got != "42" {
		t.Errorf("GET after the reshard = %q, %v", got, err)
	}
	onTargets := int64(0)
	for _, s := range targets {
		n, err := shardClient(t, s.Addr()).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		onTargets += n
	}
	if onTargets < int64(len(keys)) {
		t.Errorf("the new shards hold %d keys, want at least %d", onTargets, len(keys))
	}

	info, err := cl.Info(ctx, "everything").Result()
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, logs, info, status)
}

// A wrong shard password, or none where the shards need one, gives clients
// a clear error naming the shard, and never shows the password.
func TestIntegrationShardPasswordWrong(t *testing.T) {
	table := evenTable(t, 1, redistest.StartN(t, 2, passwordShards...))
	for _, tc := range []struct {
		name, password, want string
	}{
		{"wrong", shardPassword + "-not", "refused AUTH: WRONGPASS"},
		{"missing", "", "needs a password (--shard-password): NOAUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			cfg := proxy.DefaultConfig()
			cfg.ShardPassword = tc.password
			addr, stop := serveTable(t, cfg, table, zap.New(core))
			defer stop()
			cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
			defer cl.Close()
			err := cl.Get(t.Context(), "k").Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GET = %v, want an error with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "shard 127.0.0.1:") {
				t.Errorf("error %q does not name the shard", err)
			}
			noSecret(t, logs, err.Error())
			if logs.FilterMessage("shard unreachable, retrying").Len() == 0 {
				t.Errorf("no log entry says the shard cannot be used")
			}
			if tc.password == "" {
				return
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q shows the configured password", err)
			}
			for _, e := range logs.All() {
				if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), tc.password) {
					t.Errorf("the configured password is in a log entry: %s", e.Message)
				}
			}
		})
	}
}
