package proxy_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/snapshot"

	"github.com/reshard/reshard/internal/proxytest"
)

// Issue 4's fault acceptance, shown through the proxy: a shard that dies
// while BGSAVE captures it, and a shard that drops the capture at its
// client-output-buffer-limit replica, fail the snapshot with a reason that
// names the shard, leave nothing in the snapshot directory, never touch the
// clients of the other shards, and do not stop the next snapshot.
//
// Timing is made deterministic through the shards' own settings, never by
// sleeping: repl-diskless-sync-delay holds a fork back (so a shard is
// killed while its capture waits for it, or another shard's pending fork
// keeps the cut from being taken), and rdb-key-save-delay stretches an RDB
// transfer over seconds (so a kill or a write burst lands in the middle of
// it).

// faultShardArgs: diskless, forking at the next replication cron tick; the
// scenarios slow one shard down with CONFIG SET.
var faultShardArgs = []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}

// victimKeys is how many keys the victim shard holds: at 200 µs of
// rdb-key-save-delay each, an RDB transfer of 4 s or more.
const victimKeys = 20000

// otherTraffic is clients writing and reading their own keys through the
// proxy, on every shard but one, counting what they see.
type otherTraffic struct {
	ops, errs atomic.Int64
	stop      chan struct{}
	once      sync.Once
	wg        sync.WaitGroup

	mu      sync.Mutex
	samples []string
}

// startOtherTraffic starts clients on every shard of c but skip. Each sets
// a key to a sequence number and reads it back, so a wrong answer is an
// error too. They run until stopTraffic (also at cleanup).
func startOtherTraffic(t *testing.T, c *proxytest.Cluster, skip, clients int) *otherTraffic {
	t.Helper()
	tr := &otherTraffic{stop: make(chan struct{})}
	for w := 0; w < clients; w++ {
		var keys []string
		for i := range c.Shards {
			if i != skip {
				keys = append(keys, keyOn(t, c, fmt.Sprintf("other:%d:%d:", w, i), i))
			}
		}
		cl := c.Client()
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			ctx := context.Background()
			for seq := 0; ; seq++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				k := keys[seq%len(keys)]
				v := strconv.Itoa(seq)
				err := cl.Set(ctx, k, v, 0).Err()
				if err == nil {
					var got string
					if got, err = cl.Get(ctx, k).Result(); err == nil && got != v {
						err = fmt.Errorf("GET %s = %q after SET %q", k, got, v)
					}
				}
				if err != nil {
					tr.errs.Add(1)
					tr.mu.Lock()
					if len(tr.samples) < 5 {
						tr.samples = append(tr.samples, fmt.Sprintf("%s: %v", k, err))
					}
					tr.mu.Unlock()
					time.Sleep(10 * time.Millisecond) // do not spin on a broken proxy
					continue
				}
				tr.ops.Add(1)
			}
		}()
	}
	t.Cleanup(tr.stopTraffic)
	return tr
}

func (tr *otherTraffic) stopTraffic() {
	tr.once.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

// checkClean fails the test if any client saw an error so far.
func (tr *otherTraffic) checkClean(t *testing.T, when string) {
	t.Helper()
	if n := tr.errs.Load(); n > 0 {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		t.Errorf("%s: clients of the other shards saw %d errors, e.g. %q", when, n, tr.samples)
	}
}

// checkProgress fails the test unless the clients complete commands
// within the next second.
func (tr *otherTraffic) checkProgress(t *testing.T, when string) {
	t.Helper()
	before := tr.ops.Load()
	if !waitFor(time.Second, func() bool { return tr.ops.Load() > before+100 }) {
		t.Errorf("%s: clients of the other shards made %d operations in a second", when, tr.ops.Load()-before)
	}
}

// snapshotStatus returns PROXY SNAPSHOT STATUS's fields.
func snapshotStatus(t *testing.T, cl *redis.Client) map[string]string {
	t.Helper()
	text, err := cl.Do(t.Context(), "PROXY", "SNAPSHOT", "STATUS").Text()
	if err != nil {
		t.Fatalf("PROXY SNAPSHOT STATUS: %v", err)
	}
	return infoLines(text)
}

// waitSnapshotEnd polls PROXY SNAPSHOT STATUS until the job is no longer
// running.
func waitSnapshotEnd(t *testing.T, cl *redis.Client, limit time.Duration) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(20 * time.Millisecond) {
		st := snapshotStatus(t, cl)
		if st["state"] != "running" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot still running after %s: %v", limit, st)
		}
	}
}

// shardInfo returns one INFO section of a shard, read directly.
func shardInfo(t *testing.T, cl *redis.Client, section string) map[string]string {
	t.Helper()
	text, err := cl.Info(t.Context(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	return infoLines(text)
}

// fillShard writes n keys through the proxy, all in one slot of shard i.
func fillShard(t *testing.T, c *proxytest.Cluster, i, n int) {
	t.Helper()
	tag := keyOn(t, c, "victim-tag-", i)
	cl := c.Client()
	for start := 0; start < n; start += 1000 {
		p := cl.Pipeline()
		for k := start; k < min(start+1000, n); k++ {
			p.Set(t.Context(), fmt.Sprintf("{%s}:fill:%d", tag, k), k, 0)
		}
		if _, err := p.Exec(t.Context()); err != nil {
			t.Fatalf("fill shard %d: %v", i, err)
		}
	}
	if got := c.Shards[i].Client().DBSize(t.Context()).Val(); got < int64(n) {
		t.Fatalf("shard %d holds %d keys after the fill, want at least %d", i, got, n)
	}
}

// configSet sets one configuration parameter on a shard directly.
func configSet(t *testing.T, cl *redis.Client, name, value string) {
	t.Helper()
	if err := cl.ConfigSet(t.Context(), name, value).Err(); err != nil {
		t.Fatalf("CONFIG SET %s %s on %s: %v", name, value, cl.Options().Addr, err)
	}
}

// failure is what a failed snapshot must show.
type failure struct {
	id string
	// errorHas are strings its error must contain; the shard's address
	// first.
	errorHas []string
	// beforeCut, when set, is when the snapshot started: it failed before
	// its cut, so the barrier must not have been taken since.
	beforeCut time.Time
}

// checkFailedCleanly checks what a failed snapshot must leave: state:failed
// with the expected error, nothing in the snapshot directory, nothing
// listed, and the persistence fields Redis tools read saying the last save
// failed.
func checkFailedCleanly(t *testing.T, c *proxytest.Cluster, dir string, want failure, st map[string]string) {
	t.Helper()
	ctx := t.Context()
	admin := c.Client()
	id := want.id
	if st["state"] != "failed" || st["id"] != id {
		t.Fatalf("snapshot %s ended with state:%s id:%s, want failed: %v", id, st["state"], st["id"], st)
	}
	t.Logf("failed in phase %s after %s ms (pause_us %s): %s", st["phase"], st["elapsed_ms"], st["pause_us"], st["error"])
	for _, s := range want.errorHas {
		if !strings.Contains(st["error"], s) {
			t.Errorf("error %q does not say %q", st["error"], s)
		}
	}
	if st["dir"] != "" {
		t.Errorf("a failed snapshot reports dir:%s", st["dir"])
	}

	// Nothing that looks complete, and no leftovers either: the job
	// removes its temporary directory before it reports failed.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary %s left in the snapshot directory", e.Name())
		} else {
			t.Errorf("%s left in the snapshot directory (is dir: %v)", e.Name(), e.IsDir())
		}
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == snapshot.ManifestFile {
			t.Errorf("%s exists after a failed snapshot", path)
		}
		return nil
	})
	list, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "LIST").StringSlice()
	if err != nil {
		t.Fatalf("PROXY SNAPSHOT LIST: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("PROXY SNAPSHOT LIST after a failed snapshot: %q", list)
	}
	if err := admin.Do(ctx, "PROXY", "SNAPSHOT", "STATUS", id).Err(); err == nil {
		t.Errorf("PROXY SNAPSHOT STATUS %s answers for a failed snapshot", id)
	}
	if !want.beforeCut.IsZero() {
		if closed, _ := c.Proxy.LastPause(); !closed.IsZero() && closed.After(want.beforeCut) {
			t.Errorf("the write barrier was taken at %s, though the snapshot failed before its cut", closed)
		}
		if st["pause_us"] != "0" {
			t.Errorf("pause_us:%s, want 0: the snapshot failed before its cut", st["pause_us"])
		}
	}
	persistence := infoLines(admin.Info(ctx, "persistence").Val())
	if got := persistence["rdb_last_bgsave_status"]; got != "err" {
		t.Errorf("INFO persistence rdb_last_bgsave_status:%s, want err", got)
	}
	if got := persistence["rdb_bgsave_in_progress"]; got != "0" {
		t.Errorf("INFO persistence rdb_bgsave_in_progress:%s, want 0", got)
	}
}

// checkNextSnapshot takes a snapshot once the shard at victim serves again
// and checks it completes and is listed.
func checkNextSnapshot(t *testing.T, c *proxytest.Cluster, dir string, victim int) {
	t.Helper()
	ctx := t.Context()
	admin := c.Client()
	key := keyOn(t, c, "after:", victim)
	if !waitFor(10*time.Second, func() bool { return admin.Set(ctx, key, "back", 0).Err() == nil }) {
		t.Fatalf("the proxy does not serve shard %d again: %v", victim, admin.Set(ctx, key, "back", 0).Err())
	}
	id, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "after-fault").Text()
	if err != nil {
		t.Fatalf("PROXY SNAPSHOT after the fault: %v", err)
	}
	st := waitSnapshotEnd(t, admin, time.Minute)
	if st["state"] != "done" || st["id"] != id {
		t.Fatalf("snapshot after the fault: %v", st)
	}
	m, err := snapshot.Load(dir, id)
	if err != nil {
		t.Fatalf("load the snapshot after the fault: %v", err)
	}
	if got, want := m.Shards[victim].Addr, c.Shards[victim].Addr(); got != want {
		t.Errorf("snapshot's shard %d is %s, want %s", victim, got, want)
	}
	list, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "LIST").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !strings.Contains(list[0], "id="+id+" ") {
		t.Errorf("PROXY SNAPSHOT LIST = %q, want only %s", list, id)
	}
	if got := infoLines(admin.Info(ctx, "persistence").Val())["rdb_last_bgsave_status"]; got != "ok" {
		t.Errorf("rdb_last_bgsave_status:%s after a good snapshot", got)
	}
}

// TestIntegrationSnapshotShardKilled kills shard 1 while a snapshot
// captures it, at two points before the cut: while its capture waits for
// the fork, and while its RDB is being transferred. Clients of shards 0 and
// 2 keep writing and reading throughout; then the shard comes back on its
// port and a new snapshot completes.
func TestIntegrationSnapshotShardKilled(t *testing.T) {
	const victim = 1
	tests := []struct {
		name string
		// prepare slows the shards down so that ready, polled before the
		// kill, can become true before the cut.
		prepare func(t *testing.T, c *proxytest.Cluster)
		ready   func(t *testing.T, c *proxytest.Cluster, dir string) bool
		// undo restores the other shards' settings for the next snapshot.
		undo func(t *testing.T, c *proxytest.Cluster)
	}{
		{
			name: "waiting for its fork",
			prepare: func(t *testing.T, c *proxytest.Cluster) {
				configSet(t, c.Shards[victim].Client(), "repl-diskless-sync-delay", "60")
			},
			ready: func(t *testing.T, c *proxytest.Cluster, _ string) bool {
				// The capture is registered as a replica, no fork yet.
				repl := shardInfo(t, c.Shards[victim].Client(), "replication")
				pers := shardInfo(t, c.Shards[victim].Client(), "persistence")
				return repl["connected_slaves"] == "1" && strings.Contains(repl["slave0"], "state=wait_bgsave") &&
					pers["rdb_bgsave_in_progress"] == "0"
			},
			undo: func(*testing.T, *proxytest.Cluster) {},
		},
		{
			name: "during its rdb transfer",
			prepare: func(t *testing.T, c *proxytest.Cluster) {
				fillShard(t, c, victim, victimKeys)
				configSet(t, c.Shards[victim].Client(), "rdb-key-save-delay", "200")
				// Shard 2 forks only after 5 s (Redis 7's default delay),
				// and the cut waits for every fork.
				configSet(t, c.Shards[2].Client(), "repl-diskless-sync-delay", "5")
			},
			ready: func(t *testing.T, c *proxytest.Cluster, dir string) bool {
				// Part of the victim's RDB has arrived, and shard 2 has
				// not forked, so there can have been no cut.
				files, _ := filepath.Glob(filepath.Join(dir, "*", fmt.Sprintf("shard-%d.rdb", victim)))
				if len(files) != 1 {
					return false
				}
				fi, err := os.Stat(files[0])
				return err == nil && fi.Size() > 0 &&
					shardInfo(t, c.Shards[victim].Client(), "persistence")["rdb_bgsave_in_progress"] == "1" &&
					shardInfo(t, c.Shards[2].Client(), "persistence")["rdb_bgsave_in_progress"] == "0"
			},
			undo: func(t *testing.T, c *proxytest.Cluster) {
				configSet(t, c.Shards[2].Client(), "repl-diskless-sync-delay", "0")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// the cases wait for a fork the shards' delay holds back
			cfg := control.Config{SnapshotDir: t.TempDir(), KeepForkDelay: true}
			c := proxytest.Start(t, proxytest.Options{Shards: 3, Control: &cfg, ShardArgs: faultShardArgs})
			ctx := t.Context()
			admin := c.Client()
			down := c.Shards[victim]
			addr := down.Addr()
			tt.prepare(t, c)

			traffic := startOtherTraffic(t, c, victim, 8)
			traffic.checkProgress(t, "before the snapshot")
			started := time.Now()
			id, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "killed").Text()
			if err != nil {
				t.Fatal(err)
			}
			if !waitFor(20*time.Second, func() bool { return tt.ready(t, c, cfg.SnapshotDir) }) {
				t.Fatalf("the capture of shard %d never reached the point of the kill: %v", victim, snapshotStatus(t, admin))
			}
			st := snapshotStatus(t, admin)
			if st["state"] != "running" || st["pause_us"] != "0" {
				t.Fatalf("about to kill the shard, but the snapshot is not running before its cut: %v", st)
			}
			down.Kill()
			t.Logf("killed shard %d (%s) in phase %s", victim, addr, st["phase"])

			st = waitSnapshotEnd(t, admin, 30*time.Second)
			traffic.checkClean(t, "during the failed snapshot")
			checkFailedCleanly(t, c, cfg.SnapshotDir, failure{id: id, errorHas: []string{addr}, beforeCut: started}, st)
			traffic.checkProgress(t, "after the failed snapshot")
			// The dead shard's own keys fail plainly, naming it.
			if err := admin.Get(ctx, keyOn(t, c, "dead:", victim)).Err(); err == nil || !isShardDown("-"+err.Error(), addr) {
				t.Errorf("GET on the dead shard: %v, want an error naming %s", err, addr)
			}

			tt.undo(t, c)
			down.Restart(faultShardArgs...)
			checkNextSnapshot(t, c, cfg.SnapshotDir, victim)
			traffic.checkProgress(t, "after the next snapshot")
			traffic.stopTraffic()
			traffic.checkClean(t, "in the whole test")
			t.Logf("clients of the other shards: %d operations, %d errors", traffic.ops.Load(), traffic.errs.Load())
		})
	}
}

// TestIntegrationSnapshotReplicaBufferLimit: a shard whose
// client-output-buffer-limit replica is overrun while its RDB is being
// transferred drops the capture's link; the snapshot fails and says why
// instead of the link dying silently. The capture cannot be made slow
// through the proxy, so the shard is: rdb-key-save-delay stretches the RDB
// over seconds, during which the shard must buffer every write for the
// capture (a replica gets the stream only after the RDB), which is how a
// real replica overruns the limit on a busy shard. snapshot's
// TestCaptureOutputBufferLimit covers a capture that stops reading.
func TestIntegrationSnapshotReplicaBufferLimit(t *testing.T) {
	const victim = 1
	cfg := control.Config{SnapshotDir: t.TempDir()}
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Control: &cfg, ShardArgs: faultShardArgs})
	ctx := t.Context()
	admin := c.Client()
	shard := c.Shards[victim].Client()
	addr := c.Shards[victim].Addr()
	fillShard(t, c, victim, victimKeys)
	configSet(t, shard, "rdb-key-save-delay", "200")
	// Redis 7 takes a replica hard limit below repl-backlog-size (1 MB)
	// as repl-backlog-size (checked: the link went at 1.07 MB buffered);
	// one round of the burst below is 1.6 MB, and the 32 kB soft limit
	// would end the link a second later anyway.
	configSet(t, shard, "client-output-buffer-limit", "replica 64kb 32kb 1")

	traffic := startOtherTraffic(t, c, victim, 8)
	traffic.checkProgress(t, "before the snapshot")
	id, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "overrun").Text()
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool {
		return shardInfo(t, shard, "replication")["connected_slaves"] == "1" &&
			shardInfo(t, shard, "persistence")["rdb_bgsave_in_progress"] == "1"
	}) {
		t.Fatalf("shard %d never forked for the capture: %v", victim, snapshotStatus(t, admin))
	}

	// The burst goes through the proxy, as a client's would.
	tag := keyOn(t, c, "burst-tag-", victim)
	value := strings.Repeat("x", 16<<10)
	burst := c.Client()
	rounds := 0
	for shardInfo(t, shard, "replication")["connected_slaves"] != "0" {
		if rounds == 20 {
			t.Fatalf("shard %d still lists the capture after %d writes of 16 KB: %v", victim, rounds*100, snapshotStatus(t, admin))
		}
		if shardInfo(t, shard, "persistence")["rdb_bgsave_in_progress"] != "1" {
			t.Fatalf("the RDB transfer ended before the burst overran the limit: %v", snapshotStatus(t, admin))
		}
		p := burst.Pipeline()
		for i := 0; i < 100; i++ {
			p.Set(ctx, fmt.Sprintf("{%s}:burst:%d", tag, i), value, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("burst through the proxy: %v", err)
		}
		rounds++
	}
	t.Logf("shard %d dropped the capture after %d writes of 16 KB", victim, rounds*100)

	st := waitSnapshotEnd(t, admin, 30*time.Second)
	traffic.checkClean(t, "during the failed snapshot")
	// Every shard forks at once here, so the cut has usually been taken:
	// the barrier is not checked.
	checkFailedCleanly(t, c, cfg.SnapshotDir, failure{id: id, errorHas: []string{addr, "client-output-buffer-limit replica"}}, st)
	traffic.checkProgress(t, "after the failed snapshot")

	configSet(t, shard, "rdb-key-save-delay", "0")
	configSet(t, shard, "client-output-buffer-limit", "replica 256mb 64mb 60")
	checkNextSnapshot(t, c, cfg.SnapshotDir, victim)
	traffic.stopTraffic()
	traffic.checkClean(t, "in the whole test")
	t.Logf("clients of the other shards: %d operations, %d errors", traffic.ops.Load(), traffic.errs.Load())
}
