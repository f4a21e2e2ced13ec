package control

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reshard/reshard/snapshot"
	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// BGSAVE on the proxy takes a consistent snapshot of every shard (package
// snapshot does the capture; the proxy gives it the write barrier). One job
// runs at a time; its status stays readable after it ends.

const saveRefused = "ERR SAVE is not supported by the proxy: it would block every shard. Use BGSAVE, which snapshots all shards at one point in time"

// snapshots tracks the proxy's snapshot jobs.
type snapshots struct {
	mu        sync.Mutex
	job       *snapshot.Job // the running or last job
	shards    []string      // its table's (failover)
	scheduled bool          // BGSAVE SCHEDULE while one ran
	lastSave  time.Time     // last successful snapshot
	// lastFailed: the last job that ended failed. Until a job ends, the
	// status is ok, as Redis's rdb_last_bgsave_status is before its first
	// BGSAVE completes (monitors alert on err).
	lastFailed bool
	lastTook   time.Duration
}

// store is where snapshots go; nil when snapshots are off.
func (p *Plane) store() *snapshot.Store { return p.snapStore }

var errSnapshotRunning = errors.New("ERR Background save already in progress")

// startSnapshot starts a job unless one runs.
func (p *Plane) startSnapshot(name string) (*snapshot.Job, error) {
	if p.store() == nil {
		return nil, errors.New("ERR snapshots need a state directory (reshard proxy --state-dir)")
	}
	if p.resharding() {
		return nil, errors.New("ERR a reshard is running; snapshot when it is done")
	}
	r := p.srv.Route() // the table and the credentials of its shards
	var warning string
	if peers := p.otherProxies(p.ctx, r); len(peers) > 0 {
		warning = peersWarning(peers)
	}
	sn := &p.snaps
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.job != nil && sn.job.Status().State == snapshot.StateRunning {
		return nil, errSnapshotRunning
	}
	cfg := snapshot.DefaultJobConfig()
	cfg.Store = p.store()
	cfg.KeepForkDelay = p.cfg.KeepForkDelay
	cfg.Name = name
	// the job dials addresses: sentinel:NAME shards are their primaries
	// now, and a failover of one cancels the job (failover)
	table, err := p.srv.ResolveTable(p.ctx, r.Table())
	if err != nil {
		return nil, errors.New("ERR " + err.Error())
	}
	cfg.Table = table
	cfg.Warning = warning
	cfg.Barrier = p.srv
	cfg.Logger = p.log
	cfg.Username, cfg.Password = r.Auth().Username, r.Auth().Password
	job, err := snapshot.StartJob(p.ctx, cfg)
	if err != nil {
		return nil, errors.New("ERR " + err.Error())
	}
	sn.job = job
	sn.shards = r.Table().Addrs()
	if warning != "" {
		p.log.Warn("snapshot " + job.ID() + ": " + warning)
	}
	go p.watchSnapshot(job)
	return job, nil
}

// watchSnapshot records the end of a job and starts a scheduled one.
func (p *Plane) watchSnapshot(job *snapshot.Job) {
	select {
	case <-job.Done():
	case <-p.ctx.Done():
		return
	}
	st := job.Status()
	sn := &p.snaps
	sn.mu.Lock()
	sn.lastFailed = st.State != snapshot.StateDone
	sn.lastTook = st.Finished.Sub(st.Started)
	if !sn.lastFailed {
		sn.lastSave = st.Finished
	}
	again := sn.scheduled
	sn.scheduled = false
	sn.mu.Unlock()
	if st.State == snapshot.StateDone && p.cfg.SnapshotRetain > 0 {
		p.retain()
	}
	if again {
		p.startSnapshot("")
	}
}

// retain deletes the oldest snapshots beyond Config.SnapshotRetain, named
// ones only with SnapshotRetainNamed.
func (p *Plane) retain() {
	all, err := p.store().List(p.ctx) // oldest first
	if err != nil {
		p.log.Warn("snapshot retention: some snapshots cannot be read; they are neither counted nor deleted", zap.Error(err))
	}
	var counted []snapshot.Manifest
	for _, m := range all {
		if m.Name == "" || p.cfg.SnapshotRetainNamed {
			counted = append(counted, m)
		}
	}
	for len(counted) > p.cfg.SnapshotRetain {
		m := counted[0]
		counted = counted[1:]
		if err := p.store().Delete(p.ctx, m.ID); err != nil {
			p.log.Warn("snapshot retention: delete failed", zap.String("snapshot", m.ID), zap.Error(err))
			continue
		}
		p.log.Info("snapshot deleted by retention", zap.String("snapshot", m.ID), zap.String("name", m.Name),
			zap.Int("retain", p.cfg.SnapshotRetain))
	}
}

// snapshotEvery takes a snapshot every Config.SnapshotEvery until Close;
// one still running when the next is due makes it wait for it.
func (p *Plane) snapshotEvery() {
	tick := time.NewTicker(p.cfg.SnapshotEvery)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		_, err := p.startSnapshot("")
		switch {
		case err == errSnapshotRunning:
			p.snaps.mu.Lock()
			p.snaps.scheduled = true
			p.snaps.mu.Unlock()
		case err != nil:
			p.log.Warn("scheduled snapshot not started", zap.Error(err))
		}
	}
}

// bgsave serves BGSAVE [SCHEDULE] (the data plane checked its arity).
func (p *Plane) bgsave(args [][]byte) []byte {
	schedule := len(args) == 2 && wire.EqualFold(args[1], "schedule")
	if len(args) == 2 && !schedule {
		return wire.AppendError(nil, "ERR syntax error")
	}
	_, err := p.startSnapshot("")
	switch {
	case err == nil:
		return wire.AppendStatus(nil, "Background saving started")
	case err == errSnapshotRunning && schedule:
		p.snaps.mu.Lock()
		p.snaps.scheduled = true
		p.snaps.mu.Unlock()
		return wire.AppendStatus(nil, "Background saving scheduled")
	}
	return wire.AppendError(nil, err.Error())
}

// lastsave serves LASTSAVE: the end of the last snapshot that completed.
func (p *Plane) lastsave() []byte {
	p.snaps.mu.Lock()
	t := p.snaps.lastSave
	p.snaps.mu.Unlock()
	if t.IsZero() {
		t = p.srv.Started() // as Redis: the start time until a save completes
	}
	return wire.AppendInt(nil, t.Unix())
}

func (p *Plane) snapshotRunning() bool {
	p.snaps.mu.Lock()
	defer p.snaps.mu.Unlock()
	return p.snaps.job != nil && p.snaps.job.Status().State == snapshot.StateRunning
}

// persistenceInfo renders the INFO persistence fields Redis tools read.
// The RDB fields are about the proxy's own snapshots (BGSAVE), except
// rdb_changes_since_last_save, the sum of the shards' own counters: the
// writes their own persistence has not saved yet, the figure a monitor
// watches for data at risk (a snapshot of the proxy reads the shards by
// replication and resets none of them). The AOF fields are the shards'
// (shards holds each shard's INFO fields, empty for one that did not
// answer): aof_enabled is 1 only when every shard has AOF on, since a
// monitor that checks it must not be told the data is logged when a shard
// logs none of its part; aof_enabled_shards counts those that have it.
// A shard's rewrite or write error shows, as Redis shows its own.
func (p *Plane) persistenceInfo(field func(string, any), shards []map[string]string) {
	sn := &p.snaps
	sn.mu.Lock()
	running := sn.job != nil && sn.job.Status().State == snapshot.StateRunning
	last := sn.lastSave
	failed, took := sn.lastFailed, sn.lastTook
	sn.mu.Unlock()
	if last.IsZero() {
		last = p.srv.Started()
	}
	var loading, changes, aof, rewriting int64
	aofWrite, aofRewrite := "ok", "ok"
	for _, sh := range shards {
		loading = max(loading, atoi(sh["loading"]))
		changes += atoi(sh["rdb_changes_since_last_save"])
		aof += atoi(sh["aof_enabled"])
		rewriting = max(rewriting, atoi(sh["aof_rewrite_in_progress"]))
		if v := sh["aof_last_write_status"]; v != "" && v != "ok" {
			aofWrite = v
		}
		if v := sh["aof_last_bgrewrite_status"]; v != "" && v != "ok" {
			aofRewrite = v
		}
	}
	field("loading", loading)
	field("async_loading", 0)
	field("rdb_changes_since_last_save", changes)
	field("rdb_bgsave_in_progress", b2i(running))
	field("rdb_last_save_time", last.Unix())
	status := "ok"
	if failed {
		status = "err"
	}
	field("rdb_last_bgsave_status", status)
	secs := int64(-1)
	if took > 0 {
		secs = int64(took.Seconds())
	}
	field("rdb_last_bgsave_time_sec", secs)
	field("aof_enabled", b2i(len(shards) > 0 && aof == int64(len(shards))))
	field("aof_enabled_shards", aof)
	field("aof_rewrite_in_progress", rewriting)
	field("aof_last_bgrewrite_status", aofRewrite)
	field("aof_last_write_status", aofWrite)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// snapshotAdmin serves PROXY SNAPSHOT [NAME] | STATUS [ID|NAME] | LIST |
// DELETE ID|NAME.
func (p *Plane) snapshotAdmin(args [][]byte, proto int) []byte {
	sub := ""
	if len(args) > 0 {
		sub = strings.ToLower(string(args[0]))
	}
	switch {
	case sub == "status" && len(args) <= 2:
		if len(args) == 2 {
			if p.store() == nil {
				return wire.AppendError(nil, "ERR snapshots need a state directory (reshard proxy --state-dir)")
			}
			found, err := p.store().Find(p.ctx, string(args[1]))
			if err != nil {
				return wire.AppendError(nil, "ERR "+err.Error())
			}
			// a name stands for the newest snapshot of that name
			m := found[len(found)-1]
			return wire.AppendVerbatim(nil, m.Status(p.store().Location(m.ID)).Info(), proto)
		}
		p.snaps.mu.Lock()
		job := p.snaps.job
		p.snaps.mu.Unlock()
		if job == nil {
			return wire.AppendVerbatim(nil, "state:none\r\n", proto)
		}
		return wire.AppendVerbatim(nil, job.Status().Info(), proto)
	case sub == "list" && len(args) == 1:
		if p.store() == nil {
			return resp.AppendArrayHeader(nil, 0)
		}
		list, err := p.store().List(p.ctx)
		if err != nil {
			return wire.AppendError(nil, "ERR "+err.Error())
		}
		b := resp.AppendArrayHeader(nil, len(list))
		for _, m := range list {
			b = resp.AppendBulkString(b, "id="+m.ID+" name="+m.Name+" created="+m.Created.UTC().Format(time.RFC3339)+
				" epoch="+strconv.FormatUint(m.Epoch, 10)+" shards="+strconv.Itoa(len(m.Shards))+
				" keys="+strconv.FormatInt(m.Keys, 10)+" bytes="+strconv.FormatInt(m.Bytes, 10))
		}
		return b
	case sub == "delete" && len(args) == 2:
		if p.store() == nil {
			return wire.AppendError(nil, "ERR snapshots need a state directory (reshard proxy --state-dir)")
		}
		found, err := p.store().Find(p.ctx, string(args[1]))
		if err != nil {
			return wire.AppendError(nil, "ERR "+err.Error())
		}
		if len(found) > 1 {
			// deleting the newest of several would surprise as often as not
			ids := make([]string, len(found))
			for i, m := range found {
				ids[i] = m.ID
			}
			return wire.AppendError(nil, "ERR "+strconv.Itoa(len(found))+" snapshots are named "+string(args[1])+" ("+strings.Join(ids, ", ")+"); delete one by its id")
		}
		if err := p.store().Delete(p.ctx, found[0].ID); err != nil {
			return wire.AppendError(nil, "ERR "+err.Error())
		}
		return wire.AppendStatus(nil, "OK")
	case len(args) <= 1:
		name := ""
		if len(args) == 1 {
			name = string(args[0])
		}
		job, err := p.startSnapshot(name)
		if err != nil {
			return wire.AppendError(nil, err.Error())
		}
		return resp.AppendBulkString(nil, job.ID())
	}
	return wire.AppendError(nil, "ERR wrong arguments for PROXY SNAPSHOT. Try PROXY HELP.")
}

// atoi reads a shard's INFO number; a field it did not give counts 0.
func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
