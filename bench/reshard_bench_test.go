package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/reshard/reshard/proxy/control"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/resp"
)

// reshardSetup starts a proxy over 3 shards with a state directory,
// preloads keys through it and starts 5 targets with an uneven layout,
// returned as PROXY RESHARD arguments.
func reshardSetup(tb testing.TB, keys int) (*proxytest.Cluster, []string) {
	tb.Helper()
	cfg := control.Config{StateDir: tb.TempDir(), SnapshotDir: tb.TempDir()}
	// Redis's default configuration: the captures lower
	// repl-diskless-sync-delay (5 s) for their own handshakes.
	c := proxytest.Start(tb, proxytest.Options{Shards: 3, Control: &cfg})
	if err := preload(tb.Context(), c.Addr, keys); err != nil {
		tb.Fatal(err)
	}
	return c, reshardTargets(tb)
}

// reshardTargets starts 5 targets and returns them with an uneven layout,
// as PROXY RESHARD arguments.
func reshardTargets(tb testing.TB) []string {
	ranges := []string{"0-2999", "3000-3100", "3101-9000", "9001-15000", "15001-16383"}
	var spec []string
	for i, s := range redistest.StartN(tb, 5) {
		spec = append(spec, s.Addr()+"="+ranges[i])
	}
	return spec
}

// reshardLoad is the paced load of the reshard benchmarks: conns
// connections over keys preloaded keys at rate ops/s in all, for at most
// two minutes.
func reshardLoad(addr string, conns, keys int, rate float64) (Config, TimelineOptions) {
	cfg := DefaultConfig()
	cfg.Addr = addr
	cfg.Conns = conns
	cfg.Keyspace = keys
	cfg.KeyPrefix = "pre:"
	cfg.Duration = 2 * time.Minute
	opt := DefaultTimelineOptions()
	opt.Rate = rate
	return cfg, opt
}

// preload SETs pre:0..n-1 through addr, 1000 to a pipeline.
func preload(ctx context.Context, addr string, n int) error {
	a, err := dialAdmin(ctx, addr, "")
	if err != nil {
		return err
	}
	defer a.close()
	value := valueBytes(64)
	for lo := 0; lo < n; lo += 1000 {
		hi := min(lo+1000, n)
		var buf []byte
		for i := lo; i < hi; i++ {
			buf = resp.AppendCommand(buf, cmdSet, []byte("pre:"+strconv.Itoa(i)), value)
		}
		a.conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := a.conn.Write(buf); err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			if _, err := a.reply(); err != nil {
				return fmt.Errorf("preload pre:%d: %w", i, err)
			}
		}
	}
	return nil
}

// reshardUnderLoad runs load against c, starts the reshard after warmup
// and returns the timeline and the reshard's final status.
func reshardUnderLoad(ctx context.Context, tb testing.TB, cfg Config, opt TimelineOptions, addr string, spec []string, warmup time.Duration) (TimelineResult, string) {
	tb.Helper()
	phases := make(chan Phase, 16)
	type outcome struct {
		status string
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		t := time.NewTimer(warmup)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			close(phases)
			done <- outcome{"", ctx.Err()}
			return
		}
		st, err := Reshard(ctx, ReshardOptions{Addr: addr, Targets: spec}, phases)
		done <- outcome{st, err}
	}()
	res, err := RunTimeline(ctx, cfg, opt, phases)
	o := <-done
	if err != nil {
		tb.Fatal(err)
	}
	if o.err != nil {
		tb.Fatalf("reshard: %v\n%s", o.err, o.status)
	}
	return res, o.status
}

func TestIntegrationTimelineReshard(t *testing.T) {
	c, spec := reshardSetup(t, 20000)
	cfg := DefaultConfig()
	cfg.Addr = c.Addr
	cfg.Conns = 8
	cfg.Keyspace = 20000
	cfg.KeyPrefix = "tl:"
	cfg.Duration = 15 * time.Second
	opt := DefaultTimelineOptions()
	opt.Rate = 4000
	opt.Tail = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, status := reshardUnderLoad(ctx, t, cfg, opt, c.Addr, spec, 300*time.Millisecond)
	t.Logf("%s", res)
	if ParseStatus(status)["state"] != "done" {
		t.Fatalf("status:\n%s", status)
	}
	if res.Errors != 0 || res.Reconnects != 0 || res.Lost != 0 || res.Checked != cfg.Conns {
		t.Errorf("errors %d %q, reconnects %d, lost %d %q of %d checked", res.Errors, res.ErrorSamples, res.Reconnects, res.Lost, res.LostSamples, res.Checked)
	}
	for _, p := range []string{"reshard", "copying", "cutover", "done"} {
		if _, ok := res.Phase(p); !ok {
			t.Errorf("no phase %q in %v", p, res.Phases)
		}
	}
	s, ok := res.CutoverSummary()
	if !ok || s.Ops == 0 || s.Max <= 0 {
		t.Errorf("cutover window = %+v, %v", s, ok)
	}
	if res.Duration >= cfg.Duration {
		t.Errorf("the run did not end after the tail: %v", res.Duration)
	}
	if res.OpsPerSec > 1.2*opt.Rate {
		t.Errorf("%.0f ops/s over the %.0f rate bound", res.OpsPerSec, opt.Rate)
	}
	if err := res.SavePlot(filepath.Join(t.TempDir(), "timeline.png"), PlotOptions{}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkReshardUnderLoad reshards 3 shards holding 200k keys onto 5
// (uneven ranges) under a load bounded at 20k ops/s (20 connections,
// request/response, half writes), and reports the cutover window's latency
// next to the whole run's, errors, reconnects and lost acknowledged writes.
// The latency plot goes to a PNG under os.TempDir, its path on stdout.
func BenchmarkReshardUnderLoad(b *testing.B) {
	const keys, rate = 200000, 20000
	for range b.N {
		b.StopTimer()
		c, spec := reshardSetup(b, keys)
		cfg, opt := reshardLoad(c.Addr, 20, keys, rate)
		ctx, cancel := context.WithTimeout(b.Context(), 3*time.Minute)
		b.StartTimer()
		res, status := reshardUnderLoad(ctx, b, cfg, opt, c.Addr, spec, time.Second)
		cancel()
		st := ParseStatus(status)
		elapsed, _ := strconv.ParseFloat(st["elapsed_ms"], 64)
		cut, _ := res.CutoverSummary()
		before, _ := res.BeforeSummary()
		cp, _ := res.CopySummary()
		b.ReportMetric(elapsed/1000, "reshard-s")
		b.ReportMetric(ms(before.P999), "before-p99.9-ms")
		b.ReportMetric(ms(cp.P999), "copy-p99.9-ms")
		b.ReportMetric(ms(cp.Max), "copy-max-ms")
		b.ReportMetric(cp.To.Sub(cp.From).Seconds(), "copy-s")
		b.ReportMetric(ms(cut.Max), "cutover-max-ms")
		b.ReportMetric(ms(cut.P999), "cutover-p99.9-ms")
		b.ReportMetric(ms(res.Max), "max-ms")
		b.ReportMetric(ms(res.P999), "p99.9-ms")
		b.ReportMetric(float64(res.Errors), "errors")
		b.ReportMetric(float64(res.Reconnects), "reconnects")
		b.ReportMetric(float64(res.Lost), "lost-writes")
		b.ReportMetric(res.OpsPerSec, "ops/s")
		b.ReportMetric(0, "ns/op")
		path := filepath.Join(os.TempDir(), "reshard-under-load.png")
		if err := res.SavePlot(path, PlotOptions{}); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("\nreshard 3->5 of %d keys under %d ops/s:\n%s  pause_us    %s\n  plot        %s\n", keys, rate, res, st["pause_us"], path)
	}
}

// BenchmarkReshardCopyLatency measures what the copy costs clients: 1M
// keys resharded from 3 shards to 5 (uneven layout) under 20k ops/s (20
// connections, request/response, half writes), shards on Redis's default
// configuration, once unpaced and once with the copy paced (PROXY RESHARD
// ... RATE, BENCH_COPY_RATE keys/s, default 100000). It reports the
// clients' p99.9 and worst latency before the reshard and during the
// copy, their ratio (the goal: copy p99.9 no more than 2x before), and
// the copy's duration.
//
//	REQUIRE_REDIS=1 go test -run '^$' -bench ReshardCopyLatency -benchtime 1x ./bench/
func BenchmarkReshardCopyLatency(b *testing.B) {
	const keys, load = 1_000_000, 20000
	paced := 100000
	if v := os.Getenv("BENCH_COPY_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_COPY_RATE=%q: want keys per second", v)
		}
		paced = n
	}
	for _, copyRate := range []int{0, paced} {
		b.Run("rate="+strconv.Itoa(copyRate), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				c, spec := reshardSetup(b, keys)
				if copyRate > 0 {
					spec = append(spec, "RATE", strconv.Itoa(copyRate))
				}
				cfg, opt := reshardLoad(c.Addr, 20, keys, load)
				ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
				b.StartTimer()
				res, status := reshardUnderLoad(ctx, b, cfg, opt, c.Addr, spec, 3*time.Second)
				cancel()
				st := ParseStatus(status)
				if st["state"] != "done" {
					b.Fatalf("reshard: %s", status)
				}
				elapsed, _ := strconv.ParseFloat(st["elapsed_ms"], 64)
				b.ReportMetric(elapsed/1000, "reshard-s")
				before, _ := res.BeforeSummary()
				cp, ok := res.CopySummary()
				if !ok {
					b.Fatalf("no copy phase in %v", res.Phases)
				}
				cut, _ := res.CutoverSummary()
				ratio := float64(cp.P999) / float64(max(before.P999, time.Microsecond))
				b.ReportMetric(ms(before.P999), "before-p99.9-ms")
				b.ReportMetric(ms(cp.P999), "copy-p99.9-ms")
				b.ReportMetric(ratio, "copy/before-p99.9")
				b.ReportMetric(ms(before.Max), "before-max-ms")
				b.ReportMetric(ms(cp.Max), "copy-max-ms")
				b.ReportMetric(cp.To.Sub(cp.From).Seconds(), "copy-s")
				b.ReportMetric(ms(cut.Max), "cutover-max-ms")
				b.ReportMetric(float64(res.Errors)+float64(res.Lost), "errors+lost")
				b.ReportMetric(0, "ns/op")
				fmt.Printf("\nreshard 3->5 of %d keys under %d ops/s, copy rate %d keys/s (0: unpaced), Redis's default shard configuration:\n%s"+
					"  copy p99.9 over before p99.9: %.2f (goal <= 2); the reshard took %.2f s\n", keys, load, copyRate, res, ratio, elapsed/1000)
			}
		})
	}
}
