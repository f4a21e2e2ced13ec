package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// PROXY RESHARD moves live traffic onto a new set of shards: package migrate
// copies the data and keeps it in step; at the cutover, inside the write
// barrier, the proxy persists the new table (the point of no return) and
// swaps its route. Clients keep their connections throughout.

type reshards struct {
	mu  sync.Mutex
	job *migrate.ReshardJob
}

// resharding reports whether a reshard job is running.
func (srv *Server) resharding() bool {
	srv.reshard.mu.Lock()
	defer srv.reshard.mu.Unlock()
	return srv.reshard.job != nil && !reshardEnded(srv.reshard.job.Status().State)
}

func reshardEnded(s migrate.ReshardState) bool {
	return s == migrate.ReshardDone || s == migrate.ReshardAborted || s == migrate.ReshardFailed
}

// reshardAdmin serves PROXY RESHARD TARGET... [MANUAL] [FLUSH] [FORCE]
// [AUTH password | AUTH2 username password], STATUS, ABORT and CUTOVER.
func (srv *Server) reshardAdmin(args [][]byte, proto int) []byte {
	if len(args) == 1 {
		srv.reshard.mu.Lock()
		job := srv.reshard.job
		srv.reshard.mu.Unlock()
		switch {
		case equalFold(args[0], "status"):
			if job == nil {
				return wire.AppendVerbatim(nil, "state:none\r\n", proto)
			}
			var b strings.Builder
			job.Status().WriteInfo(&b)
			return wire.AppendVerbatim(nil, b.String(), proto)
		case equalFold(args[0], "abort"), equalFold(args[0], "cutover"):
			if job == nil {
				return wire.AppendError(nil, "ERR no reshard has run")
			}
			var err error
			if equalFold(args[0], "abort") {
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
	if len(args) == 0 {
		return wire.AppendError(nil, "ERR wrong arguments for PROXY RESHARD. Try PROXY HELP.")
	}
	job, err := srv.startReshard(args)
	if err != nil {
		return appendJobError(err)
	}
	return resp.AppendBulkString(nil, job.ID())
}

func (srv *Server) startReshard(args [][]byte) (*migrate.ReshardJob, error) {
	ta, err := parseTargetArgs(args, "manual", "flush", "force")
	if err != nil {
		return nil, err
	}
	if srv.cfg.StateDir == "" {
		return nil, errors.New("a reshard needs a state directory to persist the new table (reshard proxy --state-dir)")
	}
	srv.reshard.mu.Lock()
	defer srv.reshard.mu.Unlock()
	if srv.reshard.job != nil && !reshardEnded(srv.reshard.job.Status().State) {
		return nil, errors.New("a reshard is already running; see PROXY RESHARD STATUS")
	}
	if srv.snapshotRunning() {
		return nil, errors.New("a snapshot is running; try again when it is done")
	}
	shards, err := router.ParseShardArgs(ta.targets)
	if err != nil {
		return nil, err
	}
	cur := srv.route.Load()
	to, err := router.NewTable(cur.table.Epoch()+1, shards)
	if err != nil {
		return nil, err
	}
	force := ta.options["force"]
	if !force {
		if peers := srv.otherProxies(srv.ctx, cur); len(peers) > 0 {
			return nil, peersError(peers)
		}
	}
	// The sources are the current table's shards, with its credentials;
	// the targets take what AUTH or AUTH2 gave, or the same.
	auth := ta.authOr(cur.auth)
	prep := srv.prepare(to, auth)
	lifted := srv.unfence(prep.r)
	cfg := migrate.DefaultReshardConfig()
	cfg.Manual, cfg.Flush = ta.options["manual"], ta.options["flush"]
	cfg.RunID = srv.runID
	cfg.SourceUsername, cfg.SourcePassword = cur.auth.username, cur.auth.password
	cfg.TargetUsername, cfg.TargetPassword = auth.username, auth.password
	cfg.From, cfg.To = cur.table, to
	cfg.WorkDir = filepath.Join(srv.cfg.StateDir, "reshard")
	cfg.Barrier = srv
	cfg.Logger = srv.log
	var fenced []fence // set inside the barrier; read once the job is done
	cfg.Seal = func(ctx context.Context) (func(), error) {
		if !force {
			// one that connected while the job ran, caught before the cut
			if peers := srv.otherProxies(ctx, cur); len(peers) > 0 {
				return nil, peersError(peers)
			}
		}
		fenced = srv.fenceLeaving(cur, prep.r, deadlineWithin(ctx, srv.cfg.DialTimeout))
		return func() {
			srv.lift(fenced)
			fenced = nil
		}, nil
	}
	cfg.Commit = func(context.Context) error { return srv.commit(cur.table, prep) }
	job, err := migrate.StartReshard(srv.ctx, cfg)
	if err != nil {
		srv.discard(prep)
		srv.lift(lifted) // fenced again: the rollback did not start
		return nil, err
	}
	srv.reshard.job = job
	go srv.afterJob(job, prep, &fenced)
	return job, nil
}

// commit is the cutover's point of no return, inside the barrier: it
// persists the new table's credentials, then the table (a crash before
// that comes back on the old table), and swaps the route.
func (srv *Server) commit(from *router.Table, prep *Prepared) error {
	if srv.route.Load().table != from {
		return errors.New("the routing table changed since the reshard started")
	}
	to := prep.r.table
	if err := srv.persistAuth(to, prep.r.auth); err != nil {
		return err // the persisted table is still the old one
	}
	if err := router.Save(srv.cfg.StateDir, to); err != nil {
		return err
	}
	srv.SwapTable(prep)
	srv.dropStaleAuth(to)
	return nil
}

// afterJob closes the connections prepared for a job's table if it ended
// without a cutover (a refused target would otherwise be redialled for as
// long as the proxy runs), and says which old shards stay fenced if it cut
// over. fenced is set inside the barrier, before the job ends.
func (srv *Server) afterJob(job *migrate.ReshardJob, prep *Prepared, fenced *[]fence) {
	<-job.Done() // the job ends at the latest when srv.ctx does
	if job.Status().State != migrate.ReshardDone {
		srv.discard(prep)
		return
	}
	for _, f := range *fenced {
		undo := "CONFIG SET min-replicas-to-write " + string(f.was)
		if f.lagOff() {
			undo += " min-replicas-max-lag 0"
		}
		srv.log.Info("retired shard fenced: it refuses writes (NOREPLICAS) until "+undo, zap.String("shard", f.pl.addr))
	}
}

// The old shards of a cutover are kept intact, for a rollback, and no
// longer served: a write one of them takes after the cut, from a proxy
// that still routes by the old table or an application connected to it
// directly, would be lost to the new layout. So they are fenced inside the
// barrier, before the cut is read (the job's Seal): min-replicas-to-write
// is set higher than any shard's replica count (and min-replicas-max-lag,
// if 0, which turns the check off, to 10), and each refuses every write
// with -NOREPLICAS while reads still work. A write an old shard took is
// therefore before the cut, and reaches the new shards, or was refused.
// A job that does not commit sets both back as they were before the
// barrier lifts. The fence lasts until CONFIG SET min-replicas-to-write
// (the value before, which the log gives) or a restart of the shard, and
// a reshard onto the shard lifts it (unfence).
var (
	fenceValue  = []byte("2147483647")
	minReplicas = []byte("min-replicas-to-write")
	maxLag      = []byte("min-replicas-max-lag")
)

// fence is one fenced shard, and its settings before.
type fence struct {
	pl             *pool
	was, wasMaxLag []byte
}

// getShardConfig reads one of a shard's settings.
func getShardConfig(pl *pool, name []byte, by time.Time) ([]byte, error) {
	reply := pl.ded.doBy(resp.AppendCommand(nil, []byte("CONFIG"), []byte("GET"), name), by)
	if wire.IsError(reply) {
		return nil, errors.New(string(bytes.TrimSpace(reply[1:])))
	}
	if elems, ok := wire.ArrayElems(reply, nil); ok && len(elems) == 2 {
		if v, ok := wire.BulkText(elems[1]); ok {
			return bytes.Clone(v), nil
		}
	}
	return nil, fmt.Errorf("CONFIG GET %s: unexpected reply", name)
}

// setShardConfig sets one of a shard's settings.
func setShardConfig(pl *pool, name, v []byte, by time.Time) error {
	reply := pl.ded.doBy(resp.AppendCommand(nil, []byte("CONFIG"), []byte("SET"), name, v), by)
	if wire.IsError(reply) {
		return errors.New(string(bytes.TrimSpace(reply[1:])))
	}
	return nil
}

// lagOff reports whether min-replicas-max-lag was 0, which turns the check
// off: the fence sets it to 10.
func (f *fence) lagOff() bool { return bytes.Equal(f.wasMaxLag, []byte("0")) }

// set fences f's shard, once f holds its settings before; a failure leaves
// the shard as it was.
func (f *fence) set(by time.Time) error {
	if !f.lagOff() {
		return setShardConfig(f.pl, minReplicas, fenceValue, by)
	}
	if err := setShardConfig(f.pl, maxLag, []byte("10"), by); err != nil {
		return err
	}
	if err := setShardConfig(f.pl, minReplicas, fenceValue, by); err != nil {
		// with the lag on, an operator's own min-replicas-to-write would
		// start refusing writes
		setShardConfig(f.pl, maxLag, f.wasMaxLag, by)
		return err
	}
	return nil
}

// lift sets f's shard back as it was.
func (f *fence) lift(by time.Time) error {
	if err := setShardConfig(f.pl, minReplicas, f.was, by); err != nil {
		return err
	}
	return setShardConfig(f.pl, maxLag, f.wasMaxLag, by)
}

// fenceLeaving fences, all at once and by the deadline, the shards of old
// that now does not have, and returns the fences it set. A shard that
// cannot be fenced (CONFIG renamed or denied) is logged and left: writes
// sent to it directly are then not refused.
func (srv *Server) fenceLeaving(old, now *route, by time.Time) []fence {
	got := make([]*fence, len(old.pools))
	var wg sync.WaitGroup
	for i, pl := range old.pools {
		if slices.Contains(now.table.Addrs(), pl.addr) {
			continue
		}
		wg.Go(func() {
			f := &fence{pl: pl}
			var err error
			if f.was, err = getShardConfig(pl, minReplicas, by); err == nil {
				if f.wasMaxLag, err = getShardConfig(pl, maxLag, by); err == nil {
					err = f.set(by)
				}
			}
			if err != nil {
				srv.log.Warn("could not fence a retiring shard: writes sent to it directly are not refused",
					zap.String("shard", pl.addr), zap.Error(err))
				return
			}
			got[i] = f
		})
	}
	wg.Wait()
	var out []fence
	for _, f := range got {
		if f != nil {
			out = append(out, *f)
		}
	}
	return out
}

// lift sets every fence's shard back as it was.
func (srv *Server) lift(fs []fence) {
	by := time.Now().Add(srv.cfg.DialTimeout)
	for _, f := range fs {
		if err := f.lift(by); err != nil {
			srv.log.Error("could not lift a fence: the shard refuses writes (NOREPLICAS) until CONFIG SET min-replicas-to-write "+string(f.was),
				zap.String("shard", f.pl.addr), zap.Error(err))
		}
	}
}

// unfence lifts the fence from the shards of r that have it, before a
// reshard writes to them (a rollback onto them), and returns them as
// fences, to be set again if the reshard does not start.
func (srv *Server) unfence(r *route) []fence {
	by := time.Now().Add(srv.cfg.DialTimeout)
	var lifted []fence
	for _, pl := range r.pools {
		if v, err := getShardConfig(pl, minReplicas, by); err != nil || !bytes.Equal(v, fenceValue) {
			continue
		}
		lag, err := getShardConfig(pl, maxLag, by)
		if err != nil {
			continue
		}
		if err := setShardConfig(pl, minReplicas, []byte("0"), by); err == nil {
			srv.log.Info("fence lifted from a former shard, a reshard target now", zap.String("shard", pl.addr))
			lifted = append(lifted, fence{pl: pl, was: fenceValue, wasMaxLag: lag})
		}
	}
	return lifted
}
