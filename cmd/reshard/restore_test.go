package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// rdbWith saves a redis-server holding n keys and returns a copy of its RDB.
func rdbWith(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	src := redistest.Start(t)
	for i := range n {
		if err := src.Client().Set(ctx, fmt.Sprint("k:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return savedRDB(t, src)
}

// savedRDB has src SAVE and returns a copy of its dump.rdb.
func savedRDB(t *testing.T, src *redistest.Server) string {
	t.Helper()
	if err := src.Client().Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(src.Dir(), "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "src.rdb")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func sizes(t *testing.T, ss []*redistest.Server) []int64 {
	t.Helper()
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.Client().DBSize(context.Background()).Val()
	}
	return out
}

// restoreCLI runs `reshard restore args...` and returns its stdout and error.
func restoreCLI(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := runRestore(context.Background(), append(args, "--log-level", "error"), &out, &errOut)
	return out.String(), err
}

// TestRestoreRefusesProxyShards: `reshard restore` into the shards of a
// running proxy is refused before anything is written, with --flush,
// --replace and --dry-run alike, naming the shard and the proxy; no plan
// is printed. Before, --flush emptied the live shards and wrote the keys
// under the restore's layout.
func TestRestoreRefusesProxyShards(t *testing.T) {
	file := rdbWith(t, 20)
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	ctx := context.Background()
	for i := range 100 {
		if err := c.Client().Set(ctx, fmt.Sprint("live:", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := sizes(t, c.Shards)
	to := c.Shards[0].Addr() + "," + c.Shards[1].Addr()
	for _, opts := range [][]string{{"--flush"}, {"--replace"}, {"--dry-run"}, {"--dry-run", "--flush"}} {
		out, err := restoreCLI(append([]string{"--from", file, "--to", to}, opts...)...)
		if err == nil || !strings.Contains(err.Error(), "is a live shard of reshard proxy run_id") || !strings.Contains(err.Error(), c.Shards[0].Addr()) {
			t.Errorf("restore %v into a proxy's shards = %v, want refused naming the shard and the proxy", opts, err)
		}
		if out != "" {
			t.Errorf("restore %v printed after a refusal:\n%s", opts, out)
		}
		if got := sizes(t, c.Shards); !slices.Equal(got, before) {
			t.Fatalf("restore %v: DBSIZE of the shards %v, want %v as before", opts, got, before)
		}
	}
}

// TestRestoreMessages: what `reshard restore` prints: flags, not Go field
// names; no report after a refusal; a failure once (as the error main
// prints, not also as the report's last line); "1 key"; "not an RDB
// file" for a short file that is none.
func TestRestoreMessages(t *testing.T) {
	one := rdbWith(t, 1)
	target := redistest.Start(t)
	notRDB := filepath.Join(t.TempDir(), "eight.rdb")
	if err := os.WriteFile(notRDB, []byte("abcdefgh"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"replace and flush", []string{"--from", one, "--to", target.Addr(), "--replace", "--flush"}, "--replace and --flush exclude each other"},
		{"db", []string{"--from", one, "--to", target.Addr(), "--db", "-2"}, "--db -2: want -1"},
		{"conns", []string{"--from", one, "--to", target.Addr(), "--conns", "0"}, "--conns 0: want 1 to 64"},
		{"not an rdb", []string{"--from", notRDB, "--to", target.Addr(), "--dry-run"}, "not an RDB file"},
	} {
		out, err := restoreCLI(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), " = ") {
			t.Errorf("%s: error %v, want %q without a Go field", tc.name, err, tc.want)
		}
		if out != "" {
			t.Errorf("%s: printed after a refusal:\n%s", tc.name, out)
		}
	}

	out, err := restoreCLI("--from", one, "--to", target.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 source, 1 target") || !strings.Contains(out, "1 key\n") || strings.Contains(out, "1 keys") {
		t.Errorf("report of one key:\n%s\nwant 1 source, 1 target, 1 key", out)
	}

	// a failure mid-way: the target lets the checks read, not the keys write
	ctx := context.Background()
	failing := redistest.Start(t)
	if err := failing.Client().Do(ctx, "ACL", "SETUSER", "default", "-set", "-restore", "-mset").Err(); err != nil {
		t.Fatal(err)
	}
	out, err = restoreCLI("--from", one, "--to", failing.Addr())
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("restore into a target that refuses writes = %v, want NOPERM", err)
	}
	if strings.Contains(out, "NOPERM") || strings.Contains(out, "FAILED") {
		t.Errorf("the report repeats the error main prints:\n%s", out)
	}
}
