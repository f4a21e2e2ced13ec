package proxy_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// writerLoad runs writers through the proxy: each writes increasing
// sequence numbers to its own keys (a plain key, and a hash-tagged pair in
// one MSET), pipelined, and remembers the last acknowledged number.
type writerLoad struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	errors atomic.Int64
	first  atomic.Value
	last   []atomic.Int64
}

func startWriters(t *testing.T, c *proxytest.Cluster, n int) *writerLoad {
	t.Helper()
	w := &writerLoad{stop: make(chan struct{}), last: make([]atomic.Int64, n)}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func(i int) {
			defer w.wg.Done()
			cl := c.Client()
			for seq := int64(1); ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				pipe := cl.Pipeline()
				pipe.Set(t.Context(), fmt.Sprintf("w:%d", i), seq, 0)
				pipe.MSet(t.Context(), fmt.Sprintf("{w%d}a", i), seq, fmt.Sprintf("{w%d}b", i), seq)
				pipe.Incr(t.Context(), fmt.Sprintf("w:%d:n", i))
				pipe.MGet(t.Context(), fmt.Sprintf("{w%d}a", i), fmt.Sprintf("{w%d}b", i), fmt.Sprintf("w:%d", i)) // reads too
				if _, err := pipe.Exec(t.Context()); err != nil {
					w.errors.Add(1)
					w.first.CompareAndSwap(nil, err.Error())
					continue
				}
				w.last[i].Store(seq)
			}
		}(i)
	}
	return w
}

func (w *writerLoad) halt() { close(w.stop); w.wg.Wait() }

// debugArgs let tests compare values with DEBUG DIGEST-VALUE (Redis 7
// refuses DEBUG unless enabled).
var debugArgs = []string{"--enable-debug-command", "local", "--repl-diskless-sync-delay", "0"}

func reshardCluster(t *testing.T) (*proxytest.Cluster, control.Config) {
	cfg := control.Config{StateDir: t.TempDir(), SnapshotDir: t.TempDir()}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Control: &cfg, ShardArgs: debugArgs})
	return c, cfg
}

// preloadTypes writes n keys of every type through the proxy, pipelined,
// and returns their names.
func preloadTypes(t *testing.T, cl *redis.Client, n int) []string {
	t.Helper()
	ctx := t.Context()
	keys := make([]string, 0, n)
	pipe := cl.Pipeline()
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("obj:%d", i)
		switch i % 6 {
		case 0:
			pipe.Set(ctx, k, strings.Repeat("v", i%50), 0)
		case 1:
			pipe.HSet(ctx, k, "a", i, "b", "x")
		case 2:
			pipe.RPush(ctx, k, i, "y", "z")
		case 3:
			pipe.SAdd(ctx, k, i, "m", "n")
		case 4:
			pipe.ZAdd(ctx, k, redis.Z{Score: float64(i) / 3, Member: "p"}, redis.Z{Score: -1.5, Member: "q"})
		case 5:
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []string{"f", fmt.Sprint(i)}})
		}
		if i%10 == 0 {
			pipe.Expire(ctx, k, time.Hour)
		}
		keys = append(keys, k)
		if pipe.Len() >= 5000 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return keys
}

func waitReshard(t *testing.T, cl *redis.Client, until ...string) string {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err := cl.Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range until {
			if strings.Contains(st, "state:"+u+"\r\n") {
				return st
			}
		}
	}
	t.Fatalf("reshard never reached %v", until)
	return ""
}

func TestIntegrationReshard(t *testing.T) {
	c, cfg := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	for i := 0; i < 20000; i++ { // data to copy, over every shard
		if err := admin.Set(ctx, fmt.Sprint("pre:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	admin.HSet(ctx, "{h}obj", "f", "v")
	admin.Expire(ctx, "{h}obj", time.Hour)
	objects := preloadTypes(t, admin, 180000) // with pre:* and {h}obj, 200k keys of every type
	load := startWriters(t, c, 50)
	time.Sleep(300 * time.Millisecond)

	targets := redistest.StartN(t, 5, debugArgs...)
	ranges := []string{"0-2999", "3000-3100", "3101-9000", "9001-15000", "15001-16383"}
	// go-redis reconnects silently, so count reconnects at the proxy: no
	// client connection may be opened (or lost and reopened) from here on.
	acceptedBefore := acceptedConns(t, admin)
	args := []any{"PROXY", "RESHARD"}
	var spec []string
	for i, s := range targets {
		spec = append(spec, s.Addr()+"="+ranges[i])
		args = append(args, spec[i])
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "FLUSHALL").Err(); err == nil || !strings.Contains(err.Error(), "reshard") {
		t.Errorf("FLUSHALL during a reshard = %v, want refused", err)
	}
	if err := admin.Do(ctx, "DEBUG", "RELOAD").Err(); err == nil || !strings.Contains(err.Error(), "reshard") {
		t.Errorf("DEBUG RELOAD during a reshard = %v, want refused", err)
	}
	if err := admin.Do(ctx, args...).Err(); err == nil {
		t.Error("a second PROXY RESHARD was accepted while one runs")
	}
	st := waitReshard(t, admin, "done", "failed", "aborted")
	time.Sleep(300 * time.Millisecond) // writes after the cutover
	load.halt()
	if !strings.Contains(st, "state:done") {
		t.Fatalf("reshard did not finish:\n%s", st)
	}
	if n := load.errors.Load(); n != 0 {
		t.Errorf("%d client errors during the reshard, first: %v", n, load.first.Load())
	}
	if after := acceptedConns(t, admin); after != acceptedBefore {
		t.Errorf("the proxy accepted %d client connections during the reshard: clients reconnected", after-acceptedBefore)
	}
	t.Logf("reshard status:\n%s", st)

	shards, _ := router.ParseSpec(strings.Join(spec, ","))
	table, _ := router.NewTable(2, shards)
	newClients := make([]*redis.Client, len(targets))
	for i, s := range targets {
		newClients[i] = s.Client()
	}
	oldClients := make([]*redis.Client, len(c.Shards))
	for i, s := range c.Shards {
		oldClients[i] = s.Client()
	}
	on := func(key string) *redis.Client { return newClients[table.ShardOf([]byte(key))] }
	was := func(key string) *redis.Client { return oldClients[c.Table.ShardOf([]byte(key))] }
	for i := range load.last {
		want := load.last[i].Load()
		for _, k := range []string{fmt.Sprintf("w:%d", i), fmt.Sprintf("{w%d}a", i), fmt.Sprintf("{w%d}b", i)} {
			got, err := on(k).Get(ctx, k).Int64()
			if err != nil || got < want {
				t.Errorf("%s on its new shard = %d (%v), last acknowledged %d", k, got, err, want)
			}
		}
	}
	for _, i := range []int{0, 777, 19999} {
		k := fmt.Sprint("pre:", i)
		if v, err := on(k).Get(ctx, k).Int(); err != nil || v != i {
			t.Errorf("%s on its new shard = %d, %v", k, v, err)
		}
	}
	if ttl := on("{h}obj").TTL(ctx, "{h}obj").Val(); ttl < 59*time.Minute {
		t.Errorf("TTL after the reshard = %s", ttl)
	}
	var total int64
	for i, cl := range newClients {
		for _, k := range cl.Keys(ctx, "*").Val() {
			if table.ShardOf([]byte(k)) != i {
				t.Errorf("key %q on target %d, its slot says %d", k, i, table.ShardOf([]byte(k)))
			}
		}
		total += cl.DBSize(ctx).Val()
	}
	if total < 200001 {
		t.Errorf("targets hold %d keys, fewer than the %d copied", total, 200001)
	}
	// The old shards are left intact: every preloaded value must be the
	// same on its new shard, by Redis's own digest of the value and TTL.
	diff := 0
	for start := 0; start < len(objects); start += 2000 {
		batch := objects[start:min(start+2000, len(objects))]
		oldDigests := make([]*redis.Cmd, len(batch))
		newDigests := make([]*redis.Cmd, len(batch))
		oldTTL := make([]*redis.DurationCmd, len(batch))
		newTTL := make([]*redis.DurationCmd, len(batch))
		oldPipes, newPipes := map[*redis.Client]redis.Pipeliner{}, map[*redis.Client]redis.Pipeliner{}
		for i, k := range batch {
			o, n := was(k), on(k)
			if oldPipes[o] == nil {
				oldPipes[o] = o.Pipeline()
			}
			if newPipes[n] == nil {
				newPipes[n] = n.Pipeline()
			}
			oldDigests[i] = oldPipes[o].Do(ctx, "DEBUG", "DIGEST-VALUE", k)
			newDigests[i] = newPipes[n].Do(ctx, "DEBUG", "DIGEST-VALUE", k)
			oldTTL[i] = oldPipes[o].TTL(ctx, k)
			newTTL[i] = newPipes[n].TTL(ctx, k)
		}
		for _, p := range oldPipes {
			p.Exec(ctx)
		}
		for _, p := range newPipes {
			p.Exec(ctx)
		}
		for i, k := range batch {
			if fmt.Sprint(oldDigests[i].Val()) != fmt.Sprint(newDigests[i].Val()) || (oldTTL[i].Val() > 0) != (newTTL[i].Val() > 0) {
				if diff++; diff <= 5 {
					t.Errorf("%s differs after the reshard: digest %v vs %v, ttl %s vs %s", k,
						oldDigests[i].Val(), newDigests[i].Val(), oldTTL[i].Val(), newTTL[i].Val())
				}
			}
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d preloaded keys differ", diff, len(objects))
	}
	if got := c.Proxy.Table().Epoch(); got != 2 {
		t.Errorf("proxy epoch after the reshard = %d, want 2", got)
	}
	persisted, err := router.Load(cfg.StateDir)
	if err != nil || persisted.Epoch() != 2 || strings.Join(persisted.Addrs(), ",") != strings.Join(table.Addrs(), ",") {
		t.Errorf("persisted table = %v (%v), want the new one", persisted, err)
	}
	// Reads through the proxy now come from the new shards.
	if v, err := admin.Get(ctx, "pre:777").Int(); err != nil || v != 777 {
		t.Errorf("GET through the proxy after the reshard = %d, %v", v, err)
	}
}

func TestIntegrationReshardManualAbort(t *testing.T) {
	c, cfg := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	load := startWriters(t, c, 4)
	targets := redistest.StartN(t, 2)
	if err := admin.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr(), "MANUAL").Err(); err != nil {
		t.Fatal(err)
	}
	waitReshard(t, admin, "ready", "failed")
	time.Sleep(300 * time.Millisecond)
	if err := admin.Do(ctx, "PROXY", "RESHARD", "ABORT").Err(); err != nil {
		t.Fatal(err)
	}
	st := waitReshard(t, admin, "aborted", "failed", "done")
	load.halt()
	if !strings.Contains(st, "state:aborted") {
		t.Errorf("after ABORT:\n%s", st)
	}
	if n := load.errors.Load(); n != 0 {
		t.Errorf("%d client errors, first: %v", n, load.first.Load())
	}
	if got := c.Proxy.Table().Epoch(); got != 1 {
		t.Errorf("epoch after ABORT = %d, want 1 (the old table)", got)
	}
	if _, err := router.Load(cfg.StateDir); err == nil {
		if tb, _ := router.Load(cfg.StateDir); tb.Epoch() != 1 {
			t.Errorf("persisted epoch after ABORT = %d", tb.Epoch())
		}
	}
	for i := range load.last {
		k := fmt.Sprintf("w:%d", i)
		if got, _ := c.ShardOf(k).Client().Get(ctx, k).Int64(); got != load.last[i].Load() {
			t.Errorf("%s on the old shard = %d, want %d", k, got, load.last[i].Load())
		}
	}
}

// TestIntegrationReshardFaults: ABORT while copying, and a target killed
// while the job catches up, each leave the proxy on the old table with no
// client error and nothing lost.
func TestIntegrationReshardFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, admin *redis.Client, targets []*redistest.Server)
		want string
	}{
		{"abort while copying", func(t *testing.T, admin *redis.Client, _ []*redistest.Server) {
			if err := admin.Do(t.Context(), "PROXY", "RESHARD", "ABORT").Err(); err != nil {
				t.Fatal(err)
			}
		}, "aborted"},
		{"target killed while catching up", func(t *testing.T, admin *redis.Client, targets []*redistest.Server) {
			waitReshard(t, admin, "ready", "failed")
			targets[1].Kill()
		}, "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cfg := reshardCluster(t)
			ctx := t.Context()
			admin := c.Client()
			pipe := admin.Pipeline()
			for i := 0; i < 50000; i++ {
				pipe.Set(ctx, fmt.Sprint("pre:", i), i, 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			load := startWriters(t, c, 8)
			targets := redistest.StartN(t, 3)
			if err := admin.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr(), targets[2].Addr(), "MANUAL").Err(); err != nil {
				t.Fatal(err)
			}
			tc.do(t, admin, targets)
			st := waitReshard(t, admin, "aborted", "failed", "done")
			time.Sleep(200 * time.Millisecond)
			load.halt()
			if !strings.Contains(st, "state:"+tc.want) {
				t.Errorf("state after %s:\n%s", tc.name, st)
			}
			if n := load.errors.Load(); n != 0 {
				t.Errorf("%d client errors, first: %v", n, load.first.Load())
			}
			if got := c.Proxy.Table().Epoch(); got != 1 {
				t.Errorf("epoch = %d, want 1 (the old table)", got)
			}
			if tb, err := router.Load(cfg.StateDir); err == nil && tb.Epoch() != 1 {
				t.Errorf("persisted epoch = %d, want 1", tb.Epoch())
			}
			for i := range load.last {
				k := fmt.Sprintf("w:%d", i)
				if got, _ := admin.Get(ctx, k).Int64(); got < load.last[i].Load() {
					t.Errorf("%s = %d through the proxy, last acknowledged %d", k, got, load.last[i].Load())
				}
			}
			if v, err := admin.Get(ctx, "pre:31337").Int(); err != nil || v != 31337 {
				t.Errorf("pre:31337 = %d, %v", v, err)
			}
		})
	}
}

// acceptedConns reads INFO stats total_connections_received.
func acceptedConns(t *testing.T, cl *redis.Client) int64 {
	t.Helper()
	for _, line := range strings.Split(cl.Info(t.Context(), "stats").Val(), "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("no total_connections_received in INFO")
	return 0
}
