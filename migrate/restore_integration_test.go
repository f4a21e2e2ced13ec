package migrate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot/rdb"
)

// TestRestoreEveryType restores every type and encoding into five targets
// with an uneven layout, once with RESTORE and once with every value above
// a few bytes written in chunks of a few elements (the big-key path, with
// streams rebuilt through commands), and compares each key with the source
// through ordinary commands, and through Verify.
func TestRestoreEveryType(t *testing.T) {
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	populate(t, sc)
	path := saveRDB(t, src, "dump.rdb")
	for _, tc := range []struct {
		name          string
		bigKey        int64
		chunkElements int
	}{
		{"restore", DefaultRestoreConfig().BigKeyBytes, 0},
		{"chunked", 20, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testRestoreEveryType(t, sc, path, tc.bigKey, tc.chunkElements)
		})
	}
}

func testRestoreEveryType(t *testing.T, sc *redis.Client, path string, bigKey int64, chunk int) {
	targets := redistest.StartN(t, 5)
	shards := uneven5(addrsOf(targets))
	cfg := testConfig([]string{path}, shards)
	cfg.Verify = true
	cfg.VerifySample = -1
	cfg.BigKeyBytes = bigKey
	if chunk > 0 {
		cfg.ChunkElements = chunk
	}
	rep, err := Restore(context.Background(), cfg)
	t.Log("\n" + rep.String())
	if err != nil {
		t.Fatal(err)
	}
	compareServers(t, sc, targets, shards)
	written := keysWritten(rep)
	n, _ := sc.DBSize(context.Background()).Result()
	if written != n {
		t.Errorf("report: %d keys written, source has %d", written, n)
	}
	if rep.Verify == nil || rep.Verify.Sampled != n || rep.Verify.MismatchCount != 0 {
		t.Errorf("verify: %+v, want %d keys compared, no mismatch", rep.Verify, n)
	}
	if rep.Functions != 1 {
		t.Errorf("report: %d function libraries, want 1", rep.Functions)
	}
	if errors.Is(err, ErrVerify) {
		t.Fatal(err)
	}
}

// TestRestoreDebugPopulate restores an RDB of DEBUG POPULATE keys plus keys
// with TTLs, with the clock an hour ahead: the keys that expire within the
// hour are skipped and counted, the others keep their absolute expiry.
func TestRestoreDebugPopulate(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", 20000)
	for i := range 100 {
		do(t, sc, "SET", fmt.Sprintf("soon:%d", i), "v", "PX", 30*60*1000)
		do(t, sc, "SET", fmt.Sprintf("later:%d", i), "v", "PX", 2*3600*1000)
	}
	path := saveRDB(t, src, "dump.rdb")
	for i := range 100 {
		do(t, sc, "DEL", fmt.Sprintf("soon:%d", i)) // what the targets should hold
	}

	targets := redistest.StartN(t, 3)
	shards := evenShards(t, targets)
	cfg := testConfig([]string{path}, shards)
	cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	cfg.Verify = true
	rep, err := Restore(ctx, cfg)
	t.Log("\n" + rep.String())
	must(t, err)
	var written, expired int64
	for _, tr := range rep.Targets {
		written += tr.Written
		expired += tr.Expired
	}
	if written != 20100 || expired != 100 {
		t.Errorf("written %d, expired %d; want 20100 and 100", written, expired)
	}
	compareServers(t, sc, targets, shards)
}

// TestRestoreMultipleDBs: an RDB with keys in databases 0 and 3 is refused,
// naming both and their key counts, with nothing written; DB picks one.
func TestRestoreMultipleDBs(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	c0, c3 := clientDB(t, src, 0), clientDB(t, src, 3)
	for i := range 3 {
		do(t, c0, "SET", fmt.Sprintf("zero:%d", i), "v")
	}
	do(t, c3, "SET", "three:a", "v")
	do(t, c3, "RPUSH", "three:b", "x", "y")
	do(t, c0, "FUNCTION", "LOAD", testFunction)
	path := saveRDB(t, src, "dump.rdb")

	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	_, err := Restore(ctx, testConfig([]string{path}, shards))
	if !errors.Is(err, ErrMultipleDBs) || !errors.Is(err, ErrPreflight) {
		t.Fatalf("err = %v, want ErrMultipleDBs", err)
	}
	t.Logf("refused as expected: %v", err)
	for _, want := range []string{"0 (3 keys)", "3 (2 keys)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	requireEmpty(t, targets)

	cfg := testConfig([]string{path}, shards)
	cfg.DB = 3
	rep, err := Restore(ctx, cfg)
	must(t, err)
	if rep.OtherDBKeys != 3 {
		t.Errorf("report: %d keys of other databases skipped, want 3", rep.OtherDBKeys)
	}
	do(t, c0, "FLUSHDB") // the comparison source: database 3 alone
	compareServers(t, c3, targets, shards)
}

// TestRestoreCorrupt: a file with a flipped byte or cut short is refused
// with the offset, before anything (functions included) is written.
func TestRestoreCorrupt(t *testing.T) {
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", 5000)
	do(t, sc, "FUNCTION", "LOAD", testFunction)
	path := saveRDB(t, src, "dump.rdb")
	data, err := os.ReadFile(path)
	must(t, err)
	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	flipped := bytes.Clone(data)
	flipped[len(data)/2] ^= 0x40
	// A flipped letter inside a value keeps the structure valid: only the
	// checksum can tell.
	inValue := bytes.Clone(data)
	at := len(data)/2 + bytes.Index(data[len(data)/2:], []byte("value:")) + 2
	inValue[at] ^= 0x20
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"flipped", flipped, nil},
		{"flipped-in-value", inValue, rdb.ErrChecksum},
		{"truncated", data[:len(data)*2/3], rdb.ErrTruncated},
		{"no-checksum", data[:len(data)-8], rdb.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.rdb")
			must(t, os.WriteFile(bad, tc.data, 0o600))
			_, err := Restore(context.Background(), testConfig([]string{bad}, shards))
			var re *rdb.Error
			if !errors.Is(err, ErrBadSource) || !errors.As(err, &re) {
				t.Fatalf("err = %v, want ErrBadSource with an *rdb.Error", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			t.Logf("refused as expected: %v", err)
			if !strings.Contains(err.Error(), "offset") || !strings.Contains(err.Error(), bad) {
				t.Errorf("error %q does not name the file and the offset", err)
			}
			requireEmpty(t, targets)
		})
	}
}

// TestRestoreNonEmptyTarget: a target with keys is refused unless Replace
// (overwrite, others kept) or Flush (emptied first).
func TestRestoreNonEmptyTarget(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", 1000)
	path := saveRDB(t, src, "dump.rdb")
	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	tc := targets[1].Client()
	do(t, tc, "SET", "key:1", "old value")
	do(t, tc, "SET", "not-in-source", "x")

	_, err := Restore(ctx, testConfig([]string{path}, shards))
	if !errors.Is(err, ErrTargetNotEmpty) || !strings.Contains(err.Error(), targets[1].Addr()) {
		t.Fatalf("err = %v, want ErrTargetNotEmpty naming %s", err, targets[1].Addr())
	}
	t.Logf("refused as expected: %v", err)
	if n := dbsizes(t, targets); n[0] != 0 || n[1] != 2 {
		t.Fatalf("refused restore wrote something: dbsizes %v", n)
	}

	cfg := testConfig([]string{path}, shards)
	cfg.Replace = true
	_, err = Restore(ctx, cfg)
	must(t, err)
	table, _ := router.NewTable(0, shards)
	owner := targets[table.ShardOf([]byte("key:1"))].Client()
	if v := owner.Get(ctx, "key:1").Val(); v != "value:1" {
		t.Errorf("key:1 = %q after Replace, want the source's value:1", v)
	}
	if tc.Exists(ctx, "not-in-source").Val() != 1 {
		t.Error("Replace removed a key that is not in the source")
	}

	cfg = testConfig([]string{path}, shards)
	cfg.Flush = true
	cfg.Verify = true
	_, err = Restore(ctx, cfg)
	must(t, err)
	if tc.Exists(ctx, "not-in-source").Val() != 0 {
		t.Error("Flush kept a key that is not in the source")
	}
	compareServers(t, sc, targets, shards)
}

// TestRestoreStringsMSET: plain strings without a TTL, gathered into
// MSETs, mixed on the same connections with strings with a TTL (SET ...
// PXAT), other types (RESTORE) and a string too large to gather; keys the
// targets held under the same names, of another type and with a TTL, are
// replaced as RESTORE REPLACE would replace them. An MSET the target
// refuses fails the job, naming its keys and counting them all as errors.
func TestRestoreStringsMSET(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	far := time.Now().Add(48 * time.Hour).UnixMilli()
	for i := range 1000 {
		k := fmt.Sprintf("s:%d", i)
		switch {
		case i%10 == 3:
			do(t, sc, "SET", k, "ttl", "PXAT", far)
		case i%10 == 7:
			do(t, sc, "RPUSH", k, "a", "b")
		case i < 500:
			do(t, sc, "SET", k, fmt.Sprintf("v%d", i))
		default:
			do(t, sc, "SET", k, i) // int-encoded
		}
	}
	do(t, sc, "SET", "s:large", strings.Repeat("x", msetBytes))
	path := saveRDB(t, src, "dump.rdb")

	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	table, err := router.NewTable(0, shards)
	must(t, err)
	for _, k := range []string{"s:1", "s:2", "s:600"} {
		c := targets[table.ShardOf([]byte(k))].Client()
		do(t, c, "HSET", k, "f", "old")
		do(t, c, "PEXPIRE", k, 3600_000)
	}
	cfg := testConfig([]string{path}, shards)
	cfg.Replace = true
	rep, err := Restore(ctx, cfg)
	t.Log("\n" + rep.String())
	must(t, err)
	if n := keysWritten(rep); n != 1001 {
		t.Errorf("report: %d keys written, want 1001", n)
	}
	compareServers(t, sc, targets, shards)
	for _, tg := range targets {
		info, err := tg.Client().Info(ctx, "commandstats").Result()
		must(t, err)
		if !strings.HasPrefix(parseInfo(info)["cmdstat_mset"], "calls=") {
			t.Errorf("target %s received no MSET", tg.Addr())
		}
	}

	// A target whose user may not run MSET.
	src2 := redistest.Start(t, sourceArgs...)
	do(t, src2.Client(), "DEBUG", "POPULATE", 50)
	path = saveRDB(t, src2, "fifty.rdb")
	target := redistest.Start(t)
	do(t, target.Client(), "ACL", "SETUSER", "nomset", "on", ">secret", "~*", "&*", "+@all", "-mset")
	cfg = testConfig([]string{path}, evenShards(t, []*redistest.Server{target}))
	cfg.Username, cfg.Password = "nomset", "secret"
	cfg.ConnsPerTarget = 1
	rep, err = Restore(ctx, cfg)
	if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), `MSET of 50 keys "key:`) {
		t.Fatalf("err = %v, want ErrTarget naming an MSET of 50 keys", err)
	}
	t.Logf("failed as expected: %v", err)
	if tr := rep.Targets[0]; tr.Errors != 50 || tr.Written != 0 {
		t.Errorf("report: %d errors, %d written; want 50 and 0", tr.Errors, tr.Written)
	}
}

// TestRestoreDryRun reports each target's share and writes nothing.
func TestRestoreDryRun(t *testing.T) {
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	populate(t, sc)
	path := saveRDB(t, src, "dump.rdb")
	targets := redistest.StartN(t, 5)
	shards := uneven5(addrsOf(targets))
	cfg := testConfig([]string{path}, shards)
	cfg.DryRun = true
	rep, err := Restore(context.Background(), cfg)
	must(t, err)
	t.Log("\n" + rep.String())
	requireEmpty(t, targets)
	table, _ := router.NewTable(0, shards)
	want := make([]int64, len(targets))
	for _, k := range allKeys(t, sc) {
		want[table.ShardOf([]byte(k))]++
	}
	for i, tr := range rep.Targets {
		if tr.Planned.Keys != want[i] || tr.Written != 0 {
			t.Errorf("target %s: planned %d keys (written %d), want %d planned", tr.Addr, tr.Planned.Keys, tr.Written, want[i])
		}
		if want[i] > 0 && tr.Planned.Bytes == 0 {
			t.Errorf("target %s: no bytes planned", tr.Addr)
		}
	}
	if !strings.Contains(rep.String(), "dry run") {
		t.Error("report does not say dry run")
	}
}

// TestRestoreTargetKilled: a target killed mid-restore stops the job with
// an error naming it; a rerun with Replace completes.
func TestRestoreTargetKilled(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	sc := src.Client()
	do(t, sc, "DEBUG", "POPULATE", 300000)
	path := saveRDB(t, src, "dump.rdb")
	targets := redistest.StartN(t, 3)
	shards := evenShards(t, targets)
	victim := targets[1]

	cfg := testConfig([]string{path}, shards)
	cfg.ProgressInterval = 2 * time.Millisecond
	var once sync.Once
	cfg.Progress = func(p Progress) {
		if p.Keys > 30000 {
			once.Do(victim.Kill)
		}
	}
	cfg.Timeout = 5 * time.Second
	rep, err := Restore(ctx, cfg)
	if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), victim.Addr()) {
		t.Fatalf("err = %v, want ErrTarget naming %s", err, victim.Addr())
	}
	t.Logf("failed as expected: %v", err)
	if rep.Err == "" {
		t.Error("report has no error")
	}

	victim.Restart()
	cfg = testConfig([]string{path}, shards)
	cfg.Replace = true
	cfg.Verify = true
	rep, err = Restore(ctx, cfg)
	t.Log("\n" + rep.String())
	must(t, err)
	var total int64
	for _, n := range dbsizes(t, targets) {
		total += n
	}
	if total != 300000 {
		t.Errorf("targets hold %d keys after the rerun, want 300000", total)
	}
}

// TestRestoreRefusedByTargets: values that need a newer RDB version than a
// target loads, module values, and a target without room are refused with
// the figures, before anything is written.
func TestRestoreRefusedByTargets(t *testing.T) {
	ctx := context.Background()
	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)
	dir := t.TempDir()

	// A set listpack (type 20) exists from RDB 11 (Redis 7.2) on.
	v11 := filepath.Join(dir, "v11.rdb")
	must(t, os.WriteFile(v11, craftRDB(11, rdb.TypeSetListpack, "newset", []byte{0x01, 'x'}), 0o600))
	_, err := Restore(ctx, testConfig([]string{v11}, shards))
	if !errors.Is(err, ErrTargetTooOld) {
		t.Fatalf("err = %v, want ErrTargetTooOld", err)
	}
	t.Logf("refused as expected: %v", err)
	for _, want := range []string{targets[0].Addr(), "7.0", "up to 10", "needs RDB 11", "newset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// A module value: type id, then the module EOF opcode.
	mod := filepath.Join(dir, "module.rdb")
	value := append([]byte{0x81, 0, 0, 0, 0, 0, 0, 0x04, 0x01}, 0x00)
	must(t, os.WriteFile(mod, craftRDB(10, rdb.TypeModule2, "modkey", value), 0o600))
	_, err = Restore(ctx, testConfig([]string{mod}, shards))
	if !errors.Is(err, ErrModuleType) || !strings.Contains(err.Error(), "modkey") {
		t.Fatalf("err = %v, want ErrModuleType naming the key", err)
	}
	t.Logf("refused as expected: %v", err)
	requireEmpty(t, targets)

	// No room: a target with maxmemory just above what it uses.
	src := redistest.Start(t, sourceArgs...)
	do(t, src.Client(), "DEBUG", "POPULATE", 20000)
	path := saveRDB(t, src, "dump.rdb")
	small := redistest.Start(t, "--maxmemory", "1200kb")
	shards = evenShards(t, []*redistest.Server{targets[0], small})
	_, err = Restore(ctx, testConfig([]string{path}, shards))
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), small.Addr()) || !strings.Contains(err.Error(), "maxmemory") {
		t.Fatalf("err = %v, want ErrNoRoom naming %s", err, small.Addr())
	}
	t.Logf("refused as expected: %v", err)
	requireEmpty(t, []*redistest.Server{targets[0], small})

	// A target fenced by a reshard's cutover refuses every write: said
	// before anything is written, not as NOREPLICAS half-way.
	fenced := targets[1]
	do(t, fenced.Client(), "CONFIG", "SET", "min-replicas-to-write", "2147483647")
	shards = evenShards(t, targets)
	_, err = Restore(ctx, testConfig([]string{path}, shards))
	if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), fenced.Addr()+" refuses writes") || !strings.Contains(err.Error(), "fence") {
		t.Fatalf("err = %v, want ErrTarget saying %s refuses writes, fenced", err, fenced.Addr())
	}
	t.Logf("refused as expected: %v", err)
	requireEmpty(t, targets)
}

// craftRDB writes a minimal RDB: one key of type typ with the given raw
// value bytes, in database 0, with a valid checksum.
func craftRDB(version int, typ byte, key string, value []byte) []byte {
	b := []byte(fmt.Sprintf("REDIS%04d", version))
	b = append(b, 0xFE, 0x00, typ, byte(len(key)))
	b = append(b, key...)
	b = append(b, value...)
	b = append(b, 0xFF)
	return binary.LittleEndian.AppendUint64(b, rdb.CRC64(b))
}

// TestRestoreJob: the background form the proxy's PROXY RESTORE uses.
func TestRestoreJob(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, sourceArgs...)
	do(t, src.Client(), "DEBUG", "POPULATE", 1000)
	path := saveRDB(t, src, "dump.rdb")
	targets := redistest.StartN(t, 2)
	shards := evenShards(t, targets)

	job := StartRestore(ctx, testConfig([]string{path}, shards))
	if _, err := job.Wait(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	st := job.Status()
	must(t, st.WriteInfo(&b))
	for _, want := range []string{"state:done\r\n", "keys_written:1000\r\n", "keys_total:1000\r\n", "error:\r\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}

	// Again without Replace: the targets are no longer empty.
	job = StartRestore(ctx, testConfig([]string{path}, shards))
	<-job.Done()
	st = job.Status()
	b.Reset()
	must(t, st.WriteInfo(&b))
	if st.State != JobFailed || !errors.Is(st.Err, ErrTargetNotEmpty) || !strings.Contains(b.String(), "state:failed\r\n") ||
		strings.Count(b.String(), "\r\n") != strings.Count(b.String(), "\n") {
		t.Errorf("status %v, %v:\n%s", st.State, st.Err, b.String())
	}
}
