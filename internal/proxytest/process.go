package proxytest

import (
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redisproc"
)

// Process is `reshard proxy` run as a real process: for tests that kill it,
// and for benchmarks that must measure the binary users run (its own
// runtime settings, its own process CPU), not a proxy sharing the test
// binary's scheduler with the load generator.
type Process struct {
	Addr string
	cmd  *exec.Cmd
}

// Build compiles cmd/reshard into a temporary directory and returns the
// binary's path.
func Build(tb testing.TB) string {
	tb.Helper()
	return BuildCommand(tb, "github.com/reshard/reshard/cmd/reshard")
}

// BuildCommand compiles the main package pkg into a temporary directory
// and returns the binary's path.
func BuildCommand(tb testing.TB, pkg string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), path.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// StartProcess runs bin as a proxy in front of shards (a topology spec;
// none: the embedded shards it starts itself) on a free loopback port, with
// stateDir and any extra flags, and waits until it answers PING. The
// process is killed at cleanup.
func StartProcess(tb testing.TB, bin, stateDir string, shards []string, flags ...string) *Process {
	tb.Helper()
	port, err := redisproc.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"proxy", "--listen", addr, "--state-dir", stateDir, "--log-level", "warn"}
	if len(shards) > 0 {
		args = append(args, "--shards", strings.Join(shards, ","))
	}
	args = append(args, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &Process{Addr: addr, cmd: cmd}
	tb.Cleanup(p.Kill)
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	defer cl.Close()
	for i := 0; cl.Ping(context.Background()).Err() != nil; i++ {
		if i > 500 {
			tb.Fatal("proxy process did not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// Pid is the process id, for reading its CPU time from /proc.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error { return p.cmd.Wait() }

// Kill stops the process with SIGKILL and waits for it; it is safe to call
// more than once.
func (p *Process) Kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}
