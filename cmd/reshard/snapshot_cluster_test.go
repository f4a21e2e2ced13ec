package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/snapshot"
)

// TestSnapshotCluster: `reshard snapshot --from-cluster` takes a
// consistent snapshot of a real 3-master Redis Cluster under write load,
// restored afterwards into one standalone server. Writers go through a
// cluster client, each writing its sequence number to key x and then,
// once x is acknowledged, to key y on another master: a cut that is
// consistent across the masters never has y ahead of x, nor x more than
// one ahead of y. Without the pause on every master at once, offsets read
// a little apart let y's write in and x's out (shown with two masters
// read at different moments by snapshot's TestJobCutHoldsDirectWriters).
func TestSnapshotCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr()}, Protocol: 2, DisableIdentity: true})
	defer cc.Close()
	table := clusterTable(t, nodes[0].Addr())
	pair := func(w int) (x, y string) {
		x = fmt.Sprintf("x:%d", w)
		for i := 0; ; i++ {
			y = fmt.Sprintf("y:%d:%d", w, i)
			if table.ShardOf([]byte(y)) != table.ShardOf([]byte(x)) {
				return x, y
			}
		}
	}
	const writers = 16
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	var failed atomic.Value
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, y := pair(w)
			for seq := 1; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				for _, k := range []string{x, y} {
					if err := cc.Set(ctx, k, seq, 0).Err(); err != nil {
						failed.Store(err)
						return
					}
				}
				writes.Add(1)
			}
		}()
	}
	for writes.Load() < 2000 {
		redistest.Sleep(10)
	}
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := runSnapshot(ctx, []string{"--from-cluster", nodes[1].Addr(), "--to", dir, "--name", "cluster", "--log-level", "error"}, &out, &errOut)
	before := writes.Load()
	for writes.Load() < before+500 {
		redistest.Sleep(10)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("snapshot --from-cluster: %v\n%s", err, errOut.String())
	}
	if e := failed.Load(); e != nil {
		t.Fatalf("a writer failed: %v", e)
	}
	t.Log(out.String())
	found, err := snapshot.Find(dir, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	m := found[0]
	if len(m.Shards) != 3 || m.Warning != "" {
		t.Fatalf("manifest: %d shards, warning %q", len(m.Shards), m.Warning)
	}

	target := redistest.Start(t)
	if _, err := restoreCLI("--from", filepath.Join(dir, m.ID), "--to", target.Addr()); err != nil {
		t.Fatal(err)
	}
	tc := target.Client()
	if n := tc.DBSize(ctx).Val(); n != m.Keys {
		t.Errorf("restored %d keys, the manifest says %d at the cut", n, m.Keys)
	}
	checked := 0
	for w := range writers {
		x, y := pair(w)
		vx, _ := tc.Get(ctx, x).Int64()
		vy, _ := tc.Get(ctx, y).Int64()
		if vy > vx || vx > vy+1 {
			t.Errorf("writer %d: snapshot has %s=%d, %s=%d: not a consistent cut", w, x, vx, y, vy)
		}
		if vx > 0 {
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no writer's keys in the snapshot: the test proved nothing")
	}
	if !strings.Contains(out.String(), "3 masters") {
		t.Errorf("output: %s", out.String())
	}
}
