package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/etcdtest"
	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/sentineltest"
	"github.com/reshard/reshard/proxy"
)

// reshard proxy --shards sentinel:NAME --sentinels ...: the proxy serves
// the primary the sentinels name and persists the name, not the address;
// without --sentinels, or with a name no sentinel knows, it refuses to
// start and persists nothing.
func TestSentinelShards(t *testing.T) {
	primary := redistest.Start(t)
	redistest.StartReplica(t, primary)
	ss := sentineltest.Start(t, "m", primary, 3)
	sentinels := sentineltest.Addrs(ss)
	flags := func(shards string, withSentinels bool) proxyFlags {
		f := proxyFlags{cfg: proxy.DefaultConfig(), shards: shards, stateDir: t.TempDir()}
		if withSentinels {
			f.cfg.Sentinels = sentinels
		}
		return f
	}
	for _, c := range []struct {
		name, shards string
		sentinels    bool
		want         string
	}{
		{"no sentinels", "sentinel:m", false, "sentinel:NAME shards need --sentinels"},
		{"unknown name", "sentinel:nosuch", true, "shard sentinel:nosuch: sentinel master nosuch: 0 of 3 sentinels named a primary"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := flags(c.shards, c.sentinels)
			f.cfg.Listen = "127.0.0.1:0"
			err := serveProxy(context.Background(), f, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("serveProxy = %v, want an error with %q", err, c.want)
			}
			if _, err := os.Stat(filepath.Join(f.stateDir, "topology.json")); !os.IsNotExist(err) {
				t.Errorf("a table was persisted: %v", err)
			}
		})
	}
	f := flags("sentinel:m", true)
	addr, _, stop := startProxy(t, f)
	defer stop()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer cl.Close()
	if err := cl.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := primary.Client().Get(t.Context(), "k").Result(); err != nil || v != "v" {
		t.Fatalf("on the primary: %q, %v", v, err)
	}
	table, err := os.ReadFile(filepath.Join(f.stateDir, "topology.json"))
	if err != nil || !strings.Contains(string(table), `"sentinel:m"`) {
		t.Errorf("topology.json does not name sentinel:m: %s, %v", table, err)
	}
}

// Two proxies of an etcd group serve a sentinel:NAME shard: each follows
// the sentinels itself (their majority and highest epoch, confirmed by
// ROLE), so a SENTINEL FAILOVER under writes through both costs no client
// an error and loses no acknowledged write, and both end on the promoted
// replica.
func TestEtcdSentinelFailover(t *testing.T) {
	etcd := etcdtest.Start(t)
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	plain := redistest.Start(t)
	ss := sentineltest.Start(t, "m", primary, 3)
	sentinels := sentineltest.Addrs(ss)
	bin := proxytest.Build(t)
	flags := []string{"--etcd", etcd.Endpoint(), "--etcd-prefix", "/reshard/" + t.Name(), "--sentinels", strings.Join(sentinels, ",")}
	a := proxytest.StartProcess(t, bin, t.TempDir(), []string{"sentinel:m", plain.Addr()}, flags...)
	b := proxytest.StartProcess(t, bin, t.TempDir(), nil, flags...)
	clients := []*redis.Client{etcdClient(t, a.Addr), etcdClient(t, b.Addr)}

	type write struct {
		key string
		err error
	}
	var mu sync.Mutex
	var writes []write
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range []*proxytest.Process{a, b} {
		cl := redis.NewClient(&redis.Options{Addr: p.Addr, Protocol: 2, DisableIdentity: true, PoolSize: 1,
			MaxRetries: -1, ReadTimeout: 10 * time.Second})
		defer cl.Close()
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("p%d-%d", i, n)
				err := cl.Set(context.Background(), k, k, 0).Err()
				mu.Lock()
				writes = append(writes, write{k, err})
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := ss[0].Client().Failover(t.Context(), "m").Err(); err != nil {
		t.Fatal(err)
	}
	sentineltest.WaitNamed(t, ss, "m", replica.Addr())
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	for i, w := range writes {
		if w.err != nil {
			t.Errorf("SET %s: %v", w.key, w.err)
			continue
		}
		other := clients[(i+1)%2] // read back through either proxy
		if v, err := other.Get(t.Context(), w.key).Result(); err != nil || v != w.key {
			t.Errorf("acknowledged %s reads %q, %v", w.key, v, err)
		}
	}
	for _, cl := range clients {
		info, err := cl.Info(t.Context(), "proxy").Result()
		if err != nil || !strings.Contains(info, "addr=sentinel:m,primary="+replica.Addr()+",status=up") {
			t.Errorf("INFO proxy of %s does not show the promoted replica: %v\n%s", cl.Options().Addr, err, info)
		}
	}
	t.Logf("%d writes through two proxies, all acknowledged and read back", len(writes))
}
