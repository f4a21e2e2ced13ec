package snapshot

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
)

// forks is a server's INFO stats total_forks.
func forks(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_forks:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no total_forks in INFO stats:\n%s", info)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// Shards with a replica each are captured from their replicas: no
// primary forks, the manifest names the replica each part came from, and
// the snapshot passes TestJobConsistentCut's test: rebuilt shards equal
// the primaries at the pause, with every write acknowledged before it and
// none after.
func TestJobFromReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t, disklessArgs, disklessArgs)
	var shards []router.Shard
	var replicas []*redistest.Server
	for i, s := range c.servers {
		r := redistest.StartReplica(t, s, append([]string{"--enable-debug-command", "local"}, disklessArgs...)...)
		replicas = append(replicas, r)
		shards = append(shards, router.Shard{Addr: s.Addr(), Replicas: []string{r.Addr()}, Ranges: c.table.Shards()[i].Ranges})
	}
	var err error
	if c.table, err = router.NewTable(7, shards); err != nil {
		t.Fatal(err)
	}
	forksBefore := []int64{forks(t, c.clients[0]), forks(t, c.clients[1])}

	b := &testBarrier{}
	digests := make([]string, len(c.clients))
	b.onPause = func() {
		var wg sync.WaitGroup
		for i, cl := range c.clients {
			wg.Go(func() { digests[i], _ = cl.Do(ctx, "DEBUG", "DIGEST").Text() })
		}
		wg.Wait()
	}
	load := startLoad(t, c, b, 4)
	redistest.Sleep(300)
	cfg := c.jobConfig(t, b)
	j, err := runJob(t, cfg)
	if err != nil {
		t.Fatalf("job failed: %v", err)
	}
	redistest.Sleep(50)
	load.Stop()
	load.checkErrs(t)

	for i, cl := range c.clients {
		if n := forks(t, cl) - forksBefore[i]; n != 0 {
			t.Errorf("primary %s forked %d times for the snapshot, want none", c.servers[i].Addr(), n)
		}
	}
	m, err := Load(cfg.Dir, j.ID())
	if err != nil {
		t.Fatal(err)
	}
	for i, sh := range m.Shards {
		if sh.Addr != c.servers[i].Addr() || sh.From != replicas[i].Addr() {
			t.Errorf("shard %d: addr %s from %s; want %s from %s", i, sh.Addr, sh.From, c.servers[i].Addr(), replicas[i].Addr())
		}
	}
	rebuilt := rebuildSnapshot(t, filepath.Join(cfg.Dir, j.ID()), m)
	for i, r := range rebuilt {
		if got := digest(t, r); got != digests[i] {
			t.Errorf("shard %d: rebuilt digest %s, primary at the pause %s", i, got, digests[i])
		}
	}
	before, after := load.check(t, rebuilt)
	if after == 0 {
		t.Fatal("no write was acknowledged after the pause; the test proves nothing about the cut")
	}
	t.Logf("%d writes acknowledged before the pause, all present; %d after, none present", before, after)
}
