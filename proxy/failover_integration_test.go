package proxy_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/internal/sentineltest"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"
)

// sentinelRig is a proxy in front of two shards: sentinel:s0, a primary
// with one replica watched by three sentinels, and a plain one.
type sentinelRig struct {
	primary, replica, plain *redistest.Server
	sentinels               []*sentineltest.Sentinel
	table                   *router.Table
	proxy                   *proxy.Server
	addr                    string
}

func startSentinelRig(t *testing.T) *sentinelRig {
	t.Helper()
	g := &sentinelRig{primary: redistest.Start(t)}
	g.replica = redistest.StartReplica(t, g.primary)
	g.plain = redistest.Start(t)
	g.sentinels = sentineltest.Start(t, "s0", g.primary, 3)
	var err error
	spec, err := router.ParseShardArgs([]string{"sentinel:s0", g.plain.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if g.table, err = router.NewTable(1, spec); err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	cfg.Sentinels = sentineltest.Addrs(g.sentinels)
	if g.proxy, err = proxy.New(cfg, g.table, nil); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	ctl := control.New(control.Config{StateDir: state, SnapshotDir: filepath.Join(state, "snapshots")}, g.proxy, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	go g.proxy.Serve(ln)
	t.Cleanup(func() { ctl.Close(); g.proxy.Close() })
	return g
}

// client is a client of the proxy with one connection, which neither
// retries nor times out within a failover's hold.
func (g *sentinelRig) client(t *testing.T) *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: g.addr, Protocol: 2, DisableIdentity: true, PoolSize: 1,
		MaxRetries: -1, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// keyOn returns a key of shard i with the given suffix.
func (g *sentinelRig) keyOn(i int, suffix string) string {
	for n := 0; ; n++ {
		k := fmt.Sprintf("{%d}%s", n, suffix)
		if g.table.ShardOf([]byte(k)) == i {
			return k
		}
	}
}

// op is one write of the load: when it ended and how.
type op struct {
	key   string
	shard int
	end   time.Time
	err   error
}

// writeLoad runs writers, each SETting keys of both shards in turn on its
// one connection, until stop; it returns every write's outcome.
func (g *sentinelRig) writeLoad(t *testing.T, writers int, stop <-chan struct{}) func() []op {
	var mu sync.Mutex
	var ops []op
	var wg sync.WaitGroup
	for w := range writers {
		cl := g.client(t)
		tags := [2]string{g.keyOn(0, ""), g.keyOn(1, "")}
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				sh := n % 2
				k := fmt.Sprintf("%sw%d-%d", tags[sh], w, n)
				err := cl.Set(context.Background(), k, k, 0).Err()
				mu.Lock()
				ops = append(ops, op{key: k, shard: sh, end: time.Now(), err: err})
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	return func() []op {
		wg.Wait()
		return ops
	}
}

func connectionsReceived(t *testing.T, cl *redis.Client) int {
	info, err := cl.Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_connections_received:(\d+)`).FindStringSubmatch(info)
	n, _ := strconv.Atoi(m[1])
	return n
}

// failoverRun is what failoverUnderLoad saw.
type failoverRun struct {
	ops          []op
	start, named time.Time     // the cause; the first sentinel naming the replica
	reconnects   int           // connections the proxy received meanwhile
	admin        *redis.Client // a client of the proxy outside the load
}

// failoverUnderLoad runs four writers, calls cause once they run, waits
// until every sentinel names the replica and then for after, and stops
// the writers.
func (g *sentinelRig) failoverUnderLoad(t *testing.T, cause func(), after time.Duration) failoverRun {
	run := failoverRun{admin: g.client(t)}
	stop := make(chan struct{})
	wait := g.writeLoad(t, 4, stop)
	time.Sleep(300 * time.Millisecond)
	conns := connectionsReceived(t, run.admin)
	run.start = time.Now()
	cause()
	run.named = sentineltest.WaitNamed(t, g.sentinels, "s0", g.replica.Addr())
	time.Sleep(after)
	close(stop)
	run.ops = wait()
	run.reconnects = connectionsReceived(t, run.admin) - conns
	return run
}

// A primary SIGKILLed under write load: writes resume through the proxy
// on the promoted replica within a second of the sentinels naming it,
// clients keep their connections, errors come only between the kill and
// then, only for the shard that failed over, and none is -READONLY.
func TestIntegrationSentinelPrimaryKilled(t *testing.T) {
	g := startSentinelRig(t)
	run := g.failoverUnderLoad(t, g.primary.Kill, 2*time.Second)
	ops, killed, named := run.ops, run.start, run.named
	var resumed, lastFailed time.Time
	var failed int
	for _, o := range ops {
		if o.err != nil && o.end.After(lastFailed) {
			lastFailed = o.end
		}
	}
	for _, o := range ops {
		switch {
		case o.err != nil && strings.Contains(o.err.Error(), "READONLY"):
			t.Errorf("a client saw %v", o.err)
		case o.err != nil:
			failed++
			if o.shard != 0 || o.end.Before(killed) || o.end.After(named.Add(time.Second)) {
				t.Errorf("write of %s on shard %d failed %s after the kill (sentinels named the new primary at %s): %v",
					o.key, o.shard, o.end.Sub(killed).Round(time.Millisecond), named.Sub(killed).Round(time.Millisecond), o.err)
			}
		case o.shard == 0 && o.end.After(lastFailed) && resumed.IsZero():
			resumed = o.end // the first write of the shard after its last error
		}
	}
	if resumed.IsZero() || resumed.After(named.Add(time.Second)) {
		t.Errorf("writes to the shard resumed %s after the kill; the sentinels named the new primary after %s",
			resumed.Sub(killed), named.Sub(killed))
	}
	if run.reconnects != 0 {
		t.Errorf("the proxy received %d connections during the failover, want none (clients reconnected)", run.reconnects)
	}
	t.Logf("%d writes, %d failed; sentinels named the replica %s after the kill, writes resumed %s after it",
		len(ops), failed, named.Sub(killed).Round(time.Millisecond), resumed.Sub(killed).Round(time.Millisecond))
	info, _ := run.admin.Info(t.Context(), "proxy").Result()
	if !strings.Contains(info, "addr=sentinel:s0,primary="+g.replica.Addr()+",status=up") {
		t.Errorf("INFO proxy does not show s0 up on %s:\n%s", g.replica.Addr(), info)
	}
}

// SENTINEL FAILOVER under write load: the proxy holds the shard's writes
// from the moment the sentinels select the replica until it is the
// primary, so no client sees an error and every acknowledged write is on
// the new primary.
func TestIntegrationSentinelFailoverGraceful(t *testing.T) {
	g := startSentinelRig(t)
	run := g.failoverUnderLoad(t, func() {
		if err := g.sentinels[0].Client().Failover(t.Context(), "s0").Err(); err != nil {
			t.Fatal(err)
		}
	}, time.Second)
	ops, start, named := run.ops, run.start, run.named
	acked := 0
	var longest time.Duration
	for i, o := range ops {
		if i > 0 && o.end.Sub(ops[i-1].end) > longest {
			longest = o.end.Sub(ops[i-1].end)
		}
		if o.err != nil {
			t.Errorf("write of %s on shard %d failed %s after SENTINEL FAILOVER: %v", o.key, o.shard, o.end.Sub(start).Round(time.Millisecond), o.err)
			continue
		}
		acked++
		var on *redistest.Server = g.plain
		if o.shard == 0 {
			on = g.replica // the primary now
		}
		if v, err := on.Client().Get(t.Context(), o.key).Result(); err != nil || v != o.key {
			t.Errorf("acknowledged write of %s is %q, %v on %s", o.key, v, err, on.Addr())
		}
	}
	if run.reconnects != 0 {
		t.Errorf("the proxy received %d connections during the failover, want none", run.reconnects)
	}
	info, _ := run.admin.Info(t.Context(), "proxy").Result()
	if !strings.Contains(info, "sentinel_failovers:1") {
		t.Errorf("INFO proxy does not count the failover:\n%s", info)
	}
	t.Logf("%d writes acknowledged, all found; the sentinels named the replica %s after SENTINEL FAILOVER; longest gap between writes %s",
		acked, named.Sub(start).Round(time.Millisecond), longest.Round(time.Millisecond))
}

// The old primary, demoted by hand while the sentinels still name it,
// refuses writes with -READONLY: the proxy asks the sentinels, and the
// writes wait and go to the primary they name once they do.
func TestIntegrationSentinelReadonlyRetried(t *testing.T) {
	g := startSentinelRig(t)
	cl := g.client(t)
	k := g.keyOn(0, "ro")
	if err := cl.Set(t.Context(), k, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// demote the primary behind the sentinels' back, and let them fail
	// over onto the replica a moment later
	host, port, _ := net.SplitHostPort(g.replica.Addr())
	if err := g.primary.Client().SlaveOf(t.Context(), host, port).Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.replica.Client().SlaveOf(t.Context(), "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cl.Set(context.Background(), k, "2", 0).Err() }()
	time.Sleep(200 * time.Millisecond)
	if err := g.sentinels[0].Client().Failover(t.Context(), "s0").Err(); err != nil && !strings.Contains(err.Error(), "INPROG") {
		t.Logf("SENTINEL FAILOVER: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SET after the demotion: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("SET after the demotion got no reply in 15s")
	}
	if v, err := g.replica.Client().Get(t.Context(), k).Result(); err != nil || v != "2" {
		t.Fatalf("on the new primary %s = %q, %v; want 2", k, v, err)
	}
	info, _ := cl.Info(t.Context(), "proxy").Result()
	if !regexp.MustCompile(`sentinel_refused_retried:[1-9]`).MatchString(info) {
		t.Errorf("INFO proxy counts no retried refusal:\n%s", info)
	}
}

// checkAcked reads every acknowledged write of ops back through the proxy.
func (g *sentinelRig) checkAcked(t *testing.T, ops []op) (acked int) {
	t.Helper()
	cl := g.client(t)
	for _, o := range ops {
		if o.err != nil {
			continue
		}
		acked++
		if v, err := cl.Get(t.Context(), o.key).Result(); err != nil || v != o.key {
			t.Errorf("acknowledged write of %s reads %q, %v through the proxy", o.key, v, err)
		}
	}
	return acked
}

// SENTINEL FAILOVER of a source while a reshard streams it (MANUAL: the
// job has copied and follows the source, waiting for the cutover) aborts
// the job, which read the old primary: the writes now go to the new one.
// No client sees an error and every acknowledged write is there. A
// reshard started after the failover reads the new primary and completes,
// with every acknowledged write on the new shards.
func TestIntegrationSentinelFailoverDuringReshard(t *testing.T) {
	g := startSentinelRig(t)
	admin := g.client(t)
	targets := redistest.StartN(t, 3)
	args := []any{"PROXY", "RESHARD"}
	for _, s := range targets {
		args = append(args, s.Addr())
	}
	run := g.failoverUnderLoad(t, func() {
		if err := admin.Do(t.Context(), append(args, "MANUAL")...).Err(); err != nil {
			t.Fatal(err)
		}
		waitReshard(t, admin, "ready", "failed")
		if err := g.sentinels[0].Client().Failover(t.Context(), "s0").Err(); err != nil {
			t.Fatal(err)
		}
	}, 500*time.Millisecond)
	st := waitReshard(t, admin, "aborted", "failed", "done")
	if !strings.Contains(st, "state:aborted") || !strings.Contains(st, "sentinel:s0 is failing over") {
		t.Errorf("after the failover:\n%s", st)
	}
	for _, o := range run.ops {
		if o.err != nil {
			t.Errorf("write of %s failed: %v", o.key, o.err)
		}
	}
	if got := g.proxy.Table().Epoch(); got != 1 {
		t.Errorf("epoch = %d, want 1 (the old table)", got)
	}
	acked := g.checkAcked(t, run.ops)

	// FLUSH: the aborted job's copy is still on the targets
	if err := admin.Do(t.Context(), append(args, "FLUSH")...).Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitReshard(t, admin, "done", "failed", "aborted"); !strings.Contains(st, "state:done") {
		t.Fatalf("reshard after the failover:\n%s", st)
	}
	g.checkAcked(t, run.ops)
	// sentinel:s0 left the table: its primary and the replicas the
	// sentinels list (the old primary among them) are fenced, so none
	// takes writes if Sentinel promotes it later
	for _, s := range []*redistest.Server{g.replica, g.primary} {
		if v, _ := s.Client().ConfigGet(t.Context(), "min-replicas-to-write").Result(); v["min-replicas-to-write"] != "2147483647" {
			t.Errorf("%s of the retired sentinel:s0 is not fenced: min-replicas-to-write %v", s.Addr(), v)
		}
	}
	t.Logf("%d acknowledged writes, all read back after the abort and after the second reshard", acked)
}

// PROXY SNAPSHOT of a table with a sentinel:NAME shard captures it from
// the replica the sentinels list: its primary does not fork.
func TestIntegrationSentinelSnapshot(t *testing.T) {
	g := startSentinelRig(t)
	admin := g.client(t)
	for i := range 1000 {
		if err := admin.Set(t.Context(), fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	redistest.WaitCaughtUp(t, g.primary, g.replica)
	forksBefore := totalForks(t, g.primary)
	if err := admin.Do(t.Context(), "PROXY", "SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	if st := waitSnapshotEnd(t, admin, 30*time.Second); st["state"] != "done" {
		t.Fatalf("snapshot of sentinel:s0: %v", st)
	}
	if n := totalForks(t, g.primary); n != forksBefore {
		t.Errorf("the primary of sentinel:s0 forked %d times for the snapshot, want 0 (captured from its replica)", n-forksBefore)
	}
}

func totalForks(t *testing.T, s *redistest.Server) int {
	t.Helper()
	info, err := s.Client().Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_forks:(\d+)`).FindStringSubmatch(info)
	n, _ := strconv.Atoi(m[1])
	return n
}

// Reads of a connection that sent READONLY go to the replicas the
// sentinels list for a sentinel:NAME shard. After a failover the list is
// read again: the promoted replica is the primary, and the old primary is
// read from once Sentinel has made it a replica and it is in sync.
func TestIntegrationSentinelReadsReplicas(t *testing.T) {
	g := startSentinelRig(t)
	k := g.keyOn(0, "r")
	if err := g.client(t).Set(t.Context(), k, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ro := redis.NewClient(&redis.Options{Addr: g.addr, Protocol: 2, DisableIdentity: true, PoolSize: 1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }})
	defer ro.Close()
	readOn := func(s *redistest.Server) {
		t.Helper()
		var before int
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			before = getCalls(t, s)
			for range 20 {
				if err := ro.Get(t.Context(), k).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if getCalls(t, s)-before == 20 {
				return
			}
			if time.Now().After(deadline) {
				info, _ := ro.Info(t.Context(), "proxy").Result()
				t.Fatalf("READONLY reads do not go to %s:\n%s", s.Addr(), info)
			}
		}
	}
	readOn(g.replica)
	if err := g.sentinels[0].Client().Failover(t.Context(), "s0").Err(); err != nil {
		t.Fatal(err)
	}
	sentineltest.WaitNamed(t, g.sentinels, "s0", g.replica.Addr())
	start := time.Now()
	readOn(g.primary) // a replica now
	t.Logf("reads went to the old primary %s after the sentinels named the new one", time.Since(start).Round(100*time.Millisecond))
}

// A client subscribed to a channel of a sentinel:NAME shard keeps its
// connection and its subscription through a SENTINEL FAILOVER: the proxy
// subscribes again on the new primary before the held requests go, so a
// message published after the failover reaches it.
func TestIntegrationSentinelSubscribersFollow(t *testing.T) {
	g := startSentinelRig(t)
	ch := g.keyOn(0, "ch")
	for _, kind := range []string{"SSUBSCRIBE", "SUBSCRIBE"} {
		sub := dialRaw(t, g.addr)
		sub.send(kind, ch)
		sub.read() // the confirmation
		defer sub.nc.Close()
		defer func() {
			pub := g.client(t)
			cmd := map[string]string{"SSUBSCRIBE": "SPUBLISH", "SUBSCRIBE": "PUBLISH"}[kind]
			if n, err := pub.Do(t.Context(), cmd, ch, "after").Int(); err != nil || n != 1 {
				t.Errorf("%s after the failover reached %d subscribers, %v; want 1", cmd, n, err)
			}
			sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got := render(sub.read()); !strings.Contains(got, "after") {
				t.Errorf("%s subscriber got %s after the failover, want the message", kind, got)
			}
		}()
	}
	if err := g.sentinels[0].Client().Failover(t.Context(), "s0").Err(); err != nil {
		t.Fatal(err)
	}
	sentineltest.WaitNamed(t, g.sentinels, "s0", g.replica.Addr())
	// the proxy has switched once a write to the shard lands on the new primary
	k := g.keyOn(0, "probe")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		g.client(t).Set(t.Context(), k, "1", 0)
		if v, _ := g.replica.Client().Get(t.Context(), k).Result(); v == "1" {
			if n, _ := g.replica.Client().Do(t.Context(), "ROLE").Slice(); len(n) > 0 && n[0] == "master" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("writes do not reach the new primary")
		}
	}
}
