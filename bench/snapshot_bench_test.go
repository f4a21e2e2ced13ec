package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/proxy/control"

	"github.com/reshard/reshard/internal/proxytest"
)

// BenchmarkSnapshotPause takes BGSAVE-style snapshots through the proxy
// (3 shards) while the load generator writes, and reports how long the
// write barrier was held (pause_us) and the load's latency over the run.
func BenchmarkSnapshotPause(b *testing.B) {
	cfg := control.Config{SnapshotDir: b.TempDir()}
	c := proxytest.Start(b, proxytest.Options{Shards: 3, Control: &cfg,
		ShardArgs: []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}})
	ctx := context.Background()
	admin := c.Client()

	load := DefaultConfig()
	load.Addr = c.Addr
	load.ReadRatio = 0.2
	load.Pipeline = 4
	load.Duration = 8 * time.Second
	done := make(chan Result, 1)
	go func() {
		res, err := Run(ctx, load)
		if err != nil {
			b.Error(err)
		}
		done <- res
	}()
	var pauses []int64
	time.Sleep(time.Second)
	for i := 0; i < 3; i++ {
		if err := admin.Do(ctx, "PROXY", "SNAPSHOT").Err(); err != nil {
			b.Fatal(err)
		}
		for {
			st, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "STATUS").Text()
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(st, "state:done") {
				pauses = append(pauses, field(st, "pause_us"))
				break
			}
			if strings.Contains(st, "state:failed") {
				b.Fatalf("snapshot failed: %s", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
	}
	res := <-done
	if res.Errors > 0 {
		b.Fatalf("%d errors during snapshots: %q", res.Errors, res.ErrorSamples)
	}
	var maxPause, sum int64
	for _, p := range pauses {
		sum += p
		maxPause = max(maxPause, p)
	}
	b.ReportMetric(float64(maxPause), "max-pause-µs")
	b.ReportMetric(float64(sum)/float64(len(pauses)), "mean-pause-µs")
	b.ReportMetric(res.OpsPerSec, "ops/s")
	b.ReportMetric(float64(res.Max.Microseconds()), "max-latency-µs")
	fmt.Fprintf(os.Stdout, "\nsnapshots under load: pause_us %v (max %d)\n%s\n", pauses, maxPause, res)
}

// field reads an integer field of INFO-style text.
func field(text, name string) int64 {
	for _, line := range strings.Split(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}
