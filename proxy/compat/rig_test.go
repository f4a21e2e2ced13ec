package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// rig is what one test compares: a plain redis-server (the reference of
// standalone clients), a proxy in front of 3 redis-server shards, and, for
// cluster-mode clients, a one-node Redis Cluster as their reference, started
// on first use.
type rig struct {
	t      *testing.T
	direct *redistest.Server
	proxy  *proxytest.Cluster

	clusterOnce sync.Once
	clusterNode *redistest.Server
	admin       map[string]*redis.Client // by address; FLUSHALL and SCRIPT FLUSH
}

func startRig(t *testing.T) *rig {
	t.Helper()
	redistest.Require(t)
	return &rig{
		t:      t,
		direct: redistest.Start(t),
		proxy:  proxytest.Start(t, proxytest.Options{Shards: 3}),
		admin:  map[string]*redis.Client{},
	}
}

// reference returns the address of the server a client mode is compared
// with: redis-server for standalone clients, a Redis Cluster of one node
// (all slots) for cluster-mode clients, since a cluster client behaves
// differently from a standalone one even against real Redis.
func (r *rig) reference(cluster bool) string {
	if !cluster {
		return r.direct.Addr()
	}
	r.clusterOnce.Do(func() { r.clusterNode = startClusterNode(r.t) })
	return r.clusterNode.Addr()
}

// startClusterNode starts a redis-server in cluster mode that owns every
// slot, and waits until it reports the cluster up.
func startClusterNode(t *testing.T) *redistest.Server {
	t.Helper()
	s := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "5000", "--cluster-announce-ip", "127.0.0.1")
	c := s.Client()
	if err := c.Do(t.Context(), "cluster", "addslotsrange", 0, 16383).Err(); err != nil {
		t.Fatalf("one-node cluster %s: %v", s.Addr(), err)
	}
	for i := 0; ; i++ {
		info, err := c.ClusterInfo(t.Context()).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return s
		}
		if i == 500 {
			t.Fatalf("one-node cluster %s did not come up: %v %q", s.Addr(), err, info)
		}
		redistest.Sleep(10)
	}
}

// flush empties the server or proxy at addr before a scenario: keys
// (FLUSHALL through the proxy reaches every shard) and the script cache,
// which FLUSHALL keeps and which would let EVALSHA succeed where a fresh
// server answers NOSCRIPT.
func (r *rig) flush(ctx context.Context, addr string) error {
	c := r.admin[addr]
	if c == nil {
		c = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		r.t.Cleanup(func() { c.Close() })
		r.admin[addr] = c
	}
	if err := c.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flushall %s: %w", addr, err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		return fmt.Errorf("script flush %s: %w", addr, err)
	}
	return nil
}

// shardKeys returns the number of keys on each of the proxy's shards.
func (r *rig) shardKeys(ctx context.Context) ([]int64, error) {
	out := make([]int64, len(r.proxy.Shards))
	for i, s := range r.proxy.Shards {
		n, err := s.Client().DBSize(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("dbsize of shard %s: %w", s.Addr(), err)
		}
		out[i] = n
	}
	return out, nil
}

// spread accumulates, over a target's scenarios, how many keys each shard
// held at the end of a scenario: a suite whose keys all landed on one shard
// would prove nothing about routing.
type spread []int64

func (s *spread) add(n []int64) {
	if len(*s) < len(n) {
		*s = append(*s, make([]int64, len(n)-len(*s))...)
	}
	for i, v := range n {
		(*s)[i] += v
	}
}

func (s spread) check(t *testing.T, target string) {
	t.Helper()
	t.Logf("%s: keys per shard, summed over scenarios: %v", target, []int64(s))
	for i, n := range s {
		if n == 0 {
			t.Errorf("%s: shard %d never held a key: the scenarios do not exercise routing", target, i)
		}
	}
}

// diffJSON compares two JSON documents of scenario results and describes
// the first difference: the step (array element) or field where they part.
func diffJSON(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	var w, g any
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil {
		return fmt.Sprintf("want %s\n got %s", want, got)
	}
	return firstDiff("", w, g)
}

func firstDiff(path string, w, g any) string {
	switch wv := w.(type) {
	case []any:
		gv, ok := g.([]any)
		if !ok {
			break
		}
		for i := 0; i < len(wv) && i < len(gv); i++ {
			at := fmt.Sprintf("%s[%d]", path, i)
			if m, ok := wv[i].(map[string]any); ok && m["cmd"] != nil {
				at += fmt.Sprintf(" (%v)", m["cmd"])
			}
			if d := firstDiff(at, wv[i], gv[i]); d != "" {
				return d
			}
		}
		if len(wv) != len(gv) {
			return fmt.Sprintf("%s: %d elements, want %d", path, len(gv), len(wv))
		}
		return ""
	case map[string]any:
		gv, ok := g.(map[string]any)
		if !ok {
			break
		}
		for k := range wv {
			if d := firstDiff(path+"."+k, wv[k], gv[k]); d != "" {
				return d
			}
		}
		for k := range gv {
			if _, ok := wv[k]; !ok {
				return fmt.Sprintf("%s.%s: unexpected %s", path, k, mustJSON(gv[k]))
			}
		}
		return ""
	default:
		if mustJSON(w) == mustJSON(g) {
			return ""
		}
	}
	return fmt.Sprintf("%s:\n  got  %s\n  want %s", path, mustJSON(g), mustJSON(w))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// crossSlotFallback adapts the reference of a cluster-mode client. A Redis
// Cluster refuses multi-key commands across slots with CROSSSLOT; the proxy
// serves MGET, MSET, DEL, EXISTS, ... across shards, as one Redis would. So
// from the first step where the one-node cluster's reply mentions CROSSSLOT
// (the step's error, or an error inside a pipeline's replies) on, the
// reference is the same client library's standalone run against
// redis-server: the keyspaces of the two references part there. Up to that
// step, a cluster client is compared with a cluster. Both arguments and the
// result are JSON arrays of steps.
func crossSlotFallback(cluster, standalone []byte) ([]byte, error) {
	var c, s []json.RawMessage
	if err := json.Unmarshal(cluster, &c); err != nil {
		return nil, fmt.Errorf("cluster reference: %w", err)
	}
	if err := json.Unmarshal(standalone, &s); err != nil {
		return nil, fmt.Errorf("standalone reference: %w", err)
	}
	for i, raw := range c {
		var st any
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, fmt.Errorf("cluster reference step %d: %w", i, err)
		}
		if mentionsCrossSlot(st) {
			return json.Marshal(append(c[:i:i], s[min(i, len(s)):]...))
		}
	}
	return cluster, nil
}

func mentionsCrossSlot(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.HasPrefix(v, "CROSSSLOT")
	case []any:
		for _, x := range v {
			if mentionsCrossSlot(x) {
				return true
			}
		}
	case map[string]any:
		for k, x := range v {
			if k != "cmd" && mentionsCrossSlot(x) {
				return true
			}
		}
	}
	return false
}
