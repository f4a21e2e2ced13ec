package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

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
	var sentinels []string
	for _, s := range ss {
		sentinels = append(sentinels, s.Addr())
	}
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
