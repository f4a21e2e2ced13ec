package control

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// PROXY RESHARD moves live traffic onto a new set of shards: package migrate
// copies the data and keeps it in step; at the cutover, inside the write
// barrier, the proxy persists the new table (the point of no return) and
// swaps its route. Clients keep their connections throughout.

type reshards struct {
	mu     sync.Mutex
	job    *migrate.ReshardJob
	shards []string // the running job's, both tables' (failover)
}

// resharding reports whether a reshard job is running.
func (p *Plane) resharding() bool {
	p.reshard.mu.Lock()
	defer p.reshard.mu.Unlock()
	return p.reshard.job != nil && !reshardEnded(p.reshard.job.Status().State)
}

func reshardEnded(s migrate.ReshardState) bool {
	return s == migrate.ReshardDone || s == migrate.ReshardAborted || s == migrate.ReshardFailed
}

// reshardAdmin serves PROXY RESHARD TARGET... [MANUAL] [FLUSH] [FORCE]
// [RATE keys/s] [AUTH password | AUTH2 username password], STATUS, ABORT,
// CUTOVER and RATE keys/s (of the running job's copy).
func (p *Plane) reshardAdmin(args [][]byte, proto int) []byte {
	if len(args) == 1 {
		p.reshard.mu.Lock()
		job := p.reshard.job
		p.reshard.mu.Unlock()
		switch {
		case wire.EqualFold(args[0], "status"):
			if job == nil {
				if e := p.cfg.Etcd; e != nil {
					// a reshard another member of the group runs, or ran
					if text, ok := e.reshardStatus(p.ctx); ok {
						return wire.AppendVerbatim(nil, text, proto)
					}
				}
				return wire.AppendVerbatim(nil, "state:none\r\n", proto)
			}
			var b strings.Builder
			job.Status().WriteInfo(&b)
			return wire.AppendVerbatim(nil, b.String(), proto)
		case wire.EqualFold(args[0], "abort"), wire.EqualFold(args[0], "cutover"):
			if job == nil {
				return wire.AppendError(nil, "ERR no reshard has run")
			}
			var err error
			if wire.EqualFold(args[0], "abort") {
				err = job.Abort()
			} else {
				err = job.Cutover()
			}
			if err != nil {
				return wire.AppendError(nil, "ERR "+err.Error())
			}
			return wire.AppendStatus(nil, "OK")
		}
	}
	if len(args) == 2 && wire.EqualFold(args[0], "rate") {
		p.reshard.mu.Lock()
		job := p.reshard.job
		p.reshard.mu.Unlock()
		n, err := strconv.ParseInt(string(args[1]), 10, 64)
		switch {
		case err != nil || n < 0:
			return wire.AppendError(nil, "ERR RATE takes a number of keys per second (0: no pace)")
		case job == nil || reshardEnded(job.Status().State):
			return wire.AppendError(nil, "ERR no reshard is running")
		}
		if err := job.SetRate(n); err != nil {
			return wire.AppendError(nil, "ERR "+err.Error())
		}
		return wire.AppendStatus(nil, "OK")
	}
	if len(args) == 0 {
		return wire.AppendError(nil, "ERR wrong arguments for PROXY RESHARD. Try PROXY HELP.")
	}
	return jobReply(p.startReshard(args))
}

func (p *Plane) startReshard(args [][]byte) (*migrate.ReshardJob, error) {
	ta, err := parseTargetArgs(args, "manual", "flush", "force", "rate")
	if err != nil {
		return nil, err
	}
	if p.cfg.StateDir == "" {
		return nil, errors.New("a reshard needs a state directory to persist the new table (reshard proxy --state-dir)")
	}
	p.reshard.mu.Lock()
	defer p.reshard.mu.Unlock()
	if p.reshard.job != nil && !reshardEnded(p.reshard.job.Status().State) {
		return nil, errors.New("a reshard is already running; see PROXY RESHARD STATUS")
	}
	if p.snapshotRunning() {
		return nil, errors.New("a snapshot is running; try again when it is done")
	}
	if e := p.cfg.Etcd; e != nil {
		addr, err := e.groupReshard(p.ctx, p.srv.AnnounceAddr())
		if err != nil {
			return nil, err
		}
		if addr != "" {
			return nil, errors.New("proxy " + addr + " of the group is running a reshard; see PROXY RESHARD STATUS")
		}
	}
	shards, err := router.ParseShardArgs(ta.targets)
	if err != nil {
		return nil, err
	}
	cur := p.srv.Route()
	to, err := router.NewTable(cur.Table().Epoch()+1, shards)
	if err != nil {
		return nil, err
	}
	c := &cutover{p: p, from: cur, force: ta.options["force"]}
	if !c.force {
		if peers := p.otherProxies(p.ctx, cur); len(peers) > 0 {
			return nil, peersError(peers)
		}
	}
	// The sources are the current table's shards, with its credentials;
	// the targets take what AUTH or AUTH2 gave, or the same.
	auth := ta.authOr(cur.Auth())
	c.to = p.srv.Prepare(to, auth)
	lifted := p.unfence(c.to)
	cfg := migrate.DefaultReshardConfig()
	cfg.Manual, cfg.Flush = ta.options["manual"], ta.options["flush"]
	cfg.KeepForkDelay = p.cfg.KeepForkDelay
	cfg.Rate = ta.rate
	cfg.RunID = p.srv.RunID()
	cfg.SourceUsername, cfg.SourcePassword = cur.Auth().Username, cur.Auth().Password
	cfg.TargetUsername, cfg.TargetPassword = auth.Username, auth.Password
	// the job dials addresses: sentinel:NAME shards are their primaries
	// now, and a failover of one aborts the job (failover)
	if cfg.From, err = p.srv.ResolveTable(p.ctx, cur.Table()); err == nil {
		cfg.To, err = p.srv.ResolveTable(p.ctx, to)
	}
	if err != nil {
		p.srv.Discard(c.to)
		p.lift(lifted)
		return nil, err
	}
	cfg.WorkDir = filepath.Join(p.cfg.StateDir, "reshard")
	cfg.Proxy = c
	cfg.Logger = p.log
	job, err := migrate.StartReshard(p.ctx, cfg)
	if err != nil {
		p.srv.Discard(c.to)
		p.lift(lifted) // fenced again: the rollback did not start
		return nil, err
	}
	p.reshard.job = job
	p.reshard.shards = append(cur.Table().Addrs(), to.Addrs()...)
	p.watch(func() { c.afterJob(job) })
	if e := p.cfg.Etcd; e != nil {
		// before the reply: from then on, the other members refuse a
		// reshard of their own
		e.putStatus(p.srv.AnnounceAddr(), job)
		p.watch(func() { e.publishStatus(p.ctx, p.srv.AnnounceAddr(), job) })
	}
	return job, nil
}

// cutover is what the reshard job needs of the proxy (migrate.Proxy): the
// barrier, the fence of the shards it leaves (Seal) and the commit. One
// is made per PROXY RESHARD.
type cutover struct {
	p     *Plane
	from  proxy.Route // the route the reshard started on
	to    proxy.Route // the new table's, prepared
	force bool        // FORCE: no look for other proxies

	// fenced is set by Seal inside the barrier, from the job's
	// goroutine, and read by afterJob once the job is done.
	fenced []fence
	// jobRev is the revision the group's cutover job was written at in
	// etcd (set by Pause), which Commit requires; 0 without one.
	jobRev int64
}

// Pause closes the proxy's write barrier.
// With etcd, every other member of the group closes its barrier too
// (etcd_cutover.go) before Pause returns.
func (co *cutover) Pause(ctx context.Context) (func(), error) {
	resume, err := co.p.srv.Pause(ctx)
	if err != nil || co.p.cfg.Etcd == nil {
		return resume, err
	}
	// unique: the acks of an earlier attempt are not this one's
	job := co.p.srv.RunID()[:8] + "-" + strconv.FormatUint(co.to.Table().Epoch(), 10) + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	lift, jobRev, err := co.p.cfg.Etcd.pauseMembers(ctx, co.p, job, co.from.Table().Epoch(), resume)
	if err != nil {
		resume()
		return nil, err
	}
	co.jobRev = jobRev
	return lift, nil
}

// Seal looks for other proxies once more (one that connected while the
// job ran is caught before the cut), then fences the shards the new table
// leaves.
func (co *cutover) Seal(ctx context.Context) (func(), error) {
	if !co.force {
		if peers := co.p.otherProxies(ctx, co.from); len(peers) > 0 {
			return nil, peersError(peers)
		}
	}
	co.fenced = co.p.fenceLeaving(co.from, co.to, deadlineWithin(ctx, co.p.srv.DialTimeout()))
	return func() {
		co.p.lift(co.fenced)
		co.fenced = nil
	}, nil
}

// Commit is the cutover's point of no return, inside the barrier: it
// persists the new table's credentials, then the table (a crash before
// that comes back on the old table), and swaps the route.
func (co *cutover) Commit(ctx context.Context) error {
	p := co.p
	if p.srv.Route().Table() != co.from.Table() {
		return errors.New("the routing table changed since the reshard started")
	}
	to := co.to.Table()
	if e := p.cfg.Etcd; e != nil {
		return co.commitEtcd(ctx, e)
	}
	if err := p.persistAuth(to, co.to.Auth()); err != nil {
		return err // the persisted table is still the old one
	}
	if err := router.Save(p.cfg.StateDir, to); err != nil {
		return err
	}
	p.srv.SwapTable(co.to)
	p.dropStaleAuth(to)
	return nil
}

// commitEtcd is Commit for a proxy that shares its table through etcd:
// the new table, with its shards' credentials, replaces the old in one
// transaction, and the local table file is only a copy.
func (co *cutover) commitEtcd(ctx context.Context, e *Etcd) error {
	p := co.p
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.commit(cutoverCtx(ctx), co.from.Table(), co.to.Table(), co.to.Auth(), co.jobRev); err != nil {
		if errors.Is(err, migrate.ErrCommitUnknown) {
			// the fence stays (the job does not unseal): etcd's table
			// decides, once this proxy can read it
			e.stopServing(p, "the cutover's commit not answered", zap.Error(err))
		}
		return err
	}
	p.srv.SwapTable(co.to)
	if err := router.Save(p.cfg.StateDir, co.to.Table()); err != nil {
		p.log.Warn("local copy of the routing table not saved", zap.Error(err))
	}
	return nil
}

// afterJob closes the connections prepared for a job's table if it ended
// without a cutover (a refused target would otherwise be redialled for as
// long as the proxy runs), and says which old shards stay fenced if it cut
// over.
func (co *cutover) afterJob(job *migrate.ReshardJob) {
	<-job.Done() // the job ends at the latest when the plane closes
	if job.Status().State != migrate.ReshardDone {
		co.p.srv.Discard(co.to)
		return
	}
	for _, f := range co.fenced {
		undo := "CONFIG SET min-replicas-to-write " + string(f.was)
		if f.lagOff() {
			undo += " min-replicas-max-lag 0"
		}
		co.p.log.Info("retired shard fenced: it refuses writes (NOREPLICAS) until "+undo, zap.String("shard", f.sh.Addr()))
	}
}

// reshardInfo adds the running or last reshard to INFO proxy.
func (p *Plane) reshardInfo(field func(string, any)) {
	p.reshard.mu.Lock()
	job := p.reshard.job
	p.reshard.mu.Unlock()
	if job == nil {
		return
	}
	st := job.Status()
	field("reshard_state", st.State)
	field("reshard_lag_bytes", st.LagBytes)
	field("reshard_lag_ms", st.LagTime.Milliseconds())
	field("reshard_pause_us", st.PauseUS)
}
