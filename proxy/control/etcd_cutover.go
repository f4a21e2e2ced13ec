package control

import (
	"context"
	"encoding/json"
	"fmt"
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
// the job, PREFIX/cutover, under its own lease: the participants (every
// other live member) and a deadline. Each participant closes its barrier
// too, lets what it had in flight drain, and acks (PREFIX/acks/JOB/RUN_ID,
// under its lease). The coordinator waits for every ack, or for the
// member's lease to end (a member gone holds no client), never around a
// live member: a member that neither acks nor goes by the deadline aborts
// the job. Only then does the job fence the old shards, read the cut,
// catch the targets up and commit the table (one etcd transaction). A
// participant resumes when the job key goes (the coordinator deletes it
// when its barrier lifts, after a commit or an abort; etcd deletes it when
// the coordinator's lease ends, if it dies), or at the job's deadline, and
// always only after reading the table from etcd: it serves the new table if
// the commit happened, the old one if not, whatever it saw of the job.

// cutoverJob is the job key's value.
type cutoverJob struct {
	ID           string   `json:"id"`
	Coordinator  string   `json:"coordinator"` // run id
	Participants []string `json:"participants"`
	Epoch        uint64   `json:"epoch"`    // of the table being left
	Deadline     int64    `json:"deadline"` // unix ms: participants resume then at the latest
}

func (e *Etcd) cutoverKey() string              { return e.cfg.Prefix + "/cutover" }
func (e *Etcd) ackKey(job, runID string) string { return e.cfg.Prefix + "/acks/" + job + "/" + runID }

// groupIDs returns the run ids of every proxy of the group that has not
// stopped for good: live members, and those whose lease ended while they
// were stopped or cut off (each serves nothing until it has re-read the
// table, so its shard connections are no stranger's).
func (e *Etcd) groupIDs(ctx context.Context) ([]string, error) { return e.runIDs(ctx, "/known/") }

// memberIDs returns the run ids of the live members.
func (e *Etcd) memberIDs(ctx context.Context) ([]string, error) { return e.runIDs(ctx, "/members/") }

// runIDs returns the last part of the keys under PREFIX+dir.
func (e *Etcd) runIDs(ctx context.Context, dir string) ([]string, error) {
	resp, err := e.cli.Get(ctx, e.cfg.Prefix+dir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	var ids []string
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), e.cfg.Prefix+dir))
	}
	return ids, nil
}

// pauseMembers is the coordinator's side: with its own barrier closed
// (resume lifts it), it has every other live member close theirs, and
// returns what lifts them all: the job key goes, then its own barrier.
// ctx ends at the cutover's deadline.
func (e *Etcd) pauseMembers(ctx context.Context, p *Plane, job string, resume func()) (lift func(), jobRev int64, err error) {
	self := p.srv.RunID()
	ids, err := e.memberIDs(ctx)
	if err != nil {
		// %v: not the job's own cutover timeout, whose message speaks of
		// the proxy's drain
		return nil, 0, fmt.Errorf("the group's members are unknown: %v", err)
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == self })
	if len(ids) == 0 {
		return resume, 0, nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	v, _ := json.Marshal(cutoverJob{ID: job, Coordinator: self, Participants: ids, Deadline: deadline.UnixMilli()})
	lease := e.lease()
	if lease == 0 {
		return nil, 0, fmt.Errorf("etcd: this proxy holds no lease")
	}
	put, err := e.cli.Put(ctx, e.cutoverKey(), string(v), clientv3.WithLease(lease))
	if err != nil {
		return nil, 0, fmt.Errorf("the cutover job not written to etcd: %v", err)
	}
	jobRev = put.Header.Revision // the job key's create revision: the commit requires it
	lift = func() {
		dctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
		defer cancel()
		if _, err := e.cli.Delete(dctx, e.cutoverKey()); err != nil {
			e.log.Warn("cutover job key not deleted: the other proxies resume at its deadline", zap.Error(err))
		}
		resume()
		// after the barrier: no client waits for this write
		e.cli.Delete(dctx, e.cfg.Prefix+"/acks/"+job+"/", clientv3.WithPrefix())
	}
	for {
		waiting, err := e.notAcked(ctx, job, ids)
		if err == nil && len(waiting) == 0 {
			e.log.Info("every proxy of the group paused for the cutover", zap.Strings("members", ids))
			return lift, jobRev, nil
		}
		if ctx.Err() != nil {
			lift()
			if err != nil {
				return nil, 0, fmt.Errorf("the members' acks not read from etcd: %v", err)
			}
			return nil, 0, fmt.Errorf("proxies %s neither paused nor left by the cutover's deadline", strings.Join(waiting, ", "))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// notAcked returns the participants that have not acked and are still
// members.
func (e *Etcd) notAcked(ctx context.Context, job string, ids []string) ([]string, error) {
	acks, err := e.cli.Get(ctx, e.cfg.Prefix+"/acks/"+job+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	live, err := e.memberIDs(ctx)
	if err != nil {
		return nil, err
	}
	var waiting []string
	for _, id := range ids {
		acked := slices.ContainsFunc(acks.Kvs, func(kv *mvccpb.KeyValue) bool { return string(kv.Key) == e.ackKey(job, id) })
		if !acked && slices.Contains(live, id) {
			waiting = append(waiting, id)
		}
	}
	return waiting, nil
}

// participate is a member's side, until ctx ends: it pauses for every
// job another proxy coordinates. A member that is not among the job's
// participants (it joined after the coordinator listed them) pauses all
// the same, so that it serves nothing while the others cut over; the
// coordinator does not wait for its ack. A job already running when the
// member starts is found by a Get before the watch.
func (e *Etcd) participate(ctx context.Context, p *Plane) {
	self := p.srv.RunID()
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
		resp, err := e.cli.Get(gctx, e.cutoverKey())
		cancel()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if len(resp.Kvs) > 0 {
			e.pauseIfOthers(ctx, p, self, resp.Kvs[0])
		}
		wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), e.cutoverKey(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					e.pauseIfOthers(ctx, p, self, ev.Kv)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pauseIfOthers pauses for the job in kv unless this proxy coordinates it.
func (e *Etcd) pauseIfOthers(ctx context.Context, p *Plane, self string, kv *mvccpb.KeyValue) {
	var job cutoverJob
	if json.Unmarshal(kv.Value, &job) != nil || job.Coordinator == self {
		return
	}
	if time.Now().After(time.UnixMilli(job.Deadline)) {
		return // a job its coordinator left behind: etcd removes it with its lease
	}
	e.pauseFor(ctx, p, job, kv.ModRevision, kv.CreateRevision)
}

// pauseFor closes the barrier for job, acks, and lifts it once the job key
// goes or its deadline passes, serving the table etcd then holds.
func (e *Etcd) pauseFor(ctx context.Context, p *Plane, job cutoverJob, rev, created int64) {
	deadline := time.UnixMilli(job.Deadline)
	jctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	resume, err := p.srv.Pause(jctx)
	if err != nil {
		e.log.Warn("could not pause for the cutover", zap.String("job", job.ID), zap.Error(err))
		return
	}
	defer resume()
	lease := e.lease()
	if _, err := e.cli.Put(jctx, e.ackKey(job.ID, p.srv.RunID()), "paused", clientv3.WithLease(lease)); err != nil {
		e.log.Warn("could not ack the cutover", zap.String("job", job.ID), zap.Error(err))
		return
	}
	// the job key's end: a delete, or a new job in its place
	wch := e.cli.Watch(jctx, e.cutoverKey(), clientv3.WithRev(rev+1))
	for wr := range wch {
		if len(wr.Events) > 0 || wr.Err() != nil {
			break
		}
	}
	// At the deadline the job may still be there, its coordinator alive
	// but late: delete it, so that its commit, which requires the job key,
	// cannot land once this proxy has resumed on the old table (and lifted
	// the fence, below). A delete refused or not sent leaves the job key
	// to its coordinator or to its lease; until it goes, a commit may land,
	// and the table read next shows it.
	dctx, dcancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	_, derr := e.cli.Txn(dctx).If(clientv3.Compare(clientv3.CreateRevision(e.cutoverKey()), "=", created)).
		Then(clientv3.OpDelete(e.cutoverKey())).Commit()
	dcancel()
	if derr != nil {
		e.log.Warn("cutover job not ended in etcd; serving etcd's table, fence left as it is", zap.String("job", job.ID), zap.Error(derr))
	}
	// whatever happened, serve etcd's table: the new one if it committed
	rctx, rcancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer rcancel()
	t, a, trev, err := e.get(rctx)
	if err != nil {
		// the lease deadline stops data commands if etcd stays away
		e.log.Warn("routing table not read after the cutover", zap.Error(err))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if trev > e.rev && t.Epoch() > e.table.Epoch() {
		p.srv.SwapTable(p.srv.Prepare(t, a))
		e.rev, e.table, e.auth = trev, t, a
		e.log.Info("cut over with the group", zap.String("job", job.ID), zap.Uint64("epoch", t.Epoch()))
		return
	}
	// No commit, and none can land any more (the job key is gone, and a
	// commit requires it): the group stays on this table. A coordinator
	// that died between the fence and the commit left the shards fenced;
	// lift it, still paused, before any client writes to them (a job that
	// aborted normally lifted it already, and this finds nothing).
	if derr != nil {
		return
	}
	if lifted := p.unfence(p.srv.Route()); len(lifted) > 0 {
		e.log.Warn("lifted the fence a cutover left on the group's shards", zap.String("job", job.ID), zap.Int("shards", len(lifted)))
	}
}

// The running or last reshard of the group, for PROXY RESHARD STATUS on
// any member: the coordinator writes its status to PREFIX/reshard while
// the job runs and once more when it ends.

func (e *Etcd) reshardKey() string { return e.cfg.Prefix + "/reshard" }

// publishStatus writes job's status every half second until it ends, then
// its final status; ctx ends it early (the plane closes).
func (e *Etcd) publishStatus(ctx context.Context, coordinator string, job *migrate.ReshardJob) {
	put := func() {
		var b strings.Builder
		b.WriteString("coordinator:" + coordinator + "\r\n")
		job.Status().WriteInfo(&b)
		pctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
		defer cancel()
		if _, err := e.cli.Put(pctx, e.reshardKey(), b.String()); err != nil {
			e.log.Debug("reshard status not written to etcd", zap.Error(err))
		}
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		put()
		select {
		case <-job.Done():
			put()
			return
		case <-ctx.Done():
			return
		case <-t.C:
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
