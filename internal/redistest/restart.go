package redistest

import (
	"context"
	"time"

	"github.com/reshard/reshard/internal/redisproc"
)

// Restart starts a server that was stopped (Kill or Stop) again, on the same
// port and data directory, with the given extra configuration arguments, and
// registers the new process's shutdown with the test's cleanup. Fault tests
// use it to bring a shard back where the proxy expects it.
//
// The port can still be held for a moment after the old process died (or
// taken by someone else meanwhile, which fails the test), so a failed start
// is retried for a few seconds. Restart is not safe to call while other
// goroutines use the server's accessors (Addr, Port, ...).
func (s *Server) Restart(args ...string) {
	s.tb.Helper()
	select {
	case <-s.Done():
	default:
		s.tb.Fatalf("redistest: restart %s: the server is still running", s.Addr())
	}
	cfg := redisproc.Config{Port: s.Port(), Dir: s.Dir(), Args: args}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := redisproc.Start(context.Background(), cfg)
		if err == nil {
			s.tb.Cleanup(func() { p.Stop(5 * time.Second) })
			s.Process = p
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart on port %d: %v", cfg.Port, err)
		}
		Sleep(100)
	}
}
