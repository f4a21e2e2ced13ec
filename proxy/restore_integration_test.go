package proxy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// waitJob polls an INFO-style status command until its state is no longer
// running.
func waitJob(t *testing.T, c *proxytest.Cluster, args ...any) string {
	t.Helper()
	cl := c.Client()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err := cl.Do(t.Context(), args...).Text()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(st, "state:running") {
			return st
		}
	}
	t.Fatalf("%v still running after 60 s", args)
	return ""
}

// proxyRestore runs PROXY RESTORE source into targets, with the slot
// ranges given (none: even), waits for it to be done and returns the
// targets' table.
func proxyRestore(t *testing.T, c *proxytest.Cluster, source string, targets []*redistest.Server, ranges ...string) *router.Table {
	t.Helper()
	args := []any{"PROXY", "RESTORE", source}
	var spec []string
	for i, s := range targets {
		spec = append(spec, s.Addr())
		if len(ranges) > 0 {
			spec[i] += "=" + ranges[i]
		}
		args = append(args, spec[i])
	}
	if got, err := c.Client().Do(t.Context(), args...).Text(); err != nil || !strings.HasPrefix(got, "restore-") {
		t.Fatalf("PROXY RESTORE %s = %q, %v; want the job's id", source, got, err)
	}
	if st := waitJob(t, c, "PROXY", "RESTORE", "STATUS"); !strings.Contains(st, "state:done") {
		t.Fatalf("restore of %s: %s", source, st)
	}
	shards, err := router.ParseSpec(strings.Join(spec, ","))
	if err != nil {
		t.Fatal(err)
	}
	table, err := router.NewTable(1, shards)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func TestIntegrationProxyRestore(t *testing.T) {
	cfg := control.Config{SnapshotDir: t.TempDir()}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Control: &cfg})
	ctx := t.Context()
	cl := c.Client()
	for i := 0; i < 3000; i++ {
		if err := cl.Set(ctx, fmt.Sprint("key:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cl.HSet(ctx, "{h}hash", "f", "v")
	cl.Expire(ctx, "{h}hash", time.Hour)
	id, err := cl.Do(ctx, "PROXY", "SNAPSHOT").Text()
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS"); !strings.Contains(st, "state:done") {
		t.Fatalf("snapshot: %s", st)
	}
	before := cl.Do(ctx, "PROXY", "TOPOLOGY").String()

	targets := redistest.StartN(t, 5)
	table := proxyRestore(t, c, id, targets, "0-999", "1000-7999", "8000-8100", "8101-12000", "12001-16383")
	var total int64
	for i, s := range targets {
		n := s.Client().DBSize(ctx).Val()
		total += n
		keys := s.Client().Keys(ctx, "*").Val()
		for _, k := range keys {
			if table.ShardOf([]byte(k)) != i {
				t.Errorf("key %q on target %d, its slot says %d", k, i, table.ShardOf([]byte(k)))
			}
		}
	}
	if total != 3001 {
		t.Errorf("targets hold %d keys, want 3001", total)
	}
	h := targets[table.ShardOf([]byte("{h}hash"))].Client()
	if v := h.HGet(ctx, "{h}hash", "f").Val(); v != "v" {
		t.Errorf("restored hash field = %q", v)
	}
	if ttl := h.TTL(ctx, "{h}hash").Val(); ttl < 59*time.Minute {
		t.Errorf("restored TTL = %s, want about an hour", ttl)
	}
	if after := cl.Do(ctx, "PROXY", "TOPOLOGY").String(); after != before {
		t.Errorf("PROXY RESTORE changed the proxy's table:\n%s\n%s", before, after)
	}
	metrics := c.Control.Collector()
	for name, want := range map[string]float64{"reshard_restore_keys": 3001, "reshard_restore_keys_total": 3001} {
		if got := gatherMetric(t, metrics, name); got != want {
			t.Errorf("%s = %v after the restore, want %v", name, got, want)
		}
	}
}
