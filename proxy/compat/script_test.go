package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redistest"
)

// A scripted suite is a program in another language (node/compat.mjs,
// python/compat.py) that runs scenarios with a client library and prints,
// as one JSON object, each scenario's steps. The Go test runs it against
// the proxy and against a reference, and compares.

// scriptScenarios are the scenarios every scripted suite runs, by the
// names of go-redis's (gocompat_test.go).
var scriptScenarios = []string{
	"strings", "hashes", "lists", "sets", "sorted-sets", "streams",
	"transactions", "watch", "scripts", "blocking", "pipelines",
	"pubsub", "scan",
}

// scriptRun is one library in one mode. Its reference is the same run
// against redis-server (standalone) or a one-node Redis Cluster (cluster).
type scriptRun struct {
	lib  string // the library, as the script names it
	mode string // standalone or cluster
}

func (r scriptRun) String() string { return r.lib + "/" + r.mode }

// runScriptFunc runs the script once for run against addr and returns its
// JSON per scenario.
type runScriptFunc func(ctx context.Context, run scriptRun, addr string) (map[string]json.RawMessage, error)

// compareScriptRuns runs every run against the proxy of r and against its
// reference, and compares the steps of each of scriptScenarios. The references run
// in parallel, each against a server of its own (the scenarios flush),
// while the proxy runs go one after the other. Cluster runs need the
// standalone reference of their library too (crossSlotFallback).
func compareScriptRuns(t *testing.T, r *rig, runs []scriptRun, runScript runScriptFunc) {
	t.Helper()
	type result struct {
		out map[string]json.RawMessage
		err error
	}
	refs := map[scriptRun]chan result{}
	startRef := func(run scriptRun) {
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
			out, err := runScript(t.Context(), run, addr)
			ch <- result{out, err}
		}()
	}
	for _, run := range runs {
		startRef(scriptRun{lib: run.lib, mode: "standalone"})
		startRef(run)
	}
	done := map[scriptRun]result{}
	ref := func(run scriptRun) result {
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

	for _, run := range runs {
		start := time.Now()
		got, err := runScript(t.Context(), run, r.proxy.Addr)
		if err != nil {
			t.Errorf("%s against the proxy: %v", run, err)
			continue
		}
		t.Logf("%s against the proxy: %v", run, time.Since(start).Round(time.Millisecond))
		want, standalone := ref(run), ref(scriptRun{lib: run.lib, mode: "standalone"})
		if want.err != nil || standalone.err != nil {
			continue
		}
		for _, sc := range scriptScenarios {
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

// runScript runs cmd, bounded by a minute, and decodes the JSON object it
// prints: scenario name to steps.
func runScript(ctx context.Context, name string, args ...string) (map[string]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", cmd, err, tail(stderr.String(), 4000))
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("%s: output is not JSON: %w\n%s", cmd, err, tail(stdout.String(), 2000))
	}
	return out, nil
}

// missingClient ends a test whose client library or runtime is not
// installed: a skip, or under REQUIRE_REDIS=1 (which CI sets after .ci/run
// has installed them) a failure, both saying how to install it.
func missingClient(t *testing.T, suite, install, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (install with: " + install + ")"
	if os.Getenv("REQUIRE_REDIS") == "1" {
		t.Fatalf("REQUIRE_REDIS=1 but %s", msg)
	}
	t.Skipf("skipping %s compatibility test: %s", suite, msg)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
