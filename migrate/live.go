package migrate

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxyname"
)

// A restore or a reshard writes into its targets, FLUSHALLs them with
// Flush, and lays keys out by its own table: into a shard that a proxy
// serves, that destroys the live keyspace (keys end on shards that do not
// own their slots, and a FLUSH empties them). So the pre-flights refuse a
// target that is a shard of the routing table of the proxy running the
// job, or that any reshard proxy is connected to (its shard connections
// are named by package proxyname). Both are checked before anything is
// written, dry runs included.

// ProxyInfo describes the proxy a restore runs inside (PROXY RESTORE).
type ProxyInfo struct {
	// RunID names the proxy's shard connections (proxyname.Name).
	RunID string
	// Shards are the addresses of its routing table's shards, of epoch
	// Epoch.
	Shards []string
	Epoch  uint64
}

// servedProblem is the problem of a target that is a shard of the
// proxy's own table, or nil.
func (pi *ProxyInfo) servedProblem(addr string) error {
	if !slices.Contains(pi.Shards, addr) {
		return nil
	}
	return problemf(ErrTargetLive, "target %s is a shard of this proxy's routing table (epoch %d): writing into it would overwrite the keys it serves. "+
		"Give empty shards that no proxy serves; to move this proxy's traffic onto new shards use PROXY RESHARD", addr, pi.Epoch)
}

var cmdClientList = []any{"CLIENT", "LIST", "TYPE", "normal"}

// liveProblem asks target addr (through c) for its clients and returns the
// problem of a shard that a reshard proxy is connected to, or nil. The
// connections of the proxy whose run id is self are those of the caller:
// with allowSelf they do not count (a rollback writes into the shards the
// proxy left at its cutover, which it may still be connected to); without,
// they do, and are named as its own. A target that does not answer CLIENT
// LIST (renamed, or denied to the ACL user) cannot be checked: the
// returned note says so, and the job goes on.
func liveProblem(ctx context.Context, c *redis.Client, addr, self string, allowSelf bool, hint string) (problem error, note string) {
	list, err := c.Do(ctx, cmdClientList...).Text()
	if err != nil {
		return nil, fmt.Sprintf("could not check whether a reshard proxy serves target %s: CLIENT LIST: %v", addr, err)
	}
	skip := ""
	if allowSelf {
		skip = self
	}
	for _, p := range proxyname.In([]byte(list), addr, skip) {
		if p.RunID == self {
			return problemf(ErrTargetLive, "target %s is connected to this proxy (run_id %s, from %s, client id %s) though it is not in its routing table: "+
				"it is one of its shards under another address, the target of its running reshard, or a shard it left at a cutover. Give empty shards that no proxy serves",
				addr, p.RunID, p.From, p.ID), ""
		}
		return problemf(ErrTargetLive, "target %s is a live shard of reshard proxy run_id %s at %s (client id %s): writing into it would overwrite the keys that proxy serves. %s",
			addr, p.RunID, p.From, p.ID, hint), ""
	}
	return nil, ""
}

// liveTarget is the restore's check of one target: the proxy's own table
// first (its own connections are on those shards too), then CLIENT LIST.
func liveTarget(ctx context.Context, cfg *RestoreConfig, c *redis.Client, addr string) (problem error, note string) {
	if p := cfg.Proxy.servedProblem(addr); p != nil {
		return p, ""
	}
	return liveProblem(ctx, c, addr, cfg.Proxy.RunID, false,
		"Give empty shards that no proxy serves, or stop that proxy first; to move a proxy's traffic onto new shards use PROXY RESHARD on it")
}

// CheckTargets validates cfg (a *ConfigError) and runs, alone, the
// pre-flight's refusal of targets that are live shards (see above), all
// targets at once (a *PreflightError). Restore runs both too; they read
// no source, so a caller that runs the restore in the background (PROXY
// RESTORE) can refuse at once. A target that cannot be reached is passed
// over: the pre-flight reports it.
func CheckTargets(ctx context.Context, cfg RestoreConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	problems := make([]error, len(cfg.Targets))
	var wg sync.WaitGroup
	for i, sh := range cfg.Targets {
		wg.Go(func() {
			c := adminClient(&cfg, sh.Addr)
			defer c.Close()
			problems[i], _ = liveTarget(ctx, &cfg, c, sh.Addr)
		})
	}
	wg.Wait()
	problems = slices.DeleteFunc(problems, func(e error) bool { return e == nil })
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
}
