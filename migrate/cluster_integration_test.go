package migrate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// ClusterTargets reads a real cluster's slot map; a slot that moves to
// another master afterwards makes checkClusterUnchanged fail, naming the
// change.
func TestClusterTargetsAndChange(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	ctx := context.Background()
	cfg := DefaultRestoreConfig()
	targets, err := ClusterTargets(ctx, cfg, nodes[1].Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 3 || targets[0].Addr != nodes[0].Addr() || targets[0].Ranges[0].From != 0 || targets[2].Ranges[0].To != 16383 {
		t.Fatalf("targets %+v", targets)
	}
	cfg.Targets, cfg.Cluster = targets, true
	j := &job{cfg: cfg}
	if err := j.checkClusterUnchanged(ctx); err != nil {
		t.Fatalf("unchanged cluster: %v", err)
	}
	// slot 0 moves from node 0 to node 1
	if err := nodes[0].Client().Do(ctx, "CLUSTER", "DELSLOTS", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.Client().Do(ctx, "CLUSTER", "SETSLOT", 0, "NODE", nodes[1].Client().Do(ctx, "CLUSTER", "MYID").Val())
	}
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = j.checkClusterUnchanged(ctx); last != nil && strings.Contains(last.Error(), "changed") {
			return
		}
	}
	t.Fatalf("a moved slot was not noticed: %v", last)
}
