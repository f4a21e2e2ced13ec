package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// TestReshardProxyKilled kills the proxy (SIGKILL) in the middle of a live
// reshard and restarts it on the same state directory: it must serve on
// exactly one table (the old one before the commit, the new one after) and
// every write acknowledged before the kill must be there.
func TestReshardProxyKilled(t *testing.T) {
	redistest.Require(t)
	bin := proxytest.Build(t)
	for _, phase := range []struct {
		name      string
		until     string // the state at which to kill
		manual    bool
		wantEpoch int64
	}{
		{"copying", "copying", false, 1},
		{"caught up, before the commit", "ready", true, 1},
		{"just after the commit", "done", false, 2},
	} {
		t.Run(phase.name, func(t *testing.T) {
			ctx := context.Background()
			sources := redistest.StartN(t, 3, "--repl-diskless-sync-delay", "0")
			targets := redistest.StartN(t, 2, "--repl-diskless-sync-delay", "0")
			var spec []string
			for _, s := range sources {
				spec = append(spec, s.Addr())
			}
			state := t.TempDir()
			p := proxytest.StartProcess(t, bin, state, spec)
			cl := redis.NewClient(&redis.Options{Addr: p.Addr, Protocol: 2, MaxRetries: -1})
			defer cl.Close()
			for i := 0; i < 20000; i++ {
				cl.Set(ctx, fmt.Sprint("pre:", i), i, 0)
			}

			// Writers record the last write the proxy acknowledged.
			const writers = 8
			var acked [writers]atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for seq := int64(1); ; seq++ {
						select {
						case <-stop:
							return
						default:
						}
						if cl.Set(ctx, fmt.Sprint("w:", w), seq, 0).Err() == nil {
							acked[w].Store(seq)
						} else {
							time.Sleep(5 * time.Millisecond)
						}
					}
				}(w)
			}
			// Every writer's key exists before the reshard starts: a kill
			// in its first milliseconds must not leave keys unwritten,
			// which the rerun's DBSIZE counts.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				all := true
				for w := range acked {
					all = all && acked[w].Load() > 0
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("writers got no write acknowledged in 10s")
				}
			}
			args := []any{"PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()}
			if phase.manual {
				args = append(args, "MANUAL")
			}
			if err := cl.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(2 * time.Millisecond) {
				st, _ := cl.Do(ctx, "PROXY", "RESHARD", "STATUS").Text()
				if strings.Contains(st, "state:"+phase.until+"\r\n") {
					break
				}
				if strings.Contains(st, "state:failed") || strings.Contains(st, "state:aborted") || time.Now().After(deadline) {
					t.Fatalf("reshard never reached %s:\n%s", phase.until, st)
				}
			}
			p.Kill()
			close(stop)
			wg.Wait()

			p2 := proxytest.StartProcess(t, bin, state, spec)
			cl2 := redis.NewClient(&redis.Options{Addr: p2.Addr, Protocol: 2})
			defer cl2.Close()
			topo, err := cl2.Do(ctx, "PROXY", "TOPOLOGY").Slice()
			if err != nil {
				t.Fatal(err)
			}
			if epoch := topo[1].(int64); epoch != phase.wantEpoch {
				t.Errorf("restarted on epoch %d, want %d", epoch, phase.wantEpoch)
			}
			for w := 0; w < writers; w++ {
				got, err := cl2.Get(ctx, fmt.Sprint("w:", w)).Int64()
				if want := acked[w].Load(); err != nil && want > 0 || got < want {
					t.Errorf("writer %d: %d after the restart (%v), last acknowledged %d", w, got, err, want)
				}
			}
			if v, err := cl2.Get(ctx, "pre:4242").Int(); err != nil || v != 4242 {
				t.Errorf("pre:4242 after the restart = %d, %v", v, err)
			}
			if phase.wantEpoch == 1 {
				rerun(t, cl2, targets, acked[:])
			}
		})
	}
}

// rerun starts the reshard again after a restart that came back on the old
// table. The job was not persisted, so there is nothing to resume: the
// targets hold what the killed job had copied, if anything, which the new
// job refuses without FLUSH; with FLUSH it starts over and completes.
func rerun(t *testing.T, cl *redis.Client, targets []*redistest.Server, acked []atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	if st, _ := cl.Do(ctx, "PROXY", "RESHARD", "STATUS").Text(); !strings.Contains(st, "state:none") {
		t.Errorf("reshard status after the restart:\n%s", st)
	}
	held := int64(0)
	for _, tg := range targets {
		held += tg.Client().DBSize(ctx).Val()
	}
	args := []any{"PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()}
	if held > 0 { // killed once keys had reached the targets
		err := cl.Do(ctx, args...).Err()
		if err == nil || !strings.Contains(err.Error(), "add FLUSH to PROXY RESHARD") {
			t.Fatalf("rerun onto targets holding %d keys = %v, want a refusal that names FLUSH", held, err)
		}
		args = append(args, "FLUSH")
	}
	if err := cl.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, _ := cl.Do(ctx, "PROXY", "RESHARD", "STATUS").Text()
		if strings.Contains(st, "state:done\r\n") {
			break
		}
		if strings.Contains(st, "state:failed") || strings.Contains(st, "state:aborted") || time.Now().After(deadline) {
			t.Fatalf("rerun with FLUSH never completed:\n%s", st)
		}
	}
	if dbsize, err := cl.DBSize(ctx).Result(); err != nil || dbsize != 20000+int64(len(acked)) {
		t.Errorf("DBSIZE after the rerun = %d, %v, want %d", dbsize, err, 20000+len(acked))
	}
	for w := range acked {
		if got, err := cl.Get(ctx, fmt.Sprint("w:", w)).Int64(); err != nil || got < acked[w].Load() {
			t.Errorf("writer %d after the rerun: %d (%v), last acknowledged %d", w, got, err, acked[w].Load())
		}
	}
}
