package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCapture1M captures a shard of 1M keys (DEBUG POPULATE, 16-byte
// values, about 29 MB of RDB) from +PSYNC to the fsynced RDB, and reports
// the throughput next to the time redis-server itself needs to write the
// same RDB with SAVE (redis-save-MB/s), the bound a capture cannot beat.
//
//	REQUIRE_REDIS=1 go test ./snapshot/ -run '^$' -bench Capture1M -benchtime 3x
func BenchmarkCapture1M(b *testing.B) {
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"disk", diskArgs},
		{"diskless", disklessArgs},
	} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			s := startSource(b, mode.args...)
			c := patientClient(b, s)
			populate(b, s, 1000000, 16)
			start := time.Now()
			if err := c.Save(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			save := time.Since(start)
			fi, err := os.Stat(filepath.Join(s.Dir(), "dump.rdb"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int64
			for i := 0; i < b.N; i++ {
				cfg := captureConfig(b, s)
				st, err := Capture(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				res, err := st.StopAt(ctx, st.ForkOffset())
				if err != nil {
					b.Fatal(err)
				}
				bytes += res.RDBSize
				b.StopTimer()
				os.Remove(res.RDBPath)
				os.Remove(res.TailPath)
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
			b.ReportMetric(float64(fi.Size())/1e6/save.Seconds(), "redis-save-MB/s")
			b.ReportMetric(float64(bytes)/float64(b.N)/1e6, "rdb-MB")
		})
	}
}
