package migrate

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
)

// Whole-restore benchmarks against real redis-servers. Each iteration
// restores the same RDB of DEBUG POPULATE keys into freshly flushed
// targets; the comparison runs in the same iteration so both sides see the
// same machine. Figures are reported as metrics, never asserted.

const benchKeys = 1_000_000

// populatedRDB starts a source, fills it with DEBUG POPULATE n (keys
// "key:N", values "value:N") and returns its saved RDB.
func populatedRDB(b *testing.B, n int) string {
	b.Helper()
	src := redistest.Start(b, sourceArgs...)
	do(b, src.Client(), "DEBUG", "POPULATE", n)
	return saveRDB(b, src, "populate.rdb")
}

// setCommands writes the same keys as SET commands, the input of
// redis-cli --pipe.
func setCommands(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "set.resp")
	f, err := os.Create(path)
	must(b, err)
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for i := range n {
		num := strconv.Itoa(i)
		buf = appendCommand(buf[:0], "SET", "key:"+num, "value:"+num)
		w.Write(buf)
	}
	must(b, w.Flush())
	must(b, f.Close())
	return path
}

// memSampler records the peak Go heap in use and the peak heap obtained
// from the OS while it runs.
type memSampler struct {
	stop               chan struct{}
	wg                 sync.WaitGroup
	peakInuse, peakSys uint64
}

func startMemSampler() *memSampler {
	m := &memSampler{stop: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			m.peakInuse = max(m.peakInuse, ms.HeapInuse)
			m.peakSys = max(m.peakSys, ms.Sys)
			select {
			case <-tk.C:
			case <-m.stop:
				return
			}
		}
	}()
	return m
}

func (m *memSampler) done() { close(m.stop); m.wg.Wait() }

func flushAll(b *testing.B, ss []*redistest.Server) {
	b.Helper()
	for _, s := range ss {
		must(b, s.Client().FlushAll(context.Background()).Err())
	}
}

func timedRestore(b *testing.B, path string, shards []router.Shard) time.Duration {
	b.Helper()
	cfg := testConfig([]string{path}, shards)
	cfg.Replace = true
	start := time.Now()
	rep, err := Restore(context.Background(), cfg)
	el := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if n := keysWritten(rep); n != benchKeys {
		b.Fatalf("%d keys written, want %d", n, benchKeys)
	}
	return el
}

// BenchmarkRestoreVsRedisCliPipe: 1M small keys from one RDB into one
// target with Restore, and the same keys as SET commands into another
// fresh target with redis-cli --pipe.
func BenchmarkRestoreVsRedisCliPipe(b *testing.B) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		b.Skip("redis-cli not installed")
	}
	path := populatedRDB(b, benchKeys)
	sets := setCommands(b, benchKeys)
	targets := redistest.StartN(b, 2)
	one := evenShards(b, targets[:1])
	var restoreT, pipeT time.Duration
	var restoreCPU, pipeCPU float64
	var peakInuse, peakSys uint64
	for b.Loop() {
		flushAll(b, targets)
		runtime.GC()
		m := startMemSampler()
		cpu0 := serverCPU(b, targets[0])
		restoreT += timedRestore(b, path, one)
		restoreCPU += serverCPU(b, targets[0]) - cpu0
		m.done()
		peakInuse, peakSys = max(peakInuse, m.peakInuse), max(peakSys, m.peakSys)
		cpu0 = serverCPU(b, targets[1])

		in, err := os.Open(sets)
		must(b, err)
		cmd := exec.Command(cli, "-h", "127.0.0.1", "-p", strconv.Itoa(targets[1].Port()), "--pipe")
		cmd.Stdin = in
		start := time.Now()
		out, err := cmd.CombinedOutput()
		pipeT += time.Since(start)
		in.Close()
		if err != nil {
			b.Fatalf("redis-cli --pipe: %v\n%s", err, out)
		}
		pipeCPU += serverCPU(b, targets[1]) - cpu0
	}
	n := float64(b.N) * benchKeys
	b.ReportMetric(n/restoreT.Seconds(), "restore-keys/s")
	b.ReportMetric(n/pipeT.Seconds(), "pipe-keys/s")
	b.ReportMetric(pipeT.Seconds()/restoreT.Seconds(), "restore/pipe")
	// The target's own CPU time per key: what each way costs the server,
	// unaffected by whatever else runs on the machine.
	b.ReportMetric(restoreCPU/n*1e6, "restore-target-cpu-µs/key")
	b.ReportMetric(pipeCPU/n*1e6, "pipe-target-cpu-µs/key")
	b.ReportMetric(float64(peakInuse)/(1<<20), "peak-heap-inuse-MB")
	b.ReportMetric(float64(peakSys)/(1<<20), "peak-go-sys-MB")
	b.ReportMetric(float64(maxRSS())/(1<<20), "process-maxrss-MB")
}

// BenchmarkRestoreThreeTargets: the same 1M keys into three targets and
// into one, in the same iteration.
func BenchmarkRestoreThreeTargets(b *testing.B) {
	path := populatedRDB(b, benchKeys)
	targets := redistest.StartN(b, 4)
	one := evenShards(b, targets[:1])
	three := evenShards(b, targets[1:])
	var oneT, threeT time.Duration
	for b.Loop() {
		flushAll(b, targets)
		oneT += timedRestore(b, path, one)
		threeT += timedRestore(b, path, three)
	}
	n := float64(b.N) * benchKeys
	b.ReportMetric(n/oneT.Seconds(), "1-target-keys/s")
	b.ReportMetric(n/threeT.Seconds(), "3-targets-keys/s")
	b.ReportMetric(oneT.Seconds()/threeT.Seconds(), "speedup")
}

// serverCPU is the CPU time (user + system, seconds) a redis-server has
// used so far.
func serverCPU(b *testing.B, s *redistest.Server) float64 {
	b.Helper()
	info, err := s.Client().Info(context.Background(), "cpu").Result()
	must(b, err)
	f := parseInfo(info)
	u, _ := strconv.ParseFloat(f["used_cpu_user"], 64)
	sy, _ := strconv.ParseFloat(f["used_cpu_sys"], 64)
	return u + sy
}

// maxRSS is the peak resident set of this process (Linux reports KiB).
func maxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// BenchmarkBigKeyLatency restores a 2M-field hash and a 5M-element list
// with the default configuration (chunked above BigKeyBytes) and, for
// contrast, as single RESTOREs, and reports the slowest command each way
// took on the target (SLOWLOG, everything over 1 ms).
func BenchmarkBigKeyLatency(b *testing.B) {
	ctx := context.Background()
	src := redistest.Start(b, sourceArgs...)
	sc := src.Client()
	fill := func(n, batch int, cmd func(from, to int) []any) {
		p := sc.Pipeline()
		for from := 0; from < n; from += batch {
			p.Do(ctx, cmd(from, min(from+batch, n))...)
			if p.Len() >= 20 {
				_, err := p.Exec(ctx)
				must(b, err)
			}
		}
		_, err := p.Exec(ctx)
		must(b, err)
	}
	fill(2_000_000, 10000, func(from, to int) []any {
		args := []any{"HSET", "big:hash"}
		for i := from; i < to; i++ {
			args = append(args, "field:"+strconv.Itoa(i), "value:"+strconv.Itoa(i))
		}
		return args
	})
	fill(5_000_000, 10000, func(from, to int) []any {
		args := []any{"RPUSH", "big:list"}
		for i := from; i < to; i++ {
			args = append(args, "element-"+strconv.Itoa(i))
		}
		return args
	})
	path := saveRDB(b, src, "big.rdb")
	target := redistest.Start(b, "--slowlog-log-slower-than", "1000", "--slowlog-max-len", "100000")
	tc := target.Client()
	shards := evenShards(b, []*redistest.Server{target})
	run := func(bigKey int64) (time.Duration, time.Duration) {
		must(b, tc.FlushAll(ctx).Err())
		must(b, tc.Do(ctx, "SLOWLOG", "RESET").Err())
		cfg := testConfig([]string{path}, shards)
		cfg.BigKeyBytes = bigKey
		start := time.Now()
		_, err := Restore(ctx, cfg)
		el := time.Since(start)
		must(b, err)
		entries, err := tc.SlowLogGet(ctx, -1).Result()
		must(b, err)
		var worst time.Duration
		for _, e := range entries {
			if e.Args[0] != "FLUSHALL" && e.Args[0] != "SLOWLOG" {
				worst = max(worst, e.Duration)
			}
		}
		return el, worst
	}
	var chunkedT, wholeT, chunkedWorst, wholeWorst time.Duration
	for b.Loop() {
		el, worst := run(DefaultRestoreConfig().BigKeyBytes)
		chunkedT += el
		chunkedWorst = max(chunkedWorst, worst)
		el, worst = run(1 << 40)
		wholeT += el
		wholeWorst = max(wholeWorst, worst)
	}
	b.ReportMetric(float64(chunkedWorst.Microseconds())/1000, "chunked-slowest-cmd-ms")
	b.ReportMetric(float64(wholeWorst.Microseconds())/1000, "whole-slowest-cmd-ms")
	b.ReportMetric(chunkedT.Seconds()/float64(b.N), "chunked-s")
	b.ReportMetric(wholeT.Seconds()/float64(b.N), "whole-s")
}

// BenchmarkRestoreMemory restores 1M and 5M small keys into one target and
// reports the restore's peak Go heap in use, the peak memory the Go
// runtime held from the OS, and the process's peak RSS (which only grows:
// run one size per process to read it for that size alone).
func BenchmarkRestoreMemory(b *testing.B) {
	for _, n := range []int{1_000_000, 5_000_000} {
		b.Run(strconv.Itoa(n/1_000_000)+"M", func(b *testing.B) {
			path := populatedRDB(b, n)
			targets := redistest.StartN(b, 1)
			shards := evenShards(b, targets)
			var peakInuse, peakSys uint64
			for b.Loop() {
				flushAll(b, targets)
				runtime.GC()
				m := startMemSampler()
				cfg := testConfig([]string{path}, shards)
				_, err := Restore(context.Background(), cfg)
				m.done()
				must(b, err)
				peakInuse, peakSys = max(peakInuse, m.peakInuse), max(peakSys, m.peakSys)
			}
			b.ReportMetric(float64(peakInuse)/(1<<20), "peak-heap-inuse-MB")
			b.ReportMetric(float64(peakSys)/(1<<20), "peak-go-sys-MB")
			b.ReportMetric(float64(maxRSS())/(1<<20), "process-maxrss-MB")
		})
	}
}
