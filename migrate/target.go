package migrate

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// targetInfo is what the pre-flight learns about one target shard.
type targetInfo struct {
	Addr         string
	RedisVersion string
	RDBVersion   uint16 // the newest RDB version the target loads
	MaxMemory    int64  // 0: no limit
	UsedMemory   int64
	SystemMemory int64  // total_system_memory: the host's; 0 when not reported
	DatasetBytes int64  // used_memory_dataset: what a FLUSHALL gives back
	Keys         int64  // in all databases
	KeysByDB     string // "db0=12,db3=4", for messages
	Libraries    map[string]bool
	Role         string
	Cluster      bool
	// RefusesWrites says why every write would be refused (NOREPLICAS);
	// "" if none would.
	RefusesWrites string
}

// adminClient is a go-redis client for the checks and Verify; the data
// path uses its own pipelined connections.
func adminClient(cfg *RestoreConfig, addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            addr,
		Username:        cfg.Username,
		Password:        cfg.Password,
		Protocol:        2,
		DisableIdentity: true,
		MaxRetries:      -1,
		DialTimeout:     cfg.DialTimeout,
		ReadTimeout:     cfg.Timeout,
		WriteTimeout:    cfg.Timeout,
		PoolSize:        2,
	})
}

// inspectTarget reads INFO (and FUNCTION LIST on Redis 7+) from a target.
// It only reads.
func inspectTarget(ctx context.Context, c *redis.Client, addr string) (targetInfo, error) {
	ti := targetInfo{Addr: addr}
	info, err := c.Info(ctx).Result()
	if err != nil {
		return ti, fmt.Errorf("target %s: INFO: %w", addr, err)
	}
	fields := parseInfo(info)
	ti.RedisVersion = fields["redis_version"]
	ti.RDBVersion = rdbVersionFor(ti.RedisVersion)
	ti.MaxMemory, _ = strconv.ParseInt(fields["maxmemory"], 10, 64)
	ti.UsedMemory, _ = strconv.ParseInt(fields["used_memory"], 10, 64)
	ti.SystemMemory, _ = strconv.ParseInt(fields["total_system_memory"], 10, 64)
	ti.DatasetBytes, _ = strconv.ParseInt(fields["used_memory_dataset"], 10, 64)
	ti.Role = fields["role"]
	ti.Cluster = fields["cluster_enabled"] == "1"
	if good, ok := fields["min_slaves_good_slaves"]; ok {
		ti.RefusesWrites = refusesWrites(ctx, c, good)
	}
	var dbs []string
	for _, db := range keyspaceDBs(fields) {
		// db0:keys=12,expires=0,avg_ttl=0
		kv, _, _ := strings.Cut(fields["db"+strconv.Itoa(db)], ",")
		n, _ := strconv.ParseInt(strings.TrimPrefix(kv, "keys="), 10, 64)
		ti.Keys += n
		dbs = append(dbs, fmt.Sprintf("db%d=%d", db, n))
	}
	ti.KeysByDB = strings.Join(dbs, ",")
	ti.Libraries = map[string]bool{}
	if ti.RDBVersion >= 10 {
		libs, err := c.FunctionList(ctx, redis.FunctionListQuery{}).Result()
		if err != nil {
			return ti, fmt.Errorf("target %s: FUNCTION LIST: %w", addr, err)
		}
		for _, l := range libs {
			ti.Libraries[l.Name] = true
		}
	}
	return ti, nil
}

// fenceValue is the min-replicas-to-write a proxy's cutover sets on the
// shards it leaves (package proxy).
const fenceValue = 2147483647

// refusesWrites reads min-replicas-to-write from a target whose INFO shows
// the check on, with good replicas in time: why it refuses every write,
// or "". Without CONFIG (renamed, denied) it cannot tell, and says none.
func refusesWrites(ctx context.Context, c *redis.Client, good string) string {
	g, _ := strconv.Atoi(good)
	v, err := c.ConfigGet(ctx, "min-replicas-to-write").Result()
	if err != nil {
		return ""
	}
	need, err := strconv.Atoi(v["min-replicas-to-write"])
	if err != nil || g >= need {
		return ""
	}
	why := fmt.Sprintf("min-replicas-to-write is %d and it has %d good replicas", need, g)
	if need == fenceValue {
		why += " (the fence a reshard's cutover sets on the shards it leaves)"
	}
	return why + "; CONFIG SET min-replicas-to-write 0 lifts it"
}

func keyspaceDBs(fields map[string]string) []int {
	var out []int
	for k := range fields {
		if rest, ok := strings.CutPrefix(k, "db"); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

func parseInfo(info string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// rdbVersionFor maps a redis_version to the newest RDB version that Redis
// loads (and so the version a RESTORE payload for it may claim): 7.0 is
// 10, 7.2 is 11, 7.4 and 8.x are 12. Valkey reports redis_version 7.2.4
// and loads RDB 11. An unparsable version is treated as 7.0, the oldest
// Redis reshard is tested against.
func rdbVersionFor(v string) uint16 {
	parts := strings.SplitN(v, ".", 3)
	major, err1 := strconv.Atoi(parts[0])
	minor := 0
	var err2 error
	if len(parts) > 1 {
		minor, err2 = strconv.Atoi(parts[1])
	}
	if err1 != nil || err2 != nil {
		return 10
	}
	switch {
	case major >= 8 || major == 7 && minor >= 4:
		return 12
	case major == 7 && minor >= 2:
		return 11
	case major == 7:
		return 10
	case major >= 5:
		return 9
	case major == 4:
		return 8
	case major == 3 && minor >= 2:
		return 7
	}
	return 6
}

// room checks that a target's share fits under its maxmemory, or without
// one in its host's memory (which it would otherwise exhaust, and be
// killed or swap): what it uses (less its dataset when Flush empties it
// first), the share's estimate (memEstimate, margin included) and what
// the restore's connections hold in the target's query buffers while it
// writes (a window of commands, up to the largest value, which a RESTORE
// carries whole below BigKeyBytes).
func (ti *targetInfo) room(sh Share, cfg *RestoreConfig) error {
	limit, what := ti.MaxMemory, "maxmemory "+human(ti.MaxMemory)
	if limit <= 0 {
		limit, what = ti.SystemMemory, "no maxmemory, and its host has "+human(ti.SystemMemory)
	}
	if limit <= 0 {
		return nil
	}
	used := ti.UsedMemory
	if cfg.Flush {
		used -= ti.DatasetBytes
	}
	buffers := int64(cfg.ConnsPerTarget) * (min(sh.largest, cfg.BigKeyBytes) + 64<<10)
	if used+sh.Memory+buffers <= limit {
		return nil
	}
	return problemf(ErrNoRoom, "target %s: %s, %s used, but its share of %d keys (%s in the RDB files) needs about %s, and the restore's connections up to %s more; raise maxmemory or add shards",
		ti.Addr, what, human(used), sh.Keys, human(sh.Bytes), human(sh.Memory), human(buffers))
}

// human formats a byte count.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
