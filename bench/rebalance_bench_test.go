package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// BenchmarkReshardVsClusterRebalance puts the proxy's live reshard next to
// Redis Cluster's own way of changing shape, in one run on this machine:
// the same keys (pre:0..n-1, 64-byte values) on 3 shards going to 5.
//
//   - Redis Cluster: 3 masters, 2 empty masters joined, then `redis-cli
//     --cluster rebalance --cluster-use-empty-masters`, which moves slots
//     one key batch at a time with MIGRATE (clients meanwhile get MOVED
//     and ASK redirects).
//   - reshard: 3 shards behind a proxy, PROXY RESHARD onto 5 with the
//     even layout; every key is copied (the new layout moves most slots).
//
// Both start on Redis's default configuration, with no client load (the
// copy's cost to clients is BenchmarkReshardCopyLatency's). It reports
// each one's seconds, the keys each moved, and keys moved per second.
//
//	REQUIRE_REDIS=1 go test -run '^$' -bench ReshardVsClusterRebalance -benchtime 1x ./bench/
func BenchmarkReshardVsClusterRebalance(b *testing.B) {
	const keys = 200_000
	if _, err := exec.LookPath("redis-cli"); err != nil {
		b.Skip("redis-cli not installed")
	}
	for range b.N {
		b.StopTimer()
		rebalanceS, moved := clusterRebalance(b, keys)

		c, _ := reshardSetup(b, keys)
		var spec []string
		for _, s := range redistest.StartN(b, 5) {
			spec = append(spec, s.Addr())
		}
		ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
		b.StartTimer()
		start := time.Now()
		phases := make(chan Phase, 16) // Reshard's phases, unread here
		status, err := Reshard(ctx, ReshardOptions{Addr: c.Addr, Targets: spec}, phases)
		reshardS := time.Since(start).Seconds()
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatalf("reshard: %v\n%s", err, status)
		}
		b.ReportMetric(rebalanceS, "rebalance-s")
		b.ReportMetric(float64(moved), "rebalance-keys-moved")
		b.ReportMetric(float64(moved)/rebalanceS, "rebalance-keys/s")
		b.ReportMetric(reshardS, "reshard-s")
		b.ReportMetric(keys/reshardS, "reshard-keys/s")
		b.ReportMetric(0, "ns/op")
		fmt.Printf("\n%d keys, 3 to 5 shards, Redis's default configuration, no client load:\n"+
			"  redis-cli --cluster rebalance  %.2f s, %d keys moved, %.0f keys/s\n"+
			"  reshard (PROXY RESHARD)        %.2f s, %d keys copied, %.0f keys/s (%.1fx the keys per second)\n",
			keys, rebalanceS, moved, float64(moved)/rebalanceS, reshardS, keys, keys/reshardS,
			(keys/reshardS)/(float64(moved)/rebalanceS))
	}
}

// clusterRebalance builds a 3-master cluster holding keys, joins 2 empty
// masters and times redis-cli --cluster rebalance onto them; it returns
// the seconds and how many keys the new masters hold afterwards.
func clusterRebalance(b *testing.B, keys int) (float64, int64) {
	b.Helper()
	ctx := b.Context()
	nodes := redistest.StartCluster(b, 3)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr()}, Protocol: 2, DisableIdentity: true})
	defer cc.Close()
	value := strings.Repeat("v", 64)
	for lo := 0; lo < keys; lo += 1000 {
		pipe := cc.Pipeline()
		for i := lo; i < min(lo+1000, keys); i++ {
			pipe.Set(ctx, "pre:"+strconv.Itoa(i), value, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	added := redistest.StartClusterNodes(b, 2)
	for _, n := range added {
		out, err := exec.CommandContext(ctx, "redis-cli", "--cluster", "add-node", n.Addr(), nodes[0].Addr()).CombinedOutput()
		if err != nil {
			b.Fatalf("redis-cli --cluster add-node %s: %v\n%s", n.Addr(), err, out)
		}
	}
	redistest.WaitClusterOK(b, append(nodes, added...))
	start := time.Now()
	out, err := exec.CommandContext(ctx, "redis-cli", "--cluster", "rebalance", nodes[0].Addr(), "--cluster-use-empty-masters").CombinedOutput()
	took := time.Since(start).Seconds()
	if err != nil {
		b.Fatalf("redis-cli --cluster rebalance: %v\n%s", err, out)
	}
	var moved int64
	for _, n := range added {
		moved += n.Client().DBSize(ctx).Val()
	}
	return took, moved
}
