package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/snapshot/rdb"
)

// TestCaptureRebuild is the end-to-end property: capture a shard under
// concurrent writes, cut at master_repl_offset read while the writers are
// paused, let writes go on, stop at the cut; then a fresh redis-server on
// the RDB plus a redis-cli --pipe replay of the tail holds exactly the
// source's data at the cut.
func TestCaptureRebuild(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		transfer string
	}{
		{"disk", diskArgs, "disk"},
		{"diskless", disklessArgs, "diskless"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// PINGs every second, so the stream carries protocol noise the
			// tail must skip and the offset must count.
			s := startSource(t, withArgs(tt.args, "--repl-ping-replica-period", "1")...)
			c := s.Client()
			populate(t, s, 20000, 100)
			w := startWriters(t, s, 4)
			redistest.Sleep(200)

			cfg := captureConfig(t, s)
			cfg.Verify = checkRDB
			st := startCapture(t, cfg)
			waitPhase(t, st, PhaseStream)

			// WAIT makes the source send REPLCONF GETACK; only an ACK
			// with the right offset lets it count the capture.
			redistest.Sleep(300)
			if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
				t.Fatalf("WAIT 1: got %d replicas, %v; want the capture to acknowledge", n, err)
			}
			redistest.Sleep(1200) // a PING or two

			w.Pause()
			cut := masterOffset(t, c)
			want := digest(t, c)
			lasts := make([]int64, len(w.last))
			for i := range lasts {
				lasts[i] = w.last[i].Load()
			}
			w.Resume()
			redistest.Sleep(300) // the reader goes past the cut
			w.check(t)

			stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := st.StopAt(stopCtx, cut)
			if err != nil {
				t.Fatalf("StopAt(%d): %v", cut, err)
			}
			w.Stop()
			w.check(t)
			t.Logf("fork %d, cut %d, rdb %d bytes (v%d, %s), tail %d bytes, %d commands",
				res.ForkOffset, res.CutOffset, res.RDBSize, res.RDBVersion, res.Transfer, res.TailSize, res.TailCommands)

			if got, want := res.Transfer, tt.transfer; got != want {
				t.Errorf("transfer: got %s, want %s", got, want)
			}
			if res.ForkOffset != st.ForkOffset() || res.CutOffset != cut || res.ReplID != st.ReplID() {
				t.Errorf("result %+v does not match fork %d, cut %d", res, st.ForkOffset(), cut)
			}
			if st.Err() != nil || st.Progress().Phase != PhaseDone {
				t.Errorf("after StopAt: phase %s, err %v", st.Progress().Phase, st.Err())
			}
			kinds := tailKinds(t, res.TailPath)
			if kinds[kindPing]+kinds[kindReplconf]+kinds[kindGetack] != 0 {
				t.Errorf("tail holds protocol commands: %v", kinds)
			}
			if kinds[kindMulti] == 0 || kinds[kindMulti] != kinds[kindExec] {
				t.Errorf("tail has %d MULTI and %d EXEC", kinds[kindMulti], kinds[kindExec])
			}
			if got := int64(kinds[kindData] + kinds[kindMulti] + kinds[kindExec]); got != res.TailCommands {
				t.Errorf("tail has %d commands, result says %d", got, res.TailCommands)
			}
			if len(st.skips) == 0 {
				t.Errorf("no PING or GETACK seen in the stream")
			}

			r := rebuild(t, res).Client()
			if got := digest(t, r); got != want {
				t.Errorf("rebuilt shard's DEBUG DIGEST %s, want the source's at the cut %s", got, want)
			}
			for i, want := range lasts {
				got, err := r.Get(ctx, fmt.Sprintf("w:%d:last", i)).Int64()
				if err != nil || got != want {
					t.Errorf("writer %d: rebuilt last seq %d (%v), want %d", i, got, err, want)
				}
			}
		})
	}
}

// TestCaptureDisklessDefaultDelay is the one test that pays Redis 7's
// default repl-diskless-sync-delay of 5 s, which a capture keeps when told
// to (KeepForkDelay): Capture waits through the keepalive newlines for
// +FULLRESYNC.
func TestCaptureDisklessDefaultDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startSource(t) // Redis 7 defaults: diskless, 5 s delay
	c := s.Client()
	populate(t, s, 1000, 16)
	start := time.Now()
	cfg := captureConfig(t, s)
	cfg.KeepForkDelay = true
	st := startCapture(t, cfg)
	waited := time.Since(start)
	if waited < 3*time.Second {
		t.Errorf("+FULLRESYNC after %s; expected the 5 s diskless delay", waited)
	}
	for i := 0; i < 100; i++ {
		c.Set(ctx, fmt.Sprintf("after:%d", i), i, 0)
	}
	want := digest(t, c)
	res, err := st.StopAt(ctx, masterOffset(t, c))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("+FULLRESYNC after %s; rdb %d bytes in %s", waited, res.RDBSize, res.RDBTime)
	if res.Transfer != "diskless" {
		t.Errorf("transfer %s, want diskless", res.Transfer)
	}
	if err := checkRDB(res.RDBPath); err != nil {
		t.Error(err)
	}
	if got := digest(t, rebuild(t, res).Client()); got != want {
		t.Errorf("rebuilt digest %s, want %s", got, want)
	}
}

// TestStopAt covers where a cut may and may not fall, both ahead of the
// reader (StopAt waits for it) and behind (the tail is truncated back).
func TestStopAt(t *testing.T) {
	// A source that sends no PING during the test, so offsets can be
	// computed from the commands the test sends.
	args := withArgs(disklessArgs, "--repl-ping-replica-period", "3600")
	set := func(k, v string) int64 { return int64(len(resp.AppendCommandString(nil, "SET", k, v))) }

	tests := []struct {
		name string
		// target is the cut given the offset m after a first write (so
		// SELECT has been sent); writes runs before (behind) or after
		// (ahead) StopAt is called.
		target  func(m int64) int64
		ahead   bool
		writes  func(ctx context.Context, c *redis.Client) error
		wantErr error
		present []string // keys the rebuilt shard must hold
		absent  []string
	}{
		{
			name:    "ahead on a boundary",
			target:  func(m int64) int64 { return m + set("a", "1") },
			ahead:   true,
			writes:  setKeys("a", "b"),
			present: []string{"first", "a"},
			absent:  []string{"b"},
		},
		{
			name:    "behind on a boundary",
			target:  func(m int64) int64 { return m + set("a", "1") },
			writes:  setKeys("a", "b", "c"),
			present: []string{"first", "a"},
			absent:  []string{"b", "c"},
		},
		{
			name:    "at the first write",
			target:  func(m int64) int64 { return m },
			writes:  setKeys("a"),
			present: []string{"first"},
			absent:  []string{"a"},
		},
		{
			name:    "ahead inside a command",
			target:  func(m int64) int64 { return m + 10 },
			ahead:   true,
			writes:  setKeys("a", "b"),
			wantErr: ErrBadCut,
		},
		{
			name:    "behind inside a command",
			target:  func(m int64) int64 { return m + set("a", "1") + 3 },
			writes:  setKeys("a", "b"),
			wantErr: ErrBadCut,
		},
		{
			name:   "inside MULTI/EXEC",
			target: func(m int64) int64 { return m + int64(len(resp.AppendCommandString(nil, "MULTI"))) },
			writes: func(ctx context.Context, c *redis.Client) error {
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, "a", "1", 0)
					p.Set(ctx, "b", "1", 0)
					return nil
				})
				return err
			},
			wantErr: ErrBadCut,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := startSource(t, args...)
			c := s.Client()
			cfg := captureConfig(t, s)
			st := startCapture(t, cfg)
			waitPhase(t, st, PhaseStream)
			if err := c.Set(ctx, "first", "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			m := masterOffset(t, c)
			target := tt.target(m)

			type stopped struct {
				res Result
				err error
			}
			done := make(chan stopped, 1)
			stop := func() {
				res, err := st.StopAt(ctx, target)
				done <- stopped{res, err}
			}
			if tt.ahead {
				go stop()
				for st.target.Load() < 0 {
					redistest.Sleep(1)
				}
			}
			if err := tt.writes(ctx, c); err != nil {
				t.Fatal(err)
			}
			if !tt.ahead {
				for st.Offset() < masterOffset(t, c) {
					redistest.Sleep(1)
				}
				go stop()
			}
			var got stopped
			select {
			case got = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("StopAt did not return")
			}
			if tt.wantErr != nil {
				if !errors.Is(got.err, tt.wantErr) {
					t.Fatalf("StopAt(m+%d): got %v, want %v", target-m, got.err, tt.wantErr)
				}
				t.Logf("error: %v", got.err)
				assertRemoved(t, cfg.RDBPath, cfg.TailPath)
				return
			}
			if got.err != nil {
				t.Fatalf("StopAt(m+%d): %v", target-m, got.err)
			}
			r := rebuild(t, got.res).Client()
			for _, k := range tt.present {
				if n, _ := r.Exists(ctx, k).Result(); n != 1 {
					t.Errorf("key %s missing after the cut", k)
				}
			}
			for _, k := range tt.absent {
				if n, _ := r.Exists(ctx, k).Result(); n != 0 {
					t.Errorf("key %s present after the cut", k)
				}
			}
		})
	}
}

// requirePass sets a password once the server runs (the test rig's
// readiness check pings without one).
func requirePass(pw string) func(context.Context, *redis.Client) error {
	return func(ctx context.Context, c *redis.Client) error {
		return c.ConfigSet(ctx, "requirepass", pw).Err()
	}
}

func setKeys(keys ...string) func(context.Context, *redis.Client) error {
	return func(ctx context.Context, c *redis.Client) error {
		for _, k := range keys {
			if err := c.Set(ctx, k, "1", 0).Err(); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestStopAtBeforeFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startSource(t, disklessArgs...)
	c := s.Client()
	// A shard that never had a replica has no backlog and stays at offset
	// 0; a first capture creates the backlog, so later writes count.
	startCapture(t, captureConfig(t, s)).Close()
	for i := 0; i < 10; i++ {
		c.Set(ctx, fmt.Sprint(i), i, 0)
	}
	st := startCapture(t, captureConfig(t, s))
	if st.ForkOffset() == 0 {
		t.Fatal("fork offset 0 after writes")
	}
	if _, err := st.StopAt(ctx, st.ForkOffset()-1); !errors.Is(err, ErrBadCut) {
		t.Fatalf("StopAt before the fork: got %v, want ErrBadCut", err)
	}
	// Rejected without effect: the capture can still be cut at the fork.
	res, err := st.StopAt(ctx, st.ForkOffset())
	if err != nil {
		t.Fatal(err)
	}
	if res.TailSize != 0 || res.TailCommands != 0 {
		t.Errorf("a cut at the fork has a tail of %d bytes, %d commands", res.TailSize, res.TailCommands)
	}
	if n, _ := rebuild(t, res).Client().DBSize(ctx).Result(); n != 10 {
		t.Errorf("rebuilt shard has %d keys, want 10", n)
	}
}

// TestCaptureAuth: a password, and an ACL user with just what replication
// needs, both work.
func TestCaptureAuth(t *testing.T) {
	tests := []struct {
		name, user, password string
	}{
		{"requirepass", "", "secret-pw"},
		{"acl user", "repl", "repl-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := startSource(t, disklessArgs...)
			if err := requirePass("secret-pw")(ctx, s.Client()); err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: "secret-pw", Protocol: 2, DisableIdentity: true})
			defer c.Close()
			if err := c.Do(ctx, "ACL", "SETUSER", "repl", "on", ">repl-pw", "+psync", "+replconf", "+ping", "+info").Err(); err != nil {
				t.Fatal(err)
			}
			c.Set(ctx, "k", "v", 0)
			cfg := captureConfig(t, s)
			cfg.Username, cfg.Password = tt.user, tt.password
			st := startCapture(t, cfg)
			c.Set(ctx, "k2", "v", 0)
			res, err := st.StopAt(ctx, masterOffset(t, c))
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := rebuild(t, res).Client().DBSize(ctx).Result(); n != 2 {
				t.Errorf("rebuilt shard has %d keys, want 2", n)
			}
		})
	}
}

// TestCaptureMemory: capturing a 1M-key shard keeps this process's heap
// small, whatever the RDB's size.
func TestCaptureMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1M keys")
	}
	ctx := context.Background()
	s := startSource(t, disklessArgs...)
	populate(t, s, 1000000, 16)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(10 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	start := time.Now()
	st := startCapture(t, captureConfig(t, s))
	res, err := st.StopAt(ctx, st.ForkOffset())
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("1M keys: rdb %.1f MB received in %s (%.0f MB/s), %s with verification; heap in use grew by %.1f MB at most",
		float64(res.RDBSize)/1e6, res.RDBTime.Round(time.Millisecond), float64(res.RDBSize)/1e6/res.RDBTime.Seconds(),
		elapsed.Round(time.Millisecond), float64(grew)/1e6)
	if grew > 32<<20 {
		t.Errorf("heap in use grew by %d bytes during the capture, want under 32 MB", grew)
	}
	if err := checkRDB(res.RDBPath); err != nil {
		t.Error(err)
	}
	sum, err := CheckRDB(res.RDBPath)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 1000000 || sum.DBKeys[0] != 1000000 || sum.Size != res.RDBSize || sum.Version != res.RDBVersion || sum.CRC64 == 0 {
		t.Errorf("CheckRDB: %+v; want 1M keys in db 0, %d bytes, version %d, a checksum", sum, res.RDBSize, res.RDBVersion)
	}
}

// TestCheckRDB: the default verifier rejects a damaged copy of a good RDB.
func TestCheckRDB(t *testing.T) {
	t.Parallel()
	s := startSource(t, disklessArgs...)
	populate(t, s, 1000, 100)
	st := startCapture(t, captureConfig(t, s))
	res, err := st.StopAt(context.Background(), st.ForkOffset())
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(res.RDBPath)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x01
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"flipped byte", flipped, nil},
		{"truncated", good[:len(good)-100], rdb.ErrTruncated},
		{"not an rdb", []byte("*1\r\n$4\r\nPING\r\n"), rdb.ErrCorrupt},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "bad.rdb")
		if err := os.WriteFile(path, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := VerifyRDB(path)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}
