package proxy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"

	"github.com/reshard/reshard/internal/redistest"
)

// dbsizesOf returns the key count of every server.
func dbsizesOf(t *testing.T, ss []*redistest.Server) []int64 {
	t.Helper()
	out := make([]int64, len(ss))
	for i, s := range ss {
		n, err := s.Client().DBSize(t.Context()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	return out
}

// snapshotNamed takes a snapshot named name through cl and waits for it.
func snapshotNamed(t *testing.T, cl *redis.Client, name string) string {
	t.Helper()
	id, err := cl.Do(t.Context(), "PROXY", "SNAPSHOT", name).Text()
	if err != nil {
		t.Fatal(err)
	}
	for range 1200 {
		st, err := cl.Do(t.Context(), "PROXY", "SNAPSHOT", "STATUS").Text()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(st, "state:done") {
			return id
		}
		if !strings.Contains(st, "state:running") {
			t.Fatalf("snapshot: %s", st)
		}
		redistest.Sleep(50)
	}
	t.Fatal("snapshot still running after 60 s")
	return ""
}

// TestIntegrationProxyRefusesLiveTargets: PROXY RESTORE and PROXY RESHARD
// refuse a target that is one of the proxy's own shards, or that another
// reshard proxy serves, before anything is written, with FLUSH and
// REPLACE too, and name the shard and what serves it. Before, PROXY
// RESTORE <id> <two of its own shards> FLUSH emptied the live shards and
// wrote the keys under a 2-shard layout. A restore into shards no proxy
// serves then goes ahead.
func TestIntegrationProxyRefusesLiveTargets(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	for i := range 300 {
		if err := admin.Set(ctx, fmt.Sprint("k:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	id := snapshotNamed(t, admin, "nightly")

	// another proxy over two other shards, with keys of its own
	others := redistest.StartN(t, 2, debugArgs...)
	oaddr, stop := serveTable(t, proxy.DefaultConfig(), control.Config{StateDir: t.TempDir()}, evenTable(t, 1, others), nil)
	defer stop()
	ocl := redis.NewClient(&redis.Options{Addr: oaddr})
	t.Cleanup(func() { ocl.Close() })
	for i := range 100 {
		if err := ocl.Set(ctx, fmt.Sprint("o:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	other := runID(t, ocl)
	fresh := redistest.StartN(t, 2, debugArgs...)
	all := slices.Concat(c.Shards, others, fresh)
	before := dbsizesOf(t, all)

	own := fmt.Sprintf("is a shard of this proxy's routing table (epoch %d)", c.Proxy.Table().Epoch())
	for _, tc := range []struct {
		args []any
		want []string
	}{
		{[]any{"RESTORE", id, c.Shards[0].Addr(), c.Shards[1].Addr(), "FLUSH"}, []string{"2 problems: target " + c.Shards[0].Addr() + " " + own, "use PROXY RESHARD; target " + c.Shards[1].Addr()}},
		{[]any{"RESTORE", "no-such-snapshot", fresh[0].Addr()}, []string{`no snapshot and no file named "no-such-snapshot"`, "PROXY SNAPSHOT LIST"}},
		{[]any{"RESTORE", id, c.Shards[2].Addr(), fresh[0].Addr(), "REPLACE"}, []string{"target " + c.Shards[2].Addr() + " " + own}},
		{[]any{"RESTORE", "nightly", fresh[0].Addr(), others[1].Addr(), "FLUSH"}, []string{"target " + others[1].Addr() + " is a live shard of reshard proxy run_id " + other, "stop that proxy first"}},
		{[]any{"RESTORE", id, others[0].Addr(), others[1].Addr()}, []string{"run_id " + other}},
		{[]any{"RESHARD", others[0].Addr(), others[1].Addr(), "FLUSH"}, []string{"target " + others[0].Addr() + " is a live shard of reshard proxy run_id " + other}},
		{[]any{"RESHARD", fresh[0].Addr(), others[1].Addr(), "FLUSH", "FORCE"}, []string{"run_id " + other}},
		{[]any{"RESHARD", c.Shards[0].Addr(), c.Shards[1].Addr(), "FLUSH"}, []string{"target " + c.Shards[0].Addr() + " " + own}},
	} {
		err := admin.Do(ctx, append([]any{"PROXY"}, tc.args...)...).Err()
		if err == nil {
			t.Errorf("PROXY %v: accepted, want refused", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("PROXY %v = %v, want it to say %q", tc.args, err, w)
			}
		}
		if got := dbsizesOf(t, all); !slices.Equal(got, before) {
			t.Fatalf("PROXY %v: DBSIZE of every shard %v, want %v as before", tc.args, got, before)
		}
	}
	for _, cmd := range []string{"RESTORE", "RESHARD"} {
		if st, _ := admin.Do(ctx, "PROXY", cmd, "STATUS").Text(); !strings.Contains(st, "state:none") {
			t.Errorf("PROXY %s STATUS after the refusals:\n%s\nwant state:none: no job started", cmd, st)
		}
	}
	for i := range 300 {
		if got, err := admin.Get(ctx, fmt.Sprint("k:", i)).Int(); err != nil || got != i {
			t.Fatalf("k:%d after the refusals = %d (%v)", i, got, err)
		}
	}

	// into shards no proxy serves, by the snapshot's name
	job, err := admin.Do(ctx, "PROXY", "RESTORE", "nightly", fresh[0].Addr(), fresh[1].Addr()).Text()
	if err != nil || !strings.HasPrefix(job, "restore-") {
		t.Fatalf("PROXY RESTORE into fresh shards = %q, %v; want the job's id", job, err)
	}
	st := waitJob(t, c, "PROXY", "RESTORE", "STATUS")
	if !strings.Contains(st, "id:"+job+"\r\n") || !strings.Contains(st, "state:done") {
		t.Fatalf("PROXY RESTORE STATUS:\n%s\nwant id:%s, state:done", st, job)
	}
	if n := dbsizesOf(t, fresh); n[0]+n[1] != 300 {
		t.Errorf("fresh shards hold %v keys, want 300 in all", n)
	}
}

// TestIntegrationProxyRestoreDBAndNames: PROXY RESTORE takes DB n (a file
// with keys in several databases was refused with no way through the
// proxy to pick one), a snapshot's name works wherever its id does
// (SNAPSHOT STATUS, SNAPSHOT DELETE, RESTORE), and errors name command
// words, not Go fields.
func TestIntegrationProxyRestoreDBAndNames(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()

	src := redistest.Start(t)
	for db, n := range map[int]int{0: 5, 3: 7} {
		cl := redis.NewClient(&redis.Options{Addr: src.Addr(), DB: db})
		for i := range n {
			if err := cl.Set(ctx, fmt.Sprint("db", db, ":", i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		cl.Close()
	}
	if err := src.Client().Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "multi.rdb")
	data, err := os.ReadFile(filepath.Join(src.Dir(), "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := redistest.StartN(t, 2)

	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{file, ts[0].Addr(), "REPLACE", "FLUSH"}, "ERR REPLACE and FLUSH exclude each other"},
		{[]any{file, ts[0].Addr(), "DB"}, "DB needs a database number"},
		{[]any{file, ts[0].Addr(), "DB", "x"}, `DB "x" is not a database number`},
	} {
		err := admin.Do(ctx, append([]any{"PROXY", "RESTORE"}, tc.args...)...).Err()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), " = ") {
			t.Errorf("PROXY RESTORE %v = %v, want %q", tc.args, err, tc.want)
		}
	}

	// without DB: refused in the job's pre-flight, naming DB
	if _, err := admin.Do(ctx, "PROXY", "RESTORE", file, ts[0].Addr(), ts[1].Addr()).Text(); err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "RESTORE", "STATUS"); !strings.Contains(st, "state:failed") || !strings.Contains(st, "pick one with DB") {
		t.Fatalf("restore of a file with two databases, no DB:\n%s", st)
	}
	job, err := admin.Do(ctx, "PROXY", "RESTORE", file, ts[0].Addr(), ts[1].Addr(), "db", "3").Text()
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c, "PROXY", "RESTORE", "STATUS"); !strings.Contains(st, "state:done") || !strings.Contains(st, "id:"+job) {
		t.Fatalf("restore with DB 3:\n%s", st)
	}
	if n := dbsizesOf(t, ts); n[0]+n[1] != 7 {
		t.Errorf("targets hold %v keys, want database 3's 7", n)
	}

	// names
	first := snapshotNamed(t, admin, "weekly")
	st, err := admin.Do(ctx, "PROXY", "SNAPSHOT", "STATUS", "weekly").Text()
	if err != nil || !strings.Contains(st, first) {
		t.Errorf("PROXY SNAPSHOT STATUS weekly = %q, %v; want snapshot %s", st, err, first)
	}
	second := snapshotNamed(t, admin, "weekly")
	if st, _ := admin.Do(ctx, "PROXY", "SNAPSHOT", "STATUS", "weekly").Text(); !strings.Contains(st, second) {
		t.Errorf("PROXY SNAPSHOT STATUS weekly after a second one:\n%s\nwant the newest, %s", st, second)
	}
	err = admin.Do(ctx, "PROXY", "SNAPSHOT", "DELETE", "weekly").Err()
	if err == nil || !strings.Contains(err.Error(), "2 snapshots are named weekly") {
		t.Errorf("PROXY SNAPSHOT DELETE of a name two snapshots have = %v, want refused", err)
	}
	if err := admin.Do(ctx, "PROXY", "SNAPSHOT", "DELETE", first).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "PROXY", "SNAPSHOT", "DELETE", "weekly").Err(); err != nil {
		t.Errorf("PROXY SNAPSHOT DELETE weekly, one left: %v", err)
	}
	if err := admin.Do(ctx, "PROXY", "SNAPSHOT", "STATUS", "weekly").Err(); err == nil || !strings.Contains(err.Error(), `no snapshot with id or name "weekly"`) {
		t.Errorf("PROXY SNAPSHOT STATUS of a deleted name = %v", err)
	}
}
