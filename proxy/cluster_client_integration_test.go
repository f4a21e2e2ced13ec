package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
)

// go-redis's ClusterClient against the proxy, seeded with the proxy alone:
// the topology it discovers, commands, pipelines, hash tags, SCAN on every
// master and read-only mode, and the data where the proxy's table puts it.
// The CLUSTER replies themselves are compared with Redis's in
// cluster_integration_test.go.

// clusterClient is a go-redis cluster client seeded with the proxy only.
// MaxRedirects -1 turns a MOVED or ASK into an error instead of a retry, so
// the tests would see one.
func clusterClient(t *testing.T, c *proxytest.Cluster, readOnly bool) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Addr}, MaxRedirects: -1, ReadOnly: readOnly})
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestIntegrationClusterClient(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	cc := clusterClient(t, c, false)
	ctx := t.Context()
	shards := directClients(c)
	noRedirect := func(what string, err error) {
		t.Helper()
		if err != nil {
			if msg := err.Error(); strings.HasPrefix(msg, "MOVED") || strings.HasPrefix(msg, "ASK") {
				t.Fatalf("%s: redirected: %v", what, err)
			}
			t.Fatalf("%s: %v", what, err)
		}
	}

	t.Run("topology", func(t *testing.T) {
		slots, err := cc.ClusterSlots(ctx).Result()
		noRedirect("CLUSTER SLOTS", err)
		if len(slots) != 1 || slots[0].Start != 0 || slots[0].End != 16383 || len(slots[0].Nodes) != 1 || slots[0].Nodes[0].Addr != c.Addr {
			t.Errorf("CLUSTER SLOTS = %+v, want one range 0-16383 at %s", slots, c.Addr)
		}
		var mu sync.Mutex
		var masters []string
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			masters = append(masters, n.Options().Addr)
			return nil
		})
		noRedirect("ForEachMaster", err)
		if !slices.Equal(masters, []string{c.Addr}) {
			t.Errorf("masters = %q, want [%s]", masters, c.Addr)
		}
	})

	t.Run("set get", func(t *testing.T) {
		for i := 0; i < 1000; i++ {
			k := "cc:" + strconv.Itoa(i)
			noRedirect("SET "+k, cc.Set(ctx, k, "v"+strconv.Itoa(i), 0).Err())
		}
		for i := 0; i < 1000; i++ {
			k := "cc:" + strconv.Itoa(i)
			got, err := cc.Get(ctx, k).Result()
			noRedirect("GET "+k, err)
			if want := "v" + strconv.Itoa(i); got != want {
				t.Errorf("GET %s = %q, want %q", k, got, want)
			}
			// Where the proxy's table says, and only there.
			if v, err := c.ShardOf(k).Client().Get(ctx, k).Result(); err != nil || v != "v"+strconv.Itoa(i) {
				t.Errorf("key %s on its shard: %q, %v", k, v, err)
			}
			if i%50 == 0 {
				checkOnlyOn(t, c, shards, k)
			}
		}
		n, err := cc.DBSize(ctx).Result()
		noRedirect("DBSIZE", err)
		if n != 1000 {
			t.Errorf("DBSIZE through the cluster client = %d, want 1000", n)
		}
	})

	t.Run("pipeline", func(t *testing.T) {
		// ClusterClient pipelines split commands by slot and node; here
		// every slot is at one node.
		var incrs []*redis.IntCmd
		var gets []*redis.StringCmd
		_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := 0; i < 1000; i++ {
				k := "pc:" + strconv.Itoa(i)
				p.Set(ctx, k, i, 0)
				incrs = append(incrs, p.IncrBy(ctx, k, 10))
				gets = append(gets, p.Get(ctx, k))
				p.HSet(ctx, "ph:"+strconv.Itoa(i%37), k, i)
			}
			return nil
		})
		noRedirect("pipeline", err)
		for i := range incrs {
			if incrs[i].Val() != int64(i+10) || gets[i].Val() != strconv.Itoa(i+10) {
				t.Errorf("pipeline %d: INCRBY %d, GET %q", i, incrs[i].Val(), gets[i].Val())
			}
		}
		for i := 0; i < 37; i++ {
			k := "ph:" + strconv.Itoa(i)
			if n, _ := c.ShardOf(k).Client().HLen(ctx, k).Result(); n < 27 {
				t.Errorf("hash %s on its shard has %d fields, want at least 27", k, n)
			}
		}
	})

	t.Run("hash tags", func(t *testing.T) {
		noRedirect("MSET", cc.MSet(ctx, "{user:7}.name", "ann", "{user:7}.mail", "a@x", "{user:7}.n", 1).Err())
		vals, err := cc.MGet(ctx, "{user:7}.name", "{user:7}.mail").Result()
		noRedirect("MGET", err)
		if fmt.Sprint(vals) != "[ann a@x]" {
			t.Errorf("MGET = %v", vals)
		}
		noRedirect("SADD", cc.SAdd(ctx, "{s}a", 1, 2, 3).Err())
		noRedirect("SADD", cc.SAdd(ctx, "{s}b", 3, 4).Err())
		n, err := cc.SUnionStore(ctx, "{s}u", "{s}a", "{s}b").Result()
		noRedirect("SUNIONSTORE", err)
		if n != 4 {
			t.Errorf("SUNIONSTORE = %d, want 4", n)
		}
		noRedirect("RENAME", cc.Rename(ctx, "{user:7}.n", "{user:7}.m").Err())
		noRedirect("RPUSH", cc.RPush(ctx, "{q}in", "a", "b").Err())
		if v, err := cc.LMove(ctx, "{q}in", "{q}out", "LEFT", "RIGHT").Result(); err != nil || v != "a" {
			noRedirect("LMOVE", err)
			t.Errorf("LMOVE = %q", v)
		}
		noRedirect("ZADD", cc.ZAdd(ctx, "{z}1", redis.Z{Score: 1, Member: "m"}).Err())
		noRedirect("ZADD", cc.ZAdd(ctx, "{z}2", redis.Z{Score: 2, Member: "m"}).Err())
		noRedirect("ZUNIONSTORE", cc.ZUnionStore(ctx, "{z}u", &redis.ZStore{Keys: []string{"{z}1", "{z}2"}}).Err())
		if s, err := cc.ZScore(ctx, "{z}u", "m").Result(); err != nil || s != 3 {
			t.Errorf("ZSCORE after ZUNIONSTORE = %v, %v; want 3", s, err)
		}
		sum, err := cc.Eval(ctx, "return redis.call('INCRBY', KEYS[1], ARGV[1]) + redis.call('INCRBY', KEYS[2], ARGV[1])",
			[]string{"{e}a", "{e}b"}, 5).Int64()
		noRedirect("EVAL", err)
		if sum != 10 {
			t.Errorf("EVAL = %d, want 10", sum)
		}
		n, err = cc.Del(ctx, "{user:7}.name", "{user:7}.mail", "{user:7}.m").Result()
		noRedirect("DEL", err)
		if n != 3 {
			t.Errorf("DEL = %d, want 3", n)
		}
		// The data is where the proxy's table puts each tag.
		for _, k := range []string{"{s}u", "{q}out", "{z}u", "{e}a", "{e}b"} {
			checkOnlyOn(t, c, shards, k)
		}
		// A multi-key command across slots fails as in a real cluster.
		err = cc.Do(ctx, "SUNIONSTORE", "{s}x", "{other}y").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Errorf("SUNIONSTORE across slots: %v, want CROSSSLOT", err)
		}
	})

	t.Run("scan per master", func(t *testing.T) {
		// The cluster-mode way to iterate a keyspace: SCAN on every master.
		var mu sync.Mutex
		seen := map[string]int{}
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			it := n.Scan(ctx, 0, "cc:*", 100).Iterator()
			for it.Next(ctx) {
				mu.Lock()
				seen[it.Val()]++
				mu.Unlock()
			}
			return it.Err()
		})
		noRedirect("SCAN", err)
		for i := 0; i < 1000; i++ {
			if k := "cc:" + strconv.Itoa(i); seen[k] == 0 {
				t.Errorf("SCAN through the cluster client missed %s", k)
			}
		}
	})

	t.Run("read only", func(t *testing.T) {
		ro := clusterClient(t, c, true)
		for i := 0; i < 100; i++ {
			k := "cc:" + strconv.Itoa(i)
			v, err := ro.Get(ctx, k).Result()
			noRedirect("GET "+k, err)
			if v != "v"+strconv.Itoa(i) {
				t.Errorf("read-only GET %s = %q", k, v)
			}
		}
	})
}
