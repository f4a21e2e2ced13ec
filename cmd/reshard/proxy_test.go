package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"
)

// startProxy runs serveProxy as `reshard proxy` would and returns its
// address and a stop function that waits for it to exit.
func startProxy(t *testing.T, f proxyFlags) (addr string, logs *observer.ObservedLogs, stop func()) {
	t.Helper()
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Listen = "127.0.0.1:" + strconv.Itoa(port)
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveProxy(ctx, f, zap.New(core)) }()
	cl := redis.NewClient(&redis.Options{Addr: f.cfg.Listen, Protocol: 2})
	defer cl.Close()
	for i := 0; ; i++ {
		if cl.Ping(context.Background()).Err() == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("proxy exited: %v", err)
		default:
		}
		if i > 300 {
			t.Fatal("proxy did not answer PING")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f.cfg.Listen, logs, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	}
}

func TestEmbeddedDefault(t *testing.T) {
	redistest.Require(t)
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, embedded: 3}
	addr, _, stop := startProxy(t, f)
	ctx := context.Background()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl.Close()
	for i := 0; i < 100; i++ {
		if err := cl.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	table, err := router.Load(dir)
	if err != nil {
		t.Fatalf("no persisted table after the first start: %v", err)
	}
	if table.NumShards() != 3 {
		t.Fatalf("persisted table has %d shards, want 3", table.NumShards())
	}
	stop()
	for _, a := range table.Addrs() { // the children are gone
		if c, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("embedded shard %s still answers after the proxy stopped", a)
		}
	}

	// A restart comes back on the same shards, ports and data.
	addr, _, stop = startProxy(t, f)
	defer stop()
	cl2 := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl2.Close()
	if n := cl2.DBSize(ctx).Val(); n != 100 {
		t.Errorf("DBSIZE after restart = %d, want 100", n)
	}
	again, _ := router.Load(dir)
	if strings.Join(again.Addrs(), ",") != strings.Join(table.Addrs(), ",") {
		t.Errorf("shards after restart %v, want %v", again.Addrs(), table.Addrs())
	}
}

func TestPersistedTableWins(t *testing.T) {
	shards := redistest.StartN(t, 2)
	other := redistest.Start(t)
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, shards: shards[0].Addr() + "," + shards[1].Addr()}
	_, _, stop := startProxy(t, f)
	stop()

	f.shards = other.Addr() // a different --shards on restart
	addr, logs, stop := startProxy(t, f)
	defer stop()
	if logs.FilterMessageSnippet("persisted routing table wins over --shards").Len() != 1 {
		t.Error("no log line saying the persisted table wins")
	}
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl.Close()
	topo := cl.Do(context.Background(), "PROXY", "TOPOLOGY").String()
	if !strings.Contains(topo, shards[0].Addr()) || strings.Contains(topo, other.Addr()) {
		t.Errorf("topology after restart = %s, want the persisted shards", topo)
	}
}

func TestProcs(t *testing.T) {
	for _, c := range []struct {
		flag      int
		env       string
		avail     int
		want      int
		situation string
	}{
		{0, "", 2, 1, "2 CPUs: one thread"},
		{0, "", 1, 1, "1 CPU: at least one"},
		{0, "", 16, 8, "16 CPUs: half"},
		{0, "4", 4, 0, "GOMAXPROCS set: the runtime already applied it"},
		{3, "4", 2, 3, "the flag wins"},
	} {
		if got := procs(c.flag, c.env, c.avail); got != c.want {
			t.Errorf("%s: procs(%d, %q, %d) = %d, want %d", c.situation, c.flag, c.env, c.avail, got, c.want)
		}
	}
}

// The shard password comes from --shard-password or, out of the process
// list, from RESHARD_SHARD_PASSWORD; the flag wins. The embedded shards
// have none, so a password there is refused before anything starts.
func TestShardPasswordFlags(t *testing.T) {
	const pw = "flag-test-secret"
	shards := redistest.StartN(t, 2, "--requirepass", pw)
	spec := shards[0].Addr() + "," + shards[1].Addr()
	run := func(t *testing.T, args ...string) (addr string, stop func() error) {
		port, err := redisproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
		args = append(args, "--listen", addr, "--state-dir", t.TempDir(), "--log-level", "error",
			"--procs", strconv.Itoa(runtime.GOMAXPROCS(0)))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runProxy(ctx, args, io.Discard) }()
		return addr, func() error { cancel(); return <-done }
	}
	get := func(t *testing.T, addr string) error {
		cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, MaxRetries: -1})
		defer cl.Close()
		var err error
		for i := 0; i < 200; i++ {
			if err = cl.Set(context.Background(), "k", "v", 0).Err(); err == nil || !isDialError(err) {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return err
	}
	t.Run("env", func(t *testing.T) {
		t.Setenv(envShardPassword, pw)
		addr, stop := run(t, "--shards", spec)
		if err := get(t, addr); err != nil {
			t.Errorf("SET with the password from %s: %v", envShardPassword, err)
		}
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	t.Run("flag wins", func(t *testing.T) {
		t.Setenv(envShardPassword, "not-"+pw)
		addr, stop := run(t, "--shards", spec, "--shard-password", pw)
		if err := get(t, addr); err != nil {
			t.Errorf("SET with --shard-password: %v", err)
		}
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	t.Run("embedded", func(t *testing.T) {
		_, stop := run(t, "--shard-password", pw)
		if err := stop(); err == nil || !strings.Contains(err.Error(), "embedded shards have no password") {
			t.Errorf("embedded shards with --shard-password: %v", err)
		}
	})
}

// isDialError reports whether err is the client failing to connect, as it
// does until the proxy listens.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// After a reshard onto shards with a password of their own, a restart with
// the same flags (the old shards' password) serves the new shards with the
// credentials persisted at the cutover: the file is readable by its owner
// only, the log says whose credentials are used, a file for another epoch
// is ignored with a warning, and neither password is in a log line or in
// INFO.
func TestShardPasswordPersisted(t *testing.T) {
	const oldPW, newPW = "old-shards-pw-81d0", "new-shards-pw-f3a9"
	old := redistest.StartN(t, 2, "--requirepass", oldPW, "--repl-diskless-sync-delay", "0")
	targets := redistest.StartN(t, 2, "--requirepass", newPW, "--repl-diskless-sync-delay", "0")
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, shards: old[0].Addr() + "," + old[1].Addr()}
	f.cfg.ShardPassword = oldPW
	ctx := context.Background()

	addr, logs, stop := startProxy(t, f)
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	for i := 0; i < 200; i++ {
		if err := cl.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr(), "AUTH", newPW).Err(); err != nil {
		t.Fatal(err)
	}
	waitReshardDone(t, cl)
	cl.Close()
	stop()
	all := logs.All()

	auth := filepath.Join(dir, "shard-auth-2.json")
	fi, err := os.Stat(auth)
	if err != nil {
		t.Fatalf("no credentials file after the cutover: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", got)
	}
	stale := filepath.Join(dir, "shard-auth-1.json")
	if err := os.WriteFile(stale, []byte(`{"epoch":1,"shards":"","password":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	addr, logs, stop = startProxy(t, f) // the old flags
	defer stop()
	if logs.FilterMessage("shard credentials persisted at the cutover are used for the routing table's shards, not --shard-user/--shard-password").Len() != 1 {
		t.Error("no log line says the persisted credentials are used")
	}
	if logs.FilterMessage("shard credentials file ignored: it is not for the persisted routing table").Len() != 1 {
		t.Error("no warning about the credentials file of another epoch")
	}
	cl = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl.Close()
	for _, i := range []int{0, 77, 199} {
		if v, err := cl.Get(ctx, "k"+strconv.Itoa(i)).Int(); err != nil || v != i {
			t.Errorf("GET k%d after the restart = %d, %v", i, v, err)
		}
	}
	if err := cl.Set(ctx, "after", 1, 0).Err(); err != nil {
		t.Errorf("SET after the restart: %v", err)
	}
	info := cl.Info(ctx, "everything").Val()
	for _, e := range append(all, logs.All()...) {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, oldPW) || strings.Contains(line, newPW) {
			t.Errorf("a password is in a log entry: %s", line)
		}
	}
	if strings.Contains(info, oldPW) || strings.Contains(info, newPW) {
		t.Error("a password is in INFO")
	}
}

// waitReshardDone waits for the proxy's reshard to reach state done.
func waitReshardDone(t *testing.T, cl *redis.Client) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, _ := cl.Do(context.Background(), "PROXY", "RESHARD", "STATUS").Text()
		if strings.Contains(st, "state:done\r\n") {
			return
		}
		if strings.Contains(st, "state:failed") || strings.Contains(st, "state:aborted") || time.Now().After(deadline) {
			t.Fatalf("reshard never completed:\n%s", st)
		}
	}
}

// A proxy started on its embedded shards that reshards onto shards of its
// own comes back, after a restart, on those shards: it starts no
// redis-server on their ports and serves none of the embedded shards' old
// data. The embedded shards come back too, unrouted, so that a reshard back
// onto them is still a rollback.
func TestEmbeddedReshardedAway(t *testing.T) {
	redistest.Require(t)
	targets := redistest.StartN(t, 2, "--repl-diskless-sync-delay", "0")
	dir := t.TempDir()
	f := proxyFlags{cfg: proxy.DefaultConfig(), stateDir: dir, embedded: 3}
	ctx := context.Background()

	addr, _, stop := startProxy(t, f)
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	for i := 0; i < 200; i++ {
		if err := cl.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	embedded, err := router.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr()).Err(); err != nil {
		t.Fatal(err)
	}
	waitReshardDone(t, cl)
	if err := cl.Set(ctx, "k7", "after the cutover", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	stop()

	addr, logs, stop := startProxy(t, f)
	defer stop()
	started := logs.FilterMessage("embedded shard started").All()
	if len(started) != 3 {
		t.Fatalf("%d embedded shards restarted, want the 3 of the first start", len(started))
	}
	for _, e := range started {
		if e.ContextMap()["routed"] != false || !slices.Contains(embedded.Addrs(), e.ContextMap()["shard"].(string)) {
			t.Errorf("embedded shard restarted as %v, want one of %v, unrouted", e.ContextMap(), embedded.Addrs())
		}
	}
	cl = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl.Close()
	if v, err := cl.Get(ctx, "k7").Result(); err != nil || v != "after the cutover" {
		t.Errorf("GET k7 after the restart = %q, %v; want the value written after the cutover", v, err)
	}
	if n := cl.DBSize(ctx).Val(); n != 200 {
		t.Errorf("DBSIZE after the restart = %d, want 200", n)
	}
	var direct int64
	for _, s := range targets {
		direct += s.Client().DBSize(ctx).Val()
	}
	if direct != 200 {
		t.Errorf("the targets hold %d keys, want 200", direct)
	}

	// The rollback: back onto the embedded shards, with what was written since.
	if err := cl.Do(ctx, "PROXY", "RESHARD", embedded.Addrs()[0], embedded.Addrs()[1], embedded.Addrs()[2], "FLUSH").Err(); err != nil {
		t.Fatal(err)
	}
	waitReshardDone(t, cl)
	if v, err := cl.Get(ctx, "k7").Result(); err != nil || v != "after the cutover" {
		t.Errorf("GET k7 after the rollback = %q, %v", v, err)
	}
	if n := cl.DBSize(ctx).Val(); n != 200 {
		t.Errorf("DBSIZE after the rollback = %d, want 200", n)
	}
}
