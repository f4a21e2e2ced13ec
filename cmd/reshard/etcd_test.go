package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/etcdtest"
	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// Proxies started with --etcd share one routing table: the first, given
// --shards, puts its table in etcd; the next ones, without --shards, serve
// it; one given other --shards serves etcd's all the same. PROXY MEMBERS
// on any of them lists them all.
func TestEtcdSharedTable(t *testing.T) {
	etcd := etcdtest.Start(t)
	shards := redistest.StartN(t, 3)
	bin := proxytest.Build(t)
	flags := []string{"--etcd", etcd.Endpoint(), "--etcd-prefix", "/reshard/" + t.Name()}
	a := proxytest.StartProcess(t, bin, t.TempDir(), addrsOf(shards), flags...)
	b := proxytest.StartProcess(t, bin, t.TempDir(), nil, flags...)
	other := redistest.Start(t) // a --shards that etcd's table wins over
	c := proxytest.StartProcess(t, bin, t.TempDir(), []string{other.Addr()}, flags...)

	ca, cb, cc := etcdClient(t, a.Addr), etcdClient(t, b.Addr), etcdClient(t, c.Addr)
	for i := range 100 {
		key := "k" + string(rune('a'+i%26)) + strings.Repeat("x", i)
		if err := ca.Set(t.Context(), key, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		for _, cl := range []*redis.Client{cb, cc} {
			if got, err := cl.Get(t.Context(), key).Int(); err != nil || got != i {
				t.Fatalf("GET %s through another proxy = %d, %v; want %d", key, got, err, i)
			}
		}
	}
	if n, _ := other.Client().DBSize(t.Context()).Result(); n != 0 {
		t.Errorf("the shard of the losing --shards holds %d keys, want 0", n)
	}
	members, err := cc.Do(t.Context(), "PROXY", "MEMBERS").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("PROXY MEMBERS = %q, want 3 members", members)
	}
	for _, p := range []*proxytest.Process{a, b, c} {
		if !strings.Contains(strings.Join(members, "\n"), "addr="+p.Addr+" ") {
			t.Errorf("PROXY MEMBERS = %q, want %s among them", members, p.Addr)
		}
	}
}

// A proxy follows a table another proxy commits: after a reshard through
// one of them, every other serves the new shards.
func TestEtcdFollowsCommit(t *testing.T) {
	etcd := etcdtest.Start(t)
	shards := redistest.StartN(t, 2, "--repl-diskless-sync-delay", "0")
	targets := redistest.StartN(t, 3)
	bin := proxytest.Build(t)
	flags := []string{"--etcd", etcd.Endpoint(), "--etcd-prefix", "/reshard/" + t.Name()}
	a := proxytest.StartProcess(t, bin, t.TempDir(), addrsOf(shards), flags...)
	b := proxytest.StartProcess(t, bin, t.TempDir(), nil, flags...)
	ca, cb := etcdClient(t, a.Addr), etcdClient(t, b.Addr)
	for i := range 50 {
		if err := ca.Set(t.Context(), "before:"+string(rune('a'+i%26))+strings.Repeat("x", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// FORCE: b is another proxy on the shards; a cutover that waits for
	// every member is not built yet, so b follows the commit through etcd
	args := []any{"PROXY", "RESHARD"}
	for _, s := range targets {
		args = append(args, s.Addr())
	}
	if err := ca.Do(t.Context(), append(args, "FORCE")...).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		topo, err := cb.Do(t.Context(), "PROXY", "TOPOLOGY").Slice()
		if err == nil && len(topo) > 1 && topo[1] == int64(2) {
			break
		}
		if time.Now().After(deadline) {
			st, _ := ca.Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
			t.Fatalf("the other proxy's topology = %v, %v; want epoch 2 (reshard: %s)", topo, err, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 50 {
		key := "after:" + string(rune('a'+i%26)) + strings.Repeat("x", i)
		if err := cb.Set(t.Context(), key, i, 0).Err(); err != nil {
			t.Fatalf("SET through the follower after the cutover: %v", err)
		}
		if got, err := ca.Get(t.Context(), key).Int(); err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
		}
	}
	var onTargets int64
	for _, s := range targets {
		n, _ := s.Client().DBSize(t.Context()).Result()
		onTargets += n
	}
	if onTargets != 100 {
		t.Errorf("the new shards hold %d keys, want 100", onTargets)
	}
}

// A proxy that cannot renew its etcd lease stops serving data before the
// lease can have expired: its clients get -CLUSTERDOWN naming etcd, PING
// still answers, and it serves again once etcd is back.
func TestEtcdSelfFence(t *testing.T) {
	etcd := etcdtest.Start(t)
	shards := redistest.StartN(t, 2)
	bin := proxytest.Build(t)
	a := proxytest.StartProcess(t, bin, t.TempDir(), addrsOf(shards),
		"--etcd", etcd.Endpoint(), "--etcd-prefix", "/reshard/"+t.Name(), "--etcd-lease-ttl", "2s")
	cl := etcdClient(t, a.Addr)
	if err := cl.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := etcd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var err error
	for time.Since(stopped) < 5*time.Second {
		if err = cl.Get(t.Context(), "k").Err(); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN") || !strings.Contains(err.Error(), "etcd") {
		t.Fatalf("GET with etcd stopped = %v, want CLUSTERDOWN naming etcd", err)
	}
	if took := time.Since(stopped); took > 2*time.Second {
		t.Errorf("served data for %s after etcd stopped, longer than the 2s lease", took)
	}
	if err := cl.Ping(t.Context()).Err(); err != nil {
		t.Errorf("PING while fenced: %v", err)
	}
	if err := etcd.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitServing(t, cl)
}

// A proxy stopped past its lease serves nothing stale when it wakes: a
// table committed meanwhile by another proxy is what it serves, or it
// refuses until it has read it.
func TestEtcdStoppedProxyServesNothingStale(t *testing.T) {
	etcd := etcdtest.Start(t)
	shards := redistest.StartN(t, 2, "--repl-diskless-sync-delay", "0")
	targets := redistest.StartN(t, 2)
	bin := proxytest.Build(t)
	flags := []string{"--etcd", etcd.Endpoint(), "--etcd-prefix", "/reshard/" + t.Name(), "--etcd-lease-ttl", "1s"}
	a := proxytest.StartProcess(t, bin, t.TempDir(), addrsOf(shards), flags...)
	b := proxytest.StartProcess(t, bin, t.TempDir(), nil, flags...)
	ca, cb := etcdClient(t, a.Addr), etcdClient(t, b.Addr)
	if err := ca.Set(t.Context(), "k", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ca.Ping(t.Context()) // the connection is open before the stop
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer a.Signal(syscall.SIGCONT)
	if err := cb.Do(t.Context(), "PROXY", "RESHARD", targets[0].Addr(), targets[1].Addr(), "FORCE").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := cb.Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
		if strings.Contains(st, "state:done") {
			break
		}
		if time.Now().After(deadline) || strings.Contains(st, "state:failed") || strings.Contains(st, "state:aborted") {
			t.Fatalf("reshard: %s", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cb.Set(t.Context(), "k", "new", 0).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the stopped proxy's lease
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	got, err := ca.Get(t.Context(), "k").Result()
	switch {
	case err != nil && strings.HasPrefix(err.Error(), "CLUSTERDOWN"):
	case err == nil && got == "new":
	default:
		t.Fatalf("first GET after waking = %q, %v; want \"new\" or CLUSTERDOWN, never the old table's \"old\"", got, err)
	}
	waitServing(t, ca)
	if got, err := ca.Get(t.Context(), "k").Result(); err != nil || got != "new" {
		t.Fatalf("GET once serving again = %q, %v; want \"new\"", got, err)
	}
}

func addrsOf(servers []*redistest.Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr()
	}
	return out
}

// etcdClient is a client of a proxy that waits until the proxy serves
// data (it holds its etcd lease).
func etcdClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
	t.Cleanup(func() { cl.Close() })
	waitServing(t, cl)
	return cl
}

// waitServing waits until a data command through cl succeeds.
func waitServing(t *testing.T, cl *redis.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = cl.Exists(ctx, "any").Err(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("proxy at %s does not serve data: %v", cl.Options().Addr, err)
}
