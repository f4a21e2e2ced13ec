package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// nodeDir holds compat.mjs, package.json and package-lock.json; .ci/run
// installs node_modules there with `npm ci --prefix proxy/compat/node`.
const nodeDir = "node"

// nodeRun is one library in one mode. Its reference is the same run
// against redis-server (standalone) or a one-node Redis Cluster (cluster).
type nodeRun struct {
	lib  string // compat.mjs --lib
	mode string // standalone or cluster
}

func (n nodeRun) String() string { return n.lib + "/" + n.mode }

var (
	nodeScenarios = []string{
		"strings", "hashes", "lists", "sets", "sorted-sets", "streams",
		"transactions", "watch", "scripts", "blocking", "pipelines",
		"pubsub", "scan",
	}
	// ioredis 6 and node-redis 6 speak RESP3 by default (ioredis falls back
	// to RESP2 on -NOPROTO, node-redis 6 does not); node-redis 5 speaks
	// RESP2. Cluster mode: Redis.Cluster and createCluster, given the proxy
	// as their only seed node.
	nodeRuns = []nodeRun{
		{lib: "ioredis", mode: "standalone"},
		{lib: "node-redis", mode: "standalone"},
		{lib: "node-redis6", mode: "standalone"},
		{lib: "ioredis", mode: "cluster"},
		{lib: "node-redis", mode: "cluster"},
	}
)

// nodePackages are the directories under node_modules that compat.mjs
// imports.
var nodePackages = []string{"ioredis", "redis", "redis-v6"}

// TestNodeClients runs compat.mjs for every library and mode against the
// proxy and against its reference, and compares the scenarios' JSON.
func TestNodeClients(t *testing.T) {
	node := requireNode(t)
	r := startRig(t)

	// The references run in parallel, each against a server of its own
	// (the scenarios flush), while the proxy runs go one after the other.
	// Cluster runs need the standalone reference of their library too.
	type result struct {
		out map[string]json.RawMessage
		err error
	}
	refs := map[nodeRun]chan result{}
	startRef := func(run nodeRun) {
		if refs[run] != nil {
			return
		}
		var addr string
		if run.mode == "cluster" {
			addr = startClusterNode(t).Addr()
		} else {
			addr = redistest.Start(t).Addr()
		}
		ch := make(chan result, 1)
		refs[run] = ch
		go func() {
			out, err := runNode(t.Context(), node, run, addr)
			ch <- result{out, err}
		}()
	}
	for _, run := range nodeRuns {
		startRef(nodeRun{lib: run.lib, mode: "standalone"})
		startRef(run)
	}
	done := map[nodeRun]result{}
	ref := func(run nodeRun) result {
		if res, ok := done[run]; ok {
			return res
		}
		res := <-refs[run]
		done[run] = res
		if res.err != nil {
			t.Errorf("%s against its reference: %v", run, res.err)
		}
		return res
	}

	for _, run := range nodeRuns {
		start := time.Now()
		got, err := runNode(t.Context(), node, run, r.proxy.Addr)
		if err != nil {
			t.Errorf("%s against the proxy: %v", run, err)
			continue
		}
		t.Logf("%s against the proxy: %v", run, time.Since(start).Round(time.Millisecond))
		want, standalone := ref(run), ref(nodeRun{lib: run.lib, mode: "standalone"})
		if want.err != nil || standalone.err != nil {
			continue
		}
		for _, sc := range nodeScenarios {
			w, g := []byte(want.out[sc]), []byte(got[sc])
			if w == nil || g == nil {
				t.Errorf("%s/%s: no result (reference %t, proxy %t)", run, sc, w != nil, g != nil)
				continue
			}
			if run.mode == "cluster" {
				if w, err = crossSlotFallback(w, standalone.out[sc]); err != nil {
					t.Fatalf("%s/%s: %v", run, sc, err)
				}
			}
			if d := diffJSON(w, g); d != "" {
				t.Errorf("%s/%s: the proxy differs from the reference at %s", run, sc, d)
			}
		}
	}
	for run := range refs {
		ref(run) // no goroutine outlives the test
	}
}

// requireNode returns the node binary when node and the installed packages
// are there. Without them the test skips, or fails under REQUIRE_REDIS=1,
// which CI sets after .ci/run has installed them.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + " (install with: npm ci --prefix proxy/compat/node)"
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatalf("REQUIRE_REDIS=1 but %s", msg)
		}
		t.Skipf("skipping node compatibility test: %s", msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH: %v", err)
	}
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", p, "package.json")); err != nil {
			missing("package %s is not installed: %v", p, err)
		}
	}
	return node
}

// runNode runs compat.mjs once and returns its JSON per scenario.
func runNode(ctx context.Context, node string, run nodeRun, addr string) (map[string]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "compat.mjs",
		"--lib", run.lib, "--mode", run.mode, "--addr", addr,
		"--scenarios", strings.Join(nodeScenarios, ","), "--timeout", "50")
	cmd.Dir = nodeDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("node compat.mjs %s: %w\n%s", run, err, tail(stderr.String(), 4000))
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("node compat.mjs %s: output is not JSON: %w\n%s", run, err, tail(stdout.String(), 2000))
	}
	return out, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
