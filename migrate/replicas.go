package migrate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/router"
)

// Targets with replicas (router: PRIMARY+REPLICA). The job writes to each
// target's primary only; its replicas get the data by Redis replication.
// The pre-flight checks each replica as it checks a target: reachable,
// not a source, a target or another replica, served by no other reshard
// proxy, and empty unless Flush (one that already replicates an empty
// primary is empty). Once the targets are flushed, each replica is made
// to replicate its primary (REPLICAOF; a no-op for one that already
// does, a full sync that discards its data for one that did not). Before
// the cutover the job waits for every replica's first sync to end, and
// inside the barrier, once the targets hold everything up to the cut,
// for every replica to reach its primary's offset: reads from replicas
// right after the commit see every copied key.

// targetReplica is one replica of a target.
type targetReplica struct {
	addr    string
	primary string // its target's address
}

// replicaSet is the replicas of a job's targets.
type replicaSet struct {
	reps []targetReplica
	rc   *RestoreConfig
	log  *zap.Logger
}

func newReplicaSet(targets *router.Table, rc *RestoreConfig, log *zap.Logger) replicaSet {
	rs := replicaSet{rc: rc, log: log}
	for i := range targets.NumShards() {
		for _, r := range targets.Replicas(i) {
			rs.reps = append(rs.reps, targetReplica{addr: r, primary: targets.Addr(i)})
		}
	}
	return rs
}

// probe is the pre-flight of the replicas. runIDs maps the run ids of
// the shards already checked to their addresses, and gets the
// replicas'; live says whether a proxy serves a replica, as for a target.
func (rs replicaSet) probe(ctx context.Context, runIDs map[string]string, flush bool,
	live func(ctx context.Context, c *redis.Client, addr string) (error, string)) []error {
	probes := make([]shardProbe, len(rs.reps))
	var wg sync.WaitGroup
	for i, r := range rs.reps {
		wg.Go(func() {
			c := adminClient(rs.rc, r.addr)
			defer c.Close()
			probes[i] = probeShard(ctx, c, r.addr, false)
			if probes[i].err == nil {
				probes[i].live, probes[i].note = live(ctx, c, r.addr)
			}
		})
	}
	wg.Wait()
	var problems []error
	for i, p := range probes {
		r := rs.reps[i]
		switch {
		case p.err != nil:
			problems = append(problems, problemf(ErrTarget, "replica %s of target %s: %v", r.addr, r.primary, p.err))
			continue
		case p.cluster:
			problems = append(problems, problemf(ErrTarget, "replica %s of target %s has cluster mode enabled", r.addr, r.primary))
		case !atLeast7(p.version):
			problems = append(problems, problemf(ErrTargetTooOld, "replica %s of target %s runs Redis %s; give 7.0 or later", r.addr, r.primary, p.version))
		}
		if other, ok := runIDs[p.runID]; ok {
			problems = append(problems, problemf(ErrTarget, "replica %s of target %s is the same server as %s (run_id %s)", r.addr, r.primary, other, p.runID))
			continue
		}
		runIDs[p.runID] = r.addr
		if p.live != nil {
			problems = append(problems, p.live)
		}
		if p.note != "" {
			rs.log.Warn("replica not checked for proxies", zap.String("shard", r.addr), zap.String("why", p.note))
		}
		var keys int64
		for _, n := range p.dbs {
			keys += n
		}
		if keys > 0 && !flush && p.master != r.primary {
			problems = append(problems, problemf(ErrTargetNotEmpty, "replica %s of target %s holds %s, which replicating the target would discard; empty it, or add FLUSH",
				r.addr, r.primary, count(keys, "key")))
		}
	}
	return problems
}

// attach makes every replica replicate its target.
func (rs replicaSet) attach(ctx context.Context) error {
	for _, r := range rs.reps {
		host, port, err := net.SplitHostPort(r.primary)
		if err != nil {
			return fmt.Errorf("%w: target %s: %v", ErrTarget, r.primary, err)
		}
		c := adminClient(rs.rc, r.addr)
		err = c.SlaveOf(ctx, host, port).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("%w: replica %s: REPLICAOF %s %s: %v", ErrTarget, r.addr, host, port, err)
		}
		rs.log.Info("replica follows its target", zap.String("replica", r.addr), zap.String("target", r.primary))
	}
	return nil
}

// inSync waits until every replica's link to its target is up
// and its first sync done, until ctx ends.
func (rs replicaSet) inSync(ctx context.Context) error {
	return rs.each(ctx, 10*time.Millisecond, func(c replicaClients) (bool, string, error) {
		f, err := c.info(ctx, c.replica)
		if err != nil {
			return false, "", err
		}
		ok := f["master_link_status"] == "up" && f["master_sync_in_progress"] == "0"
		return ok, "link " + f["master_link_status"] + ", sync in progress " + f["master_sync_in_progress"], nil
	})
}

// caughtUp waits until every replica has reached its target's
// replication offset, until ctx ends: called with the targets holding
// everything up to the cut and taking no more writes.
func (rs replicaSet) caughtUp(ctx context.Context) error {
	return rs.each(ctx, time.Millisecond, func(c replicaClients) (bool, string, error) {
		pf, err := c.info(ctx, c.primary)
		if err != nil {
			return false, "", err
		}
		f, err := c.info(ctx, c.replica)
		if err != nil {
			return false, "", err
		}
		want, _ := strconv.ParseInt(pf["master_repl_offset"], 10, 64)
		got, _ := strconv.ParseInt(f["slave_repl_offset"], 10, 64)
		return f["master_link_status"] == "up" && got >= want, fmt.Sprintf("at offset %d, its target at %d", got, want), nil
	})
}

// replicaClients are connections to one replica and its target.
type replicaClients struct {
	primary, replica *redis.Client
}

// info reads INFO replication through c.
func (replicaClients) info(ctx context.Context, c *redis.Client) (map[string]string, error) {
	text, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	return parseInfo(text), nil
}

// each runs check on every replica at once, each again every
// interval until it reports done or ctx ends; the error names the first
// replica that is not done, with what check last said of it.
func (rs replicaSet) each(ctx context.Context, interval time.Duration, check func(replicaClients) (done bool, state string, err error)) error {
	errs := make([]error, len(rs.reps))
	var wg sync.WaitGroup
	for i, r := range rs.reps {
		wg.Go(func() {
			c := replicaClients{primary: adminClient(rs.rc, r.primary), replica: adminClient(rs.rc, r.addr)}
			defer c.primary.Close()
			defer c.replica.Close()
			last := "not checked"
			for {
				done, state, err := check(c)
				switch {
				case done:
					return
				case ctx.Err() != nil:
					errs[i] = fmt.Errorf("replica %s of target %s: %s", r.addr, r.primary, last)
					return
				case err != nil:
					errs[i] = fmt.Errorf("replica %s of target %s: %v", r.addr, r.primary, err)
					return
				}
				last = state
				select {
				case <-ctx.Done():
				case <-time.After(interval):
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
