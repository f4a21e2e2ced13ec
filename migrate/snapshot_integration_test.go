package migrate

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
)

// writesBarrier is a snapshot barrier for a test without clients: Pause
// runs writes on the shards (after their forks, before the cut), so they
// land in the snapshot's tails.
type writesBarrier struct{ writes func() }

func (b *writesBarrier) Pause(context.Context) (func(), error) {
	b.writes()
	return func() {}, nil
}

// TestRestoreThreeShardSnapshotIntoFive is the seed workflow end to end: a
// 3-shard cluster holding every type and encoding is snapshotted with
// package snapshot (RDB + tail per shard, with writes between the forks and
// the cut), and the snapshot restored into five targets with an uneven
// layout. A reference server that received every write says what the
// targets must hold.
func TestRestoreThreeShardSnapshotIntoFive(t *testing.T) {
	ctx := context.Background()
	ref := redistest.Start(t, sourceArgs...)
	rc := ref.Client()
	populate(t, rc)

	// Three source shards holding the reference's keys by the even 3-way
	// split, moved with DUMP/RESTORE so encodings stay.
	shards := redistest.StartN(t, 3, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
	srcSpec := evenShards(t, shards)
	srcTable, err := router.NewTable(1, srcSpec)
	must(t, err)
	clients := make([]*redis.Client, len(shards))
	for i, s := range shards {
		clients[i] = s.Client()
		do(t, clients[i], "FUNCTION", "LOAD", testFunction)
	}
	for _, k := range allKeys(t, rc) {
		dump, err := rc.Dump(ctx, k).Result()
		must(t, err)
		pttl, err := rc.PTTL(ctx, k).Result()
		must(t, err)
		ttl := int64(0)
		if pttl > 0 {
			ttl = time.Now().Add(pttl).UnixMilli()
		}
		do(t, clients[srcTable.ShardOf([]byte(k))], "RESTORE", k, ttl, dump, "ABSTTL")
	}

	// Writes between the forks and the cut, on every shard and on the
	// reference alike.
	both := func(key string, args ...any) {
		do(t, clients[srcTable.ShardOf([]byte(key))], args...)
		do(t, rc, args...)
	}
	barrier := &writesBarrier{writes: func() {
		for i := range 30 {
			k := "tail:" + strconv.Itoa(i)
			both(k, "SET", k, i)
		}
		both("plain:7", "DEL", "plain:7")
		both("hash:hashtable", "HSET", "hash:hashtable", "field-1", "changed", "new-field", "x")
		both("list:small", "LPUSH", "list:small", "head")
		both("zset:listpack", "ZINCRBY", "zset:listpack", "0.25", "a")
	}}

	cfg := snapshot.DefaultJobConfig()
	cfg.Dir = t.TempDir()
	cfg.Table = srcTable
	cfg.Barrier = barrier
	job, err := snapshot.StartJob(ctx, cfg)
	must(t, err)
	must(t, job.Wait(ctx))
	dir := cfg.Dir + "/" + job.ID()

	targets := redistest.StartN(t, 5)
	layout := uneven5(addrsOf(targets))
	rcfg := testConfig([]string{dir}, layout)
	rcfg.Verify = true
	rep, err := Restore(ctx, rcfg)
	t.Log("\n" + rep.String())
	must(t, err)
	var tail int64
	for _, s := range rep.Sources {
		tail += s.TailCommands
	}
	if len(rep.Sources) != 3 || tail == 0 {
		t.Errorf("report: %d sources, %d tail commands; want 3 and some", len(rep.Sources), tail)
	}
	compareServers(t, rc, targets, layout)
}
