package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/etcdtest"
	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
)

// Proxies started with --etcd share one routing table: the first, given
// --shards, puts its table in etcd; the next ones, without --shards, serve
// it; one given other --shards serves etcd's all the same. PROXY MEMBERS
// on any of them lists them all.
func TestEtcdSharedTable(t *testing.T) {
	rig := newEtcdRig(t, 3, 0)
	bin, flags, shards := rig.bin, rig.flags, rig.shards
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
// one of them, every other serves the new shards, and so do a proxy
// started with the old --shards and the one that ran the reshard,
// restarted with them after a SIGKILL.
func TestEtcdFollowsCommit(t *testing.T) {
	rig := newEtcdRig(t, 2, 3)
	bin, flags, shards, targets := rig.bin, rig.flags, rig.shards, rig.targets
	aDir := t.TempDir()
	a := proxytest.StartProcess(t, bin, aDir, addrsOf(shards), flags...)
	b := proxytest.StartProcess(t, bin, t.TempDir(), nil, flags...)
	ca, cb := etcdClient(t, a.Addr), etcdClient(t, b.Addr)
	for i := range 50 {
		if err := ca.Set(t.Context(), "before:"+string(rune('a'+i%26))+strings.Repeat("x", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// no FORCE: b is a member of the group, not a stranger on the shards
	if err := ca.Do(t.Context(), reshardArgs(targets)...).Err(); err != nil {
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
	a.Kill()
	for _, p := range []*proxytest.Process{
		proxytest.StartProcess(t, bin, aDir, addrsOf(shards), flags...),        // restarted
		proxytest.StartProcess(t, bin, t.TempDir(), addrsOf(shards), flags...), // new, stale --shards
	} {
		cl := etcdClient(t, p.Addr)
		if topo, err := cl.Do(t.Context(), "PROXY", "TOPOLOGY").Slice(); err != nil || len(topo) < 2 || topo[1] != int64(2) {
			t.Errorf("proxy started with the old --shards: topology %v, %v; want etcd's, epoch 2", topo, err)
		}
		for i := range 50 {
			key := "after:" + string(rune('a'+i%26)) + strings.Repeat("x", i)
			if got, err := cl.Get(t.Context(), key).Int(); err != nil || got != i {
				t.Fatalf("GET %s through a proxy started with the old --shards = %d, %v; want %d", key, got, err, i)
			}
		}
	}
}

// A proxy that cannot renew its etcd lease stops serving data before the
// lease can have expired: its clients get -CLUSTERDOWN naming etcd, PING
// still answers, its metrics say the lease is not held and /readyz
// answers 503, and it serves again once etcd is back.
func TestEtcdSelfFence(t *testing.T) {
	rig := newEtcdRig(t, 2, 0, "--etcd-lease-ttl", "2s")
	etcd := rig.etcd
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	maddr := "127.0.0.1:" + strconv.Itoa(port)
	a := proxytest.StartProcess(t, rig.bin, t.TempDir(), addrsOf(rig.shards), append(rig.flags, "--metrics-listen", maddr)...)
	cl := etcdClient(t, a.Addr)
	if err := cl.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if info, err := cl.Info(t.Context(), "proxy").Result(); err != nil || !strings.Contains(info, "etcd_lease:held") {
		t.Errorf("INFO proxy = %v; want etcd_lease:held:\n%s", err, info)
	}
	if v := mustMetric(t, scrape(t, maddr), "reshard_etcd_lease_held"); v != 1 {
		t.Errorf("reshard_etcd_lease_held = %v while it serves, want 1", v)
	}
	if err := etcd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
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
	if info, err := cl.Info(t.Context(), "proxy").Result(); err != nil || !strings.Contains(info, "etcd_lease:lost") {
		t.Errorf("INFO proxy while fenced = %v; want etcd_lease:lost:\n%s", err, info)
	}
	if v := mustMetric(t, scrape(t, maddr), "reshard_etcd_lease_held"); v != 0 {
		t.Errorf("reshard_etcd_lease_held = %v while fenced, want 0", v)
	}
	if code, body := probe(t, maddr, "/readyz"); code != 503 || !strings.Contains(body, "etcd") {
		t.Errorf("/readyz while fenced = %d %q, want 503 naming etcd", code, body)
	}
	if err := etcd.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitServing(t, cl)
}

// A proxy stopped past its lease serves nothing stale when it wakes: the
// cutover another member runs meanwhile waits for the stopped member's
// lease to end, not for its ack, and once awake the stopped proxy serves
// the table committed meanwhile, or refuses until it has read it.
func TestEtcdStoppedProxyServesNothingStale(t *testing.T) {
	rig := newEtcdRig(t, 2, 2, "--etcd-lease-ttl", "1s")
	bin, flags, shards, targets := rig.bin, rig.flags, rig.shards, rig.targets
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
	if err := cb.Do(t.Context(), reshardArgs(targets)...).Err(); err != nil {
		t.Fatal(err)
	}
	waitReshardDone(t, cb)
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

// etcdRig is etcd, source shards and reshard targets, the proxy binary, and
// the flags of a proxy of the test's group.
type etcdRig struct {
	etcd            *etcdtest.Server
	shards, targets []*redistest.Server
	bin             string
	flags           []string
}

// newEtcdRig starts etcd, sources shards (forking at once for a reshard's
// capture) and targets empty ones; extra flags go to every proxy.
func newEtcdRig(t *testing.T, sources, targets int, extra ...string) etcdRig {
	r := etcdRig{etcd: etcdtest.Start(t), bin: proxytest.Build(t)}
	r.shards = redistest.StartN(t, sources, "--repl-diskless-sync-delay", "0")
	if targets > 0 {
		r.targets = redistest.StartN(t, targets)
	}
	r.flags = append([]string{"--etcd", r.etcd.Endpoint(), "--etcd-prefix", "/reshard/" + t.Name()}, extra...)
	return r
}

// startProxies starts n proxies of the group, the first given the source
// shards, and returns them with a client of each that waits until it
// serves.
func (r etcdRig) startProxies(t *testing.T, n int) ([]*proxytest.Process, []*redis.Client) {
	t.Helper()
	procs := make([]*proxytest.Process, n)
	clients := make([]*redis.Client, n)
	for i := range procs {
		var shards []string
		if i == 0 {
			shards = addrsOf(r.shards)
		}
		procs[i] = proxytest.StartProcess(t, r.bin, t.TempDir(), shards, r.flags...)
		clients[i] = etcdClient(t, procs[i].Addr)
	}
	return procs, clients
}

// reshardArgs is PROXY RESHARD onto targets.
func reshardArgs(targets []*redistest.Server) []any {
	args := []any{"PROXY", "RESHARD"}
	for _, s := range targets {
		args = append(args, s.Addr())
	}
	return args
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

// Three proxies cut over together: PROXY RESHARD on one of them, without
// FORCE (the others are members, not strangers), while writers write
// through every proxy and read each write back through another. Every
// member pauses for the cut, so no client sees an error, no acknowledged
// write is lost, and every proxy ends on the new table.
func TestEtcdCoordinatedCutover(t *testing.T) {
	rig := newEtcdRig(t, 2, 3)
	targets := rig.targets
	procs, clients := rig.startProxies(t, 3)
	ctx, stop := context.WithCancel(t.Context())
	t.Cleanup(stop)
	type result struct {
		acked  map[string]int
		errors []error
	}
	results := make([]result, 6)
	done := make(chan int, len(results))
	for w := range results {
		go func() {
			defer func() { done <- w }()
			cl := redis.NewClient(&redis.Options{Addr: procs[w%3].Addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
			defer cl.Close()
			other := clients[(w+1)%3]
			r := result{acked: map[string]int{}}
			for i := 0; ctx.Err() == nil; i++ {
				key := "w" + string(rune('0'+w)) + ":" + string(rune('a'+i%26)) + strings.Repeat("y", i%7)
				if err := cl.Set(ctx, key, i, 0).Err(); err != nil {
					if ctx.Err() == nil {
						r.errors = append(r.errors, err)
					}
					continue
				}
				r.acked[key] = i
				if got, err := other.Get(ctx, key).Int(); ctx.Err() == nil && (err != nil || got != i) {
					r.errors = append(r.errors, fmt.Errorf("read back %s through another proxy = %d, %v; want %d", key, got, err, i))
				}
			}
			results[w] = r
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := clients[0].Do(t.Context(), reshardArgs(targets)...).Err(); err != nil {
		stop()
		t.Fatal(err)
	}
	waitReshardDone(t, clients[0])
	time.Sleep(300 * time.Millisecond) // writes after the cutover
	stop()
	for range results {
		<-done
	}
	for i, cl := range clients {
		topo, err := cl.Do(t.Context(), "PROXY", "TOPOLOGY").Slice()
		if err != nil || len(topo) < 2 || topo[1] != int64(2) {
			t.Errorf("proxy %d: topology %v, %v; want epoch 2", i, topo, err)
		}
	}
	// inside the barriers, etcd saw the job and the commit from the
	// coordinator and one ack from each participant: no polling
	for i, cl := range clients {
		info, err := cl.Info(t.Context(), "proxy").Result()
		if err != nil {
			t.Fatal(err)
		}
		want := "etcd_cutover_requests:1\r\n"
		if i == 0 {
			want = "etcd_cutover_requests:2\r\n"
		}
		if !strings.Contains(info, want) {
			t.Errorf("proxy %d: INFO proxy has no %q:\n%s", i, want, info)
		}
	}
	// any member shows the group's reshard
	var st string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, _ = clients[2].Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text(); strings.Contains(st, "state:done") {
			break
		}
	}
	if !strings.Contains(st, "state:done") || !strings.Contains(st, "coordinator:"+procs[0].Addr) {
		t.Errorf("PROXY RESHARD STATUS on another member = %q, want the coordinator's job, done", st)
	}
	total := 0
	for w, r := range results {
		for _, err := range r.errors {
			t.Errorf("writer %d (through proxy %d): %v", w, w%3, err)
		}
		for key, v := range r.acked {
			if got, err := clients[(w+2)%3].Get(t.Context(), key).Int(); err != nil || got != v {
				t.Errorf("writer %d: %s = %d, %v after the cutover; want %d", w, key, got, err, v)
			}
		}
		total += len(r.acked)
	}
	var onTargets int64
	for _, s := range targets {
		n, _ := s.Client().DBSize(t.Context()).Result()
		onTargets += n
	}
	if onTargets == 0 || total == 0 {
		t.Errorf("%d keys on the new shards, %d writes acknowledged; want both above 0", onTargets, total)
	}
}

// SIGKILL of a member during a reshard's copy: the participant's lease
// ends, the cutover does not wait for it, and the others cut over; SIGKILL
// of the coordinator: the job dies with it, and the others go on serving
// one table (the old one, unless the copy beat the kill). Either way every
// write is there through every live proxy.
func TestEtcdMemberKilledDuringReshard(t *testing.T) {
	for _, victim := range []string{"participant", "coordinator"} {
		t.Run(victim, func(t *testing.T) {
			rig := newEtcdRig(t, 2, 2, "--etcd-lease-ttl", "1s")
			procs, clients := rig.startProxies(t, 3)
			for i := range 200 {
				if err := clients[0].Set(t.Context(), "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := clients[0].Do(t.Context(), reshardArgs(rig.targets)...).Err(); err != nil {
				t.Fatal(err)
			}
			dead, live := 1, []int{0, 2} // the participant
			if victim == "coordinator" {
				dead, live = 0, []int{1, 2}
			}
			procs[dead].Kill()
			if victim == "participant" {
				waitReshardDone(t, clients[0])
			}
			// every live proxy serves, on one table, with every write
			var epochs []int64
			for _, i := range live {
				waitServing(t, clients[i])
				for k := range 200 {
					if got, err := clients[i].Get(t.Context(), "k"+strconv.Itoa(k)).Int(); err != nil || got != k {
						t.Fatalf("proxy %d: k%d = %d, %v; want %d", i, k, got, err, k)
					}
				}
				topo, err := clients[i].Do(t.Context(), "PROXY", "TOPOLOGY").Slice()
				if err != nil {
					t.Fatal(err)
				}
				epochs = append(epochs, topo[1].(int64))
			}
			// the participant's death leaves the cutover to the others; the
			// coordinator's ends the job before its commit, unless the copy
			// was quicker than the kill: either way, one table for all
			want := int64(2)
			if victim == "coordinator" {
				want = epochs[0]
			}
			for i, e := range epochs {
				if e != want {
					t.Errorf("proxy %d serves epoch %d, want %d (epochs of the live proxies: %v)", live[i], e, want, epochs)
				}
			}
		})
	}
}

// etcd stopped while a reshard copies: the proxies stop serving data
// within their lease (CLUSTERDOWN, never a stale answer), the cutover,
// which needs the group's members from etcd, aborts on the old table
// rather than cutting half the group over (or completed, if the copy beat
// the stop), and once etcd is back every proxy serves again, on one table,
// with every acknowledged write.
func TestEtcdStoppedDuringReshard(t *testing.T) {
	rig := newEtcdRig(t, 2, 2, "--etcd-lease-ttl", "2s")
	a := proxytest.StartProcess(t, rig.bin, t.TempDir(), addrsOf(rig.shards), rig.flags...)
	b := proxytest.StartProcess(t, rig.bin, t.TempDir(), nil, rig.flags...)
	ca, cb := etcdClient(t, a.Addr), etcdClient(t, b.Addr)
	for i := range 500 {
		if err := ca.Set(t.Context(), "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ca.Do(t.Context(), reshardArgs(rig.targets)...).Err(); err != nil {
		t.Fatal(err)
	}
	rig.etcd.Stop()
	var st string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ = ca.Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
		if strings.Contains(st, "state:done") || strings.Contains(st, "state:aborted") || strings.Contains(st, "state:failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reshard still running with etcd stopped: %s", st)
		}
	}
	// aborted, unless the copy beat the stop: never half done
	t.Logf("reshard with etcd stopped: %s", strings.SplitN(st, "\r\n", 3)[:2])
	for _, cl := range []*redis.Client{ca, cb} {
		if err := cl.Get(t.Context(), "k1").Err(); err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN") {
			t.Errorf("GET through %s with etcd stopped = %v, want CLUSTERDOWN", cl.Options().Addr, err)
		}
	}
	rig.etcd.Restart()
	var epochs []any
	for _, cl := range []*redis.Client{ca, cb} {
		waitServing(t, cl)
		for i := range 500 {
			if got, err := cl.Get(t.Context(), "k"+strconv.Itoa(i)).Int(); err != nil || got != i {
				t.Fatalf("%s: k%d = %d, %v; want %d", cl.Options().Addr, i, got, err, i)
			}
		}
		topo, err := cl.Do(t.Context(), "PROXY", "TOPOLOGY").Slice()
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, topo[1])
	}
	if epochs[0] != epochs[1] {
		t.Errorf("the proxies serve epochs %v, want one table", epochs)
	}
}

// A proxy that joins the group while a reshard copies takes part in its
// cutover: its clients see no error, and it ends on the new table.
func TestEtcdJoinDuringCopy(t *testing.T) {
	rig := newEtcdRig(t, 2, 3)
	a := proxytest.StartProcess(t, rig.bin, t.TempDir(), addrsOf(rig.shards), rig.flags...)
	ca := etcdClient(t, a.Addr)
	if err := preloadKeys(t, ca, 20000); err != nil {
		t.Fatal(err)
	}
	if err := ca.Do(t.Context(), reshardArgs(rig.targets)...).Err(); err != nil {
		t.Fatal(err)
	}
	c := proxytest.StartProcess(t, rig.bin, t.TempDir(), nil, rig.flags...)
	cc := etcdClient(t, c.Addr)
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-errs:
				return
			default:
			}
			st, _ := ca.Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
			if err := cc.Set(t.Context(), "join:"+strconv.Itoa(i), i, 0).Err(); err != nil {
				errs <- fmt.Errorf("SET through the proxy that joined: %w", err)
				return
			}
			if strings.Contains(st, "state:done") || strings.Contains(st, "state:aborted") || strings.Contains(st, "state:failed") {
				return
			}
		}
	}()
	waitReshardDone(t, ca)
	<-done
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	topo, err := cc.Do(t.Context(), "PROXY", "TOPOLOGY").Slice()
	if err != nil || topo[1] != int64(2) {
		t.Fatalf("the proxy that joined: topology %v, %v; want epoch 2", topo, err)
	}
}

// preloadKeys writes pre:0..n-1 through cl, pipelined.
func preloadKeys(t *testing.T, cl *redis.Client, n int) error {
	t.Helper()
	for lo := 0; lo < n; lo += 1000 {
		pipe := cl.Pipeline()
		for i := lo; i < min(lo+1000, n); i++ {
			pipe.Set(t.Context(), "pre:"+strconv.Itoa(i), strings.Repeat("v", 64), 0)
		}
		if _, err := pipe.Exec(t.Context()); err != nil {
			return err
		}
	}
	return nil
}
