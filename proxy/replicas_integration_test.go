package proxy_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// getCalls is cmdstat_get's calls on a server, 0 when it ran none.
func getCalls(t *testing.T, s *redistest.Server) int {
	t.Helper()
	info, err := s.Client().Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cmdstat_get:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// readOnlyClient is a client of the proxy whose one connection has sent
// READONLY.
func readOnlyClient(t *testing.T, c *proxytest.Cluster) *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 2, DisableIdentity: true, PoolSize: 1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// waitReplicaState waits until INFO proxy shows the replica at addr in
// state.
func waitReplicaState(t *testing.T, c *proxytest.Cluster, addr, state string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, _ := c.Client().Info(t.Context(), "proxy").Result()
		if strings.Contains(info, "addr="+addr+",state="+state+",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s never %s in INFO proxy:\n%s", addr, state, info)
		}
	}
}

// Reads go to the primaries unless a connection opts in with READONLY
// (or --read-from says so); then each connection's reads of a shard go to
// one of its readable replicas, spread over the replicas by connection,
// never to one whose link to its primary is down. Writes always go to the
// primary. READWRITE and RESET opt the connection out again.
func TestIntegrationReadFromReplicas(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Replicas: 2})
	cl := c.Client()
	const keys = 200
	for i := range keys {
		if err := cl.Set(t.Context(), "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, rs := range c.Replicas {
		for _, r := range rs {
			redistest.WaitCaughtUp(t, c.Shards[i], r)
			waitReplicaState(t, c, r.Addr(), "readable")
		}
	}
	readAll := func(cl *redis.Client) {
		t.Helper()
		for i := range keys {
			if got, err := cl.Get(t.Context(), "k"+strconv.Itoa(i)).Int(); err != nil || got != i {
				t.Fatalf("GET k%d = %d, %v; want %d", i, got, err, i)
			}
		}
	}
	replicaGets := func() []int {
		var n []int
		for _, rs := range c.Replicas {
			for _, r := range rs {
				n = append(n, getCalls(t, r))
			}
		}
		return n
	}

	readAll(cl)
	for _, n := range replicaGets() {
		if n != 0 {
			t.Fatalf("GETs on the replicas without READONLY: %v; want none", replicaGets())
		}
	}

	// eight READONLY connections: every replica serves some of their reads
	for range 8 {
		readAll(readOnlyClient(t, c))
	}
	spread := replicaGets()
	for i, n := range spread {
		if n == 0 {
			t.Errorf("replica %d served no read of the READONLY connections (GETs per replica: %v)", i, spread)
		}
	}
	primaryGets := getCalls(t, c.Shards[0]) + getCalls(t, c.Shards[1])
	if primaryGets != keys {
		t.Errorf("the primaries served %d GETs, want the %d of the connection that did not opt in", primaryGets, keys)
	}

	// a replica whose link to its primary is down is not read from
	down := c.Replicas[0][0]
	if err := down.Client().SlaveOf(t.Context(), "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	waitReplicaState(t, c, down.Addr(), "link_down")
	before := getCalls(t, down)
	for range 8 {
		readAll(readOnlyClient(t, c))
	}
	if n := getCalls(t, down) - before; n != 0 {
		t.Errorf("the replica with its link down served %d reads, want none", n)
	}

	// READWRITE, and RESET, send the connection's reads back to the primary
	ro := readOnlyClient(t, c)
	for _, optOut := range []string{"READWRITE", "RESET"} {
		if err := ro.Do(t.Context(), "READONLY").Err(); err != nil {
			t.Fatal(err)
		}
		if err := ro.Do(t.Context(), optOut).Err(); err != nil {
			t.Fatal(err)
		}
		p0 := getCalls(t, c.Shards[0]) + getCalls(t, c.Shards[1])
		readAll(ro)
		if p := getCalls(t, c.Shards[0]) + getCalls(t, c.Shards[1]) - p0; p != keys {
			t.Errorf("after %s the primaries served %d of %d reads", optOut, p, keys)
		}
	}
}

// --read-from replica sends every connection's reads to the replicas, and
// a read of a shard without a readable replica gets an error rather than
// a read from the primary.
func TestIntegrationReadFromReplicaOnly(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.ReadFrom = proxy.ReadReplica
	c := proxytest.Start(t, proxytest.Options{Shards: 1, Replicas: 1, Config: &cfg})
	cl := c.Client()
	if err := cl.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitCaughtUp(t, c.Shards[0], c.Replicas[0][0])
	waitReplicaState(t, c, c.Replicas[0][0].Addr(), "readable")
	if got, err := cl.Get(t.Context(), "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if n := getCalls(t, c.Replicas[0][0]); n != 1 {
		t.Errorf("the replica served %d GETs, want 1", n)
	}
	if err := c.Replicas[0][0].Client().SlaveOf(t.Context(), "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	waitReplicaState(t, c, c.Replicas[0][0].Addr(), "link_down")
	err := cl.Get(t.Context(), "k").Err()
	if err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN no readable replica of shard "+c.Shards[0].Addr()) {
		t.Errorf("GET with no readable replica = %v, want CLUSTERDOWN naming the shard", err)
	}
	if err := cl.Set(t.Context(), "k", "w", 0).Err(); err != nil {
		t.Errorf("SET with no readable replica: %v (writes go to the primary)", err)
	}
}

// WAIT through the proxy waits for the client's own writes to reach the
// replicas, as on one Redis: with a replica stopped, a write is not
// acknowledged by it, and WAIT counts it only once it runs again.
func TestIntegrationWaitCountsOwnWrites(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Replicas: 1})
	cl := c.Client()
	stopped := c.Replicas[0][0]
	key := "w" // a key of the stopped replica's shard
	for i := 0; c.Table.ShardOf([]byte(key)) != 0; i++ {
		key = "w" + strconv.Itoa(i)
	}
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer stopped.Signal(syscall.SIGCONT)
	if err := cl.Set(t.Context(), key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.Do(t.Context(), "WAIT", 1, 300).Int(); err != nil || n != 0 {
		t.Errorf("WAIT 1 300 with the write's replica stopped = %d, %v; want 0", n, err)
	}
	if err := stopped.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.Do(t.Context(), "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Errorf("WAIT 1 5000 with every replica running = %d, %v; want 1", n, err)
	}
}

// A replica more than --replica-max-lag bytes behind its primary is not
// read from, and is again once it has caught up: CLIENT PAUSE WRITE on
// the replica holds its replication stream while it still answers INFO.
func TestIntegrationReplicaLagging(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.ReadFrom = proxy.ReadPreferReplica
	cfg.ReplicaMaxLag = 1000
	c := proxytest.Start(t, proxytest.Options{Shards: 1, Replicas: 1, Config: &cfg})
	cl := c.Client()
	replica := c.Replicas[0][0]
	waitReplicaState(t, c, replica.Addr(), "readable")
	if err := replica.Client().Do(t.Context(), "CLIENT", "PAUSE", 2000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // well over 1000 bytes of stream
		if err := cl.Set(t.Context(), "k"+strconv.Itoa(i), strings.Repeat("v", 50), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitReplicaState(t, c, replica.Addr(), "lagging")
	before := getCalls(t, replica)
	for i := range 100 {
		if got, err := cl.Get(t.Context(), "k"+strconv.Itoa(i)).Result(); err != nil || len(got) != 50 {
			t.Fatalf("GET k%d with the replica lagging = %q, %v", i, got, err)
		}
	}
	if n := getCalls(t, replica) - before; n != 0 {
		t.Errorf("the lagging replica served %d reads, want none", n)
	}
	waitReplicaState(t, c, replica.Addr(), "readable") // the pause ends
	if err := cl.Get(t.Context(), "k1").Err(); err != nil {
		t.Fatal(err)
	}
	if n := getCalls(t, replica) - before; n != 1 {
		t.Errorf("the replica served %d reads once caught up, want 1", n)
	}
}

// A cluster-mode client with go-redis's ReadOnly option sends READONLY on
// its connections, so its reads go to the replicas through the proxy,
// which CLUSTER SLOTS shows as the one node.
func TestIntegrationClusterClientReadsReplicas(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 1, Replicas: 1})
	if err := c.Client().Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitCaughtUp(t, c.Shards[0], c.Replicas[0][0])
	waitReplicaState(t, c, c.Replicas[0][0].Addr(), "readable")
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Addr}, ReadOnly: true, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { cc.Close() })
	for range 10 {
		if got, err := cc.Get(t.Context(), "k").Result(); err != nil || got != "v" {
			t.Fatalf("GET through a ReadOnly cluster client = %q, %v", got, err)
		}
	}
	if n := getCalls(t, c.Replicas[0][0]); n != 10 {
		t.Errorf("the replica served %d of the cluster client's 10 reads", n)
	}
}

// A replica loading its dataset (made to resync in full, with
// key-load-delay, so that loading 20k keys takes seconds) is not read
// from: reads under prefer-replica go to the primary until it has loaded
// and caught up.
func TestIntegrationReplicaLoading(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.ReadFrom = proxy.ReadPreferReplica
	c := proxytest.Start(t, proxytest.Options{Shards: 1, Replicas: 1, Config: &cfg})
	cl := c.Client()
	pipe := cl.Pipeline()
	for i := range 20000 {
		pipe.Set(t.Context(), "k"+strconv.Itoa(i), "v", 0)
	}
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	primary, replica := c.Shards[0], c.Replicas[0][0]
	redistest.WaitCaughtUp(t, primary, replica)
	direct := replica.Client()
	host, port, _ := strings.Cut(primary.Addr(), ":")
	// a replica made a primary takes a new replication id: pointed back at
	// its primary, it resyncs in full and loads the whole dataset again;
	// it answers INFO meanwhile every 1 KB of the load
	for _, cmd := range [][]any{{"CONFIG", "SET", "key-load-delay", "100"}, {"CONFIG", "SET", "loading-process-events-interval-bytes", "1024"},
		{"REPLICAOF", "NO", "ONE"}, {"REPLICAOF", host, port}} {
		if err := direct.Do(t.Context(), cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := direct.Info(t.Context(), "persistence").Result()
		if err == nil && strings.Contains(info, "loading:1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never reported loading:1: %v\n%s", err, info)
		}
	}
	time.Sleep(300 * time.Millisecond) // a few monitor probes
	before := getCalls(t, replica)
	for i := range 100 {
		if got, err := cl.Get(t.Context(), "k"+strconv.Itoa(i)).Result(); err != nil || got != "v" {
			t.Fatalf("GET k%d while the replica loads = %q, %v", i, got, err)
		}
	}
	info, _ := direct.Info(t.Context(), "persistence").Result()
	if !strings.Contains(info, "loading:1") {
		t.Fatal("the replica finished loading during the reads: the test proves nothing; raise key-load-delay")
	}
	if n := getCalls(t, replica) - before; n != 0 {
		t.Errorf("the loading replica served %d reads, want none", n)
	}
	waitReplicaState(t, c, replica.Addr(), "readable")
	if err := cl.Get(t.Context(), "k1").Err(); err != nil {
		t.Fatal(err)
	}
	if n := getCalls(t, replica) - before; n != 1 {
		t.Errorf("the replica served %d reads once loaded, want 1", n)
	}
}
