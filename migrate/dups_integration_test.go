package migrate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
)

// keepSlots deletes from c every key of DEBUG POPULATE n whose slot keep
// refuses.
func keepSlots(t testing.TB, c *redis.Client, n int, keep func(slot uint16) bool) {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	for i := range n {
		if k := fmt.Sprintf("key:%d", i); !keep(router.Slot([]byte(k))) {
			p.Del(ctx, k)
		}
		if p.Len() >= 1000 {
			_, err := p.Exec(ctx)
			must(t, err)
		}
	}
	_, err := p.Exec(ctx)
	must(t, err)
}

// TestRestoreDuplicates: a key in two sources is refused before anything
// is written (on the old code a file and its copy restored with twice
// the keys reported written); the shards of one keyspace, and sources that
// share slots but no key, are restored; AllowDuplicates restores with the
// last source's value winning, and Verify passes.
func TestRestoreDuplicates(t *testing.T) {
	ctx := context.Background()
	const n = 5000
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", n)
	a := saveRDB(t, src, "a.rdb")
	aCopy := filepath.Join(t.TempDir(), "a-copy.rdb")
	copyFile(t, a, aCopy)
	do(t, sc, "SET", "key:7", "changed")
	aChanged := saveRDB(t, src, "a-changed.rdb")
	// Two shards of one keyspace: slots below 8192 and the others.
	keepSlots(t, sc, n, func(s uint16) bool { return s < 8192 })
	low := saveRDB(t, src, "shard-low.rdb")
	do(t, sc, "FLUSHALL")
	do(t, sc, "DEBUG", "POPULATE", n)
	keepSlots(t, sc, n, func(s uint16) bool { return s >= 8192 })
	high := saveRDB(t, src, "shard-high.rdb")
	// Another keyspace over the same slots: no key in common.
	do(t, sc, "FLUSHALL")
	do(t, sc, "DEBUG", "POPULATE", n, "other")
	other := saveRDB(t, src, "other.rdb")

	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)

	_, err := Restore(ctx, testConfig([]string{a, aCopy}, shards))
	if !errors.Is(err, ErrDuplicateKeys) {
		t.Fatalf("err = %v, want ErrDuplicateKeys", err)
	}
	t.Logf("refused as expected: %v", err)
	for _, want := range []string{fmt.Sprintf("%d keys are in more than one source", n), a, aCopy, "--allow-duplicates"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	requireEmpty(t, targets)

	restoreInto := func(cfg RestoreConfig, want int64) {
		t.Helper()
		do(t, targets[0].Client(), "FLUSHALL")
		do(t, targets[1].Client(), "FLUSHALL")
		cfg.Verify = true
		rep, err := Restore(ctx, cfg)
		if err != nil {
			t.Fatalf("%v: %v\n%s", cfg.Sources, err, rep.String())
		}
		var got int64
		for _, d := range dbsizes(t, targets) {
			got += d
		}
		if got != want {
			t.Errorf("%v: targets hold %d keys, want %d", cfg.Sources, got, want)
		}
	}
	restoreInto(testConfig([]string{low, high}, shards), n)
	restoreInto(testConfig([]string{a, other}, shards), 2*n)

	cfg := testConfig([]string{a, aChanged}, shards)
	cfg.AllowDuplicates = true
	restoreInto(cfg, n)
	got, err := targets[slotOwner(shards, "key:7")].Client().Get(ctx, "key:7").Result()
	must(t, err)
	if got != "changed" {
		t.Errorf("key:7 = %q, want the last source's %q", got, "changed")
	}
}

// BenchmarkDuplicateCheck measures the check of keys in more than one
// source at its most expensive: two RDBs of 1M keys each over the same
// slots (DEBUG POPULATE with two prefixes), no key in common, so every key
// is hashed, sorted and compared. Reported: the check's time and the peak
// Go heap in use during it.
func BenchmarkDuplicateCheck(b *testing.B) {
	src := redistest.Start(b, sourceArgs...)
	sc := src.Client()
	do(b, sc, "DEBUG", "POPULATE", benchKeys)
	one := saveRDB(b, src, "one.rdb")
	do(b, sc, "FLUSHALL")
	do(b, sc, "DEBUG", "POPULATE", benchKeys, "other")
	two := saveRDB(b, src, "two.rdb")
	srcs, err := resolveSources(&files{ctx: context.Background()}, []string{one, two})
	must(b, err)
	shards, err := router.ParseSpec("127.0.0.1:1")
	must(b, err)
	table, err := router.NewTable(0, shards)
	must(b, err)
	res := scanSources(srcs, table, 1<<30, time.Now().UnixMilli())
	skip := make([]bool, len(srcs))
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		m := startMemSampler()
		start := time.Now()
		if err := duplicateCheck(res, skip, 0); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		m.done()
		b.ReportMetric(el.Seconds(), "check-s")
		b.ReportMetric(float64(m.peakInuse)/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(res.sources[0].size+res.sources[1].size)/(1<<20), "rdb-MB")
	}
}
