package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/etcdtest"
	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// etcdGroup starts etcd, 3 source shards and n proxy processes sharing
// their table through it, and preloads keys through the first.
func etcdGroup(b *testing.B, n, keys int) (addrs []string) {
	b.Helper()
	etcd := etcdtest.Start(b)
	var shards []string
	for _, s := range redistest.StartN(b, 3, "--repl-diskless-sync-delay", "0") {
		shards = append(shards, s.Addr())
	}
	bin := proxytest.Build(b)
	flags := []string{"--etcd", etcd.Endpoint(), "--etcd-prefix", "/bench/" + b.Name()}
	for i := range n {
		var sh []string
		if i == 0 {
			sh = shards
		}
		addrs = append(addrs, proxytest.StartProcess(b, bin, b.TempDir(), sh, flags...).Addr)
	}
	if err := preload(b.Context(), addrs[0], keys); err != nil {
		b.Fatal(err)
	}
	return addrs
}

// BenchmarkReshardEtcd3Proxies is ReshardUnderLoad with three proxies
// sharing their table through etcd: 3 to 5 shards of 200k keys, each proxy
// under 7k ops/s (20k in all, half writes), PROXY RESHARD on the first. The
// coordinator's barrier (pause_us) holds from its own pause to the resume
// after the commit, so it includes the wait for every member's ack and
// the etcd round trips; the cutover window's latency is reported for the
// first proxy's clients and the highest of the others'.
func BenchmarkReshardEtcd3Proxies(b *testing.B) {
	const keys, rate = 200000, 7000
	for range b.N {
		b.StopTimer()
		addrs := etcdGroup(b, 3, keys)
		spec := reshardTargets(b)
		cfg, opt := reshardLoad("", 8, keys, rate)
		ctx, cancel := context.WithTimeout(b.Context(), 3*time.Minute)
		b.StartTimer()
		// the other proxies' loads, until the first one's ends (their
		// sequence keys under prefixes of their own)
		others := make([]TimelineResult, 2)
		otherErr := make([]error, 2)
		end := make(chan Phase)
		var wg sync.WaitGroup
		for i := range others {
			wg.Go(func() {
				c := cfg
				c.Addr = addrs[i+1]
				c.Seed = int64(i + 1)
				c.KeyPrefix = "other" + strconv.Itoa(i) + ":"
				others[i], otherErr[i] = RunTimeline(ctx, c, opt, end)
			})
		}
		first := cfg
		first.Addr = addrs[0]
		res, status := reshardUnderLoad(ctx, b, first, opt, addrs[0], spec, time.Second)
		close(end)
		wg.Wait()
		for _, err := range otherErr {
			if err != nil {
				b.Fatal(err)
			}
		}
		st := ParseStatus(status)
		pause, _ := strconv.ParseFloat(st["pause_us"], 64)
		cut, _ := res.CutoverSummary()
		var othersMax time.Duration
		var othersErrors, lost int64
		for _, o := range others {
			othersMax = max(othersMax, o.Max)
			othersErrors += o.Errors
			lost += int64(o.Lost)
		}
		// what the cutover cost in etcd, from each proxy's INFO: the
		// requests sent inside the barriers, the coordinator's time in
		// them and in the wait for the members' acks
		var requests, coordUS, acksUS int64
		for i, addr := range addrs {
			info, err := proxyInfo(ctx, addr)
			if err != nil {
				b.Fatal(err)
			}
			requests += field(info, "etcd_cutover_requests")
			if i == 0 {
				coordUS, acksUS = field(info, "etcd_cutover_us"), field(info, "etcd_cutover_acks_wait_us")
			}
		}
		cancel()
		b.ReportMetric(pause/1000, "pause-ms")
		b.ReportMetric(float64(requests), "etcd-requests")
		b.ReportMetric(float64(coordUS)/1000, "etcd-ms")
		b.ReportMetric(float64(acksUS)/1000, "acks-wait-ms")
		b.ReportMetric(ms(cut.Max), "cutover-max-ms")
		b.ReportMetric(ms(othersMax), "others-max-ms")
		b.ReportMetric(float64(res.Errors+othersErrors), "errors")
		b.ReportMetric(float64(int64(res.Lost)+lost), "lost-writes")
		b.ReportMetric(0, "ns/op")
		fmt.Printf("\nreshard 3->5 of %d keys, 3 proxies through etcd, %d ops/s each:\n%s  pause_us    %s\n  other proxies: max %s, errors %d, lost writes %d\n  etcd inside the barriers: %d requests; the coordinator's %d µs in them, %d µs waiting for the acks\n",
			keys, rate, res, st["pause_us"], othersMax, othersErrors, lost, requests, coordUS, acksUS)
	}
}

// BenchmarkEtcdTwoProxiesVsOne: the throughput of two proxies of one etcd
// group against one, in one run: the same unpaced load (pipeline 16) on
// one proxy, then split over two.
func BenchmarkEtcdTwoProxiesVsOne(b *testing.B) {
	for range b.N {
		b.StopTimer()
		addrs := etcdGroup(b, 2, 10000)
		cfg := DefaultConfig()
		cfg.Conns = 20
		cfg.Pipeline = 16
		cfg.Keyspace = 10000
		cfg.KeyPrefix = "pre:"
		cfg.Duration = benchDuration
		b.StartTimer()
		one := cfg
		one.Addr = addrs[0]
		r1, err := Run(b.Context(), one)
		if err != nil {
			b.Fatal(err)
		}
		results := make([]Result, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				c := cfg
				c.Addr = addrs[i]
				c.Conns = cfg.Conns / 2
				results[i], errs[i] = Run(b.Context(), c)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		two := results[0].OpsPerSec + results[1].OpsPerSec
		b.ReportMetric(r1.OpsPerSec, "one-ops/s")
		b.ReportMetric(two, "two-ops/s")
		b.ReportMetric(two/r1.OpsPerSec, "two/one")
		b.ReportMetric(0, "ns/op")
		fmt.Printf("\none proxy %.0f ops/s, two proxies %.0f ops/s (%.2fx), same 20 connections, pipeline 16, on this machine's cores\n",
			r1.OpsPerSec, two, two/r1.OpsPerSec)
	}
}

// proxyInfo is INFO proxy of the proxy at addr.
func proxyInfo(ctx context.Context, addr string) (string, error) {
	a, err := dialAdmin(ctx, addr, "")
	if err != nil {
		return "", err
	}
	defer a.close()
	return a.do(ctx, "INFO", "proxy")
}
