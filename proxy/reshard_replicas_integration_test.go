package proxy_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/reshard/reshard/proxy/control"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// A reshard from 3 shards onto 5, all with a replica each, under write
// load. A replica that holds keys is refused by the
// pre-flight. Then each empty replica is made to follow its target, and
// is at its target's offset before the commit, so that reads from the
// replicas right after the commit see every key; the leaving shards'
// replicas are fenced with them; the writers see no error.
func TestIntegrationReshardOntoReplicas(t *testing.T) {
	cfg := control.Config{StateDir: t.TempDir(), SnapshotDir: t.TempDir()}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Replicas: 1, Control: &cfg, ShardArgs: debugArgs})
	admin := c.Client()
	const keys = 5000
	for i := range keys {
		if err := admin.Set(t.Context(), "pre:"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	targets := redistest.StartN(t, 5, debugArgs...)
	replicas := redistest.StartN(t, 5, debugArgs...)
	args := []any{"PROXY", "RESHARD"}
	for i := range targets {
		args = append(args, targets[i].Addr()+"+"+replicas[i].Addr())
	}

	if err := replicas[1].Client().Set(t.Context(), "stray", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("replica %s of target %s holds 1 key", replicas[1].Addr(), targets[1].Addr())
	if err := admin.Do(t.Context(), args...).Err(); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("PROXY RESHARD onto a replica holding a key = %v, want %q", err, want)
	}
	if err := replicas[1].Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}

	load := startWriters(t, c, 8)
	if err := admin.Do(t.Context(), args...).Err(); err != nil {
		t.Fatal(err)
	}
	st := waitReshard(t, admin, "done", "failed", "aborted")
	load.halt()
	if !strings.Contains(st, "state:done") {
		t.Fatalf("reshard did not finish:\n%s", st)
	}
	// right after the commit, through connections that read from replicas
	ro := readOnlyClient(t, c)
	for i := range keys {
		if got, err := ro.Get(t.Context(), "pre:"+strconv.Itoa(i)).Int(); err != nil || got != i {
			t.Fatalf("GET pre:%d from a replica right after the commit = %d, %v; want %d", i, got, err, i)
		}
	}
	if n := load.errors.Load(); n != 0 {
		t.Errorf("%d client errors during the reshard, first: %v", n, load.first.Load())
	}
	for i, r := range replicas {
		info, err := r.Client().Info(t.Context(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+strconv.Itoa(targets[i].Port())+"\r\n") {
			t.Errorf("replica %s does not follow target %s:\n%s", r.Addr(), targets[i].Addr(), info)
		}
		if getCalls(t, r) == 0 {
			t.Errorf("replica %s served none of the reads after the commit", r.Addr())
		}
	}
	for _, rs := range c.Replicas {
		for _, r := range rs {
			if v, _ := r.Client().ConfigGet(t.Context(), "min-replicas-to-write").Result(); v["min-replicas-to-write"] != "2147483647" {
				t.Errorf("replica %s of a retired shard is not fenced: min-replicas-to-write %v", r.Addr(), v)
			}
		}
	}
}
