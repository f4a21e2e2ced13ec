package snapshot

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestJobCutHoldsDirectWriters: writers the barrier does not hold (another
// proxy, an application connected to the shards) write x then y, on two
// shards, in order; the shards are asked for their offsets 30 ms apart, x's
// shard last, as a slow network could make it. The cut pauses every
// shard's writes, so the snapshot never has x ahead of y by more than the
// write in between, and drops the job's warning. With a shard that refuses
// CLIENT PAUSE the cut is the barrier's alone, and the warning stays.
func TestJobCutHoldsDirectWriters(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		m, pairs, c := runDirectWriters(t, disklessArgs)
		for w, xy := range pairs {
			vx, vy := xy[0], xy[1]
			if vy > vx || vx > vy+1 {
				t.Errorf("writer %d: snapshot has x=%d y=%d; written x then y, a consistent cut has y <= x <= y+1", w, vx, vy)
			}
		}
		if m.Warning != "" {
			t.Errorf("manifest warning %q, want none: the shards' writes were paused", m.Warning)
		}
		for _, cl := range c.clients { // the pause was lifted
			if err := cl.Set(context.Background(), "after", 1, 0).Err(); err != nil {
				t.Fatalf("write after the cut: %v", err)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		acl := append([]string{"--user", "default", "on", "nopass", "~*", "&*", "+@all", "-client|pause"}, disklessArgs...)
		m, _, _ := runDirectWriters(t, acl)
		if !strings.Contains(m.Warning, "other writers") {
			t.Errorf("manifest warning %q, want the job's, as the shards could not be paused", m.Warning)
		}
	})
}

// runDirectWriters runs a snapshot of two shards while writers write x
// then y straight to them, and returns the manifest and each writer's x
// and y in the rebuilt snapshot.
func runDirectWriters(t *testing.T, args []string) (Manifest, [][2]int64, *cluster) {
	ctx := context.Background()
	c := startCluster(t, args, args)
	x, y := keysOnShards(c)
	const writers = 8
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			kx, ky := x+":"+strconv.Itoa(w), y+":"+strconv.Itoa(w)
			cx, cy := c.client(kx), c.client(ky)
			for seq := int64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := cx.Set(ctx, kx, seq, 0).Err(); err != nil {
					errs <- err
					return
				}
				if err := cy.Set(ctx, ky, seq, 0).Err(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	cfg := c.jobConfig(t, &testBarrier{}) // holds none of these writers
	cfg.Warning = "other writers are not held"
	xShard := c.table.ShardOf([]byte(x))
	cfg.testBeforeOffset = func(shard int) {
		if shard == xShard {
			time.Sleep(30 * time.Millisecond)
		}
	}
	j, err := runJob(t, cfg)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	m, err := Load(cfg.Dir, j.ID())
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := rebuildSnapshot(t, cfg.Dir+"/"+j.ID(), m)
	pairs := make([][2]int64, writers)
	for w := range writers {
		kx, ky := x+":"+strconv.Itoa(w), y+":"+strconv.Itoa(w)
		vx, err := rebuilt[c.table.ShardOf([]byte(kx))].Get(ctx, kx).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		vy, err := rebuilt[c.table.ShardOf([]byte(ky))].Get(ctx, ky).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		pairs[w] = [2]int64{vx, vy}
	}
	return m, pairs, c
}

// keysOnShards returns two hash tags whose keys land on different shards.
func keysOnShards(c *cluster) (x, y string) {
	x = "{x}"
	for i := 0; ; i++ {
		y = "{y" + strconv.Itoa(i) + "}"
		if c.table.ShardOf([]byte(y)) != c.table.ShardOf([]byte(x)) {
			return x, y
		}
	}
}
