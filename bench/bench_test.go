package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// benchDuration is how long each whole-system benchmark drives its load.
// The load runs for this long whatever b.N is (`make bench` passes
// -benchtime 1x); ns/op is set to wall time per command over all
// connections, so it is the inverse of ops/s.
const benchDuration = 3 * time.Second

// benchLoad is one load of the whole-system benchmarks.
type benchLoad struct {
	name string
	cfg  Config
}

// benchLoads are the loads every whole-system benchmark runs against addr:
// request/response, and the pipeline depth the design notes measure the
// proxy at.
func benchLoads(addr string) []benchLoad {
	var loads []benchLoad
	for _, pipeline := range []int{1, 16} {
		cfg := DefaultConfig()
		cfg.Addr = addr
		cfg.Pipeline = pipeline
		cfg.Duration = benchDuration
		loads = append(loads, benchLoad{fmt.Sprintf("pipeline=%d", pipeline), cfg})
	}
	return loads
}

// reportResult reports a load's figures as the benchmark's metrics.
func reportResult(b *testing.B, res Result) {
	b.Helper()
	if res.Errors > 0 {
		b.Fatalf("%d errors, e.g. %q", res.Errors, res.ErrorSamples)
	}
	b.ReportMetric(res.OpsPerSec, "ops/s")
	b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(res.P999.Microseconds()), "p99.9-µs")
	if res.OpsPerSec > 0 {
		b.ReportMetric(1e9/res.OpsPerSec, "ns/op")
	}
}

// BenchmarkDirectRedis measures the load generator against one plain
// redis-server: the baseline the proxy is compared with.
func BenchmarkDirectRedis(b *testing.B) {
	s := redistest.Start(b)
	for _, l := range benchLoads(s.Addr()) {
		b.Run(l.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), benchDuration+time.Minute)
			defer cancel()
			var res Result
			for range b.N {
				var err error
				if res, err = Run(ctx, l.cfg); err != nil {
					b.Fatal(err)
				}
			}
			reportResult(b, res)
		})
	}
}
