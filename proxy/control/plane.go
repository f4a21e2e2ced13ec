package control

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/internal/wire"
	"github.com/reshard/reshard/snapshot"
	"github.com/reshard/reshard/snapshot/objstore"
)

// Config holds the control plane's settings.
type Config struct {
	// StateDir is where a reshard persists the new table (the point of no
	// return), the new shards' credentials, and spools its data; empty
	// disables PROXY RESHARD.
	StateDir string
	// SnapshotDir is where BGSAVE writes snapshots (STATE_DIR/snapshots);
	// empty disables snapshots, unless SnapshotStore is set instead.
	SnapshotDir string
	// SnapshotStore, when set, is where snapshots go instead of
	// SnapshotDir: a bucket (--snapshot-store s3://BUCKET/PREFIX).
	SnapshotStore *snapshot.Store
	// KeepForkDelay leaves the shards' repl-diskless-sync-delay alone in
	// snapshots and reshards, which then wait for it; by default each
	// capture lowers it for its own handshake and sets it back.
	KeepForkDelay bool
	// S3 reaches the object store for snapshots in a bucket and for
	// PROXY RESTORE from s3:// sources; nil when none is configured.
	S3 *objstore.Client
	// SnapshotRetain, when positive, is how many snapshots are kept: after
	// each one that succeeds, the oldest beyond it are deleted. Named
	// snapshots (PROXY SNAPSHOT NAME) are kept and not counted unless
	// SnapshotRetainNamed.
	SnapshotRetain      int
	SnapshotRetainNamed bool
	// SnapshotEvery, when positive, takes a snapshot at that interval (a
	// running one makes the next wait for it, as BGSAVE SCHEDULE).
	SnapshotEvery time.Duration
	// ShardUsername and ShardPassword are the shard credentials the proxy
	// was given (--shard-user, --shard-password). A table whose shards
	// take these needs no credentials file (shardauth.go).
	ShardUsername, ShardPassword string
	// Etcd, when set, is the group of proxies this one shares its table
	// with (etcd.go); the plane runs the membership and closes it. Nil:
	// the proxy is alone, its table in StateDir.
	Etcd *Etcd
}

// Plane is the control plane of one proxy: its admin commands, its jobs
// (snapshots, restores, a reshard) and what a cutover persists. It is
// safe for concurrent use; every job goroutine it starts ends at Close.
type Plane struct {
	cfg Config
	srv *proxy.Server
	log *zap.Logger

	ctx    context.Context // ends at Close; every job runs within it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines that follow a job's end

	snapStore *snapshot.Store // nil: no snapshots
	snaps     snapshots       // BGSAVE and PROXY SNAPSHOT (snapshot.go)
	rest      restores        // PROXY RESTORE (restore.go)
	reshard   reshards        // PROXY RESHARD (reshard.go)
}

// New returns the control plane of srv and makes it srv's Controller.
// Call it before srv serves.
func New(cfg Config, srv *proxy.Server, log *zap.Logger) *Plane {
	if log == nil {
		log = zap.NewNop()
	}
	p := &Plane{cfg: cfg, srv: srv, log: log}
	if cfg.SnapshotStore != nil {
		p.snapStore = cfg.SnapshotStore
	} else if cfg.SnapshotDir != "" {
		p.snapStore = snapshot.DirStore(cfg.SnapshotDir)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	srv.SetController(p)
	srv.OnFailover(p.failover)
	if cfg.SnapshotEvery > 0 && p.store() != nil {
		p.watch(p.snapshotEvery)
	}
	if e := cfg.Etcd; e != nil {
		// no data served before the first lease and a read of the table
		srv.ServeUntil(time.Time{}, lostLease)
		e.pauses = &etcdPauses{e: e, srv: srv}
		srv.SharePauses(e.pauses)
		p.watch(func() { e.run(p.ctx, p) })
		p.watch(func() { e.follow(p.ctx, p) })
		p.watch(func() { e.participate(p.ctx, p) })
		p.watch(func() { e.followPauses(p.ctx, e.pauses) })
	}
	return p
}

// Close ends every running job (each stops as its context ends; a
// reshard not yet committed aborts and leaves the proxy on its table)
// and waits for the goroutines that follow them. It is safe to call more
// than once.
func (p *Plane) Close() error {
	p.cancel()
	p.wg.Wait()
	if p.cfg.Etcd != nil {
		return p.cfg.Etcd.Close()
	}
	return nil
}

// Command answers the commands the control plane owns
// (proxy.ControlCommands).
func (p *Plane) Command(proto int, args [][]byte) []byte {
	switch strings.ToLower(string(args[0])) {
	case "bgsave":
		return p.bgsave(args)
	case "save":
		return wire.AppendError(nil, saveRefused)
	case "lastsave":
		return p.lastsave()
	}
	return p.admin(proto, args)
}

// Info adds the snapshots' fields to INFO persistence and the reshard's
// to INFO proxy.
func (p *Plane) Info(section string, field func(string, any), shards []map[string]string) {
	switch section {
	case "persistence":
		p.persistenceInfo(field, shards)
	case "proxy":
		p.reshardInfo(field)
		if p.cfg.Etcd != nil {
			p.cfg.Etcd.info(field)
		}
	}
}

// Refusal refuses FLUSHALL and FLUSHDB while a reshard runs: the targets
// would have to replay them over other sources' keys.
func (p *Plane) Refusal(name string) string {
	if (name == "flushall" || name == "flushdb") && p.resharding() {
		return "ERR " + strings.ToUpper(name) + " is refused while a reshard runs (see PROXY RESHARD STATUS)"
	}
	if name == "debug|reload" {
		// a reload rewrites each shard's RDB file and reloads it: a
		// capture replicating from the shard must not see that
		switch {
		case p.resharding():
			return "ERR DEBUG RELOAD is refused while a reshard runs (see PROXY RESHARD STATUS)"
		case p.snapshotRunning():
			return "ERR DEBUG RELOAD is refused while a snapshot runs (see PROXY SNAPSHOT STATUS)"
		}
	}
	return ""
}

// watch runs fn in a goroutine Close waits for.
func (p *Plane) watch(fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
	}()
}

// failover stops a job that reads or writes the primary of a shard that
// is failing over (a sentinel:NAME shard): a reshard not yet committed
// aborts, a snapshot is canceled. The job dialed the old primary, which
// stops taking the proxy's writes: going on would miss them.
func (p *Plane) failover(addr string) {
	why := "shard " + addr + " is failing over (Sentinel)"
	p.reshard.mu.Lock()
	if job := p.reshard.job; job != nil && !reshardEnded(job.Status().State) && slices.Contains(p.reshard.shards, addr) {
		if err := job.AbortFor(why); err == nil {
			p.log.Warn("reshard aborted: "+why, zap.String("job", job.ID()))
		}
	}
	p.reshard.mu.Unlock()
	sn := &p.snaps
	sn.mu.Lock()
	if job := sn.job; job != nil && job.Status().State == snapshot.StateRunning && slices.Contains(sn.shards, addr) {
		job.CancelFor(why)
		p.log.Warn("snapshot canceled: "+why, zap.String("job", job.ID()))
	}
	sn.mu.Unlock()
}
