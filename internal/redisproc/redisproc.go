package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/reshard/reshard/internal/proc"
)

// ErrNotInstalled is returned when no redis-server binary can be found.
var ErrNotInstalled = errors.New("redisproc: redis-server not found in PATH (install it: apt-get install -y redis-server)")

// Config describes one redis-server process.
type Config struct {
	// Bin is the redis-server binary; empty means "redis-server" from PATH.
	Bin string
	// Dir is the working and data directory; it is created if missing.
	Dir string
	// Args are extra configuration arguments ("--appendonly", "yes", ...).
	Args []string
	// Port to listen on; 0 picks a free loopback port.
	Port int
	// Sentinel, when not empty, runs a Redis Sentinel (redis-server
	// CONFIG --sentinel) with these configuration lines ("sentinel
	// monitor ..."), written to Dir/sentinel.conf, which Sentinel
	// rewrites as it learns the replicas and the failovers.
	Sentinel string
}

// Process is a running redis-server.
type Process struct {
	*proc.Process
	port int
	dir  string
}

// LookPath returns the redis-server binary to use, or ErrNotInstalled.
func LookPath(bin string) (string, error) {
	if bin == "" {
		bin = "redis-server"
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", ErrNotInstalled
	}
	return p, nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) { return proc.FreePort() }

// Start launches redis-server and waits until it answers PING. A port picked
// by FreePort can be taken by someone else before redis binds it, so a start
// that fails on a picked port is retried on a new one.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	bin, err := LookPath(cfg.Bin)
	if err != nil {
		return nil, err
	}
	// redis-server runs in Dir and is also told --dir and --logfile: a
	// relative path would be taken from Dir a second time.
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("redisproc: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("redisproc: %w", err)
	}
	attempts := 1
	if cfg.Port == 0 {
		attempts = 5
	} else if err := proc.PortFree(cfg.Port); err != nil {
		// Another server there would answer the readiness PING for
		// the one that failed to bind.
		return nil, fmt.Errorf("redisproc: port %d is in use: %w", cfg.Port, err)
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		port := cfg.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return nil, fmt.Errorf("redisproc: free port: %w", err)
			}
		}
		p, err := startOn(ctx, bin, cfg, port)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOn(ctx context.Context, bin string, cfg Config, port int) (*Process, error) {
	logfile := filepath.Join(cfg.Dir, "redis.log")
	var args []string
	if cfg.Sentinel != "" {
		conf := filepath.Join(cfg.Dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(cfg.Sentinel+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("redisproc: %w", err)
		}
		args = []string{conf, "--sentinel"}
	}
	args = append(args,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", cfg.Dir,
		"--logfile", logfile,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
	)
	args = append(args, cfg.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = cfg.Dir
	pr, err := proc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("redisproc: %w", err)
	}
	p := &Process{Process: pr, port: port, dir: cfg.Dir}
	if err := p.waitReady(ctx, 10*time.Second); err != nil {
		p.Kill()
		tail, _ := os.ReadFile(logfile)
		out := proc.LastLines(string(tail), 5)
		if len(strings.TrimSpace(out)) == 0 {
			out = p.Output(5)
		}
		return nil, fmt.Errorf("redisproc: redis-server on port %d: %w\n%s", port, err, out)
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("exited early: %v", p.Err())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		// The PING must be answered by this process: another server
		// that took the port first (a port picked by FreePort is free
		// only until someone binds it) would answer for one that is
		// about to fail to bind.
		if ping(p.Addr()) == nil && proc.ListensOn(p.PID(), p.port) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not answering PING")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends an inline PING and expects +PONG, or -NOAUTH from a server
// started with a password (it answers, so it is up).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if reply := string(buf[:n]); !strings.HasPrefix(reply, "+PONG") && !strings.HasPrefix(reply, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", buf[:n])
	}
	return nil
}

// Addr is the host:port the server listens on.
func (p *Process) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Port is the TCP port the server listens on.
func (p *Process) Port() int { return p.port }

// Dir is the server's data directory.
func (p *Process) Dir() string { return p.dir }
