package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/sentineltest"
)

// BenchmarkFailover is the client-visible cost of a Sentinel failover of
// one of two shards, through a proxy process started with --sentinels:
// three sentinels with down-after-milliseconds 1000, a load of 5k ops/s
// (half writes, 8 connections, keys over both shards), once with the
// primary SIGKILLed and once with SENTINEL FAILOVER. For each it reports
// how long after the event the sentinels named the replica, the window in
// which clients saw errors, how long after the naming writes went through
// again, the longest reply, and acknowledged writes lost (a SIGKILL may
// lose what the replica had not received; replication is asynchronous).
func BenchmarkFailover(b *testing.B) {
	bin := proxytest.Build(b)
	for range b.N {
		for _, kind := range []string{"kill", "failover"} {
			b.StopTimer()
			primary := redistest.Start(b)
			replica := redistest.StartReplica(b, primary)
			plain := redistest.Start(b)
			ss := sentineltest.Start(b, "s0", primary, 3)
			proc := proxytest.StartProcess(b, bin, b.TempDir(), []string{"sentinel:s0", plain.Addr()},
				"--sentinels", strings.Join(sentineltest.Addrs(ss), ","))
			cfg := DefaultConfig()
			cfg.Addr, cfg.Conns, cfg.Keyspace, cfg.Duration = proc.Addr, 8, 10000, time.Minute
			opt := DefaultTimelineOptions()
			opt.Rate, opt.Tail = 5000, 2*time.Second
			ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
			phases := make(chan Phase, 4)
			type outcome struct {
				res TimelineResult
				err error
			}
			done := make(chan outcome, 1)
			b.StartTimer()
			go func() {
				res, err := RunTimeline(ctx, cfg, opt, phases)
				done <- outcome{res, err}
			}()
			time.Sleep(time.Second)
			event := time.Now()
			phases <- Phase{Name: kind, At: event}
			if kind == "kill" {
				primary.Kill()
			} else if err := ss[0].Client().Failover(ctx, "s0").Err(); err != nil {
				b.Fatal(err)
			}
			named := sentineltest.WaitNamed(b, ss, "s0", replica.Addr())
			phases <- Phase{Name: "named", At: named}
			close(phases)
			out := <-done
			cancel()
			if out.err != nil {
				b.Fatal(out.err)
			}
			res := out.res
			var first, last time.Time
			for _, w := range res.Windows {
				if w.Errors > 0 {
					if first.IsZero() {
						first = w.Start
					}
					last = w.Start.Add(opt.Window)
				}
			}
			window, resumed := time.Duration(0), time.Duration(0)
			if !first.IsZero() {
				window, resumed = last.Sub(first), last.Sub(named)
			}
			all := res.Span(res.Start, res.Windows[len(res.Windows)-1].Start)
			b.ReportMetric(named.Sub(event).Seconds(), kind+"-named-s")
			b.ReportMetric(window.Seconds(), kind+"-errors-s")
			b.ReportMetric(float64(resumed.Milliseconds()), kind+"-last-error-vs-named-ms")
			b.ReportMetric(float64(all.Max.Milliseconds()), kind+"-max-ms")
			b.ReportMetric(float64(res.Lost), kind+"-lost")
			fmt.Printf("\n%s: sentinels named the replica %s after it; clients saw %d errors over %s, the last %s after the naming; longest reply %s; %d reconnects; %d of %d sequence keys lost\n",
				kind, named.Sub(event).Round(time.Millisecond), all.Errors, window, resumed, all.Max.Round(time.Millisecond),
				res.Reconnects, res.Lost, res.Checked)
			proc.Kill()
		}
		b.ReportMetric(0, "ns/op")
	}
}
