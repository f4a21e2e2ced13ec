package migrate

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// BenchmarkReshard1M: a live reshard of 1M small keys (DEBUG POPULATE,
// a third on each source) from 3 shards to 5 with an uneven layout, with
// two writers going through the stand-in proxy all along. It reports the
// whole job's seconds (start to done), the copy's, and the barrier hold
// at the cutover. Every iteration starts from flushed targets (Flush).
//
// The shards run with Redis's defaults (diskless sync with
// repl-diskless-sync-delay 5, DEBUG enabled for POPULATE): the captures
// lower the delay for their own handshakes, and each source's is checked
// back at 5 afterwards.
func BenchmarkReshard1M(b *testing.B) {
	ctx := context.Background()
	sources := redistest.StartN(b, 3, sourceArgs...)
	targets := redistest.StartN(b, 5, sourceArgs...)
	from := mustTable(b, 1, evenShards(b, sources))
	to := mustTable(b, 2, uneven5(addrsOf(targets)))
	p := newTestProxy(b, from, sources, targets)
	for i, s := range sources {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true, ReadTimeout: time.Minute})
		n := benchKeys / 3
		if i == 0 {
			n += benchKeys % 3
		}
		must(b, c.Do(ctx, "DEBUG", "POPULATE", n, "src"+strconv.Itoa(i)).Err())
		c.Close()
	}
	var total, copying time.Duration
	var pause int64
	for b.Loop() {
		p.route.Store(from)
		w := startTestWriters(b, p, 2)
		cfg := testReshardConfig(b, p, from, to)
		cfg.Flush = true
		start := time.Now()
		j, err := StartReshard(ctx, cfg)
		must(b, err)
		st := waitDone(b, j, 5*time.Minute)
		el := time.Since(start)
		w.Stop()
		if st.State != ReshardDone {
			b.Fatalf("state %s: %v", st.State, st.Err)
		}
		if st.KeysCopied < benchKeys {
			b.Fatalf("%d keys copied, want %d", st.KeysCopied, benchKeys)
		}
		if w.errs.Load() > 0 {
			b.Fatalf("writers saw %d errors: %v", w.errs.Load(), w.first.Load())
		}
		var keys int64
		for _, n := range dbsizes(b, targets) {
			keys += n
		}
		if keys < benchKeys {
			b.Fatalf("targets hold %d keys, want at least %d", keys, benchKeys)
		}
		total += el
		copying += st.Times.CatchingUp.Sub(st.Times.Started)
		pause = max(pause, st.PauseUS)
	}
	for _, s := range sources {
		if v := s.Client().ConfigGet(ctx, "repl-diskless-sync-delay").Val()["repl-diskless-sync-delay"]; v != "5" {
			b.Errorf("source %s: repl-diskless-sync-delay %s after the reshards, want Redis's default 5", s.Addr(), v)
		}
	}
	n := float64(b.N)
	fmt.Printf("\nreshard of %d keys, 3 to 5 shards with Redis's default configuration (repl-diskless-sync yes, repl-diskless-sync-delay 5): %.2f s, copy %.2f s, barrier held at most %.2f ms\n",
		benchKeys, total.Seconds()/n, copying.Seconds()/n, float64(pause)/1000)
	b.ReportMetric(total.Seconds()/n, "reshard-s")
	b.ReportMetric(copying.Seconds()/n, "copy-s")
	b.ReportMetric(float64(pause)/1000, "max-pause-ms")
	b.ReportMetric(benchKeys*n/total.Seconds(), "keys/s")
}
