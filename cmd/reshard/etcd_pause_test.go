package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
)

// CLIENT PAUSE through one proxy of an etcd group holds the clients of
// every member: a write through B waits for A's CLIENT PAUSE WRITE until
// CLIENT UNPAUSE through B, while reads through B flow (one shard
// connection per shard, so a write B sent to the paused shard would stall
// the read behind it), and so does a pause A's transaction gives at EXEC;
// ALL through B holds A's reads until the deadline; a member
// that joins during a pause holds its clients, and its CLIENT UNPAUSE ends
// the pause on the others; a pause whose member was killed ends at its
// deadline.
func TestEtcdClientPause(t *testing.T) {
	rig := newEtcdRig(t, 2, 0, "--backend-conns", "1")
	procs, _ := rig.startProxies(t, 2)
	a, b := procs[0], procs[1]
	ctx := t.Context()
	adminA, adminB := patientClient(t, a.Addr), patientClient(t, b.Addr)
	writerA, writerB, readerB := patientClient(t, a.Addr), patientClient(t, b.Addr), patientClient(t, b.Addr)
	if err := writerB.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// WRITE through A, UNPAUSE through B
	if err := adminA.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	set := proxytest.InBackground(func() error { return writerB.Set(ctx, "k", "during", 0).Err() })
	proxytest.Held(t, set, "SET through B under A's CLIENT PAUSE WRITE", 500*time.Millisecond)
	readFlows := func(what, want string) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if got, err := readerB.Get(rctx, "k").Result(); err != nil || got != want {
			t.Fatalf("GET through B under %s = %q, %v; want %q at once", what, got, err, want)
		}
	}
	readFlows("A's CLIENT PAUSE WRITE", "before")
	proxytest.Held(t, set, "SET through B under A's CLIENT PAUSE WRITE, after a read", 100*time.Millisecond)
	if err := adminB.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	proxytest.Released(t, set, "SET through B after CLIENT UNPAUSE through B", 5*time.Second)
	if got, err := writerA.Get(ctx, "k").Result(); err != nil || got != "during" {
		t.Fatalf("GET through A after the pause = %q, %v; want \"during\"", got, err)
	}

	// inside MULTI through A: the pause starts at EXEC, on every member
	if _, err := adminA.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	set = proxytest.InBackground(func() error { return writerB.Set(ctx, "k", "in tx", 0).Err() })
	proxytest.Held(t, set, "SET through B under CLIENT PAUSE WRITE in A's transaction", 500*time.Millisecond)
	readFlows("CLIENT PAUSE WRITE in A's transaction", "during")
	if err := adminB.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	proxytest.Released(t, set, "SET through B after CLIENT UNPAUSE through B", 5*time.Second)

	// ALL through B: A's reads are held until the deadline
	paused := time.Now()
	if err := adminB.Do(ctx, "CLIENT", "PAUSE", 1500, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	get := proxytest.InBackground(func() error { return writerA.Get(ctx, "k").Err() })
	proxytest.Held(t, get, "GET through A under B's CLIENT PAUSE ALL", 500*time.Millisecond)
	proxytest.Released(t, get, "GET through A after B's CLIENT PAUSE ALL's deadline", 5*time.Second)
	if took := time.Since(paused); took < 1400*time.Millisecond {
		t.Errorf("GET through A answered %s after CLIENT PAUSE 1500 ALL, before the deadline", took)
	}

	// a member that joins during a pause holds its clients; its UNPAUSE
	// ends the pause on the others
	if err := adminA.Do(ctx, "CLIENT", "PAUSE", 60000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	setA := proxytest.InBackground(func() error { return writerA.Set(ctx, "k", "a", 0).Err() })
	c := proxytest.StartProcess(t, rig.bin, t.TempDir(), nil, rig.flags...)
	etcdClient(t, c.Addr) // serving: a read, which the pause lets through
	adminC, writerC := patientClient(t, c.Addr), patientClient(t, c.Addr)
	setC := proxytest.InBackground(func() error { return writerC.Set(ctx, "k", "c", 0).Err() })
	proxytest.Held(t, setC, "SET through a member that joined during CLIENT PAUSE WRITE", 500*time.Millisecond)
	proxytest.Held(t, setA, "SET through A under its own CLIENT PAUSE WRITE", 50*time.Millisecond)
	if err := adminC.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	proxytest.Released(t, setC, "SET through C after its CLIENT UNPAUSE", 5*time.Second)
	proxytest.Released(t, setA, "SET through A after CLIENT UNPAUSE through C", 5*time.Second)

	// the member that gave the pause killed: it ends at its deadline
	paused = time.Now()
	if err := adminA.Do(ctx, "CLIENT", "PAUSE", 2000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	a.Kill()
	set = proxytest.InBackground(func() error { return writerB.Set(ctx, "k", "after", 0).Err() })
	proxytest.Held(t, set, "SET through B under the pause of a killed member", 500*time.Millisecond)
	proxytest.Released(t, set, "SET through B after the deadline of a killed member's pause", 5*time.Second)
	if took := time.Since(paused); took < 1900*time.Millisecond {
		t.Errorf("SET through B answered %s after CLIENT PAUSE 2000 WRITE, before the deadline", took)
	}
}

// A pause ends at its deadline on every member even when etcd stops
// during it; one given while etcd is away is refused with an error and
// holds no one; once etcd is back, the group is not paused again.
func TestEtcdClientPauseEtcdStopped(t *testing.T) {
	// a lease long enough that the members serve through the stop
	rig := newEtcdRig(t, 2, 0, "--etcd-lease-ttl", "10s")
	procs, _ := rig.startProxies(t, 2)
	ctx := t.Context()
	adminA, clientB := patientClient(t, procs[0].Addr), patientClient(t, procs[1].Addr)

	paused := time.Now()
	if err := adminA.Do(ctx, "CLIENT", "PAUSE", 2000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	get := proxytest.InBackground(func() error { return clientB.Get(ctx, "k").Err() })
	rig.etcd.Stop()
	proxytest.Held(t, get, "GET through B under A's CLIENT PAUSE ALL, etcd stopped", 300*time.Millisecond)
	select {
	case err := <-get:
		if err != redis.Nil {
			t.Fatalf("GET through B after the pause, etcd stopped: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GET through B still held 5 s after CLIENT PAUSE 2000 ALL, etcd stopped")
	}
	took := time.Since(paused)
	if took < 1900*time.Millisecond || took > 4*time.Second {
		t.Errorf("GET through B answered %s after CLIENT PAUSE 2000 ALL with etcd stopped; want at its deadline", took)
	}

	// given while etcd is away, a pause changes nothing and says so
	err := adminA.Do(ctx, "CLIENT", "PAUSE", 60000, "ALL").Err()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR CLIENT PAUSE not applied") {
		t.Fatalf("CLIENT PAUSE with etcd stopped = %v, want ERR CLIENT PAUSE not applied", err)
	}
	if err := clientB.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET through B after a CLIENT PAUSE etcd did not take: %v", err)
	}

	rig.etcd.Restart()
	waitServing(t, clientB)
	if err := clientB.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through B once etcd is back: %v", err)
	}
}

// patientClient is a client of addr whose reads wait as long as a pause
// may hold them.
func patientClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1,
		ReadTimeout: time.Minute, ContextTimeoutEnabled: true})
	t.Cleanup(func() { cl.Close() })
	return cl
}
