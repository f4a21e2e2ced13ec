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
