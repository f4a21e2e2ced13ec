package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/redis/go-redis/v9"
	"github.com/reshard/reshard/snapshot/rdb"
)

// preflight runs every check before anything is written: the sources are
// read in full (structure, checksums, databases, value types, tails), the
// targets are asked what they run and hold. It fills the report with the
// plan and returns a *PreflightError listing every problem found.
func (j *job) preflight(ctx context.Context) error {
	cfg := &j.cfg
	res := scanSources(j.srcs, j.table, cfg.BigKeyBytes, j.nowMs())
	j.scan = res
	problems := res.problems

	// Which database.
	dbs, desc := res.dbsWithData()
	names := func() string {
		var s []string
		for _, db := range dbs {
			s = append(s, desc[db])
		}
		return strings.Join(s, ", ")
	}
	switch {
	case cfg.DB >= 0:
		j.db = cfg.DB
		if len(dbs) > 0 && desc[cfg.DB] == "" {
			problems = append(problems, problemf(ErrMultipleDBs, "database %d holds no keys; the sources have data in database %s", cfg.DB, names()))
		}
	case len(dbs) > 1:
		problems = append(problems, problemf(ErrMultipleDBs, "the sources hold keys in databases %s; pick one with DB (--db N)", names()))
	case len(dbs) == 1:
		j.db = dbs[0]
	}
	j.rep.DB = j.db

	// Per source, for the chosen database.
	shares := make([]Share, j.table.NumShards())
	var need uint16
	var needWhat string
	j.skipRDB = make([]bool, len(res.sources))
	for i, ss := range res.sources {
		sr := SourceReport{RDB: ss.RDB, Tail: ss.Tail, RDBVersion: ss.version, Bytes: ss.size}
		if ss.Snapshot != "" {
			j.rep.Snapshot = ss.Snapshot
		}
		if ss.moduleAux != "" {
			problems = append(problems, problemf(ErrModuleType, "source %s holds auxiliary data of module type %q; modules are not restored", ss.RDB, ss.moduleAux))
		}
		if ss.tail != nil && ss.tail.err == nil {
			from, how := ss.tail.flushOffset(j.db)
			sr.TailFrom = from
			if td := ss.tail.byDB[j.db]; td != nil {
				sr.TailCommands = td.commands
				if td.unrouted != nil {
					problems = append(problems, &wrapped{sentinel: ErrUnroutable, cause: td.unrouted, msg: td.unrouted.Error()})
				}
			}
			if from > 0 {
				j.skipRDB[i] = true
				j.rep.Notes = append(j.rep.Notes, fmt.Sprintf("tail %s empties database %d (%s at offset %d): the keys of %s are not restored, the tail is applied from there",
					ss.Tail, j.db, how, from, ss.RDB))
			}
		}
		if d := ss.byDB[j.db]; d != nil {
			sr.Keys = d.keys + d.expired
			if d.module != "" {
				problems = append(problems, problemf(ErrModuleType, "source %s: %s; module values are not restored", ss.RDB, d.module))
			}
			if !j.skipRDB[i] {
				for t := range shares {
					shares[t].add(d.shares[t])
				}
				j.keysTotal += d.keys + d.expired
				if d.need > need {
					need = d.need
					needWhat = fmt.Sprintf("key %q in %s (RDB %d) is a %s %s, which needs RDB %d",
						d.needKey, ss.RDB, ss.version, rdb.ObjectType(d.needType), rdb.TypeName(d.needType), d.need)
				}
			}
		}
		j.bytesTotal += ss.size
		j.rep.Sources = append(j.rep.Sources, sr)
	}
	if !cfg.AllowDuplicates {
		if err := duplicateCheck(res, j.skipRDB, j.db); err != nil {
			problems = append(problems, err)
		}
	}
	if len(res.libraries) > 0 && need < 10 {
		need, needWhat = 10, fmt.Sprintf("%s holds function libraries, which need Redis 7.0 (RDB 10)", res.libraries[0].from)
	}

	for t := range shares {
		shares[t].Memory = withMargin(shares[t].Memory)
	}

	// Targets: ask them all at once.
	infos := make([]targetInfo, j.table.NumShards())
	errs := make([]error, len(infos))
	live, liveNotes := make([]error, len(infos)), make([]string, len(infos))
	var wg sync.WaitGroup
	for i := range infos {
		addr := j.table.Addr(i)
		t := &target{idx: i, admin: adminClient(cfg, addr), planned: shares[i]}
		j.targets = append(j.targets, t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if infos[i], errs[i] = inspectTarget(ctx, t.admin, addr); errs[i] == nil {
				live[i], liveNotes[i] = liveTarget(ctx, cfg, t.admin, addr)
			}
		}()
	}
	wg.Wait()
	for i, t := range j.targets {
		ti := infos[i]
		t.info = ti
		j.rep.Targets = append(j.rep.Targets, TargetReport{
			Addr: ti.Addr, RedisVersion: ti.RedisVersion, RDBVersion: ti.RDBVersion,
			Planned: shares[i], KeysBefore: ti.Keys,
		})
		if errs[i] != nil {
			problems = append(problems, &wrapped{sentinel: ErrTarget, cause: errs[i], msg: errs[i].Error()})
			continue
		}
		if live[i] != nil {
			problems = append(problems, live[i])
		}
		if liveNotes[i] != "" {
			j.rep.Notes = append(j.rep.Notes, liveNotes[i])
		}
		if ti.Role != "" && ti.Role != "master" {
			problems = append(problems, problemf(ErrTarget, "target %s is a %s (read-only); give primaries", ti.Addr, ti.Role))
		}
		if ti.RefusesWrites != "" {
			problems = append(problems, problemf(ErrTarget, "target %s refuses writes: %s", ti.Addr, ti.RefusesWrites))
		}
		switch {
		case ti.Cluster && !cfg.Cluster:
			problems = append(problems, problemf(ErrTarget, "target %s has cluster mode enabled; restore targets are standalone servers behind the proxy, or the masters of a Redis Cluster given as one (reshard restore --to-cluster)", ti.Addr))
		case !ti.Cluster && cfg.Cluster:
			problems = append(problems, problemf(ErrTarget, "target %s is not a cluster node, but the targets were given as a Redis Cluster", ti.Addr))
		}
		if need > ti.RDBVersion {
			problems = append(problems, problemf(ErrTargetTooOld, "target %s runs Redis %s, which loads RDB versions up to %d, but %s",
				ti.Addr, ti.RedisVersion, ti.RDBVersion, needWhat))
		}
		if !cfg.Replace && !cfg.Flush {
			if ti.Keys > 0 {
				problems = append(problems, problemf(ErrTargetNotEmpty, "target %s holds %s (%s); add REPLACE (--replace) to overwrite its keys or FLUSH (--flush) to empty it first",
					ti.Addr, count(ti.Keys, "key"), ti.KeysByDB))
			}
			var clash []string
			for _, lib := range res.libraries {
				if ti.Libraries[lib.name] {
					clash = append(clash, lib.name)
				}
			}
			if len(clash) > 0 {
				sort.Strings(clash)
				problems = append(problems, problemf(ErrTargetNotEmpty, "target %s already has function libraries %s; add REPLACE (--replace) to replace them or FLUSH (--flush) to empty the target first",
					ti.Addr, strings.Join(clash, ", ")))
			}
		}
		if err := ti.room(shares[i], cfg); err != nil {
			problems = append(problems, err)
		}
	}
	problems = append(problems, j.replicas.probe(ctx, map[string]string{}, cfg.Flush, func(ctx context.Context, c *redis.Client, addr string) (error, string) {
		return liveTarget(ctx, cfg, c, addr)
	})...)
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	j.log.Info("pre-flight passed", zap.Int("db", j.db), zap.Int("sources", len(res.sources)),
		zap.Int("targets", len(j.targets)), zap.Int64("keys", j.keysTotal), zap.Int64("bytes", j.bytesTotal))
	return nil
}
