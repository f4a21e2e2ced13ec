package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// TestJobConsistentCut is the snapshot's defining property. Three shards
// (disk-based, diskless without delay, diskless with Redis's default 5 s
// delay) take writes from several writers through a barrier that really
// pauses them; a job snapshots the cluster meanwhile. Shards rebuilt from
// each RDB plus its tail hold every write acknowledged before the pause and
// none acknowledged after it, for every writer on every shard, and equal
// the sources at the pause (DEBUG DIGEST).
func TestJobConsistentCut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t,
		diskArgs,
		disklessArgs,
		[]string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "5"},
	)
	b := &testBarrier{}
	digests := make([]string, len(c.clients))
	var pausedAt time.Time
	b.onPause = func() {
		pausedAt = time.Now()
		var wg sync.WaitGroup
		for i, cl := range c.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				digests[i], _ = cl.Do(ctx, "DEBUG", "DIGEST").Text()
			}()
		}
		wg.Wait()
	}
	load := startLoad(t, c, b, 4)
	redistest.Sleep(300)

	cfg := c.jobConfig(t, b)
	cfg.Name = "consistency"
	cfg.KeepForkDelay = true // a fork that comes late, with no barrier held meanwhile
	started := time.Now()
	j, err := runJob(t, cfg)
	if err != nil {
		t.Fatalf("job failed: %v", err)
	}
	// Writes went on after the cut while StopAt cut every tail; a few
	// more make sure some were acknowledged after the pause.
	redistest.Sleep(50)
	load.Stop()
	load.checkErrs(t)

	st := j.Status()
	if st.State != StateDone || st.Phase != PhaseComplete || st.Error != "" {
		t.Fatalf("status %+v", st)
	}
	if got := b.gen.Load(); got != 1 {
		t.Fatalf("barrier paused %d times, want 1", got)
	}
	// The shard with the 5 s delay forks 5 s after PSYNC: the barrier
	// must not have been taken before.
	if wait := pausedAt.Sub(started); wait < 4*time.Second {
		t.Errorf("barrier taken %s after the start: before the delayed shard forked?", wait)
	}
	m, err := Load(cfg.Dir, j.ID())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Dir, j.ID())
	if st.Dir != dir || st.Keys != m.Keys || st.Bytes != m.Bytes || st.PauseUS != m.PauseUS {
		t.Errorf("status %+v disagrees with manifest (keys %d, bytes %d, pause_us %d)", st, m.Keys, m.Bytes, m.PauseUS)
	}
	t.Logf("snapshot %s: %d keys, %d bytes, pause %d us (the test barrier's pause includes DEBUG DIGEST of 3 shards)",
		m.ID, m.Keys, m.Bytes, m.PauseUS)
	for i, want := range []string{"disk", "diskless", "diskless"} {
		sh := m.Shards[i]
		if sh.Transfer != want {
			t.Errorf("shard %d: transfer %s, want %s", i, sh.Transfer, want)
		}
		if sh.Addr != c.servers[i].Addr() || sh.RedisVersion == "" || sh.RDBVersion == 0 || len(sh.ReplID) != 40 ||
			sh.CutOffset < sh.ForkOffset {
			t.Errorf("shard %d: manifest entry %+v", i, sh)
		}
		if err := checkRDB(filepath.Join(dir, sh.RDBFile)); err != nil {
			t.Errorf("shard %d: %v", i, err)
		}
		t.Logf("shard %d (%s): fork %d, cut %d, rdb %d bytes (%d keys), tail %d commands, %d keys at the cut",
			i, sh.Transfer, sh.ForkOffset, sh.CutOffset, sh.RDBSize, sh.Keys, sh.TailCommands, sh.KeysAtCut)
	}
	// Shards 0 and 1 forked at once and took writes for 5 s before the
	// cut: their tails must carry them.
	for i := 0; i < 2; i++ {
		if m.Shards[i].TailCommands == 0 {
			t.Errorf("shard %d: empty tail; the test did not exercise the replay", i)
		}
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != m.ID {
		t.Errorf("snapshot dir holds %v, want only %s", entries, m.ID)
	}

	rebuilt := rebuildSnapshot(t, dir, m)
	for i, r := range rebuilt {
		if got := digest(t, r); got != digests[i] {
			t.Errorf("shard %d: rebuilt digest %s, source at the pause %s", i, got, digests[i])
		}
		n, err := r.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != m.Shards[i].KeysAtCut {
			t.Errorf("shard %d: rebuilt has %d keys, manifest keys_at_cut %d", i, n, m.Shards[i].KeysAtCut)
		}
	}
	before, after := load.check(t, rebuilt)
	if after == 0 {
		t.Fatal("no write was acknowledged after the pause; the test proves nothing about the cut")
	}
	t.Logf("%d writes acknowledged before the pause, all present; %d after, none present", before, after)
}

// TestJobFailures: whatever breaks, the job fails with a reason, its
// temporary directory is gone and nothing that looks like a snapshot is
// left; the shards no longer list a capture as a replica.
func TestJobFailures(t *testing.T) {
	errNo := errors.New("proxy refuses to pause")
	tests := []struct {
		name string
		// shard 1's extra args; shards 0 and 2 are plain diskless ones
		args   []string
		setup  func(t *testing.T, c *cluster, cfg *JobConfig)
		during func(t *testing.T, c *cluster, j *Job) // while the job runs
		want   error
		// wantIn is a fragment the error must contain
		wantIn string
		// paused: whether the barrier must have been taken
		paused bool
	}{
		{
			name: "shard killed during its fork delay",
			args: []string{"--repl-diskless-sync-delay", "5"},
			during: func(t *testing.T, c *cluster, j *Job) {
				redistest.Sleep(1000)
				c.servers[1].Kill()
			},
			want: ErrSourceGone, wantIn: "handshake phase",
		},
		{
			name: "shard killed during the rdb",
			// 20k keys at 200 µs each: a transfer of 4 s or more.
			args: []string{"--rdb-key-save-delay", "200"},
			setup: func(t *testing.T, c *cluster, cfg *JobConfig) {
				populate(t, c.servers[1], 20000, 16)
			},
			during: func(t *testing.T, c *cluster, j *Job) {
				// Shards 0 and 2 are empty: a few hundred bytes of RDB.
				for j.Status().Bytes < 10000 {
					select {
					case <-j.Done():
						t.Fatalf("job ended early: %v", j.Wait(context.Background()))
					default:
					}
					redistest.Sleep(5)
				}
				if ph := j.Status().Phase; ph != PhaseCutting {
					t.Errorf("phase %s while receiving the rdb, want %s", ph, PhaseCutting)
				}
				c.servers[1].Kill()
			},
			want: ErrSourceGone, wantIn: "rdb phase", paused: true,
		},
		{
			// Shard 1 forks at once and is killed during its transfer
			// while shard 0 waits 8 s for its fork: the job fails then,
			// before any cut (so without pausing the barrier).
			name: "shard killed after its fork while another waits for its own",
			args: []string{"--rdb-key-save-delay", "200"},
			setup: func(t *testing.T, c *cluster, cfg *JobConfig) {
				populate(t, c.servers[1], 20000, 16)
				if err := c.clients[0].ConfigSet(context.Background(), "repl-diskless-sync-delay", "8").Err(); err != nil {
					t.Fatal(err)
				}
			},
			during: func(t *testing.T, c *cluster, j *Job) {
				redistest.Sleep(1000)
				c.servers[1].Kill()
			},
			want: ErrSourceGone, wantIn: "rdb phase",
		},
		{
			name: "wrong password",
			setup: func(t *testing.T, c *cluster, cfg *JobConfig) {
				if err := requirePass("secret-pw")(context.Background(), c.clients[1]); err != nil {
					t.Fatal(err)
				}
				cfg.Password = "not-the-password-x7"
			},
			want: ErrRefused, wantIn: "AUTH",
		},
		{
			name: "barrier refuses",
			setup: func(t *testing.T, c *cluster, cfg *JobConfig) {
				cfg.Barrier = &testBarrier{refuse: errNo}
			},
			want: errNo,
		},
		{
			name: "fork timeout",
			args: []string{"--repl-diskless-sync-delay", "5"},
			setup: func(t *testing.T, c *cluster, cfg *JobConfig) {
				cfg.ForkTimeout = 500 * time.Millisecond
			},
			want: ErrTimeout, wantIn: "fork timeout",
		},
		{
			name: "canceled",
			args: []string{"--repl-diskless-sync-delay", "5"},
			during: func(t *testing.T, c *cluster, j *Job) {
				redistest.Sleep(300)
				j.Cancel()
			},
			want: ErrJobCanceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, disklessArgs, withArgs(disklessArgs, tt.args...), disklessArgs)
			b := &testBarrier{}
			cfg := c.jobConfig(t, b)
			// the cases that need a fork to come late set a delay
			cfg.KeepForkDelay = true
			if tt.setup != nil {
				tt.setup(t, c, &cfg)
			}
			j, err := StartJob(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(j.Cancel)
			if tt.during != nil {
				tt.during(t, c, j)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = j.Wait(ctx)
			if ctx.Err() != nil {
				t.Fatalf("job did not end: %+v", j.Status())
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q does not mention %q", err, tt.wantIn)
			}
			t.Logf("%v", err)
			st := j.Status()
			if st.State != StateFailed || st.Error != err.Error() || st.Dir != "" || st.Finished.IsZero() {
				t.Errorf("status %+v", st)
			}
			info := st.Info()
			if !strings.Contains(info, "state:failed\r\n") || !strings.Contains(info, "error:") {
				t.Errorf("info:\n%s", info)
			}
			if cfg.Password != "" && strings.Contains(info, cfg.Password) {
				t.Errorf("the status shows the password:\n%s", info)
			}
			if paused := b.gen.Load() > 0; paused != tt.paused {
				t.Errorf("barrier paused: %v, want %v", paused, tt.paused)
			}
			entries, err := os.ReadDir(cfg.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("snapshot dir holds %v after a failed job, want nothing", entries)
			}
			if ms, err := List(cfg.Dir); len(ms) != 0 || err != nil {
				t.Errorf("List: %v, %v", ms, err)
			}
			// The surviving shards dropped the captures.
			for _, i := range []int{0, 2} {
				deadline := time.Now().Add(5 * time.Second)
				for infoField(t, c.clients[i], "replication", "connected_slaves") != "0" {
					if time.Now().After(deadline) {
						t.Fatalf("shard %d still lists a replica", i)
					}
					redistest.Sleep(20)
				}
			}
		})
	}
}

// TestJobListLoadDelete: snapshots are listed oldest first, loaded by id,
// deleted by id; ids that are not snapshots are refused.
func TestJobListLoadDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t, disklessArgs, diskArgs)
	b := &testBarrier{}
	cfg := c.jobConfig(t, b)
	var ids []string
	var last Status
	for i, name := range []string{"first", ""} {
		c.clients[i].Set(ctx, "k"+name, name, 0)
		cfg.Name = name
		j, err := runJob(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID())
		last = j.Status()
		info := last.Info()
		for _, want := range []string{"state:done\r\n", "id:" + j.ID() + "\r\n", "dir:" + filepath.Join(cfg.Dir, j.ID()) + "\r\n",
			"name:" + name + "\r\n", "error:\r\n", "shards:2\r\n"} {
			if !strings.Contains(info, want) {
				t.Errorf("status info lacks %q:\n%s", want, info)
			}
		}
	}
	list, err := List(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[1] || list[0].Name != "first" {
		t.Fatalf("List: %+v, want %v", list, ids)
	}
	m, err := Load(cfg.Dir, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if m.Keys != 2 || m.Epoch != 7 || len(m.Shards) != 2 || m.Table.Spec != list[1].Table.Spec {
		t.Errorf("Load: %+v", m)
	}
	if ms := m.Status(DirStore(cfg.Dir).Location(m.ID)); ms.Info() != last.Info() {
		t.Errorf("the manifest's status:\n%s\nthe job's:\n%s", ms.Info(), last.Info())
	}
	if _, err := m.RouterTable(); err != nil {
		t.Errorf("RouterTable: %v", err)
	}
	for _, bad := range []string{"", "..", "../" + ids[0], ids[0] + "/manifest.json", tempPrefix + ids[0], "20990101T000000Z-0000"} {
		if err := Delete(cfg.Dir, bad); !errors.Is(err, ErrNotSnapshot) {
			t.Errorf("Delete(%q): %v, want ErrNotSnapshot", bad, err)
		}
		if _, err := Load(cfg.Dir, bad); !errors.Is(err, ErrNotSnapshot) {
			t.Errorf("Load(%q): %v, want ErrNotSnapshot", bad, err)
		}
	}
	if err := Delete(cfg.Dir, ids[0]); err != nil {
		t.Fatal(err)
	}
	if list, err := List(cfg.Dir); err != nil || len(list) != 1 || list[0].ID != ids[1] {
		t.Errorf("List after Delete: %+v, %v", list, err)
	}
	entries, _ := os.ReadDir(cfg.Dir)
	if len(entries) != 1 {
		t.Errorf("dir after Delete: %v", entries)
	}
}

// TestJobAuth: a job authenticates to the shards as an ACL user allowed to
// replicate and read INFO, for the captures and for the cut; the password
// shows nowhere.
func TestJobAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t, disklessArgs, disklessArgs)
	for _, cl := range c.clients {
		if err := cl.Do(ctx, "ACL", "SETUSER", "snap", "on", ">snap-pw-x7", "+psync", "+replconf", "+ping", "+info").Err(); err != nil {
			t.Fatal(err)
		}
		cl.Set(ctx, "k", "v", 0)
	}
	cfg := c.jobConfig(t, &testBarrier{})
	cfg.Username, cfg.Password = "snap", "snap-pw-x7"
	j, err := runJob(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, j.ID(), ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), cfg.Password) || strings.Contains(j.Status().Info(), cfg.Password) {
		t.Error("the password shows in the manifest or the status")
	}
	if m, err := Load(cfg.Dir, j.ID()); err != nil || m.Keys != 2 {
		t.Errorf("Load: %+v, %v", m, err)
	}
}
