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
	var n int64
	for _, t := range rep.Targets {
		n += t.Written
	}
	if n != benchKeys {
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
