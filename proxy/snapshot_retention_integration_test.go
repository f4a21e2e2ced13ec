package proxy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/proxy/control"
)

// listedIDs is PROXY SNAPSHOT LIST's ids, oldest first, and the names.
func listedIDs(t *testing.T, c *proxytest.Cluster) (ids, names []string) {
	t.Helper()
	list, err := c.Client().Do(t.Context(), "PROXY", "SNAPSHOT", "LIST").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range list {
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				ids = append(ids, v)
			}
			if v, ok := strings.CutPrefix(f, "name="); ok {
				names = append(names, v)
			}
		}
	}
	return ids, names
}

// With --snapshot-retain 2, each successful snapshot deletes the oldest
// unnamed ones beyond two; a named snapshot is kept and not counted.
func TestIntegrationSnapshotRetain(t *testing.T) {
	cfg := control.Config{SnapshotDir: t.TempDir(), SnapshotRetain: 2}
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Control: &cfg, ShardArgs: []string{"--repl-diskless-sync-delay", "0"}})
	cl := c.Client()
	if err := cl.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var taken []string
	for i, name := range []string{"keep", "", "", "", ""} {
		args := []any{"PROXY", "SNAPSHOT"}
		if name != "" {
			args = append(args, name)
		}
		id, err := cl.Do(t.Context(), args...).Text()
		if err != nil {
			t.Fatal(err)
		}
		if st := waitJob(t, c, "PROXY", "SNAPSHOT", "STATUS"); !strings.Contains(st, "state:done") {
			t.Fatalf("snapshot %d: %s", i, st)
		}
		taken = append(taken, id)
	}
	want := []string{taken[0], taken[3], taken[4]} // the named one, and the newest two
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ids, names := listedIDs(t, c)
		if slices.Equal(ids, want) {
			if names[0] != "keep" {
				t.Errorf("names %v, want keep first", names)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshots kept %v, want %v (of %v)", ids, want, taken)
		}
	}
}

// --snapshot-every takes snapshots on its own, with retention applied.
func TestIntegrationSnapshotEvery(t *testing.T) {
	cfg := control.Config{SnapshotDir: t.TempDir(), SnapshotRetain: 1, SnapshotEvery: 300 * time.Millisecond}
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Control: &cfg, ShardArgs: []string{"--repl-diskless-sync-delay", "0"}})
	cl := c.Client()
	first := cl.LastSave(t.Context()).Val()
	seen := map[string]bool{}
	for deadline := time.Now().Add(20 * time.Second); len(seen) < 3; time.Sleep(50 * time.Millisecond) {
		ids, _ := listedIDs(t, c)
		if len(ids) > 2 {
			t.Fatalf("%d snapshots kept with --snapshot-retain 1: %v", len(ids), ids)
		}
		for _, id := range ids {
			seen[id] = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduled snapshots seen in 20s: %v, want 3", seen)
		}
	}
	if last := cl.LastSave(t.Context()).Val(); last < first {
		t.Errorf("LASTSAVE went back: %d then %d", first, last)
	}
}
