package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/bench"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/s3test"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"
)

// TestSnapshotStoreS3 is the object storage workflow as an operator runs
// it, against an S3-protocol server on loopback: `reshard proxy
// --snapshot-store s3://BUCKET/PREFIX --s3-endpoint URL`, BGSAVE, then
// `reshard inspect`, `reshard plan` and `reshard restore --from
// s3://BUCKET/PREFIX/ID` into 5 shards, each streaming from the bucket.
// The credentials (from the AWS environment) appear in no log line.
func TestSnapshotStoreS3(t *testing.T) {
	srv := s3test.Start(t)
	shards := redistest.StartN(t, 3, "--repl-diskless-sync-delay", "0")
	var spec []string
	for _, s := range shards {
		spec = append(spec, s.Addr())
	}
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: t.TempDir(), shards: strings.Join(spec, ","),
		snapStore: srv.URL("nightly"), s3: s3Flags{endpoint: srv.Endpoint()}}
	addr, logs, stop := startProxy(t, f)
	defer stop()
	ctx := t.Context()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl.Close()
	const n = 5000
	pipe := cl.Pipeline()
	for i := range n {
		pipe.Set(ctx, fmt.Sprint("key:", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := cl.LastSave(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // LASTSAVE has whole seconds
	if err := cl.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var status string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		status = cl.Do(ctx, "PROXY", "SNAPSHOT", "STATUS").String()
		if !strings.Contains(status, "state:running") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(status, "state:done") || !strings.Contains(status, "dir:"+srv.URL("nightly/")) {
		t.Fatalf("BGSAVE to the bucket: %s", status)
	}
	if after := cl.LastSave(ctx).Val(); after <= before {
		t.Errorf("LASTSAVE %d after the snapshot, %d before", after, before)
	}
	id := bench.ParseStatus(status)["id"]
	loc := srv.URL("nightly/" + id)

	var out bytes.Buffer
	if err := runInspect(ctx, []string{loc, "--s3-endpoint", srv.Endpoint()}, &out); err != nil {
		t.Fatalf("inspect %s: %v", loc, err)
	}
	if !strings.Contains(out.String(), fmt.Sprint(n)) || strings.Contains(out.String(), "problem") {
		t.Errorf("inspect %s:\n%s", loc, out.String())
	}
	out.Reset()
	if err := runPlan(ctx, []string{loc, "--shards", "5", "--s3-endpoint", srv.Endpoint()}, &out); err != nil {
		t.Fatalf("plan %s: %v", loc, err)
	}
	if !strings.Contains(out.String(), "largest shard") {
		t.Errorf("plan %s:\n%s", loc, out.String())
	}

	targets := redistest.StartN(t, 5)
	var to []string
	for _, s := range targets {
		to = append(to, s.Addr())
	}
	if _, err := restoreCLI("--from", loc, "--to", strings.Join(to, ","), "--s3-endpoint", srv.Endpoint(), "--verify"); err != nil {
		t.Fatalf("restore --from %s: %v", loc, err)
	}
	tshards, _ := router.ParseSpec(strings.Join(to, ","))
	table, _ := router.NewTable(1, tshards)
	var total int64
	for _, s := range targets {
		total += s.Client().DBSize(ctx).Val()
	}
	if total != n {
		t.Errorf("the 5 targets hold %d keys, want %d", total, n)
	}
	if v := targets[table.ShardOf([]byte("key:42"))].Client().Get(ctx, "key:42").Val(); v != "42" {
		t.Errorf("key:42 = %q on its target", v)
	}
	// a bare .rdb object is a source too
	if _, err := restoreCLI("--from", loc+"/shard-0.rdb", "--to", strings.Join(to, ","), "--s3-endpoint", srv.Endpoint(), "--replace"); err != nil {
		t.Errorf("restore --from %s/shard-0.rdb: %v", loc, err)
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, s3test.SecretKey) || strings.Contains(line, s3test.AccessKey) {
			t.Errorf("a credential in the log: %s", e.Message)
		}
	}
}
