package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// TestInspectSnapshot: Inspect of a snapshot of known content reports its
// keys per database, type and shard, the expiries, the keys per slot range
// of its table (and of another topology), the largest key, and finds no
// problem; a damaged file gives an error with the byte offset, a file that
// disagrees with the manifest a problem.
func TestInspectSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t, disklessArgs, diskArgs, disklessArgs)
	perShard := make([]int64, 3)
	do := func(key string, fn func(cl *redis.Client) error) {
		t.Helper()
		if err := fn(c.client(key)); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		perShard[c.table.ShardOf([]byte(key))]++
	}
	const n = 40
	for i := 0; i < n; i++ {
		k := func(kind string) string { return fmt.Sprintf("%s:%d", kind, i) }
		do(k("str"), func(cl *redis.Client) error { return cl.Set(ctx, k("str"), i, 0).Err() })
		do(k("ttl"), func(cl *redis.Client) error { return cl.Set(ctx, k("ttl"), i, time.Hour).Err() })
		do(k("list"), func(cl *redis.Client) error { return cl.RPush(ctx, k("list"), 1, 2, 3).Err() })
		do(k("hash"), func(cl *redis.Client) error { return cl.HSet(ctx, k("hash"), "f", "v").Err() })
		do(k("set"), func(cl *redis.Client) error { return cl.SAdd(ctx, k("set"), "a", "b").Err() })
		do(k("zset"), func(cl *redis.Client) error { return cl.ZAdd(ctx, k("zset"), redis.Z{Score: 1, Member: "m"}).Err() })
		do(k("stream"), func(cl *redis.Client) error {
			return cl.XAdd(ctx, &redis.XAddArgs{Stream: k("stream"), Values: []string{"f", "v"}}).Err()
		})
	}
	// Random bytes: LZF leaves them as they are, so the record is as
	// large as the value.
	big := make([]byte, 100000)
	rand.Read(big)
	do("big", func(cl *redis.Client) error { return cl.Set(ctx, "big", big, 0).Err() })
	// Database 1, on shard 0 only.
	db1 := redis.NewClient(&redis.Options{Addr: c.servers[0].Addr(), DB: 1, Protocol: 2, DisableIdentity: true})
	defer db1.Close()
	if err := db1.Set(ctx, "in-db1", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	perShard[0]++

	cfg := c.jobConfig(t, &testBarrier{})
	j, err := runJob(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Dir, j.ID())
	icfg := DefaultInspectConfig()
	icfg.Top = 3
	rep, err := Inspect(dir, icfg)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(7*n + 2)
	if rep.Kind != "snapshot" || rep.Snapshot == nil || rep.Snapshot.ID != j.ID() || rep.Total.Keys != total ||
		rep.Total.Expires != n || rep.Total.DBKeys[0] != total-1 || rep.Total.DBKeys[1] != 1 || rep.Total.RDBVersion != 10 {
		t.Errorf("report: kind %s, total %+v", rep.Kind, rep.Total)
	}
	byType := map[string]int64{}
	for _, ts := range rep.Total.Types {
		byType[ts.Type] += ts.Keys
		if ts.Encoding == "" || ts.Bytes <= 0 {
			t.Errorf("type %+v", ts)
		}
	}
	want := map[string]int64{"string": 2*n + 2, "list": n, "hash": n, "set": n, "zset": n, "stream": n}
	if fmt.Sprint(byType) != fmt.Sprint(want) {
		t.Errorf("keys per type %v, want %v", byType, want)
	}
	if len(rep.Shards) != 3 || len(rep.Ranges) != 3 || rep.RangesOf != "snapshot" {
		t.Fatalf("shards %+v, ranges %+v", rep.Shards, rep.Ranges)
	}
	for i := range rep.Shards {
		if rep.Shards[i].RDB.Keys != perShard[i] || rep.Ranges[i].Keys != perShard[i] || rep.Shards[i].Misplaced != 0 {
			t.Errorf("shard %d: %+v, range %+v, want %d keys", i, rep.Shards[i], rep.Ranges[i], perShard[i])
		}
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems: %v", rep.Problems)
	}
	if len(rep.Largest) != 3 || rep.Largest[0].Key != "big" || rep.Largest[0].Bytes < 100000 || rep.Largest[0].Type != "string" {
		t.Errorf("largest %+v", rep.Largest)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"snapshot " + j.ID(), "keys per slot range (snapshot table)", "largest keys", "stream", "0-5460"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
	t.Logf("\n%s", text.String())
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}

	// Another topology: the same keys, counted in its ranges.
	target, err := router.ParseSpec("10.0.0.1:6379=0-99,10.0.0.2:6379=100-16383")
	if err != nil {
		t.Fatal(err)
	}
	icfg.Target = target
	trep, err := Inspect(dir, icfg)
	if err != nil {
		t.Fatal(err)
	}
	if trep.RangesOf != "target" || len(trep.Ranges) != 2 || trep.Ranges[0].Keys+trep.Ranges[1].Keys != total {
		t.Errorf("target ranges %+v", trep.Ranges)
	}

	// A damaged copy: a flipped byte in an RDB is an error with its
	// offset; a tail that lost a command disagrees with the manifest.
	bad := t.TempDir()
	m, _ := Load(cfg.Dir, j.ID())
	for _, name := range []string{ManifestFile, m.Shards[0].RDBFile, m.Shards[0].TailFile, m.Shards[1].RDBFile,
		m.Shards[1].TailFile, m.Shards[2].RDBFile, m.Shards[2].TailFile} {
		copyFile(t, filepath.Join(dir, name), filepath.Join(bad, name))
	}
	rdbPath := filepath.Join(bad, m.Shards[1].RDBFile)
	b, _ := os.ReadFile(rdbPath)
	b[len(b)/2] ^= 0xff
	os.WriteFile(rdbPath, b, 0o600)
	_, err = Inspect(bad, icfg)
	var re *rdb.Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "offset") || !strings.Contains(err.Error(), m.Shards[1].RDBFile) {
		t.Errorf("flipped byte: got %v, want an rdb error with the offset and the file", err)
	} else {
		t.Logf("flipped byte: %v", err)
	}
	copyFile(t, filepath.Join(dir, m.Shards[1].RDBFile), rdbPath)
	tail, err := os.OpenFile(filepath.Join(bad, m.Shards[0].TailFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tail.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n"))
	tail.Close()
	rep, err = Inspect(bad, icfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], m.Shards[0].TailFile) {
		t.Errorf("problems %v, want one about %s", rep.Problems, m.Shards[0].TailFile)
	}
}

// TestInspectRDB: Inspect of a dump.rdb written by SAVE after DEBUG
// POPULATE, and of truncated and non-RDB files.
func TestInspectRDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := startSource(t)
	populate(t, s, 10000, 32)
	c := patientClient(t, s)
	if err := c.Set(ctx, "expiring", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir(), "dump.rdb")
	rep, err := Inspect(path, DefaultInspectConfig())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != "rdb" || rep.Total.Keys != 10001 || rep.Total.Expires != 1 || rep.Total.DBKeys[0] != 10001 ||
		len(rep.Total.Types) != 1 || rep.Total.Types[0].Type != "string" || rep.Total.Types[0].Keys != 10001 {
		t.Errorf("report %+v", rep.Total)
	}
	if rep.Total.Aux["redis-ver"] == "" || rep.Total.CRC64 == "" || len(rep.Largest) != 10 || rep.Ranges != nil {
		t.Errorf("aux %v, crc %q, largest %d, ranges %v", rep.Total.Aux, rep.Total.CRC64, len(rep.Largest), rep.Ranges)
	}
	fi, _ := os.Stat(path)
	if rep.Total.Bytes != fi.Size() {
		t.Errorf("bytes %d, file %d", rep.Total.Bytes, fi.Size())
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "redis-ver") || !strings.Contains(text.String(), " 10001 (1 with an expiry)") {
		t.Errorf("text:\n%s", text.String())
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		want    error
	}{
		{"truncated", b[:len(b)/2], rdb.ErrTruncated},
		{"without its checksum", b[:len(b)-8], rdb.ErrTruncated},
		{"not an rdb", []byte(`{"json": true}`), rdb.ErrCorrupt},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "x.rdb")
		os.WriteFile(p, tt.content, 0o600)
		_, err := Inspect(p, DefaultInspectConfig())
		var re *rdb.Error
		if !errors.Is(err, tt.want) || !errors.As(err, &re) || !strings.Contains(err.Error(), "at offset") ||
			!strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want %v with an offset and the path", tt.name, err, tt.want)
			continue
		}
		t.Logf("%s: %v", tt.name, err)
	}
}
