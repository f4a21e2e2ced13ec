package redistest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redisproc"
)

// Server is a redis-server process owned by one test.
type Server struct {
	*redisproc.Process
	tb testing.TB
}

// Require skips the test when redis-server is missing, or fails it under
// REQUIRE_REDIS=1.
func Require(tb testing.TB) {
	tb.Helper()
	if _, err := redisproc.LookPath(""); err != nil {
		if os.Getenv("REQUIRE_REDIS") == "1" {
			tb.Fatalf("REQUIRE_REDIS=1 but %v", err)
		}
		tb.Skipf("skipping integration test: %v", err)
	}
}

// Start starts a redis-server with the given extra configuration arguments
// ("--maxmemory", "10mb", ...) and registers its shutdown with tb.Cleanup.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	Require(tb)
	p, err := redisproc.Start(context.Background(), redisproc.Config{Dir: tb.TempDir(), Args: args})
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(func() { p.Stop(5 * time.Second) })
	return &Server{Process: p, tb: tb}
}

// StartN starts n servers with the same arguments.
func StartN(tb testing.TB, n int, args ...string) []*Server {
	tb.Helper()
	out := make([]*Server, n)
	for i := range out {
		out[i] = Start(tb, args...)
	}
	return out
}

// Client returns a go-redis client for the server, closed at cleanup.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// Sleep pauses for ms milliseconds; for polling loops in tests.
func Sleep(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }
