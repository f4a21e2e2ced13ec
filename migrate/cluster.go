package migrate

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/reshard/reshard/router"
)

// Restoring into a Redis Cluster (RestoreConfig.Cluster): the targets are
// the cluster's masters with the slot ranges its slot map gives them, read
// with CLUSTER SHARDS from any node, so each key goes to the master that
// owns its slot, as a cluster client would send it, without a redirect.
// The cluster must be whole (cluster_state:ok, every slot served) before
// anything is written, and its slot map must be the same after the
// restore: a slot that moved meanwhile (a failover, a rebalance) may have
// taken keys written to its old master away from the new one, so such a
// restore fails, naming the change. Writes meet the cluster's rules:
// plain strings go as one SET each (an MSET must not span slots), and a
// transaction of a source's tail goes as it does to any target, one
// MULTI/EXEC per master, which the cluster refuses if it spans slots.

// ClusterTargets reads the slot map of the Redis Cluster that seed
// (HOST:PORT) belongs to and returns its masters as restore targets, each
// with the slot ranges it serves. It fails unless the cluster is whole.
func ClusterTargets(ctx context.Context, cfg RestoreConfig, seed string) ([]router.Shard, error) {
	c := adminClient(&cfg, seed)
	defer c.Close()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: cluster node %s: CLUSTER INFO: %v", ErrTarget, seed, err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return nil, fmt.Errorf("%w: cluster of %s is not whole (cluster_state is not ok); fix it before restoring into it", ErrTarget, seed)
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: cluster node %s: CLUSTER SHARDS (Redis 7 or later): %v", ErrTarget, seed, err)
	}
	var out []router.Shard
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		var master string
		for _, n := range sh.Nodes {
			if n.Role == "master" && n.Health == "online" {
				host := n.IP
				if host == "" {
					host = n.Endpoint
				}
				master = net.JoinHostPort(host, strconv.FormatInt(n.Port, 10))
			}
		}
		if master == "" {
			return nil, fmt.Errorf("%w: cluster of %s: slots %d-%d have no master online", ErrTarget, seed, sh.Slots[0].Start, sh.Slots[0].End)
		}
		s := router.Shard{Addr: master}
		for _, r := range sh.Slots {
			s.Ranges = append(s.Ranges, router.Range{From: uint16(r.Start), To: uint16(r.End)})
		}
		slices.SortFunc(s.Ranges, func(a, b router.Range) int { return int(a.From) - int(b.From) })
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b router.Shard) int { return int(a.Ranges[0].From) - int(b.Ranges[0].From) })
	if _, err := router.NewTable(0, out); err != nil {
		return nil, fmt.Errorf("%w: cluster of %s: %v", ErrTarget, seed, err)
	}
	return out, nil
}

// checkClusterUnchanged re-reads the slot map after the restore and fails
// if it is not the one the restore wrote by.
func (j *job) checkClusterUnchanged(ctx context.Context) error {
	now, err := ClusterTargets(ctx, j.cfg, j.cfg.Targets[0].Addr)
	if err != nil {
		return fmt.Errorf("%w: after the restore: %v", ErrTarget, err)
	}
	was, is := router.FormatSpec(j.cfg.Targets), router.FormatSpec(now)
	if was != is {
		return fmt.Errorf("%w: the cluster's slot map changed during the restore (a failover or a slot migration): written by %s, now %s; keys of the slots that moved may be missing; restore again", ErrTarget, was, is)
	}
	return nil
}
