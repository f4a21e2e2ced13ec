package redistest

import (
	"context"
	"os"
	"strconv"
	"strings"
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

// StartReplica starts a redis-server replicating primary (--replicaof),
// with the given extra arguments, and waits until its link to the
// primary is up and its first sync done. The primary's
// repl-diskless-sync-delay is set to 0 first: its default waits 5 s for
// more replicas before each sync.
func StartReplica(tb testing.TB, primary *Server, args ...string) *Server {
	tb.Helper()
	if err := primary.Client().ConfigSet(tb.Context(), "repl-diskless-sync-delay", "0").Err(); err != nil {
		tb.Fatalf("primary %s: %v", primary.Addr(), err)
	}
	host, port, _ := strings.Cut(primary.Addr(), ":")
	r := Start(tb, append([]string{"--replicaof", host, port}, args...)...)
	WaitInSync(tb, r)
	return r
}

// WaitInSync waits until replica's link to its primary is up and no sync
// is in progress.
func WaitInSync(tb testing.TB, replica *Server) {
	tb.Helper()
	cl := replica.Client()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := cl.Info(tb.Context(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0") {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("replica %s not in sync after 10s: %v\n%s", replica.Addr(), err, info)
		}
	}
}

// WaitCaughtUp waits until replica has applied everything primary had
// written when it was called (its slave_repl_offset reaches primary's
// master_repl_offset).
func WaitCaughtUp(tb testing.TB, primary, replica *Server) {
	tb.Helper()
	field := func(s *Server, name string) int64 {
		info, _ := s.Client().Info(tb.Context(), "replication").Result()
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return -1
	}
	want := field(primary, "master_repl_offset")
	for deadline := time.Now().Add(10 * time.Second); field(replica, "slave_repl_offset") < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("replica %s did not reach its primary's offset %d in 10s", replica.Addr(), want)
		}
	}
}
