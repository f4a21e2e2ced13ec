package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/proc"
)

// ErrNotInstalled is returned when no etcd binary can be found.
var ErrNotInstalled = errors.New("etcdtest: etcd not found in PATH (install Debian's etcd-server package: apt-get install -y etcd-server)")

// Server is an etcd process owned by one test.
type Server struct {
	tb         testing.TB
	bin        string
	name       string
	dir        string
	clientPort int
	peerPort   int
	p          *proc.Process
}

// Require skips the test when etcd is missing, or fails it under
// REQUIRE_REDIS=1.
func Require(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		if os.Getenv("REQUIRE_REDIS") == "1" {
			tb.Fatalf("REQUIRE_REDIS=1 but %v", ErrNotInstalled)
		}
		tb.Skipf("skipping integration test: %v", ErrNotInstalled)
	}
}

// names makes each server's member name and cluster token unique in this
// test binary; the PID makes them unique across test binaries run at once.
var names atomic.Int64

// Start starts etcd with the given extra flags ("--auto-compaction-retention",
// "1", ...; a flag given again overrides the rig's) and registers its
// shutdown with tb.Cleanup. A port picked as free
// can be taken by someone else before etcd binds it, so a start that fails
// is retried on new ports.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	Require(tb)
	bin, _ := exec.LookPath("etcd")
	s := &Server{
		tb:   tb,
		bin:  bin,
		name: fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), names.Add(1)),
		dir:  tb.TempDir(),
	}
	var err error
	for range 5 {
		if s.clientPort, err = proc.FreePort(); err != nil {
			tb.Fatalf("etcdtest: free port: %v", err)
		}
		if s.peerPort, err = proc.FreePort(); err != nil {
			tb.Fatalf("etcdtest: free port: %v", err)
		}
		if err = s.start(args); err == nil {
			return s
		}
	}
	tb.Fatalf("etcdtest: %v", err)
	return nil
}

// start runs etcd on s's ports and data directory and waits until it
// serves; on failure the process is gone and the error carries the end of
// what it printed.
func (s *Server) start(args []string) error {
	peer := "http://127.0.0.1:" + strconv.Itoa(s.peerPort)
	client := s.Endpoint()
	flags := []string{
		"--name", s.name,
		"--data-dir", s.dir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", s.name + "=" + peer,
		"--initial-cluster-token", s.name,
		"--initial-cluster-state", "new",
		// A tenth of etcd's default timing: the shortest lease etcd
		// grants is 1.5 election timeouts (1.5s by default, rounded up
		// to 2s), and fault tests want leases that expire in about a
		// second. A one-member cluster has no peer to miss heartbeats.
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	cmd := exec.Command(s.bin, append(flags, args...)...)
	cmd.Dir = s.dir
	// etcd refuses to start when an ETCD_* variable duplicates a flag,
	// and one from the caller's environment must not reconfigure it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p, err := proc.Start(cmd)
	if err != nil {
		return err
	}
	if err := waitReady(p, client, s.clientPort, 10*time.Second); err != nil {
		p.Kill()
		return fmt.Errorf("etcd on client port %d, peer port %d: %w\n%s", s.clientPort, s.peerPort, err, p.Output(5))
	}
	s.p = p
	s.tb.Cleanup(func() { p.Stop(5 * time.Second) })
	return nil
}

// waitReady waits until the etcd process p holds its client port and then
// answers a linearizable read there, which needs an elected leader. The
// port comes first for two reasons: a stranger that took the port first
// must not answer for a process that failed to bind it, and a gRPC client
// refused once waits a second before it dials again.
func waitReady(p *proc.Process, endpoint string, port int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err := poll(ctx, p, func() error {
		if !proc.ListensOn(p.PID(), port) {
			return fmt.Errorf("not listening on port %d", port)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	return poll(ctx, p, func() error {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := cli.Get(attempt, "etcdtest-ready")
		return err
	})
}

// poll calls try until it succeeds, ctx ends or p exits.
func poll(ctx context.Context, p *proc.Process, try func() error) error {
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %v", err)
		case <-p.Done():
			return fmt.Errorf("exited early: %v", p.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Endpoint is the client URL, http://127.0.0.1:port, as --etcd takes it.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.clientPort) }

// ClientPort is the port of Endpoint.
func (s *Server) ClientPort() int { return s.clientPort }

// PeerPort is the raft peer port; nothing talks to it in a one-member
// cluster, but it is explicit so that etcd does not take 2380.
func (s *Server) PeerPort() int { return s.peerPort }

// Name is the member name, unique per server.
func (s *Server) Name() string { return s.name }

// Dir is the data directory.
func (s *Server) Dir() string { return s.dir }

// PID is the etcd process's id.
func (s *Server) PID() int { return s.p.PID() }

// Done is closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.p.Done() }

// Signal sends sig to the process: SIGSTOP stalls etcd with its sockets
// open (clients time out rather than being refused), SIGCONT resumes it.
func (s *Server) Signal(sig os.Signal) error { return s.p.Signal(sig) }

// Stop asks etcd to exit (SIGTERM) and waits for it, killing it after 5s.
func (s *Server) Stop() { s.p.Stop(5 * time.Second) }

// Kill stops etcd at once (SIGKILL): it loses nothing it acknowledged,
// since etcd fsyncs its log before answering.
func (s *Server) Kill() { s.p.Kill() }

// Restart starts a stopped server again on the same ports, data directory
// and name, with the given extra flags: the same member with the same keys
// and revisions, where its clients expect it. The ports can still be held
// for a moment after the old process died, so a failed start is retried
// for a few seconds.
func (s *Server) Restart(args ...string) {
	s.tb.Helper()
	if !s.p.Exited() {
		s.tb.Fatalf("etcdtest: restart %s: the server is still running", s.Endpoint())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.start(args)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("etcdtest: restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client returns a client of the server, closed at cleanup. It keeps the
// endpoint across Stop and Restart, as a proxy's client would.
func (s *Server) Client() *clientv3.Client {
	s.tb.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint()},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		s.tb.Fatalf("etcdtest: client: %v", err)
	}
	s.tb.Cleanup(func() { cli.Close() })
	return cli
}
