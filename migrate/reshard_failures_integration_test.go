package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/snapshot"

	"github.com/reshard/reshard/internal/redistest"
)

// A live reshard that fails or is refused: a stream it cannot apply, shards
// killed, a capture dropped for its output buffer, a cutover that times out,
// and the pre-flight's refusals. Each ends with nothing committed.

// TestReshardStreamRefused: a FLUSHALL or a write to another database sent
// to a source directly (the proxy refuses both) fails the job with the
// reason, nothing committed.
func TestReshardStreamRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		cmd  []any
		want string
	}{
		{"flushall", []any{"FLUSHALL"}, "FLUSHALL"},
		{"select", []any{"EVAL", "redis.call('select', 3); redis.call('set', 'x', 1)", 0}, "SELECT 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 2, 2)
			fillDataset(t, r.proxy, r.from, 1000)
			r.cfg.Manual = true
			j := r.start(t)
			waitState(t, j, ReshardReady, 20*time.Second)
			if err := r.proxy.clients[r.from.Addr(1)].Do(context.Background(), tt.cmd...).Err(); err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			st := waitDone(t, j, 10*time.Second)
			if st.State != ReshardFailed || !errors.Is(st.Err, ErrStream) || !strings.Contains(st.Err.Error(), tt.want) {
				t.Fatalf("state %s, error %v; want failed with ErrStream naming %s", st.State, st.Err, tt.want)
			}
			t.Logf("failed as expected: %v", st.Err)
			if r.proxy.commits.Load() != 0 {
				t.Errorf("committed")
			}
		})
	}
}

// TestReshardFaults: a target or a source killed during the copy or the
// catch-up fails the job with the reason; nothing is committed and the
// writers, on the sources, see no error (except a killed source's own).
func TestReshardFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		phase  ReshardState
		source bool
		want   error
	}{
		{"target-copying", ReshardCopying, false, ErrTarget},
		{"target-catching-up", ReshardReady, false, ErrTarget},
		{"source-copying", ReshardCopying, true, snapshot.ErrSourceGone},
		{"source-catching-up", ReshardReady, true, snapshot.ErrSourceGone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 3, 5)
			fillDataset(t, r.proxy, r.from, 20000)
			var w *writers
			if !tt.source {
				w = startTestWriters(t, r.proxy, 4)
			}
			hold, copied := make(chan struct{}), make(chan struct{}, 3)
			r.cfg.Manual = true
			if tt.phase == ReshardCopying {
				// Every capture is running and one source is copied; the
				// job stays in copying until the fault.
				r.cfg.testAfterCopy = func(ctx context.Context, _ int) {
					copied <- struct{}{}
					select {
					case <-hold:
					case <-ctx.Done():
					}
				}
			}
			j := r.start(t)
			if tt.phase == ReshardCopying {
				<-copied
			}
			waitState(t, j, tt.phase, 20*time.Second)
			if tt.source {
				r.sources[1].Kill()
			} else {
				r.targets[2].Kill()
			}
			close(hold)
			st := waitDone(t, j, 15*time.Second)
			if st.State != ReshardFailed || !errors.Is(st.Err, tt.want) {
				t.Fatalf("state %s, error %v; want failed with %v", st.State, st.Err, tt.want)
			}
			t.Logf("failed as expected: %v", st.Err)
			if r.proxy.commits.Load() != 0 || r.proxy.route.Load() != r.from {
				t.Errorf("committed")
			}
			if w != nil {
				w.Stop()
				w.noErrors(t)
				w.check(t, r.from)
			}
		})
	}
}

// TestReshardOutputBufferLimit: a source whose client-output-buffer-limit
// replica is too small for its writes drops the capture; the job fails at
// once with the reason (the capture's diagnosis), without retrying.
func TestReshardOutputBufferLimit(t *testing.T) {
	r := newRig(t, 2, 2, "--client-output-buffer-limit", "replica 256kb 0 0")
	fillDataset(t, r.proxy, r.from, 1000)
	r.cfg.Manual = true
	j := r.start(t)
	waitState(t, j, ReshardReady, 20*time.Second)
	big := strings.Repeat("x", 1<<20)
	src := r.proxy.clients[r.from.Addr(0)]
	for i := range 3 {
		must(t, src.Set(context.Background(), fmt.Sprintf("big:%d", i), big, 0).Err())
	}
	st := waitDone(t, j, 15*time.Second)
	if st.State != ReshardFailed || !errors.Is(st.Err, snapshot.ErrClosedBySource) || !strings.Contains(st.Err.Error(), "client-output-buffer-limit") {
		t.Fatalf("state %s, error %v; want failed, naming client-output-buffer-limit", st.State, st.Err)
	}
	t.Logf("failed as expected: %v", st.Err)
}

// TestReshardCutoverTimeout: a target stalls (SIGSTOP) inside the barrier;
// the cutover gives up within CutoverTimeout, lifts the barrier on the old
// table, and the job ends aborted; the writers saw no error.
func TestReshardCutoverTimeout(t *testing.T) {
	r := newRig(t, 3, 5)
	fillDataset(t, r.proxy, r.from, 5000)
	w := startTestWriters(t, r.proxy, 4)
	stalled := r.targets[3]
	t.Cleanup(func() { stalled.Signal(syscall.SIGCONT) })
	r.cfg.CutoverTimeout = 500 * time.Millisecond
	r.cfg.testInBarrier = func() { must(t, stalled.Signal(syscall.SIGSTOP)) }
	j := r.start(t)
	st := waitDone(t, j, 30*time.Second)
	time.Sleep(100 * time.Millisecond) // writes after the barrier
	w.Stop()
	if st.State != ReshardAborted || !errors.Is(st.Err, ErrCutoverTimeout) {
		t.Fatalf("state %s, error %v; want aborted with ErrCutoverTimeout", st.State, st.Err)
	}
	t.Logf("aborted as expected: %v", st.Err)
	held := time.Duration(r.proxy.held.Load())
	if held > r.cfg.CutoverTimeout+100*time.Millisecond || st.PauseUS > (r.cfg.CutoverTimeout+100*time.Millisecond).Microseconds() {
		t.Errorf("barrier held %v (pause_us %d), bound %v", held, st.PauseUS, r.cfg.CutoverTimeout)
	}
	if r.proxy.commits.Load() != 0 || r.proxy.route.Load() != r.from {
		t.Errorf("committed")
	}
	w.noErrors(t)
	w.check(t, r.from)
}

// TestReshardPreflight: refusals before anything starts.
func TestReshardPreflight(t *testing.T) {
	r := newRig(t, 2, 2)
	ctx := context.Background()
	must(t, r.proxy.clients[r.to.Addr(1)].Set(ctx, "stale", 1, 0).Err())
	_, err := StartReshard(ctx, r.cfg)
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), r.to.Addr(1)) {
		t.Errorf("non-empty target: %v, want ErrTargetNotEmpty naming it", err)
	}
	// A target that is a source.
	cfg := r.cfg
	cfg.To = mustTable(t, 2, evenShards(t, []*redistest.Server{r.targets[0], r.sources[0]}))
	_, err = StartReshard(ctx, cfg)
	if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "same server") {
		t.Errorf("target that is a source: %v", err)
	}
	// The epoch must follow.
	cfg = r.cfg
	cfg.To = mustTable(t, 5, r.to.Shards())
	if _, err := StartReshard(ctx, cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("epoch 5 after 1: %v, want ErrInvalidConfig", err)
	}
	// With Flush the stale key goes, and the rest follows.
	cfg = r.cfg
	cfg.Flush = true
	j, err := StartReshard(ctx, cfg)
	must(t, err)
	st := waitDone(t, j, 20*time.Second)
	if st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
	if n := r.proxy.clients[r.to.Addr(1)].Exists(ctx, "stale").Val(); n != 0 {
		t.Errorf("the stale key survived Flush")
	}
}
