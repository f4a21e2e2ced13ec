package compat

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cacheReads are node/cache.mjs's observations of one read of every key
// through the caching client.
type cacheReads struct {
	Values       []*string `json:"values"`
	Hits, Misses int
}

// cacheResult is the part of node/cache.mjs's output the test checks on
// its own, besides comparing all of it with the reference.
type cacheResult struct {
	First, Second cacheReads
	Changed       struct {
		cacheReads
		InvalidatedInTime bool
		Invalidated       []string
		Stale             int
		StaleKeys         []string
	}
	Deleted, Expired cacheGone
	Flushes          int
}

// cacheGone is what node/cache.mjs saw of a cached key that went away: its
// value before and after, and whether the invalidation came.
type cacheGone struct {
	Before            *string
	InvalidatedInTime bool
	After             *string
	Stale             int
}

// cacheKeys is the number of keys node/cache.mjs reads, csc:0..csc:59; it
// changes the even ones.
const cacheKeys = 60

// TestNodeClientSideCache runs node/cache.mjs, node-redis 5's client-side
// cache over CLIENT TRACKING in RESP3, against the proxy and against
// redis-server, and compares what it observed: the values read, which reads
// the cache served, which invalidations arrived. Against both, no read
// after an invalidation (a write, a DEL, an expiry) may return the old
// value, and the keys must have been spread over every shard.
func TestNodeClientSideCache(t *testing.T) {
	node := requireNode(t)
	r := startRig(t)
	run := func(addr string) (map[string]json.RawMessage, error) {
		return runScript(t.Context(), node, filepath.Join(nodeDir, "cache.mjs"),
			"--lib", "node-redis", "--addr", addr, "--timeout", "30")
	}
	type result struct {
		out map[string]json.RawMessage
		err error
	}
	refc := make(chan result, 1)
	go func() {
		out, err := run(r.direct.Addr())
		refc <- result{out, err}
	}()
	start := time.Now()
	got, err := run(r.proxy.Addr)
	t.Logf("against the proxy: %v", time.Since(start).Round(time.Millisecond))
	ref := <-refc
	if ref.err != nil {
		t.Errorf("against redis-server: %v", ref.err)
	}
	if err != nil {
		t.Fatalf("against the proxy: %v", err)
	}
	if ref.err != nil {
		t.FailNow()
	}

	checkCacheRun(t, "redis-server", ref.out)
	checkCacheRun(t, "the proxy", got)

	n, err := r.shardKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keys per shard of the proxy: %v", n)
	for i, k := range n {
		if k == 0 {
			t.Errorf("shard %d of the proxy holds no key: cache.mjs's keys do not exercise routing", i)
		}
	}

	names := make([]string, 0, len(ref.out))
	for k := range ref.out {
		names = append(names, k)
	}
	for k := range got {
		if _, ok := ref.out[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		w, g := []byte(ref.out[k]), []byte(got[k])
		if w == nil || g == nil {
			t.Errorf("%s: no result (redis-server %t, proxy %t)", k, w != nil, g != nil)
			continue
		}
		if d := diffJSON(w, g); d != "" {
			t.Errorf("%s: the proxy differs from redis-server at %s", k, d)
		}
	}
}

// checkCacheRun checks one run's own invariants: the second read came from
// the cache, and every read after an invalidation returned the current
// value.
func checkCacheRun(t *testing.T, target string, out map[string]json.RawMessage) {
	t.Helper()
	raw, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var c cacheResult
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: cache.mjs output: %v\n%s", target, err, raw)
	}
	if len(c.First.Values) != cacheKeys || len(c.Second.Values) != cacheKeys || len(c.Changed.Values) != cacheKeys {
		t.Fatalf("%s: %d, %d and %d values read, want %d each", target,
			len(c.First.Values), len(c.Second.Values), len(c.Changed.Values), cacheKeys)
	}
	if c.First.Misses != cacheKeys || c.Second.Hits != cacheKeys || c.Second.Misses != 0 {
		t.Errorf("%s: first read %d misses, second %d hits and %d misses: want every first read a miss and every second a hit",
			target, c.First.Misses, c.Second.Hits, c.Second.Misses)
	}
	if c.Changed.Stale != 0 || !c.Changed.InvalidatedInTime {
		t.Errorf("%s: after the plain client changed %d keys, invalidations processed within 5s: %t; %d stale reads: %v",
			target, cacheKeys/2, c.Changed.InvalidatedInTime, c.Changed.Stale, c.Changed.StaleKeys)
	}
	var wrong []string
	for i, v := range c.Changed.Values {
		want := "v1-" + strconv.Itoa(i)
		if i%2 == 0 {
			want = "v2-csc:" + strconv.Itoa(i)
		}
		if v == nil || *v != want {
			wrong = append(wrong, fmt.Sprintf("csc:%d=%s (want %q)", i, mustJSON(v), want))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%s: %d keys read wrong after the change: %s", target, len(wrong), strings.Join(wrong, ", "))
	}
	if c.Changed.Hits != cacheKeys/2 || c.Changed.Misses != cacheKeys/2 {
		t.Errorf("%s: read after the change: %d hits and %d misses, want %d of each (the unchanged keys cached, the changed ones not)",
			target, c.Changed.Hits, c.Changed.Misses, cacheKeys/2)
	}
	for _, k := range []struct {
		name string
		v    cacheGone
	}{{"deleted key", c.Deleted}, {"expired key", c.Expired}} {
		if k.v.Before == nil || k.v.After != nil || k.v.Stale != 0 || !k.v.InvalidatedInTime {
			t.Errorf("%s: %s read %s before, %s after (want nil); invalidation processed within 5s: %t",
				target, k.name, mustJSON(k.v.Before), mustJSON(k.v.After), k.v.InvalidatedInTime)
		}
	}
	if c.Flushes != 0 {
		t.Errorf("%s: %d invalidations of the whole cache, want none", target, c.Flushes)
	}
}
