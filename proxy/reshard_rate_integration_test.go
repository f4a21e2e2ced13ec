package proxy_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// PROXY RESHARD ... RATE n paces the copy at n keys per second, STATUS
// shows the rate, and PROXY RESHARD RATE changes it while the job runs:
// a second into a copy of 6000 keys at 1000 keys/s the job is still
// copying, with no more than the second's keys (and a burst) copied,
// where unpaced it would be done; lifted to 0, the copy finishes and the
// reshard completes.
func TestIntegrationReshardRate(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	pipe := admin.Pipeline()
	for i := range 6000 {
		pipe.Set(ctx, fmt.Sprint("paced:", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	targets := redistest.StartN(t, 2, debugArgs...)
	args := []any{"PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr(), "RATE", 1000}
	start := time.Now()
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	st := admin.Do(ctx, "PROXY", "RESHARD", "STATUS").String()
	if !strings.Contains(st, "rate:1000") || !strings.Contains(st, "state:copying") {
		t.Fatalf("a second into a copy of 6000 keys at 1000 keys/s: %s", st)
	}
	copied, _ := strconv.ParseInt(infoLines(st)["keys_copied"], 10, 64)
	if copied > 2500 {
		t.Errorf("%d keys copied in the first second at 1000 keys/s", copied)
	}
	if err := admin.Do(ctx, "PROXY", "RESHARD", "RATE", 0).Err(); err != nil {
		t.Fatal(err)
	}
	st = waitReshard(t, admin, "done", "failed", "aborted")
	if !strings.Contains(st, "state:done") || !strings.Contains(st, "rate:0") {
		t.Fatalf("after RATE 0: %s", st)
	}
	t.Logf("copy paced for a second, then unpaced: the reshard took %s", time.Since(start))
	if err := admin.Do(ctx, "PROXY", "RESHARD", "RATE", 10).Err(); err == nil || !strings.Contains(err.Error(), "no reshard is running") {
		t.Errorf("RATE with no reshard running: %v", err)
	}
	var n int64
	for _, s := range targets {
		n += s.Client().DBSize(ctx).Val()
	}
	if n != 6000 {
		t.Errorf("targets hold %d keys, want 6000", n)
	}
}
