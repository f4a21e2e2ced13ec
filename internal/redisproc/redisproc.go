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
	"sync"
	"syscall"
	"time"
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
}

// Process is a running redis-server.
type Process struct {
	cmd  *exec.Cmd
	port int
	dir  string
	done chan struct{}
	err  error
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
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// portFree checks that nothing listens on the loopback port.
func portFree(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

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
	} else if err := portFree(cfg.Port); err != nil {
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
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", cfg.Dir,
		"--logfile", logfile,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
	}
	args = append(args, cfg.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = cfg.Dir
	// What redis-server prints before its log file is open (a bad argument,
	// a log file it cannot open) goes to its standard streams.
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A process group of its own: a Ctrl-C at the terminal reaches the
	// proxy, which then stops its shards in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisproc: start %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, port: port, dir: cfg.Dir, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 10*time.Second); err != nil {
		p.Kill()
		tail, _ := os.ReadFile(logfile)
		if len(strings.TrimSpace(string(tail))) == 0 {
			tail = out.Bytes()
		}
		return nil, fmt.Errorf("redisproc: redis-server on port %d: %w\n%s", port, err, lastLines(string(tail), 5))
	}
	return p, nil
}

// tailBuffer keeps the last tailBytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 4096

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - tailBytes; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *Process) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited early: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		// The PING must be answered by this process: another server
		// that took the port first (a port picked by FreePort is free
		// only until someone binds it) would answer for one that is
		// about to fail to bind.
		if ping(p.Addr()) == nil && listensOn(p.PID(), p.port) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not answering PING")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listensOn reports whether process pid holds the listening TCP socket of
// port, from /proc; where there is no /proc it cannot tell and says yes.
func listensOn(pid, port int) bool {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is HEXIP:HEXPORT; state 0A is LISTEN
			if len(f) < 10 || f[3] != "0A" {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(n) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		_, noProc := os.Stat("/proc/self")
		return noProc != nil
	}
	for _, fd := range fds {
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[link] {
			return true
		}
	}
	return false
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

// PID is the operating system process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process (SIGSTOP and SIGCONT simulate a stall).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill stops the process at once (SIGKILL) and waits for it.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process must run to die cleanly
	p.cmd.Process.Kill()
	<-p.done
}

// Stop asks the process to exit (SIGTERM), and kills it after timeout.
func (p *Process) Stop(timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}
