package migrate

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// shardProbe is what the reshard's checks learn about one shard.
type shardProbe struct {
	addr    string
	version string
	rdb     uint16
	role    string
	master  string // a replica's primary, master_host:master_port
	cluster bool
	runID   string
	dbs     map[int]int64 // keys per database
	target  targetInfo    // targets only
	live    error         // targets only: a reshard proxy serves it
	note    string        // targets only: why that could not be checked
	err     error
}

// preflight checks every shard before anything is done, and returns what
// it learned about the targets. Every problem found is reported.
func (j *ReshardJob) preflight(ctx context.Context) ([]targetInfo, error) {
	from, to := j.cfg.From, j.cfg.To
	srcs := make([]shardProbe, from.NumShards())
	tgts := make([]shardProbe, to.NumShards())
	var wg sync.WaitGroup
	probeAll := func(ps []shardProbe, rc RestoreConfig, addr func(int) string, target bool) {
		for i := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := adminClient(&rc, addr(i))
				defer c.Close()
				ps[i] = probeShard(ctx, c, addr(i), target)
				if target && ps[i].err == nil {
					// this proxy's own connections are on the shards it
					// left at its last cutover: a rollback's targets
					ps[i].live, ps[i].note = liveProblem(ctx, c, addr(i), j.cfg.RunID, true,
						"Stop that proxy first, or give empty shards that no proxy serves")
				}
			}()
		}
	}
	probeAll(srcs, j.cfg.sourceConfig(), from.Addr, false)
	probeAll(tgts, j.cfg.restoreConfig(), to.Addr, true)
	wg.Wait()

	var problems []error
	common := func(kind string, p shardProbe) bool {
		if p.err != nil {
			problems = append(problems, problemf(ErrTarget, "%s %s: %v", kind, p.addr, p.err))
			return false
		}
		if p.role != "master" {
			problems = append(problems, problemf(ErrTarget, "%s %s is a %s; give primaries", kind, p.addr, p.role))
		}
		if p.cluster {
			problems = append(problems, problemf(ErrTarget, "%s %s has cluster mode enabled; reshard shards are standalone servers behind the proxy", kind, p.addr))
		}
		if !atLeast7(p.version) {
			problems = append(problems, problemf(ErrTargetTooOld, "%s %s runs Redis %s; a live reshard needs 7.0 or later (absolute expiry in the replication stream, PEXPIRETIME)", kind, p.addr, p.version))
		}
		return true
	}
	runIDs := map[string]string{}
	var needRDB uint16
	var needFrom string
	for _, p := range srcs {
		if !common("source", p) {
			continue
		}
		runIDs[p.runID] = p.addr
		if p.rdb > needRDB {
			needRDB, needFrom = p.rdb, fmt.Sprintf("source %s runs Redis %s (RDB %d)", p.addr, p.version, p.rdb)
		}
		var other []string
		for db, n := range p.dbs {
			if db != 0 && n > 0 {
				other = append(other, fmt.Sprintf("db%d=%d", db, n))
			}
		}
		if len(other) > 0 {
			sort.Strings(other)
			problems = append(problems, problemf(ErrMultipleDBs, "source %s holds keys in other databases than 0 (%s); only database 0 can be resharded", p.addr, strings.Join(other, ",")))
		}
	}
	infos := make([]targetInfo, len(tgts))
	for i, p := range tgts {
		if !common("target", p) {
			continue
		}
		infos[i] = p.target
		if other, ok := runIDs[p.runID]; ok {
			if slices.Contains(from.Addrs(), other) {
				problems = append(problems, problemf(ErrTargetLive, "target %s is a shard of this proxy's routing table (epoch %d), the same server as %s (run_id %s): "+
					"a reshard moves the data onto other shards. Give empty shards that no proxy serves", p.addr, from.Epoch(), other, p.runID))
			} else {
				problems = append(problems, problemf(ErrTarget, "target %s is the same server as %s (run_id %s)", p.addr, other, p.runID))
			}
			continue
		}
		if p.live != nil {
			problems = append(problems, p.live)
		}
		if p.note != "" {
			j.log.Warn("target not checked for reshard proxies", zap.String("shard", p.addr), zap.String("why", p.note))
		}
		runIDs[p.runID] = p.addr
		if needRDB > p.rdb {
			problems = append(problems, problemf(ErrTargetTooOld, "target %s runs Redis %s, which loads RDB versions up to %d, but %s",
				p.addr, p.version, p.rdb, needFrom))
		}
		if !j.cfg.Flush && (p.target.Keys > 0 || len(p.target.Libraries) > 0) {
			problems = append(problems, problemf(ErrTargetNotEmpty, "target %s holds %s (%s) and %s; empty it, or add FLUSH to PROXY RESHARD",
				p.addr, count(p.target.Keys, "key"), p.target.KeysByDB, count(len(p.target.Libraries), "function library")))
		}
	}
	problems = append(problems, j.replicas.probe(ctx, runIDs, j.cfg.Flush, func(ctx context.Context, c *redis.Client, addr string) (error, string) {
		return liveProblem(ctx, c, addr, j.cfg.RunID, true, "Stop that proxy first, or give replicas that no proxy serves")
	})...)
	if len(problems) > 0 {
		return nil, &PreflightError{Problems: problems}
	}
	return infos, nil
}

func probeShard(ctx context.Context, c *redis.Client, addr string, target bool) shardProbe {
	p := shardProbe{addr: addr}
	text, err := c.Info(ctx).Result()
	if err != nil {
		p.err = fmt.Errorf("%s: %w", authProblem(err, "INFO"), err)
		return p
	}
	f := parseInfo(text)
	p.version = f["redis_version"]
	p.rdb = rdbVersionFor(p.version)
	p.role = f["role"]
	if p.role == "slave" {
		p.master = net.JoinHostPort(f["master_host"], f["master_port"])
	}
	p.cluster = f["cluster_enabled"] == "1"
	p.runID = f["run_id"]
	p.dbs = map[int]int64{}
	for _, db := range keyspaceDBs(f) {
		kv, _, _ := strings.Cut(f["db"+strconv.Itoa(db)], ",")
		p.dbs[db], _ = strconv.ParseInt(strings.TrimPrefix(kv, "keys="), 10, 64)
	}
	if target {
		p.target, p.err = inspectTarget(ctx, c, addr)
	}
	return p
}

// authProblem names what went wrong when a shard refused the credentials
// the connection opened with, or wanted some it was not given; any other
// error is the command's, named by cmd. The shard's own words follow in the
// error: they never hold the password.
func authProblem(err error, cmd string) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "ERR AUTH"):
		return "refused AUTH"
	case strings.HasPrefix(msg, "NOAUTH"):
		return "needs a password"
	}
	return cmd
}

// atLeast7 reports whether a redis_version is 7.0 or later.
func atLeast7(v string) bool {
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return err == nil && major >= 7
}
