package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// writeTail writes commands as raw RESP, as a replica receives them.
func writeTail(t *testing.T, path string, cmds [][]any) {
	t.Helper()
	var b []byte
	for _, c := range cmds {
		b = appendCommand(b, c...)
	}
	must(t, os.WriteFile(path, b, 0o600))
}

// replay applies commands to a server on one connection, to compute what
// the targets must hold.
func replay(t *testing.T, c *redis.Client, cmds [][]any) {
	t.Helper()
	ctx := context.Background()
	conn := c.Conn()
	defer conn.Close()
	for _, cmd := range append(cmds, []any{"SELECT", "0"}) { // the pool gets the connection back
		if err := conn.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
}

// TestRestoreSnapshotWithTails restores a snapshot directory of two shards,
// each RDB followed by its tail: SET, DEL and MSET across targets, a
// transaction across targets, PING, PUBLISH, a same-slot RENAME, a FLUSHDB
// (the second shard's RDB must then not be restored), and a write to
// another database. The expected state is the sources with their tails
// replayed on them.
func TestRestoreSnapshotWithTails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srcA := redistest.Start(t, sourceArgs...)
	ca := srcA.Client()
	for i := range 50 {
		do(t, ca, "SET", "a:"+strconv.Itoa(i), "v"+strconv.Itoa(i))
	}
	do(t, ca, "RPUSH", "a:list", "1", "2")
	do(t, ca, "SET", "{tag}a", "renamed")
	do(t, ca, "FUNCTION", "LOAD", testFunction)
	copyFile(t, saveRDB(t, srcA, "a.rdb"), filepath.Join(dir, "shard-0.rdb"))
	far := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	tailA := [][]any{
		{"SELECT", "0"},
		{"SET", "t:new", "v1"},
		{"DEL", "a:1", "a:2", "a:3", "a:10", "a:11"},
		{"MSET", "m:1", "x", "m:2", "y", "m:3", "z", "m:4", "w"},
		{"PING"},
		{"MULTI"},
		{"SET", "tx:1", "1"},
		{"INCR", "tx:2"},
		{"DEL", "a:4", "a:12"},
		{"HSET", "tx:h", "f", "v"},
		{"EXEC"},
		{"PEXPIREAT", "a:5", far},
		{"PUBLISH", "ch", "msg"},
		{"RPUSH", "a:list", "x"},
		{"SELECT", "0"},
		{"RENAME", "{tag}a", "{tag}b"},
	}
	writeTail(t, filepath.Join(dir, "shard-0.tail.aof"), tailA)
	replay(t, ca, tailA)

	srcB := redistest.Start(t, sourceArgs...)
	cb := srcB.Client()
	for i := range 20 {
		do(t, cb, "SET", "b:"+strconv.Itoa(i), "v")
	}
	do(t, cb, "FUNCTION", "LOAD", testFunction)
	copyFile(t, saveRDB(t, srcB, "b.rdb"), filepath.Join(dir, "shard-1.rdb"))
	tailB := [][]any{
		{"SELECT", "0"},
		{"SET", "b:pre", "1"},
		{"FLUSHDB"},
		{"SET", "b:post", "2"},
		{"SELECT", "3"},
		{"SET", "other-db", "x"},
	}
	writeTail(t, filepath.Join(dir, "shard-1.tail.aof"), tailB)
	replay(t, cb, tailB)
	must(t, os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"id":"snap-test","shards":[]}`), 0o600))

	targets := redistest.StartN(t, 3)
	shards := evenShards(t, targets)
	// The tail writes to database 3 too: refused until DB says which.
	_, err := Restore(ctx, testConfig([]string{dir}, shards))
	if !errors.Is(err, ErrMultipleDBs) || !strings.Contains(err.Error(), "3 (1 tail command)") {
		t.Fatalf("err = %v, want ErrMultipleDBs naming database 3's tail command", err)
	}
	requireEmpty(t, targets)

	cfg := testConfig([]string{dir}, shards)
	cfg.DB = 0
	cfg.Verify = true
	cfg.VerifySample = -1
	rep, err := Restore(ctx, cfg)
	t.Log("\n" + rep.String())
	must(t, err)
	compareUnion(t, []*redis.Client{ca, cb}, targets, shards)
	if rep.Snapshot != "snap-test" || len(rep.Sources) != 2 || rep.Sources[1].TailFrom == 0 {
		t.Errorf("report: snapshot %q, sources %+v", rep.Snapshot, rep.Sources)
	}
	if rep.OtherDBCommands != 1 || rep.Dropped != 1 {
		t.Errorf("report: %d commands of other databases, %d dropped; want 1 and 1", rep.OtherDBCommands, rep.Dropped)
	}
}

// TestRestoreTailUnroutable: a tail command whose keys fall on two targets
// and that cannot be split is refused before anything is written.
func TestRestoreTailUnroutable(t *testing.T) {
	src := redistest.Start(t, sourceArgs...)
	do(t, src.Client(), "SET", "x", "1")
	dir := t.TempDir()
	copyFile(t, saveRDB(t, src, "s.rdb"), filepath.Join(dir, "shard-0.rdb"))
	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	// Find two keys on different targets.
	a, b := "k0", ""
	for i := 1; b == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		if slotOwner(shards, k) != slotOwner(shards, a) {
			b = k
		}
	}
	writeTail(t, filepath.Join(dir, "shard-0.tail.aof"), [][]any{{"SET", "y", "2"}, {"RENAME", a, b}})
	_, err := Restore(context.Background(), testConfig([]string{dir}, shards))
	if !errors.Is(err, ErrUnroutable) || !strings.Contains(err.Error(), "RENAME") || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("err = %v, want ErrUnroutable naming RENAME and the offset", err)
	}
	t.Logf("refused as expected: %v", err)
	requireEmpty(t, targets)

	// A tail cut inside a command is a broken file.
	writeTail(t, filepath.Join(dir, "shard-0.tail.aof"), [][]any{{"SET", "y", "2"}})
	f, err := os.OpenFile(filepath.Join(dir, "shard-0.tail.aof"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, _ = f.WriteString("*3\r\n$3\r\nSET\r\n$1\r\nz")
	f.Close()
	_, err = Restore(context.Background(), testConfig([]string{dir}, shards))
	if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v, want ErrBadSource for a truncated tail", err)
	}
	requireEmpty(t, targets)
}
