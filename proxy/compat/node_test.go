package compat

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeDir holds compat.mjs and the modules it imports, package.json and
// package-lock.json; .ci/run installs node_modules there with
// `npm ci --prefix proxy/compat/node`.
const nodeDir = "node"

// ioredis 6 and node-redis 6 speak RESP3 by default (ioredis falls back
// to RESP2 on -NOPROTO, node-redis 6 does not); node-redis 5 speaks RESP2.
// Cluster mode: Redis.Cluster and createCluster, given the proxy as their
// only seed node.
var nodeRuns = []scriptRun{
	{lib: "ioredis", mode: "standalone"},
	{lib: "node-redis", mode: "standalone"},
	{lib: "node-redis6", mode: "standalone"},
	{lib: "ioredis", mode: "cluster"},
	{lib: "node-redis", mode: "cluster"},
}

// nodePackages are the directories under node_modules that compat.mjs
// imports.
var nodePackages = []string{"ioredis", "redis", "redis-v6"}

// TestNodeClients runs compat.mjs for every library and mode against the
// proxy and against its reference, and compares the scenarios' JSON.
func TestNodeClients(t *testing.T) {
	node := requireNode(t)
	compareScriptRuns(t, startRig(t), nodeRuns,
		func(ctx context.Context, run scriptRun, addr string) (map[string]json.RawMessage, error) {
			return runScript(ctx, node, filepath.Join(nodeDir, "compat.mjs"),
				"--lib", run.lib, "--mode", run.mode, "--addr", addr,
				"--scenarios", strings.Join(scriptScenarios, ","), "--timeout", "50")
		})
}

// requireNode returns the node binary when node and the installed packages
// are there.
func requireNode(t *testing.T) string {
	t.Helper()
	const install = "npm ci --prefix proxy/compat/node"
	node, err := exec.LookPath("node")
	if err != nil {
		missingClient(t, "node", install, "no node on PATH: %v", err)
	}
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", p, "package.json")); err != nil {
			missingClient(t, "node", install, "package %s is not installed: %v", p, err)
		}
	}
	return node
}
