package etcdtest

// A smoke test of the Go client the control plane uses
// (go.etcd.io/etcd/client/v3, the version go.mod pins) against the etcd
// server Debian ships (3.4): each call the control plane will make, with
// the answers it will rely on.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientPutGet(t *testing.T) {
	cli := Start(t).Client()
	ctx := testContext(t)
	put, err := cli.Put(ctx, "/reshard/t/table", "v1")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "/reshard/t/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get = %v, want one key with v1", resp.Kvs)
	}
	if got, want := resp.Kvs[0].ModRevision, put.Header.Revision; got != want {
		t.Errorf("ModRevision = %d, want the Put's revision %d", got, want)
	}
}

// The commit of a table: one transaction that writes only if the key is
// still at the revision the writer read (or absent, for the first write).
func TestClientTxnModRevision(t *testing.T) {
	cli := Start(t).Client()
	ctx := testContext(t)
	const key = "/reshard/t/table"
	create := func(v string) bool {
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, v)).
			Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !create("epoch1") {
		t.Fatal("create-if-absent failed on an empty key")
	}
	if create("other") {
		t.Fatal("create-if-absent succeeded on an existing key")
	}
	got, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	rev := got.Kvs[0].ModRevision
	swap := func(v string) (bool, *clientv3.TxnResponse) {
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, v)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded, resp
	}
	if ok, _ := swap("epoch2"); !ok {
		t.Fatal("compare on the current ModRevision failed")
	}
	ok, resp := swap("epoch2-again")
	if ok {
		t.Fatal("compare on a stale ModRevision succeeded")
	}
	// The Else branch tells the loser what won, in the same round trip.
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "epoch2" {
		t.Errorf("Else Get = %v, want epoch2", kvs)
	}
}

// A watcher that read the table at revision r watches from r+1 and misses
// nothing; one that asks for a compacted revision gets ErrCompacted and
// must read again.
func TestClientWatchFromRevision(t *testing.T) {
	cli := Start(t).Client()
	ctx := testContext(t)
	var revs []int64
	for _, v := range []string{"a", "b", "c"} {
		resp, err := cli.Put(ctx, "k", v)
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, resp.Header.Revision)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, "k", clientv3.WithRev(revs[1]))
	var got []string
	for len(got) < 2 {
		wr, ok := <-wch
		if !ok {
			t.Fatalf("watch closed after %v", got)
		}
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range wr.Events {
			got = append(got, string(ev.Kv.Value))
		}
	}
	if got[0] != "b" || got[1] != "c" {
		t.Errorf("watch from revision %d = %v, want [b c]", revs[1], got)
	}
	cancel()

	if _, err := cli.Compact(ctx, revs[2]); err != nil {
		t.Fatal(err)
	}
	wctx, cancel = context.WithCancel(ctx)
	defer cancel()
	wch = cli.Watch(wctx, "k", clientv3.WithRev(revs[0]))
	wr, ok := <-wch
	if !ok {
		t.Fatal("watch on a compacted revision closed without a response")
	}
	if !errors.Is(wr.Err(), rpctypes.ErrCompacted) {
		t.Errorf("watch on a compacted revision: %v, want ErrCompacted", wr.Err())
	}
	if !wr.Canceled || wr.CompactRevision != revs[2] {
		t.Errorf("Canceled = %v, CompactRevision = %d; want true, %d", wr.Canceled, wr.CompactRevision, revs[2])
	}
	if _, ok := <-wch; ok {
		t.Error("a watch canceled by compaction stays open")
	}
	// A Get of a compacted revision fails the same way.
	if _, err := cli.Get(ctx, "k", clientv3.WithRev(revs[0])); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("Get at a compacted revision: %v, want ErrCompacted", err)
	}
}

// A member key lives while its lease is kept alive, and goes when the
// keep-alives stop, within about the TTL.
func TestClientLeaseExpiry(t *testing.T) {
	cli := Start(t).Client()
	ctx := testContext(t)
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if lease.TTL != 1 {
		t.Fatalf("granted TTL %d, want 1 (the rig's election timeout allows it)", lease.TTL)
	}
	if _, err := cli.Put(ctx, "member", "p1", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	first := <-ka
	if first == nil || first.ID != lease.ID {
		t.Fatalf("first keep-alive = %v", first)
	}
	time.Sleep(1200 * time.Millisecond) // longer than the TTL
	if resp, err := cli.Get(ctx, "member"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("member key gone while kept alive: %v, %v", resp, err)
	}
	stop()
	for range ka { // closed once the keep-alive loop has stopped
	}
	start := time.Now()
	for {
		resp, err := cli.Get(ctx, "member")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("member key still there 3s after keep-alives stopped, TTL 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ttl, err := cli.TimeToLive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL != -1 {
		t.Errorf("expired lease's TTL = %d, want -1", ttl.TTL)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Errorf("keep-alive of an expired lease: %v, want ErrLeaseNotFound", err)
	}
}

// The coordinator's lock: held by one session at a time, and released when
// its holder's session ends, lease and all.
func TestClientMutex(t *testing.T) {
	s := Start(t)
	ctx := testContext(t)
	newMutex := func() (*concurrency.Session, *concurrency.Mutex) {
		sess, err := concurrency.NewSession(s.Client(), concurrency.WithTTL(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		return sess, concurrency.NewMutex(sess, "/reshard/t/lock")
	}
	_, m1 := newMutex()
	_, m2 := newMutex()
	if err := m1.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("TryLock of a held mutex: %v, want ErrLocked", err)
	}
	locked := make(chan error, 1)
	go func() { locked <- m2.Lock(ctx) }()
	select {
	case err := <-locked:
		t.Fatalf("second Lock returned (%v) while the first holds it", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := m1.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}

	// A holder whose session ends (its process died: the lease expires;
	// here it is revoked) loses the lock without unlocking.
	sess3, m3 := newMutex()
	if err := m2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m3.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	_, m4 := newMutex()
	go func() { locked <- m4.Lock(ctx) }()
	sess3.Orphan()
	if _, err := s.Client().Revoke(ctx, sess3.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("Lock after the holder's lease ended: %v", err)
	}
}

// A watch made with WithRequireLeader (which the server cancels with
// ErrNoLeader when it loses its leader) delivers events as any other. When
// etcd dies it neither ends nor errs: it waits, and after a restart it
// resumes after the last revision it delivered. So a proxy cannot learn
// from its watch that etcd is gone; its lease keep-alives tell it.
func TestClientWatchRequireLeader(t *testing.T) {
	s := Start(t)
	cli := s.Client()
	ctx := testContext(t)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, "k")
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	wr := <-wch
	if err := wr.Err(); err != nil || len(wr.Events) != 1 {
		t.Fatalf("watch with require-leader: %v, %v", wr.Events, err)
	}
	s.Kill()
	select {
	case wr, ok := <-wch:
		t.Fatalf("watch answered after etcd died: open %v, err %v, canceled %v", ok, wr.Err(), wr.Canceled)
	case <-time.After(500 * time.Millisecond):
	}
	s.Restart()
	if _, err := cli.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-wch:
		if err := wr.Err(); err != nil || len(wr.Events) != 1 || string(wr.Events[0].Kv.Value) != "v2" {
			t.Fatalf("watch after restart: %v, %v; want the v2 event", wr.Events, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch silent 5s after etcd came back")
	}
}

// The client supports servers of its own and the previous minor release
// (3.7 and 3.6); Debian's 3.4 is older, so a client that asks to refuse old
// clusters refuses it. Every call above works against 3.4 all the same, so
// the control plane must leave RejectOldCluster unset.
func TestClientRejectOldCluster(t *testing.T) {
	s := Start(t)
	status, err := s.Client().Status(testContext(t), s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(status.Version, "3.4.") {
		t.Skipf("etcd %s is not the 3.4 this test describes", status.Version)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:        []string{s.Endpoint()},
		DialTimeout:      2 * time.Second,
		RejectOldCluster: true,
		Logger:           zap.NewNop(),
	})
	if err == nil {
		cli.Close()
		t.Fatalf("a client rejecting old clusters accepted etcd %s", status.Version)
	}
	if !errors.Is(err, clientv3.ErrOldCluster) {
		t.Errorf("RejectOldCluster against etcd %s: %v, want ErrOldCluster", status.Version, err)
	}
}
