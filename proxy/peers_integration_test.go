package proxy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/snapshot"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// runID reads a proxy's run_id from its INFO server.
func runID(t *testing.T, cl *redis.Client) string {
	t.Helper()
	id := shardInfo(t, cl, "server")["run_id"]
	if len(id) != 40 {
		t.Fatalf("INFO server run_id = %q, want 40 hex digits", id)
	}
	return id
}

// TestIntegrationReshardOtherProxy: a reshard through one proxy is refused
// while another proxy is connected to the shards, when it starts and when
// it would commit, since the other would go on writing to the old shards;
// the refusal names the other proxy and leaves the first on its table with
// nothing lost. FORCE goes ahead.
func TestIntegrationReshardOtherProxy(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	self := runID(t, admin)
	for _, s := range c.Shards {
		list, err := s.Client().ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(list, "name=reshard-proxy-"+self+" ") {
			t.Errorf("shard %s: no connection named after the proxy's run_id %s:\n%s", s.Addr(), self, list)
		}
	}
	for i := 0; i < 300; i++ {
		admin.Set(ctx, fmt.Sprint("k:", i), i, 0)
	}

	// another proxy on the same shards, in its own state directory
	startOther := func() (id string, stop func()) {
		addr, stop := serveTable(t, proxy.DefaultConfig(), control.Config{StateDir: t.TempDir()}, c.Table, nil)
		cl := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { cl.Close() })
		return runID(t, cl), stop
	}
	other, stop := startOther()
	if other == self {
		t.Fatal("two proxies with one run_id")
	}
	targets := redistest.StartN(t, 2)
	reshard := func(opts ...any) error {
		return admin.Do(ctx, append([]any{"PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()}, opts...)...).Err()
	}
	err := reshard()
	if err == nil || !strings.Contains(err.Error(), "other reshard proxies are connected") || !strings.Contains(err.Error(), other) {
		t.Fatalf("PROXY RESHARD with another proxy connected = %v, want refused naming run_id %s", err, other)
	}
	if n := targets[0].Client().DBSize(ctx).Val() + targets[1].Client().DBSize(ctx).Val(); n != 0 {
		t.Errorf("the refused reshard wrote %d keys to the targets", n)
	}

	// gone at the start, back before the commit
	stop()
	if err := reshard("MANUAL"); err != nil {
		t.Fatal(err)
	}
	waitReshard(t, admin, "ready", "failed")
	other, stop = startOther()
	defer stop()
	if err := admin.Do(ctx, "PROXY", "RESHARD", "CUTOVER").Err(); err != nil {
		t.Fatal(err)
	}
	st := waitReshard(t, admin, "done", "aborted", "failed")
	if !strings.Contains(st, "state:aborted") || !strings.Contains(st, other) {
		t.Errorf("cutover with another proxy connected:\n%s\nwant aborted, naming run_id %s", st, other)
	}
	if got := c.Proxy.Table().Epoch(); got != 1 {
		t.Errorf("epoch after the refused cutover = %d, want 1", got)
	}
	for i := 0; i < 300; i++ {
		if got, err := admin.Get(ctx, fmt.Sprint("k:", i)).Int(); err != nil || got != i {
			t.Fatalf("k:%d after the refused cutover = %d (%v)", i, got, err)
		}
	}

	// FORCE: the operator knows better (the targets hold the first copy: FLUSH)
	if err := reshard("FLUSH", "FORCE"); err != nil {
		t.Fatal(err)
	}
	if st := waitReshard(t, admin, "done", "aborted", "failed"); !strings.Contains(st, "state:done") {
		t.Fatalf("FORCE reshard:\n%s", st)
	}
	if got := c.Proxy.Table().Epoch(); got != 2 {
		t.Errorf("epoch after the FORCE reshard = %d, want 2", got)
	}
}

// TestIntegrationReshardFence: after a cutover the old shards refuse writes
// (NOREPLICAS) and still answer reads, so a writer that still routes by the
// old table gets an error instead of losing its write; a reshard back onto
// them (a rollback) lifts the fence and fences the shards it leaves.
func TestIntegrationReshardFence(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	for i := 0; i < 300; i++ {
		admin.Set(ctx, fmt.Sprint("k:", i), i, 0)
	}
	reshard := func(to []*redistest.Server, opts ...any) {
		t.Helper()
		args := []any{"PROXY", "RESHARD"}
		for _, s := range to {
			args = append(args, s.Addr())
		}
		if err := admin.Do(ctx, append(args, opts...)...).Err(); err != nil {
			t.Fatal(err)
		}
		if st := waitReshard(t, admin, "done", "aborted", "failed"); !strings.Contains(st, "state:done") {
			t.Fatalf("reshard:\n%s", st)
		}
	}
	fenced := func(s *redistest.Server) bool {
		t.Helper()
		err := s.Client().Set(ctx, "direct", "x", 0).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "NOREPLICAS") {
			t.Fatalf("direct write to %s: %v", s.Addr(), err)
		}
		return err != nil
	}
	waitFenced := func(s *redistest.Server) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !fenced(s); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("old shard %s still takes writes after the cutover", s.Addr())
			}
		}
	}

	targets := redistest.StartN(t, 2)
	reshard(targets)
	for _, s := range c.Shards {
		waitFenced(s)
		if n, err := s.Client().DBSize(ctx).Result(); err != nil || n == 0 {
			t.Errorf("old shard %s: DBSIZE = %d (%v), want its keys readable", s.Addr(), n, err)
		}
	}
	for _, s := range targets {
		if fenced(s) {
			t.Errorf("new shard %s refuses writes", s.Addr())
		}
		s.Client().Del(ctx, "direct")
	}

	// A rollback refused before it starts (the old shards hold keys, and
	// no FLUSH) leaves them fenced.
	args := []any{"PROXY", "RESHARD"}
	for _, s := range c.Shards {
		args = append(args, s.Addr())
	}
	if err := admin.Do(ctx, args...).Err(); err == nil || !strings.Contains(err.Error(), "FLUSH") {
		t.Fatalf("rollback onto shards holding keys, without FLUSH = %v, want refused", err)
	}
	for _, s := range c.Shards {
		if !fenced(s) {
			t.Errorf("old shard %s unfenced by a rollback that did not start", s.Addr())
		}
	}

	reshard(c.Shards, "FLUSH") // the rollback
	for _, s := range c.Shards {
		if fenced(s) {
			t.Errorf("shard %s still fenced after the reshard back onto it", s.Addr())
		}
		s.Client().Del(ctx, "direct")
	}
	for _, s := range targets {
		waitFenced(s)
	}
	for i := 0; i < 300; i++ {
		if got, err := admin.Get(ctx, fmt.Sprint("k:", i)).Int(); err != nil || got != i {
			t.Fatalf("k:%d after the rollback = %d (%v)", i, got, err)
		}
	}
	if err := admin.Set(ctx, "k:0", "new", 0).Err(); err != nil {
		t.Errorf("write through the proxy after the rollback: %v", err)
	}
}

// TestIntegrationReshardDirectWriters: applications writing to the old
// shards directly, past the proxy, through a whole cutover. The old shards
// are fenced inside the barrier before the cut is read, so every write one
// of them acknowledged is on the new shards afterwards, and the writes
// after the fence are refused (NOREPLICAS), not lost. With the fence set
// after the commit instead, the writes between the cut and the fence were
// acknowledged and lost.
func TestIntegrationReshardDirectWriters(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	for i := 0; i < 1000; i++ {
		admin.Set(ctx, fmt.Sprint("k:", i), i, 0)
	}
	done := make(chan struct{})
	type tally struct {
		acked   []string
		refused int
		err     error
	}
	tallies := make([]tally, len(c.Shards))
	var wg sync.WaitGroup
	for i, s := range c.Shards {
		wg.Go(func() {
			cl := s.Client()
			tl := &tallies[i]
			for n := 0; ; n++ {
				select {
				case <-done:
					if tl.refused >= 20 {
						return
					}
				default:
				}
				key := fmt.Sprintf("direct:%d:%d", i, n)
				err := cl.Set(ctx, key, n, 0).Err()
				switch {
				case err == nil:
					if tl.refused > 0 {
						tl.err = fmt.Errorf("%s acknowledged after a refusal: the fence was lifted", key)
						return
					}
					tl.acked = append(tl.acked, key)
				case strings.HasPrefix(err.Error(), "NOREPLICAS"):
					tl.refused++
				default:
					tl.err = fmt.Errorf("%s: %w", key, err)
					return
				}
			}
		})
	}

	time.Sleep(100 * time.Millisecond)
	args := []any{"PROXY", "RESHARD"}
	for _, s := range redistest.StartN(t, 2) {
		args = append(args, s.Addr())
	}
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	st := waitReshard(t, admin, "done", "aborted", "failed")
	close(done)
	wg.Wait()
	if !strings.Contains(st, "state:done") {
		t.Fatalf("reshard:\n%s", st)
	}
	for i, tl := range tallies {
		if tl.err != nil {
			t.Fatalf("direct writer on shard %d: %v", i, tl.err)
		}
		lost := 0
		pipe := admin.Pipeline()
		cmds := make([]*redis.StringCmd, len(tl.acked))
		for j, key := range tl.acked {
			cmds[j] = pipe.Get(ctx, key)
		}
		pipe.Exec(ctx)
		for j, cmd := range cmds {
			if cmd.Err() != nil {
				lost++
				if lost <= 3 {
					t.Errorf("acknowledged direct write %s missing on the new shards: %v", tl.acked[j], cmd.Err())
				}
			}
		}
		t.Logf("shard %d: %d direct writes acknowledged, %d lost, then %d refused", i, len(tl.acked), lost, tl.refused)
	}
}

// TestIntegrationReshardTimeoutUnfences: a cutover that times out after
// the old shards were fenced (a target stopped, so the streams never reach
// the cut) sets their min-replicas settings back as they were before the
// barrier lifts: the proxy's clients, back on the old table, see no error.
func TestIntegrationReshardTimeoutUnfences(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	// An operator's own settings, to be restored as they were; with no
	// replica they refuse nothing, as min-replicas-max-lag 0 turns the
	// check off (so the fence sets it too).
	was := [][2]string{{"min-replicas-max-lag", "0"}, {"min-replicas-to-write", "3"}}
	for _, s := range c.Shards {
		for _, kv := range was {
			if err := s.Client().ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	load := startWriters(t, c, 4)
	targets := redistest.StartN(t, 2)
	if err := admin.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr(), "MANUAL").Err(); err != nil {
		t.Fatal(err)
	}
	waitReshard(t, admin, "ready", "failed")
	stopped := targets[0]
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopped.Signal(syscall.SIGCONT) })
	if err := admin.Do(ctx, "PROXY", "RESHARD", "CUTOVER").Err(); err != nil {
		t.Fatal(err)
	}
	st := waitReshard(t, admin, "aborted", "failed", "done")
	time.Sleep(200 * time.Millisecond) // writes after the barrier lifted
	load.halt()
	if !strings.Contains(st, "state:aborted") || !strings.Contains(st, "timed out") {
		t.Fatalf("cutover with a stopped target:\n%s\nwant aborted on a timeout", st)
	}
	if n := load.errors.Load(); n != 0 {
		t.Errorf("%d client errors after the aborted cutover, first: %v", n, load.first.Load())
	}
	for _, s := range c.Shards {
		for _, kv := range was {
			got, err := s.Client().ConfigGet(ctx, kv[0]).Result()
			if err != nil || got[kv[0]] != kv[1] {
				t.Errorf("%s: %s = %v (%v) after the aborted cutover, want %s as before", s.Addr(), kv[0], got, err, kv[1])
			}
		}
	}
}

// TestIntegrationSnapshotOtherProxy: BGSAVE with another proxy on the same
// shards runs (backup tools call it unattended). Its cut pauses the
// shards' writes, so it holds the other proxy's writes too, and neither its
// status nor its manifest warns; only when the shards refuse CLIENT PAUSE
// does the cut hold this proxy's writes only, and both say so, naming the
// other proxy (TestJobCutHoldsDirectWriters shows both cuts). Alone, a
// snapshot carries no warning.
func TestIntegrationSnapshotOtherProxy(t *testing.T) {
	c, cfg := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	bgsave := func() map[string]string {
		t.Helper()
		if err := admin.BgSave(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		st := waitSnapshotEnd(t, admin, 30*time.Second)
		if st["state"] != "done" {
			t.Fatalf("snapshot: %v", st)
		}
		return st
	}
	if st := bgsave(); st["warning"] != "" {
		t.Errorf("snapshot with no other proxy warns: %s", st["warning"])
	}

	addr, stop := serveTable(t, proxy.DefaultConfig(), control.Config{StateDir: t.TempDir()}, c.Table, nil)
	defer stop()
	ocl := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { ocl.Close() })
	runID(t, ocl) // its connections are on the shards
	st := bgsave()
	if w := st["warning"]; w != "" {
		t.Errorf("snapshot with another proxy connected, the shards paused: warning %q, want none", w)
	}
	manifest, err := os.ReadFile(filepath.Join(cfg.SnapshotDir, st["id"], snapshot.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(manifest), `"warning"`) {
		t.Errorf("manifest with a warning, the shards paused:\n%s", manifest)
	}

	// shards whose ACL refuses CLIENT PAUSE: the barrier's cut, and the warning
	acl := []string{"--user", "default", "on", "nopass", "~*", "&*", "+@all", "-client|pause"}
	rcfg := control.Config{StateDir: t.TempDir(), SnapshotDir: t.TempDir()}
	rc := proxytest.Start(t, proxytest.Options{Shards: 2, Control: &rcfg, ShardArgs: append(acl, debugArgs...)})
	raddr, rstop := serveTable(t, proxy.DefaultConfig(), control.Config{StateDir: t.TempDir()}, rc.Table, nil)
	defer rstop()
	rcl := redis.NewClient(&redis.Options{Addr: raddr})
	t.Cleanup(func() { rcl.Close() })
	rid := runID(t, rcl)
	admin = rc.Client()
	st = bgsave()
	if w := st["warning"]; !strings.Contains(w, rid) || !strings.Contains(w, "consistent for this proxy's writes only") {
		t.Errorf("snapshot with another proxy connected, CLIENT PAUSE refused: warning %q, want it to name run_id %s", w, rid)
	}
	manifest, err = os.ReadFile(filepath.Join(rcfg.SnapshotDir, st["id"], snapshot.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifest), `"warning"`) || !strings.Contains(string(manifest), rid) {
		t.Errorf("manifest without the warning, CLIENT PAUSE refused:\n%s", manifest)
	}
}
