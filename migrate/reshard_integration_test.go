package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// TestReshardLive is the whole reshard under load: 3 sources to 5 targets
// with an uneven layout, 100k keys of every type (a fifth with TTLs), and
// writers going through a stand-in proxy from before the start until
// after the cutover (strings, hashes, lists, sorted sets, counters,
// hash-tagged MSET and DEL). The job must reach done with one commit and
// no writer error; then every key is on the target its new slot says, the
// dataset is on the targets as on the sources (value and absolute
// expiry), every acknowledged write is there, and nothing else is.
func TestReshardLive(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 3, 5)
	keys := fillDataset(t, r.proxy, r.from, 100_000)
	w := startTestWriters(t, r.proxy, 8)
	time.Sleep(200 * time.Millisecond)

	j := r.start(t)
	st := waitDone(t, j, 60*time.Second)
	time.Sleep(200 * time.Millisecond) // writes on the new table
	w.Stop()
	var info bytes.Buffer
	must(t, st.WriteInfo(&info))
	t.Logf("status:\n%s", info.String())
	if st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
	w.noErrors(t)
	if got := r.proxy.commits.Load(); got != 1 {
		t.Errorf("%d commits, want 1", got)
	}
	if r.proxy.route.Load() != r.to {
		t.Errorf("the route was not swapped")
	}
	if st.PauseUS <= 0 || time.Duration(st.PauseUS)*time.Microsecond > r.cfg.CutoverTimeout {
		t.Errorf("pause_us %d", st.PauseUS)
	}
	if st.KeysCopied < int64(len(keys)) || st.StreamCommands == 0 {
		t.Errorf("keys copied %d (dataset %d), stream commands %d", st.KeysCopied, len(keys), st.StreamCommands)
	}
	t.Logf("%d writes acknowledged; copy %v, catch-up %v, pause %v",
		w.ops.Load(), st.Times.CatchingUp.Sub(st.Times.Started), st.Times.Cutover.Sub(st.Times.CatchingUp),
		time.Duration(st.PauseUS)*time.Microsecond)

	total := checkPlacement(t, r.proxy, r.to)
	compareKeys(t, r.proxy, r.from, r.to, keys)
	w.check(t, r.to)
	// Nothing else: the dataset plus the writers' keys that exist.
	want := len(keys)
	for k := range w.keys() {
		if r.proxy.client(r.to, k).Exists(ctx, k).Val() == 1 {
			want++
		}
	}
	if total != want {
		t.Errorf("targets hold %d keys, want %d (dataset %d plus the writers' keys)", total, want, len(keys))
	}
	// The sources were left as they were at the cut.
	var srcKeys int
	for _, s := range r.sources {
		srcKeys += len(allKeys(t, r.proxy.clients[s.Addr()]))
	}
	if srcKeys < len(keys) {
		t.Errorf("sources hold %d keys, fewer than the dataset's %d", srcKeys, len(keys))
	}
	if err := j.Abort(); !errors.Is(err, ErrReshardCommitted) {
		t.Errorf("Abort after the commit: %v, want ErrReshardCommitted", err)
	}
}

// TestReshardManual: a Manual job stops at ready and stays there, without
// touching the barrier, until Cutover; Cutover on a job that is not
// ready, or not Manual, is refused.
func TestReshardManual(t *testing.T) {
	r := newRig(t, 3, 5)
	keys := fillDataset(t, r.proxy, r.from, 5000)
	w := startTestWriters(t, r.proxy, 4)
	r.cfg.Manual = true
	j := r.start(t)
	waitState(t, j, ReshardReady, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if st := j.Status(); st.State != ReshardReady && st.State != ReshardCatchingUp {
		t.Fatalf("a manual job left ready by itself: %s", st.State)
	}
	if r.proxy.pauses.Load() != 0 || r.proxy.commits.Load() != 0 {
		t.Fatalf("barrier paused %d times, %d commits before Cutover", r.proxy.pauses.Load(), r.proxy.commits.Load())
	}
	waitState(t, j, ReshardReady, 10*time.Second)
	must(t, j.Cutover())
	st := waitDone(t, j, 10*time.Second)
	w.Stop()
	if st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
	if err := j.Cutover(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Cutover after done: %v, want ErrNotReady", err)
	}
	w.noErrors(t)
	checkPlacement(t, r.proxy, r.to)
	compareKeys(t, r.proxy, r.from, r.to, keys)
	w.check(t, r.to)

	// Not manual: Cutover is refused.
	r2 := newRig(t, 1, 1)
	r2.cfg.testHoldCatchUp = true
	j2 := r2.start(t)
	waitState(t, j2, ReshardCatchingUp, 10*time.Second)
	if err := j2.Cutover(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Cutover of an automatic job: %v, want ErrNotReady", err)
	}
}

// TestReshardAbort aborts in copying and in catching_up: the job ends
// aborted, nothing was committed, the barrier never closed, the writers
// saw no error and the sources hold everything they acknowledged.
func TestReshardAbort(t *testing.T) {
	for _, phase := range []ReshardState{ReshardCopying, ReshardCatchingUp} {
		t.Run(string(phase), func(t *testing.T) {
			r := newRig(t, 3, 5)
			fillDataset(t, r.proxy, r.from, 20000)
			w := startTestWriters(t, r.proxy, 4)
			hold := make(chan struct{})
			if phase == ReshardCopying {
				// Keep it copying: the first source waits after its RDB.
				r.cfg.testAfterCopy = func(ctx context.Context, i int) {
					if i == 0 {
						select {
						case <-hold:
						case <-ctx.Done():
						}
					}
				}
			} else {
				r.cfg.testHoldCatchUp = true
			}
			j := r.start(t)
			waitState(t, j, phase, 20*time.Second)
			time.Sleep(300 * time.Millisecond)
			must(t, j.Abort())
			st := waitDone(t, j, 10*time.Second)
			close(hold)
			w.Stop()
			if st.State != ReshardAborted || !errors.Is(st.Err, ErrReshardAborted) {
				t.Fatalf("state %s, error %v; want aborted", st.State, st.Err)
			}
			if r.proxy.pauses.Load() != 0 || r.proxy.commits.Load() != 0 || r.proxy.route.Load() != r.from {
				t.Errorf("barrier paused %d times, %d commits; want none", r.proxy.pauses.Load(), r.proxy.commits.Load())
			}
			w.noErrors(t)
			w.check(t, r.from)
			if err := j.Abort(); err != nil {
				t.Errorf("second Abort: %v", err)
			}
			entries, err := os.ReadDir(r.cfg.WorkDir)
			must(t, err)
			if len(entries) != 0 {
				t.Errorf("work directory not cleaned: %v", entries)
			}
		})
	}
}

// TestReshardExpiry: the TTL hazards. The copy is made slow (the stream is
// applied 2 s after the RDB), and meanwhile, on the source: a key with a
// 700 ms TTL is renewed every 100 ms (it must never die, on the target
// either); a key whose 300 ms TTL runs out is not renewed (it must be gone);
// a key is deleted (it must not come back from the RDB); a guarded key is
// renamed (the new name keeps the TTL). An hour's TTL arrives with the
// same absolute expiry.
func TestReshardExpiry(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 2, 3)
	p := r.proxy
	for _, c := range [][]any{
		{"SET", "renewed", "v", "PX", 700},
		{"SET", "dies", "v", "PX", 300},
		{"SET", "deleted", "v"},
		{"SET", "long", "v", "EX", 3600},
		{"HSET", "renamed-from", "f", "v"},
		{"PEXPIRE", "renamed-from", 1500},
	} {
		must(t, p.do(ctx, c[1].(string), c...).Err())
	}
	fillDataset(t, p, r.from, 2000)
	r.cfg.testAfterCopy = func(context.Context, int) { time.Sleep(2 * time.Second) }
	r.cfg.Manual = true
	j := r.start(t)

	renew := make(chan struct{})
	renewDone := make(chan error, 1)
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-renew:
				renewDone <- nil
				return
			case <-tk.C:
				n, err := p.do(ctx, "renewed", "PEXPIRE", "renewed", 700).Int()
				if err != nil || n != 1 {
					renewDone <- fmt.Errorf("PEXPIRE renewed: %d, %v (the key died)", n, err)
					return
				}
			}
		}
	}()
	waitState(t, j, ReshardCopying, 5*time.Second)
	must(t, p.do(ctx, "deleted", "DEL", "deleted").Err())
	time.Sleep(200 * time.Millisecond)
	must(t, p.do(ctx, "renamed-from", "RENAME", "renamed-from", "{renamed-from}to").Err())

	waitState(t, j, ReshardReady, 30*time.Second)
	must(t, j.Cutover())
	st := waitDone(t, j, 10*time.Second)
	if st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
	// Renewals go on through the new table for a while.
	time.Sleep(1500 * time.Millisecond)
	close(renew)
	if err := <-renewDone; err != nil {
		t.Fatal(err)
	}
	tc := func(k string) *redis.Client { return p.client(r.to, k) }
	if ttl := tc("renewed").PTTL(ctx, "renewed").Val(); ttl <= 0 || ttl > 700*time.Millisecond {
		t.Errorf("renewed: PTTL %v on the target, want (0, 700ms]", ttl)
	}
	for _, k := range []string{"dies", "deleted"} {
		if tc(k).Exists(ctx, k).Val() != 0 {
			t.Errorf("%s exists on the target", k)
		}
	}
	if tc("renamed-from").Exists(ctx, "renamed-from").Val() != 0 {
		t.Errorf("renamed-from exists on the target")
	}
	to := "{renamed-from}to"
	if got, want := tc(to).PExpireTime(ctx, to).Val(), p.client(r.from, to).PExpireTime(ctx, to).Val(); got != want {
		t.Errorf("%s: PEXPIRETIME %v on the target, %v on the source", to, got, want)
	}
	if got, want := tc("long").PExpireTime(ctx, "long").Val(), p.client(r.from, "long").PExpireTime(ctx, "long").Val(); got != want || got <= 0 {
		t.Errorf("long: PEXPIRETIME %v on the target, %v on the source", got, want)
	}
	// Once renewals stop, the key dies on its own.
	time.Sleep(900 * time.Millisecond)
	if tc("renewed").Exists(ctx, "renewed").Val() != 0 {
		t.Errorf("renewed still exists 900 ms after the last renewal of its 700 ms TTL")
	}
}

// TestReshardTransactions: what a source's stream carries from clients
// of the shard itself, where nothing stops keys of one command or one
// transaction from landing on different targets: a MULTI/EXEC and a
// script's effects (replicated as MULTI/EXEC) become one transaction per
// target, DEL and MSET are split, FUNCTION LOAD reaches every target once
// per source without failing, and the targets end up as the source.
func TestReshardTransactions(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1, 3)
	src := r.proxy.clients[r.from.Addr(0)]
	// Keys on three different targets.
	var keys []string
	seen := map[int]bool{}
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprintf("k%d", i)
		if tgt := r.to.ShardOf([]byte(k)); !seen[tgt] {
			seen[tgt] = true
			keys = append(keys, k)
		}
	}
	a, b, c := keys[0], keys[1], keys[2]
	must(t, src.MSet(ctx, a, "0", b, "0", c, "0", "gone1", "x", "gone2", "y").Err())
	r.cfg.Manual = true
	j := r.start(t)
	waitState(t, j, ReshardReady, 20*time.Second)

	_, err := src.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, a, "tx", 0)
		p.Incr(ctx, b)
		p.RPush(ctx, c+":list", "x", "y")
		return nil
	})
	must(t, err)
	if err := src.Eval(ctx, "for i, k in ipairs(KEYS) do redis.call('APPEND', k, ARGV[1]) end", []string{a, b, c}, "+lua").Err(); !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	must(t, src.Del(ctx, "gone1", "gone2", "never").Err())
	must(t, src.MSet(ctx, a+":m", 1, b+":m", 2, c+":m", 3).Err())
	must(t, src.FunctionLoad(ctx, testFunction).Err())
	must(t, src.FunctionDelete(ctx, "restorelib").Err())
	must(t, src.FunctionLoad(ctx, testFunction).Err())
	waitState(t, j, ReshardReady, 10*time.Second)
	must(t, j.Cutover())
	if st := waitDone(t, j, 10*time.Second); st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
	all := allKeys(t, src)
	compareKeys(t, r.proxy, r.from, r.to, all)
	if total := checkPlacement(t, r.proxy, r.to); total != len(all) {
		t.Errorf("targets hold %d keys, the source %d", total, len(all))
	}
	for _, s := range r.targets {
		libs, err := r.proxy.clients[s.Addr()].FunctionList(ctx, redis.FunctionListQuery{}).Result()
		must(t, err)
		if len(libs) != 1 {
			t.Errorf("target %s has %d function libraries, want 1", s.Addr(), len(libs))
		}
	}
}

// TestReshardPasswords: sources and targets each with a password of their
// own, as when the targets are a new managed cluster. A wrong target
// password is refused by the pre-flight, which names the refusal and never
// the password; with the right ones the job copies and cuts over, and its
// status shows neither password.
func TestReshardPasswords(t *testing.T) {
	const sourcePW, targetPW = "source-pw-9d2e", "target-pw-51ab"
	ctx := context.Background()
	sources := redistest.StartN(t, 2, append([]string{"--requirepass", sourcePW}, reshardArgs...)...)
	targets := redistest.StartN(t, 2, append([]string{"--requirepass", targetPW}, reshardArgs...)...)
	from, to := mustTable(t, 1, evenShards(t, sources)), mustTable(t, 2, evenShards(t, targets))
	p := newTestProxy(t, from)
	p.add(t, sourcePW, sources)
	p.add(t, targetPW, targets)
	keys := fillDataset(t, p, from, 2000)
	cfg := testReshardConfig(t, p, from, to)
	cfg.SourcePassword = sourcePW

	cfg.TargetPassword = sourcePW // the targets' is another
	_, err := StartReshard(ctx, cfg)
	if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "refused AUTH: WRONGPASS") {
		t.Fatalf("wrong target password: %v, want a pre-flight refusal naming AUTH", err)
	}
	if strings.Contains(err.Error(), sourcePW) {
		t.Errorf("the refusal shows the password: %v", err)
	}

	cfg.TargetPassword = targetPW
	j, err := StartReshard(ctx, cfg)
	must(t, err)
	st := waitDone(t, j, 30*time.Second)
	if st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
	compareKeys(t, p, from, to, keys)
	var info bytes.Buffer
	must(t, st.WriteInfo(&info))
	if strings.Contains(info.String(), sourcePW) || strings.Contains(info.String(), targetPW) {
		t.Errorf("the status shows a password:\n%s", info.String())
	}
}

// TestReshardSeal: Seal runs inside the barrier before the cut is read;
// a job that commits leaves the sources sealed, one that does not (a
// Commit error) unseals them before the barrier lifts, unless the commit's
// outcome is unknown, and a Seal error aborts the job on the old table
// without a commit.
func TestReshardSeal(t *testing.T) {
	type record struct {
		sealed, unsealed, cut int
		unsealedPaused        bool // the barrier was held at the unseal
	}
	run := func(t *testing.T, sealErr, commitErr error) (ReshardStatus, *record, *reshardRig) {
		r := newRig(t, 2, 2)
		fillDataset(t, r.proxy, r.from, 2000)
		var rec record
		r.proxy.seal = func(ctx context.Context) (func(), error) {
			rec.sealed++
			if sealErr != nil {
				return nil, sealErr
			}
			return func() {
				rec.unsealed++
				rec.unsealedPaused = r.proxy.paused()
			}, nil
		}
		r.cfg.testInBarrier = func() {
			rec.cut++
			if rec.sealed != 1 {
				t.Errorf("cut read with %d seals before it", rec.sealed)
			}
		}
		r.proxy.commitErr = commitErr
		st := waitDone(t, r.start(t), 30*time.Second)
		return st, &rec, r
	}

	t.Run("commit", func(t *testing.T) {
		st, rec, r := run(t, nil, nil)
		if st.State != ReshardDone || rec.sealed != 1 || rec.unsealed != 0 || r.proxy.route.Load() != r.to {
			t.Fatalf("state %s (%v), sealed %d, unsealed %d; want done, sealed once, never unsealed", st.State, st.Err, rec.sealed, rec.unsealed)
		}
	})
	t.Run("commit error", func(t *testing.T) {
		st, rec, r := run(t, nil, errors.New("disk full"))
		if st.State != ReshardAborted || !errors.Is(st.Err, ErrCommit) {
			t.Fatalf("state %s, error %v; want aborted with ErrCommit", st.State, st.Err)
		}
		if rec.sealed != 1 || rec.unsealed != 1 || !rec.unsealedPaused || r.proxy.route.Load() != r.from {
			t.Errorf("sealed %d, unsealed %d (barrier held: %v); want one each, inside the barrier, on the old table", rec.sealed, rec.unsealed, rec.unsealedPaused)
		}
	})
	t.Run("commit outcome unknown", func(t *testing.T) {
		st, rec, _ := run(t, nil, fmt.Errorf("etcd: context deadline exceeded: %w", ErrCommitUnknown))
		if st.State != ReshardFailed || !errors.Is(st.Err, ErrCommitUnknown) {
			t.Fatalf("state %s, error %v; want failed with ErrCommitUnknown", st.State, st.Err)
		}
		if rec.sealed != 1 || rec.unsealed != 0 {
			t.Errorf("sealed %d, unsealed %d; want sealed once, never unsealed (the new table may be the persisted one)", rec.sealed, rec.unsealed)
		}
	})
	t.Run("seal error", func(t *testing.T) {
		st, rec, r := run(t, errors.New("another proxy"), nil)
		if st.State != ReshardAborted || !errors.Is(st.Err, ErrSeal) || !strings.Contains(st.Err.Error(), "another proxy") {
			t.Fatalf("state %s, error %v; want aborted with ErrSeal", st.State, st.Err)
		}
		if rec.cut != 0 || r.proxy.commits.Load() != 0 || r.proxy.route.Load() != r.from {
			t.Errorf("cut read %d times, %d commits after a failed seal; want none", rec.cut, r.proxy.commits.Load())
		}
	})
}
