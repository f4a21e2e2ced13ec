package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"
)

// TestRestoreToCluster: `reshard restore --to-cluster` loads an RDB into a
// real 3-master Redis Cluster, each key on the master that owns its slot,
// readable through a cluster client without a redirect; strings with and
// without a TTL, a hash, a list and a big key chunked under its slot. A
// standalone node given as a cluster, and a cluster node given with --to,
// are refused before anything is written.
func TestRestoreToCluster(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	sc := src.Client()
	const n = 3000
	pipe := sc.Pipeline()
	for i := range n {
		pipe.Set(ctx, fmt.Sprint("k:", i), i, 0)
	}
	pipe.Set(ctx, "ttl:1", "v", time.Hour)
	pipe.HSet(ctx, "h:1", "a", "1", "b", "2")
	pipe.RPush(ctx, "l:1", "x", "y", "z")
	for i := range 2000 {
		pipe.SAdd(ctx, "big:set", fmt.Sprint("member-", i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rdbFile := savedRDB(t, src)
	const total = n + 4

	nodes := redistest.StartCluster(t, 3)
	if _, err := restoreCLI("--from", rdbFile, "--to", nodes[0].Addr()+","+nodes[1].Addr()); err == nil || !strings.Contains(err.Error(), "--to-cluster") {
		t.Errorf("a cluster node given with --to: %v, want a refusal pointing to --to-cluster", err)
	}
	if _, err := restoreCLI("--from", rdbFile, "--to-cluster", src.Addr()); err == nil {
		t.Error("a standalone server given as a cluster was accepted")
	}
	out, err := restoreCLI("--from", rdbFile, "--to-cluster", nodes[2].Addr(), "--big-key-bytes", "4kb", "--verify")
	if err != nil {
		t.Fatalf("restore --to-cluster: %v\n%s", err, out)
	}
	t.Log(out)

	table := clusterTable(t, nodes[0].Addr())
	var sum int64
	for _, node := range nodes {
		keys, err := node.Client().Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		sum += int64(len(keys))
		for _, k := range keys {
			if owner := table.Addr(table.ShardOf([]byte(k))); owner != node.Addr() {
				t.Errorf("key %q on %s, its slot is %s's", k, node.Addr(), owner)
			}
		}
	}
	if sum != total {
		t.Errorf("the cluster holds %d keys, want %d", sum, total)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr()}, Protocol: 2, DisableIdentity: true, MaxRedirects: -1})
	defer cc.Close()
	if v, err := cc.Get(ctx, "k:1234").Result(); err != nil || v != "1234" {
		t.Errorf("GET k:1234 through a cluster client = %q, %v", v, err)
	}
	if ttl := cc.TTL(ctx, "ttl:1").Val(); ttl < 59*time.Minute {
		t.Errorf("TTL ttl:1 = %s", ttl)
	}
	if c := cc.SCard(ctx, "big:set").Val(); c != 2000 {
		t.Errorf("SCARD big:set = %d, want 2000", c)
	}
	if v := cc.LRange(ctx, "l:1", 0, -1).Val(); strings.Join(v, "") != "xyz" {
		t.Errorf("LRANGE l:1 = %v", v)
	}
}

// clusterTable is the slot map of the cluster node belongs to, as a table.
func clusterTable(t *testing.T, node string) *router.Table {
	t.Helper()
	shards, err := migrate.ClusterTargets(context.Background(), migrate.DefaultRestoreConfig(), node)
	if err != nil {
		t.Fatal(err)
	}
	table, err := router.NewTable(1, shards)
	if err != nil {
		t.Fatal(err)
	}
	return table
}
