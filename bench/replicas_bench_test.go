package bench

import (
	"fmt"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// BenchmarkReadsReplicas is GET throughput through a proxy process over 3
// shards with 0, 1 and 2 replicas each, under --read-from prefer-replica,
// in one run: 20 connections, pipeline 16, 10k keys. On this 2-core
// machine the replicas share the cores with the primaries, the proxy and
// the load generator, so the figure shows the proxy's cost of reading from
// replicas more than the capacity replicas add on hosts of their own.
func BenchmarkReadsReplicas(b *testing.B) {
	const keys = 10000
	bin := proxytest.Build(b)
	for range b.N {
		var ops [3]float64
		for n := range ops {
			b.StopTimer()
			var spec []string
			for _, p := range redistest.StartN(b, 3) {
				entry := p.Addr()
				for range n {
					entry += "+" + redistest.StartReplica(b, p).Addr()
				}
				spec = append(spec, entry)
			}
			proc := proxytest.StartProcess(b, bin, b.TempDir(), spec, "--read-from", "prefer-replica")
			if err := preload(b.Context(), proc.Addr, keys); err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Addr = proc.Addr
			cfg.Conns = 20
			cfg.Pipeline = 16
			cfg.Keyspace = keys
			cfg.KeyPrefix = "pre:"
			cfg.ReadRatio = 1
			cfg.Duration = benchDuration
			b.StartTimer()
			res, err := Run(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			if res.Errors > 0 {
				b.Fatalf("%d replicas per shard: %d errors", n, res.Errors)
			}
			ops[n] = res.OpsPerSec
			proc.Kill()
		}
		b.ReportMetric(ops[0], "none-ops/s")
		b.ReportMetric(ops[1], "one-ops/s")
		b.ReportMetric(ops[2], "two-ops/s")
		b.ReportMetric(0, "ns/op")
		fmt.Printf("\nGETs through the proxy, --read-from prefer-replica, 20 connections, pipeline 16: %.0f ops/s with no replica, %.0f with 1 per shard, %.0f with 2\n",
			ops[0], ops[1], ops[2])
	}
}
