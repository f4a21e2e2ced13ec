package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// BenchmarkProxyVsDirect measures, in one run, the proxy in front of 3 shards
// against one plain redis-server: first with this package's load generator
// (keys spread over all shards), then with redis-benchmark's standard
// `-c 50 -t set,get` (which uses one key, so one shard). Load generator,
// proxy and shards share this machine's cores, as the targets assume.
// Metrics are ratios proxy/direct; the figures go to stdout as a table.
func BenchmarkProxyVsDirect(b *testing.B) {
	direct := redistest.Start(b)
	c := proxytest.Start(b, proxytest.Options{Shards: 3})
	ctx := context.Background()

	for _, l := range benchLoads("") {
		b.Run("loadgen/"+l.name, func(b *testing.B) {
			var cmp Comparison
			for range b.N {
				var err error
				rctx, cancel := context.WithTimeout(ctx, 2*benchDuration+time.Minute)
				cmp, err = Compare(rctx, l.cfg, c.Addr, direct.Addr())
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
			if cmp.Proxy.Errors+cmp.Direct.Errors > 0 {
				b.Fatalf("errors: proxy %d %q, direct %d %q", cmp.Proxy.Errors, cmp.Proxy.ErrorSamples, cmp.Direct.Errors, cmp.Direct.ErrorSamples)
			}
			b.ReportMetric(cmp.Proxy.OpsPerSec, "proxy-ops/s")
			b.ReportMetric(cmp.Direct.OpsPerSec, "direct-ops/s")
			b.ReportMetric(cmp.Ratio, "proxy/direct")
			fmt.Fprintf(os.Stdout, "\nloadgen %s (%d conns, keyspace %d):\n%s\n", l.name, l.cfg.Conns, l.cfg.Keyspace, cmp)
		})
	}

	for _, p := range []string{"1", "16"} {
		b.Run("redis-benchmark/P="+p, func(b *testing.B) {
			var cmp RedisBenchmarkComparison
			for range b.N {
				var err error
				rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				cmp, err = CompareRedisBenchmark(rctx, c.Addr, direct.Addr(), "-c", "50", "-n", "200000", "-t", "set,get", "-P", p)
				cancel()
				if errors.Is(err, ErrNoRedisBenchmark) {
					b.Skip(err)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			ratios := cmp.Ratios()
			b.ReportMetric(ratios["SET"], "SET-proxy/direct")
			b.ReportMetric(ratios["GET"], "GET-proxy/direct")
			fmt.Fprintf(os.Stdout, "\nredis-benchmark -c 50 -n 200000 -t set,get -P %s:\n%s\n", p, cmp)
		})
	}
}
