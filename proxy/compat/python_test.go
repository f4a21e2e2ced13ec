package compat

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pythonScript runs redis-py's scenarios; Debian's python3-redis is the
// library (.ci/run installs it).
var pythonScript = filepath.Join("python", "compat.py")

// redis.Redis (RESP2: redis-py 4.3 has no RESP3) and RedisCluster, given
// the proxy as its only startup node.
var pythonRuns = []scriptRun{
	{lib: "redis-py", mode: "standalone"},
	{lib: "redis-py", mode: "cluster"},
}

// TestPythonClients runs compat.py in every mode against the proxy and
// against its reference, and compares the scenarios' JSON.
func TestPythonClients(t *testing.T) {
	python := requirePython(t)
	compareScriptRuns(t, startRig(t), pythonRuns,
		func(ctx context.Context, run scriptRun, addr string) (map[string]json.RawMessage, error) {
			return runScript(ctx, python, pythonScript, "--mode", run.mode, "--addr", addr,
				"--scenarios", strings.Join(scriptScenarios, ","), "--timeout", "50")
		})
}

// pythons are the interpreters tried, in order: python3 on PATH, then
// Debian's own, for which Debian's python3-redis is installed and which
// another python3 earlier on PATH (pyenv, a virtualenv) does not see.
var pythons = []string{"python3", "/usr/bin/python3"}

// requirePython returns the first python3 that imports redis, and logs
// the version of redis-py it has.
func requirePython(t *testing.T) string {
	t.Helper()
	const install = "apt-get install -y python3-redis"
	var problems []string
	for _, name := range pythons {
		path, err := exec.LookPath(name)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out, err := exec.CommandContext(t.Context(), path, "-c", "import redis; print(redis.__version__)").CombinedOutput()
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			problems = append(problems, path+": "+lines[len(lines)-1]) // the exception
			continue
		}
		t.Logf("%s, redis-py %s", path, strings.TrimSpace(string(out)))
		return path
	}
	missingClient(t, "python", install, "no python3 with redis-py: %s", strings.Join(problems, "; "))
	return ""
}
