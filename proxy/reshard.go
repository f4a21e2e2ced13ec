package proxy

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
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
				return appendVerbatim(nil, "state:none\r\n", proto)
			}
			var b strings.Builder
			job.Status().WriteInfo(&b)
			return appendVerbatim(nil, b.String(), proto)
		case equalFold(args[0], "abort"), equalFold(args[0], "cutover"):
			if job == nil {
				return appendError(nil, "ERR no reshard has run")
			}
			var err error
			if equalFold(args[0], "abort") {
				err = job.Abort()
			} else {
				err = job.Cutover()
			}
			if err != nil {
				return appendError(nil, "ERR "+err.Error())
			}
			return appendStatus(nil, "OK")
		}
	}
	if len(args) == 0 {
		return appendError(nil, "ERR wrong arguments for PROXY RESHARD. Try PROXY HELP.")
	}
	job, err := srv.startReshard(args)
	if err != nil {
		return appendError(nil, "ERR "+err.Error())
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
	srv.unfence(prep.r)
	cfg := migrate.DefaultReshardConfig()
	cfg.Manual, cfg.Flush = ta.options["manual"], ta.options["flush"]
	cfg.SourceUsername, cfg.SourcePassword = cur.auth.username, cur.auth.password
	cfg.TargetUsername, cfg.TargetPassword = auth.username, auth.password
	cfg.From, cfg.To = cur.table, to
	cfg.WorkDir = filepath.Join(srv.cfg.StateDir, "reshard")
	cfg.Barrier = srv
	cfg.Logger = srv.log
	cfg.Commit = func(ctx context.Context) error {
		if !force {
			// one that connected while the job ran, caught before the point of no return
			if peers := srv.otherProxies(ctx, cur); len(peers) > 0 {
				return peersError(peers)
			}
		}
		return srv.commit(cur.table, prep)
	}
	job, err := migrate.StartReshard(srv.ctx, cfg)
	if err != nil {
		srv.discard(prep)
		return nil, err
	}
	srv.reshard.job = job
	go srv.afterJob(job, cur, prep)
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

// afterJob fences the old shards once a job has cut over, and closes the
// connections prepared for its table if it ended without: a refused target
// would otherwise be redialled for as long as the proxy runs.
func (srv *Server) afterJob(job *migrate.ReshardJob, old *route, prep *Prepared) {
	<-job.Done() // the job ends at the latest when srv.ctx does
	if job.Status().State != migrate.ReshardDone {
		srv.discard(prep)
		return
	}
	srv.fence(old, prep.r)
}

// The old shards of a cutover are kept intact, for a rollback, and no
// longer served: a write one of them takes now, from a proxy that still
// routes by the old table or an application connected to it directly, is
// lost to the new layout. So they are fenced: min-replicas-to-write is set
// higher than any shard's replica count, and each refuses every write with
// -NOREPLICAS while reads still work. The fence lasts until CONFIG SET
// min-replicas-to-write 0 or a restart of the shard, and a reshard onto
// the shard lifts it (unfence). Set once the barrier has lifted, it leaves
// a window of a few milliseconds.
var (
	fenceValue   = []byte("2147483647")
	minReplicas  = []byte("min-replicas-to-write")
	cmdFence     = resp.AppendCommand(nil, []byte("CONFIG"), []byte("SET"), minReplicas, fenceValue)
	cmdUnfence   = resp.AppendCommand(nil, []byte("CONFIG"), []byte("SET"), minReplicas, []byte("0"))
	cmdGetFenced = resp.AppendCommand(nil, []byte("CONFIG"), []byte("GET"), minReplicas)
)

// fence fences the shards of old that now does not have.
func (srv *Server) fence(old, now *route) {
	for _, pl := range old.pools {
		if slices.Contains(now.table.Addrs(), pl.addr) {
			continue
		}
		if reply := pl.ded.doBy(cmdFence, time.Now().Add(srv.cfg.DialTimeout)); isError(reply) {
			srv.log.Warn("could not fence a retired shard: writes sent to it directly are not refused",
				zap.String("shard", pl.addr), zap.ByteString("error", bytes.TrimSpace(reply[1:])))
			continue
		}
		srv.log.Info("retired shard fenced: it refuses writes (NOREPLICAS) until CONFIG SET min-replicas-to-write 0",
			zap.String("shard", pl.addr))
	}
}

// unfence lifts the fence from the shards of r that have it, before a
// reshard writes to them (a rollback onto them).
func (srv *Server) unfence(r *route) {
	for _, pl := range r.pools {
		by := time.Now().Add(srv.cfg.DialTimeout)
		elems, ok := arrayElems(pl.ded.doBy(cmdGetFenced, by), nil)
		if !ok || len(elems) != 2 {
			continue
		}
		if v, ok := bulkText(elems[1]); !ok || !bytes.Equal(v, fenceValue) {
			continue
		}
		if reply := pl.ded.doBy(cmdUnfence, by); !isError(reply) {
			srv.log.Info("fence lifted from a former shard, a reshard target now", zap.String("shard", pl.addr))
		}
	}
}
