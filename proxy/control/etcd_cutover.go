package control

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/reshard/reshard/migrate"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// A cutover that every member of the group takes together. The proxy that
// runs the reshard (the coordinator) closes its own barrier, then writes
// the job, PREFIX/cutover, under its own lease, with a deadline, in one
// transaction that also reads the live members: the job key is the
// group's cutover lock (written only where there is none, or one past its
// deadline), and the members it read are the participants, so that a
// member whose key came after the job sees the job when it looks for one.
// Each participant closes its barrier too, lets what it had in flight
// drain, and acks (PREFIX/acks/JOB/RUN_ID, under its lease). The
// coordinator watches for every ack, or for the member's key to go with
// its lease (a member gone holds no client), never around a live member:
// a member that neither acks nor goes by the deadline aborts the job,
// which keeps every client's pause within the deadline. Only then does
// the job fence the old shards, read the cut, catch the targets up and
// commit the table (one etcd transaction, which requires the table and
// the job key unchanged since the job was written).
//
// A participant watches the table and the job key from the job's
// revision: it serves the new table as soon as the commit is in, and the
// old one once the job key goes without a commit (the coordinator deletes
// it after an abort, or etcd with the coordinator's lease). At the
// deadline it ends the job itself, in one transaction that deletes the job
// key if unchanged and reads the table: a commit can then no longer land,
// and it serves what etcd holds. A member that cannot tell the outcome (an
// ack, the job's end or the commit not answered: etcd unreachable) serves
// nothing until it has read etcd again (stopServing).

// cutoverJob is the job key's value.
type cutoverJob struct {
	ID          string `json:"id"`
	Coordinator string `json:"coordinator"` // run id
	Epoch       uint64 `json:"epoch"`       // of the table being left
	Deadline    int64  `json:"deadline"`    // unix ms: participants resume then at the latest
}

// expired reports whether the job is past its deadline.
func (j cutoverJob) expired() bool { return !time.Now().Before(time.UnixMilli(j.Deadline)) }

func (e *Etcd) cutoverKey() string              { return e.cfg.Prefix + "/cutover" }
func (e *Etcd) ackKey(job, runID string) string { return e.cfg.Prefix + "/acks/" + job + "/" + runID }

// groupIDs returns the run ids of every proxy of the group that has not
// stopped for good: live members, and those whose lease ended while they
// were stopped or cut off (each serves nothing until it has re-read the
// table, so its shard connections are no stranger's).
func (e *Etcd) groupIDs(ctx context.Context) ([]string, error) { return e.runIDs(ctx, "/known/") }

// runIDs returns the last part of the keys under PREFIX+dir.
func (e *Etcd) runIDs(ctx context.Context, dir string) ([]string, error) {
	resp, err := e.cli.Get(ctx, e.cfg.Prefix+dir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return e.lastParts(resp.Kvs, dir), nil
}

// lastParts returns the part of each key after PREFIX+dir.
func (e *Etcd) lastParts(kvs []*mvccpb.KeyValue, dir string) []string {
	var ids []string
	for _, kv := range kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), e.cfg.Prefix+dir))
	}
	return ids
}

// pauseMembers is the coordinator's side: with its own barrier closed
// (resume lifts it), it has every other live member close theirs, and
// returns what lifts them all: its own barrier, then the job key. ctx
// ends at the cutover's deadline.
func (e *Etcd) pauseMembers(ctx context.Context, p *Plane, job string, epoch uint64, resume func()) (lift func(), jobRev int64, err error) {
	self := p.srv.RunID()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	lease := e.lease()
	if lease == 0 {
		return nil, 0, fmt.Errorf("etcd: this proxy holds no lease")
	}
	e.cost.reset()
	ctx = cutoverCtx(ctx)
	v, _ := json.Marshal(cutoverJob{ID: job, Coordinator: self, Epoch: epoch, Deadline: deadline.UnixMilli()})
	ids, jobRev, err := e.writeJob(ctx, string(v), lease)
	if err != nil {
		return nil, 0, err
	}
	lift = func() {
		resume()
		// after the barrier: no client of this proxy waits for these
		dctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
		defer cancel()
		if _, err := e.cli.Txn(dctx).If(clientv3.Compare(clientv3.ModRevision(e.cutoverKey()), "=", jobRev)).
			Then(clientv3.OpDelete(e.cutoverKey())).Commit(); err != nil {
			e.log.Warn("cutover job key not deleted: the other proxies resume at its deadline", zap.Error(err))
		}
		e.cli.Delete(dctx, e.cfg.Prefix+"/acks/"+job+"/", clientv3.WithPrefix())
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == self })
	if len(ids) == 0 {
		return lift, jobRev, nil
	}
	waited := time.Now()
	err = e.waitAcks(ctx, "by the cutover's deadline", job, jobRev, ids)
	e.cost.acksNS.Store(int64(time.Since(waited)))
	if err != nil {
		lift()
		return nil, 0, err
	}
	e.log.Info("every proxy of the group paused for the cutover", zap.Strings("members", ids))
	return lift, jobRev, nil
}

// writeJob writes the job key, unless another proxy's job holds it and is
// within its deadline, and returns the live members and the job key's
// revision.
func (e *Etcd) writeJob(ctx context.Context, job string, lease clientv3.LeaseID) (members []string, rev int64, err error) {
	var refused error
	members, rev, err = e.putOver(ctx, e.cutoverKey(), func(cur []byte) (string, error) {
		var other cutoverJob
		if cur != nil && json.Unmarshal(cur, &other) == nil && !other.expired() {
			refused = fmt.Errorf("another proxy's cutover (job %s) is running in the group", other.ID)
			return "", refused
		}
		// none, or one left past its deadline: its commit cannot land
		// once this job replaces it
		return job, nil
	}, clientv3.WithLease(lease))
	if err != nil && refused == nil {
		// %v: not the job's own cutover timeout, whose message speaks
		// of the proxy's drain. If the job was written after all, the
		// members pause until its deadline, and no fence was set.
		return nil, 0, fmt.Errorf("the cutover job not written to etcd: %v", err)
	}
	return members, rev, err
}

// putOver writes key with the value next gives for the key's value in
// etcd (nil when there is none), in a transaction that succeeds only if
// that value is still there and that also reads the live members; it
// tries again while other proxies write the key in between. It returns
// the members' run ids and the revision written at; next's error as it
// is, etcd's as the client gave it.
func (e *Etcd) putOver(ctx context.Context, key string, next func(cur []byte) (string, error), opts ...clientv3.OpOption) (members []string, rev int64, err error) {
	members0 := e.cfg.Prefix + "/members/"
	held := clientv3.Compare(clientv3.Version(key), "=", 0) // no value
	var cur []byte
	for {
		val, err := next(cur)
		if err != nil {
			return nil, 0, err
		}
		txn, err := e.cli.Txn(ctx).If(held).
			Then(clientv3.OpPut(key, val, opts...),
				clientv3.OpGet(members0, clientv3.WithPrefix(), clientv3.WithKeysOnly())).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return nil, 0, err
		}
		if txn.Succeeded {
			return e.lastParts(txn.Responses[1].GetResponseRange().Kvs, "/members/"), txn.Header.Revision, nil
		}
		kvs := txn.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			held, cur = clientv3.Compare(clientv3.Version(key), "=", 0), nil // gone meanwhile
			continue
		}
		held, cur = clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision), kvs[0].Value
	}
}

// waitAcks watches, from the job's revision, until every participant has
// acked or its member key has gone, or ctx ends.
// by says, in the error, when ctx ends ("by the cutover's deadline").
func (e *Etcd) waitAcks(ctx context.Context, by, job string, jobRev int64, ids []string) error {
	acks, members := e.cfg.Prefix+"/acks/"+job+"/", e.cfg.Prefix+"/members/"
	waiting := map[string]bool{}
	for _, id := range ids {
		waiting[id] = true
	}
	// one watch from the acks to the members: the keys in between (the job
	// key, PREFIX/known/) are skipped
	wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), acks, clientv3.WithRange(e.cfg.Prefix+"/members0"), clientv3.WithRev(jobRev+1))
	for len(waiting) > 0 {
		wr, ok := <-wch
		if ctx.Err() != nil {
			return fmt.Errorf("proxies %s neither paused nor left %s", strings.Join(slices.Sorted(maps.Keys(waiting)), ", "), by)
		}
		if !ok || wr.Err() != nil {
			return fmt.Errorf("the members' acks not read from etcd: %v", wr.Err())
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch {
			case ev.Type == mvccpb.PUT && strings.HasPrefix(key, acks):
				delete(waiting, strings.TrimPrefix(key, acks))
			case ev.Type == mvccpb.DELETE && strings.HasPrefix(key, members):
				delete(waiting, strings.TrimPrefix(key, members))
			}
		}
	}
	return nil
}

// participate is a member's side, until ctx ends: it pauses for every
// job another proxy coordinates. A member that is not among the job's
// participants (it joined after the coordinator listed them) pauses all
// the same, so that it serves nothing while the others cut over; the
// coordinator does not wait for its ack. A job already running when the
// member starts is found by a Get before the watch.
func (e *Etcd) participate(ctx context.Context, p *Plane) {
	self := p.srv.RunID()
	e.watchKey(ctx, e.cutoverKey(), func(val []byte, rev int64) {
		if val != nil {
			e.pauseIfOthers(ctx, p, self, val, rev)
		}
	})
}

// watchKey calls fn with key's value and the revision it was written at
// until ctx ends: first as a Get finds it (val nil: no key; rev then the
// Get's), then each change a watch from the next revision sees (val nil:
// deleted), one at a time. After any end of the watch it starts again
// with a Get, so that fn misses no last value.
func (e *Etcd) watchKey(ctx context.Context, key string, fn func(val []byte, rev int64)) {
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
		resp, err := e.cli.Get(gctx, key)
		cancel()
		if err == nil {
			fn(gotValue(resp))
			e.watchFrom(ctx, key, resp.Header.Revision+1, fn)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// gotValue is the value a Get of one key found and the revision it was
// written at; nil and the Get's revision when there is none.
func gotValue(resp *clientv3.GetResponse) ([]byte, int64) {
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision
}

// watchFrom is watchKey's watch, from revision rev until it ends.
func (e *Etcd) watchFrom(ctx context.Context, key string, rev int64, fn func(val []byte, rev int64)) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range e.cli.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(rev)) {
		if wr.Err() != nil {
			return
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.PUT {
				fn(ev.Kv.Value, ev.Kv.ModRevision)
			} else {
				fn(nil, ev.Kv.ModRevision)
			}
		}
	}
}

// pauseIfOthers pauses for the job val (its key written at rev) unless
// this proxy coordinates it.
func (e *Etcd) pauseIfOthers(ctx context.Context, p *Plane, self string, val []byte, rev int64) {
	var job cutoverJob
	if json.Unmarshal(val, &job) != nil || job.Coordinator == self {
		return
	}
	if job.expired() {
		return // one its coordinator left behind: reconcile or the next job ends it
	}
	e.pauseFor(ctx, p, job, rev)
}

// pauseFor closes the barrier for job (its key written at rev), acks, and
// lifts it once the job has committed or ended, or at its deadline,
// serving the table etcd then holds.
func (e *Etcd) pauseFor(ctx context.Context, p *Plane, job cutoverJob, rev int64) {
	e.cost.reset()
	jctx, cancel := context.WithDeadline(cutoverCtx(ctx), time.UnixMilli(job.Deadline))
	defer cancel()
	// the ack comes after a fence an earlier cutover left is lifted
	// (reconcile, which takes fenceMu, then the barrier): the coordinator
	// fences only once every ack is in
	e.fenceMu.Lock()
	resume, err := p.srv.Pause(jctx)
	if err != nil {
		e.fenceMu.Unlock()
		e.log.Warn("could not pause for the cutover", zap.String("job", job.ID), zap.Error(err))
		return
	}
	defer resume()
	_, err = e.cli.Put(jctx, e.ackKey(job.ID, p.srv.RunID()), "paused", clientv3.WithLease(e.lease()))
	e.fenceMu.Unlock()
	if err != nil {
		// an ack that landed unanswered lets the commit go on
		e.stopServing(p, "the cutover's ack not answered", zap.String("job", job.ID), zap.Error(err))
		return
	}
	if kv, ended := e.awaitJob(jctx, rev); ended {
		if kv == nil || !e.serveCommitted(p, job, kv) {
			e.unfenceServed(p, zap.String("job", job.ID))
		}
		return
	}
	// The deadline, with the job key still there or etcd away: end the
	// job, so that its commit, which requires the job key unchanged,
	// cannot land once this proxy has resumed, and read the table.
	dctx, dcancel := context.WithTimeout(cutoverCtx(ctx), e.cfg.DialTimeout)
	defer dcancel()
	get := clientv3.OpGet(e.tableKey())
	txn, err := e.cli.Txn(dctx).If(clientv3.Compare(clientv3.ModRevision(e.cutoverKey()), "=", rev)).
		Then(clientv3.OpDelete(e.cutoverKey()), get).Else(get).Commit()
	if err != nil {
		e.stopServing(p, "the cutover's outcome not read from etcd", zap.String("job", job.ID), zap.Error(err))
		return
	}
	kvs := txn.Responses[len(txn.Responses)-1].GetResponseRange().Kvs
	if len(kvs) == 0 || !e.serveCommitted(p, job, kvs[0]) {
		e.unfenceServed(p, zap.String("job", job.ID))
	}
}

// unfenceServed is for a job that ended without a commit, none of which
// can land any more: the group stays on the table served. A coordinator
// that died between the fence and the commit left its shards fenced; this
// lifts the fence, still paused, before any client writes to them (a job
// that aborted lifted it already, and this finds nothing).
func (e *Etcd) unfenceServed(p *Plane, fields ...zap.Field) {
	if lifted := p.unfence(p.srv.Route()); len(lifted) > 0 {
		e.log.Warn("lifted the fence a cutover that did not commit left on the group's shards", append(fields, zap.Int("shards", len(lifted)))...)
	}
}

// awaitJob watches the table and the job key from the job's revision
// until the commit (the table key's PUT, returned) or the job's end
// (true, nil), or ctx ends or the watch fails (false).
func (e *Etcd) awaitJob(ctx context.Context, rev int64) (*mvccpb.KeyValue, bool) {
	// the range from the job key to the table key holds both (and the
	// members' keys, skipped)
	wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), e.cutoverKey(), clientv3.WithRange(e.tableKey()+"\x00"), clientv3.WithRev(rev+1))
	for wr := range wch {
		if wr.Err() != nil {
			return nil, false
		}
		for _, ev := range wr.Events {
			switch string(ev.Kv.Key) {
			case e.tableKey():
				if ev.Type == mvccpb.PUT {
					return ev.Kv, true
				}
			case e.cutoverKey():
				return nil, true // deleted, or another job in its place
			}
		}
	}
	return nil, false
}

// serveCommitted serves the table in kv if it is newer than the one
// served, and reports whether it was; one it cannot decode stops the
// proxy serving.
func (e *Etcd) serveCommitted(p *Plane, job cutoverJob, kv *mvccpb.KeyValue) bool {
	t, a, err := decodeEtcdTable(kv.Value)
	if err != nil {
		e.stopServing(p, "the committed routing table cannot be read", zap.Error(err))
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if kv.ModRevision <= e.rev || t.Epoch() <= e.table.Epoch() {
		return false
	}
	p.srv.SwapTable(p.srv.Prepare(t, a))
	e.rev, e.table, e.auth = kv.ModRevision, t, a
	e.log.Info("cut over with the group", zap.String("job", job.ID), zap.Uint64("epoch", t.Epoch()))
	return true
}

// The running or last reshard of the group, for PROXY RESHARD STATUS on
// any member: the coordinator writes its status to PREFIX/reshard while
// the job runs and once more when it ends.

func (e *Etcd) reshardKey() string { return e.cfg.Prefix + "/reshard" }

// putStatus writes job's status, with its coordinator's address.
func (e *Etcd) putStatus(coordinator string, job *migrate.ReshardJob) {
	var b strings.Builder
	b.WriteString("coordinator:" + coordinator + "\r\n")
	job.Status().WriteInfo(&b)
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
	defer cancel()
	if _, err := e.cli.Put(ctx, e.reshardKey(), b.String()); err != nil {
		e.log.Debug("reshard status not written to etcd", zap.Error(err))
	}
}

// publishStatus writes job's status every half second until it ends, then
// its final status; ctx ends it early (the plane closes).
func (e *Etcd) publishStatus(ctx context.Context, coordinator string, job *migrate.ReshardJob) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-job.Done():
			e.putStatus(coordinator, job)
			return
		case <-ctx.Done():
			return
		case <-t.C:
			e.putStatus(coordinator, job)
		}
	}
}

// reshardStatus is the group's running or last reshard, as its
// coordinator last wrote it.
func (e *Etcd) reshardStatus(ctx context.Context) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	resp, err := e.cli.Get(ctx, e.reshardKey())
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

// groupReshard returns the address of the member that runs the group's
// reshard, if one other than self (its announce address) runs one: its
// status key says it runs, and its coordinator is still a live member.
func (e *Etcd) groupReshard(ctx context.Context, self string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	txn, err := e.cli.Txn(ctx).Then(clientv3.OpGet(e.reshardKey()), clientv3.OpGet(e.cfg.Prefix+"/members/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return "", fmt.Errorf("the group's reshards not read from etcd: %v", err)
	}
	status := txn.Responses[0].GetResponseRange().Kvs
	if len(status) == 0 {
		return "", nil
	}
	var coordinator string
	var state migrate.ReshardState
	for line := range strings.SplitSeq(string(status[0].Value), "\r\n") {
		if v, ok := strings.CutPrefix(line, "coordinator:"); ok {
			coordinator = v
		} else if v, ok := strings.CutPrefix(line, "state:"); ok {
			state = migrate.ReshardState(v)
		}
	}
	if coordinator == self || reshardEnded(state) {
		return "", nil
	}
	for _, kv := range txn.Responses[1].GetResponseRange().Kvs {
		var m etcdMember
		if json.Unmarshal(kv.Value, &m) == nil && m.Addr == coordinator {
			return coordinator, nil
		}
	}
	return "", nil // its coordinator is gone, and the job with it
}
