package compat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// resultLine is one test of `redis-benchmark -q`: "SET: 16051.36 requests
// per second, p50=1.007 msec"; names may carry a note, as in "LRANGE_100
// (first 100 elements)".
var resultLine = regexp.MustCompile(`^(.+?): ([0-9]+(?:\.[0-9]+)?) requests per second`)

// TestRedisBenchmarkDefaultSet runs redis-benchmark's default test set
// against the proxy: it must complete with every test reporting its
// throughput and no error, and run the same tests as against redis-server.
// The numbers are not compared: timing belongs to bench/, not to tests.
func TestRedisBenchmarkDefaultSet(t *testing.T) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatalf("REQUIRE_REDIS=1 but no redis-benchmark on PATH: %v", err)
		}
		t.Skipf("skipping: no redis-benchmark on PATH: %v", err)
	}
	r := startRig(t)

	// The reference only names the tests of the default set, whatever -n.
	want, err := redisBenchmark(t.Context(), bin, r.direct.Addr(), 1000)
	if err != nil {
		t.Fatalf("against redis-server: %v", err)
	}
	start := time.Now()
	got, err := redisBenchmark(t.Context(), bin, r.proxy.Addr, 10000)
	if err != nil {
		t.Fatalf("against the proxy: %v", err)
	}
	t.Logf("against the proxy, %d tests in %v: %s", len(got), time.Since(start).Round(time.Millisecond), strings.Join(got, ", "))
	if !slices.Equal(got, want) {
		t.Errorf("tests run against the proxy:\n  %v\nagainst redis-server:\n  %v", got, want)
	}
}

// redisBenchmark runs `redis-benchmark -q -n N` and returns the names of
// the tests it reported, in order. Anything but a result line or a
// progress line (rps=...), and any error text, is a failure.
func redisBenchmark(ctx context.Context, bin, addr string, n int) ([]string, error) {
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		return nil, fmt.Errorf("address %q has no port", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-q", "-n", strconv.Itoa(n))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	all := stdout.String() + stderr.String()
	if runErr != nil {
		return nil, fmt.Errorf("redis-benchmark: %w\n%s", runErr, tail(all, 2000))
	}
	for _, bad := range []string{"ERR", "Error", "error"} {
		if strings.Contains(all, bad) {
			return nil, fmt.Errorf("redis-benchmark printed %q:\n%s", bad, tail(all, 2000))
		}
	}
	var tests []string
	// -q rewrites a progress line in place with \r before the final one.
	for _, line := range strings.FieldsFunc(all, func(r rune) bool { return r == '\r' || r == '\n' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, "rps=") {
			continue
		}
		m := resultLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("redis-benchmark: unexpected line %q", line)
		}
		tests = append(tests, m[1])
	}
	if len(tests) == 0 {
		return nil, fmt.Errorf("redis-benchmark reported no test:\n%s", tail(all, 2000))
	}
	return tests, nil
}
