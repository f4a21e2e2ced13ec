package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"
)

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"proxy", "--help"}, {"restore", "--help"}, {"bench", "--help"}, {"help"}} {
		var out bytes.Buffer
		if code := exitCode(dispatch(context.Background(), args, &out, &out), &out); code != 0 {
			t.Errorf("reshard %s: exit %d, want 0\n%s", strings.Join(args, " "), code, out.String())
		}
	}
	var out bytes.Buffer
	if code := exitCode(dispatch(context.Background(), []string{"proxy", "--no-such-flag"}, &out, &out), &out); code == 0 {
		t.Error("an unknown flag exits 0")
	}
}

// noStart checks that a start that failed left no table and started no
// embedded shard.
func noStart(t *testing.T, dir string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("the proxy started")
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, err := router.Load(dir); !errors.Is(err, router.ErrNoTable) {
		t.Errorf("a failed start persisted a table (Load: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, embeddedMarker)); err == nil {
		t.Error("a failed start started embedded shards")
	}
}

// A busy --listen port fails the start before any shard starts, with a hint.
func TestBusyListenPort(t *testing.T) {
	redistest.Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, embedded: 3}
	f.cfg.Listen = ln.Addr().String()
	noStart(t, dir, serveProxy(context.Background(), f, zap.NewNop()), "make run LISTEN=")
}

// A mistyped shard address is refused and does not become the table the
// next start is bound to.
func TestUnreachableShardPersistsNothing(t *testing.T) {
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, shards: "127.0.0.1:" + strconv.Itoa(port)}
	f.cfg.Listen = "127.0.0.1:0"
	noStart(t, dir, serveProxy(context.Background(), f, zap.NewNop()), "does not answer")
	f.shards = "127.0.0.1:1=0-100"
	noStart(t, dir, serveProxy(context.Background(), f, zap.NewNop()), "--shards")
}

// One state directory, one proxy.
func TestStateDirLocked(t *testing.T) {
	shard := redistest.Start(t)
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, shards: shard.Addr()}
	_, _, stop := startProxy(t, f)
	f.cfg.Listen = "127.0.0.1:0"
	err := serveProxy(context.Background(), f, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "in use by another reshard proxy (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("a second proxy on the same state directory: %v", err)
	}
	stop()
	_, _, stop = startProxy(t, f) // the lock goes with the proxy
	stop()
}

// shardPIDs reads the pids the embedded shards wrote.
func shardPIDs(t *testing.T, dir string) []int {
	t.Helper()
	return pidFiles(filepath.Join(dir, embeddedMarker, "shard-*", pidFile))
}

// pidFiles reads the pids in the files that match pattern.
func pidFiles(pattern string) []int {
	files, _ := filepath.Glob(pattern)
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func alive(pid int) bool {
	_, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil
}

// After a SIGKILL of the proxy its embedded shards run on without it; the
// next start stops and restarts them instead of failing on their ports,
// with their data. SIGHUP stops the proxy and its shards as SIGINT does.
func TestEmbeddedOrphansAndSIGHUP(t *testing.T) {
	redistest.Require(t)
	bin := proxytest.Build(t)
	dir := t.TempDir()
	ctx := context.Background()
	p := proxytest.StartProcess(t, bin, dir, nil)
	cl := redis.NewClient(&redis.Options{Addr: p.Addr, Protocol: 2})
	if err := cl.MSet(ctx, "a", 1, "b", 2, "c", 3).Err(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	first := shardPIDs(t, dir)
	if len(first) != 3 {
		t.Fatalf("%d embedded shard pids recorded, want 3", len(first))
	}
	t.Cleanup(func() { // whatever happens below, no shard outlives the test
		for _, pid := range append(first, shardPIDs(t, dir)...) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	p.Kill()
	for _, pid := range first {
		if !alive(pid) {
			t.Fatalf("shard pid %d died with the proxy; this test needs orphans", pid)
		}
	}

	p = proxytest.StartProcess(t, bin, dir, nil)
	for _, pid := range first {
		if alive(pid) {
			t.Errorf("the orphaned shard pid %d still runs after the restart", pid)
		}
	}
	cl = redis.NewClient(&redis.Options{Addr: p.Addr, Protocol: 2})
	got, err := cl.MGet(ctx, "a", "b", "c").Result()
	cl.Close()
	if err != nil || len(got) != 3 || got[0] != "1" || got[2] != "3" {
		t.Errorf("MGET after the restart = %v, %v; want 1 2 3", got, err)
	}

	second := shardPIDs(t, dir)
	p.Signal(syscall.SIGHUP)
	if err := p.Wait(); err != nil {
		t.Errorf("proxy after SIGHUP: %v", err)
	}
	for _, pid := range second {
		if alive(pid) {
			t.Errorf("shard pid %d still runs after SIGHUP stopped the proxy", pid)
		}
	}
}
