package snapshot

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// BenchmarkJobPause takes snapshots of 3 shards (diskless, no delay) under
// write load from 8 writers that hold the test barrier's read lock per
// write, and reports how long the barrier held them (pause-us, the mean
// over the jobs, and max-pause-us) and the load's throughput. The pause is
// the drain of the writes in flight plus one pipelined INFO round trip to
// every shard in parallel; the proxy's own barrier adds its drain of
// batches in flight, measured on the proxy side.
//
//	REQUIRE_REDIS=1 go test ./snapshot/ -run '^$' -bench JobPause -benchtime 20x
func BenchmarkJobPause(b *testing.B) {
	c := startCluster(b, disklessArgs, disklessArgs, disklessArgs)
	bar := &testBarrier{}
	load := startLoad(b, c, bar, 8)
	redistest.Sleep(200)
	cfg := c.jobConfig(b, bar)
	cfg.Verify = nil
	var pauses []int64
	start, writes := time.Now(), load.total()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := StartJob(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := j.Wait(context.Background()); err != nil {
			b.Fatal(err)
		}
		pauses = append(pauses, j.Status().PauseUS)
		b.StopTimer()
		if err := Delete(cfg.Dir, j.ID()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	elapsed, writes := time.Since(start), load.total()-writes
	load.Stop()
	load.checkErrs(b)
	var sum int64
	for _, p := range pauses {
		sum += p
	}
	b.ReportMetric(float64(sum)/float64(len(pauses)), "pause-us")
	b.ReportMetric(float64(slices.Max(pauses)), "max-pause-us")
	b.ReportMetric(float64(writes)/elapsed.Seconds(), "writes/s")
}
