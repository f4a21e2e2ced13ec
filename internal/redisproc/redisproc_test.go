package redisproc

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// A start on a fixed port that another server holds fails, rather than
// taking that server's PONG for its own.
func TestStartPortInUse(t *testing.T) {
	if _, err := LookPath(""); err != nil { // as redistest.Require, which imports this package
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatalf("REQUIRE_REDIS=1 but %v", err)
		}
		t.Skip(err)
	}
	ctx := context.Background()
	first, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop(5 * time.Second)
	second, err := Start(ctx, Config{Dir: t.TempDir(), Port: first.Port()})
	if err == nil {
		second.Stop(5 * time.Second)
		t.Fatalf("a second redis-server started on port %d, which the first holds", first.Port())
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q does not say the port is in use", err)
	}
}

func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := LookPath(""); err != nil {
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatalf("REQUIRE_REDIS=1 but %v", err)
		}
		t.Skip(err)
	}
}

// A relative Dir is taken from the caller's working directory, as the
// proxy's default --state-dir (.reshard) is.
func TestStartRelativeDir(t *testing.T) {
	requireRedis(t)
	t.Chdir(t.TempDir())
	p, err := Start(context.Background(), Config{Dir: "rel/shard-0"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	if _, err := os.Stat("rel/shard-0/redis.log"); err != nil {
		t.Errorf("log file not in the relative directory: %v", err)
	}
}

// A redis-server that exits before its log file is open says why in the
// error, from what it printed.
func TestStartExitEarlyShowsOutput(t *testing.T) {
	requireRedis(t)
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), Args: []string{"--no-such-option", "1"}})
	if err == nil {
		t.Fatal("redis-server started with an unknown option")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("error %q does not carry redis-server's own message", err)
	}
}
