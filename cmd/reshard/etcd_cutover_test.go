package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Faults inside a coordinated cutover, each set off by what one of its
// steps writes: the job (the coordinator has written it to etcd, its
// members pausing), an ack, the fence on the old shards (seen on a shard),
// the commit (the table key written again).

// cutoverFault is one fault and what the group must end in.
type cutoverFault struct {
	name    string
	trigger string // the key under the prefix whose PUT sets it off; "fence": the old shards'
	victim  int    // the proxy SIGKILLed (0: the coordinator); -1: etcd stopped instead
	// wantEpoch is the table the survivors must serve; 0: either, as long
	// as all agree
	wantEpoch int64
}

// SIGKILL at the cutover's steps: the coordinator once it has written the
// job, a participant once the first ack is in (its own, or before it),
// the coordinator or a participant once the old shards are fenced, and
// once the table is committed. A survivor that gives a job up at its deadline ends it in
// etcd, so the dead coordinator's commit can no longer land, and lifts a
// fence left on the shards it goes on serving. The survivors' writers see
// no error.
func TestEtcdKillDuringCutover(t *testing.T) {
	for _, tc := range []cutoverFault{
		{"coordinator in prepare", "/cutover", 0, 0},
		{"participant in prepare", "/acks/", 1, 2},
		{"coordinator after the commit", "/table", 0, 2},
		{"coordinator after the fence", "fence", 0, 0},
		{"participant after the fence", "fence", 1, 2},
		{"participant after the commit", "/table", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) { runCutoverFault(t, tc) })
	}
}

// etcd stopped at three steps: once the job is written (the members
// pause, and cannot ack), once the old shards are fenced (the commit
// cannot be sent, or its answer is lost: its outcome is unknown to the
// coordinator, which keeps the fence and serves nothing until it has read
// etcd), and just after the commit (the participants may not have seen
// it). The job completes or aborts, never half: while etcd is away the
// writers see nothing but CLUSTERDOWN (every proxy refuses data within its
// lease, or at once when it cannot tell a cutover's outcome); once it is
// back, every proxy serves one table with every acknowledged write, and
// a table that did not change has no fenced shard.
func TestEtcdStoppedDuringCutover(t *testing.T) {
	for _, tc := range []cutoverFault{
		{"in prepare", "/cutover", -1, 0},
		{"after the fence", "fence", -1, 0},
		{"after the commit", "/table", -1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) { runCutoverFault(t, tc) })
	}
}

// runCutoverFault runs a reshard of 2 to 2 shards through the first of
// three proxies, with a writer on each proxy that survives, sets the fault
// off at its trigger, and checks what the group ends in.
func runCutoverFault(t *testing.T, tc cutoverFault) {
	rig := newEtcdRig(t, 2, 2, "--etcd-lease-ttl", "1s")
	procs, clients := rig.startProxies(t, 3)
	etcdStop := tc.victim < 0
	fault := func() {
		if etcdStop {
			rig.etcd.Stop()
		} else {
			procs[tc.victim].Kill()
		}
	}
	prefix := rig.flags[3]
	fired := make(chan struct{})
	if tc.trigger == "fence" {
		go func() {
			defer close(fired)
			old := rig.shards[0].Client()
			for t.Context().Err() == nil {
				if v, _ := old.ConfigGet(t.Context(), "min-replicas-to-write").Result(); v["min-replicas-to-write"] == "2147483647" {
					fault()
					return
				}
			}
		}()
	} else {
		watch := rig.etcd.Client().Watch(t.Context(), prefix+tc.trigger, clientv3.WithPrefix())
		go func() {
			defer close(fired)
			for wr := range watch {
				for _, ev := range wr.Events {
					if ev.Type == mvccpb.PUT && (tc.trigger != "/table" || ev.Kv.Version > 1) {
						fault()
						return
					}
				}
			}
		}()
	}
	var survivors []int
	for i := range procs {
		if i != tc.victim {
			survivors = append(survivors, i)
		}
	}
	// writers on the survivors until the fault is over: with etcd stopped,
	// each may see CLUSTERDOWN, and goes on
	ctx, stop := context.WithCancel(t.Context())
	t.Cleanup(stop)
	acked := make([]map[string]int, len(survivors))
	refused := make([]int, len(survivors))
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for w, i := range survivors {
		acked[w] = map[string]int{}
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				key := "s" + strconv.Itoa(i) + ":" + strconv.Itoa(n%500)
				err := clients[i].Set(ctx, key, n, 0).Err()
				switch {
				case err == nil:
					acked[w][key] = n
				case ctx.Err() != nil:
					return
				case etcdStop && strings.HasPrefix(err.Error(), "CLUSTERDOWN"):
					refused[w]++
					time.Sleep(5 * time.Millisecond)
				default:
					select {
					case errs <- fmt.Errorf("proxy %d: %w", i, err):
					default:
					}
					return
				}
			}
		})
	}
	if err := clients[0].Do(t.Context(), reshardArgs(rig.targets)...).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fired:
	case <-time.After(30 * time.Second):
		t.Fatal("the trigger never came")
	}
	time.Sleep(3 * time.Second) // leases end, deadlines pass
	if etcdStop {
		rig.etcd.Restart()
		for _, i := range survivors {
			waitServing(t, clients[i])
		}
		time.Sleep(500 * time.Millisecond) // the writers write again
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("writer: %v", err)
	}
	if etcdStop {
		t.Logf("writes refused with CLUSTERDOWN while etcd was away, by proxy: %v", refused)
	}
	var epochs []int64
	for w, i := range survivors {
		waitServing(t, clients[i])
		topo, err := clients[i].Do(t.Context(), "PROXY", "TOPOLOGY").Slice()
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, topo[1].(int64))
		other := clients[survivors[(w+1)%len(survivors)]]
		for key, v := range acked[w] {
			// read through another survivor
			if got, err := other.Get(t.Context(), key).Int(); err != nil || got != v {
				t.Errorf("%s = %d, %v through another proxy; want %d", key, got, err, v)
				break
			}
		}
	}
	for _, e := range epochs {
		if e != epochs[0] || (tc.wantEpoch != 0 && e != tc.wantEpoch) {
			t.Fatalf("the survivors serve epochs %v, want one table (epoch %d)", epochs, tc.wantEpoch)
		}
	}
	served, retired := rig.shards, rig.targets
	if epochs[0] == 2 {
		served, retired = rig.targets, rig.shards
	}
	for _, sh := range served {
		if v, _ := sh.Client().ConfigGet(t.Context(), "min-replicas-to-write").Result(); v["min-replicas-to-write"] != "0" {
			t.Errorf("shard %s of the table served is fenced: min-replicas-to-write %v", sh.Addr(), v)
		}
	}
	for _, sh := range retired {
		if epochs[0] == 2 {
			if v, _ := sh.Client().ConfigGet(t.Context(), "min-replicas-to-write").Result(); v["min-replicas-to-write"] != "2147483647" {
				t.Errorf("retired shard %s is not fenced: min-replicas-to-write %v", sh.Addr(), v)
			}
		}
	}
}

// One reshard runs in a group at a time: PROXY RESHARD on a member while
// another member's reshard runs is refused, naming that member, and
// accepted once it has ended.
func TestEtcdOneReshardAtATime(t *testing.T) {
	rig := newEtcdRig(t, 2, 2)
	procs, clients := rig.startProxies(t, 2)
	if err := clients[0].Do(t.Context(), append(reshardArgs(rig.targets), "MANUAL")...).Err(); err != nil {
		t.Fatal(err)
	}
	err := clients[1].Do(t.Context(), reshardArgs(rig.targets)...).Err()
	if err == nil || !strings.Contains(err.Error(), "proxy "+procs[0].Addr+" of the group is running a reshard") {
		t.Fatalf("PROXY RESHARD on the second member = %v, want the first named as running one", err)
	}
	if err := clients[0].Do(t.Context(), "PROXY", "RESHARD", "ABORT").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := clients[0].Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
		if strings.Contains(st, "state:aborted") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reshard not aborted: %q, %v", st, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := clients[1].Do(t.Context(), reshardArgs(rig.targets)...).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PROXY RESHARD after the first ended = %v", err)
		}
	}
	waitReshardDone(t, clients[1])
}
