package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
)

// copyRepoTo copies the repository's tracked files into dst, which must
// be empty or missing, as a fresh clone has them: nothing built, no state
// directory.
func copyRepoTo(t *testing.T, dst string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// syncBuffer is a bytes.Buffer that a child process and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// makeRun starts `make run` in dir, serving on listen, and waits until the
// proxy answers PING. interrupt is Ctrl-C: SIGINT to make's process group,
// as a terminal sends it; it waits for make to exit.
func makeRun(t *testing.T, dir, listen string) (interrupt func()) {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: listen, Protocol: 2, MaxRetries: -1})
	defer cl.Close()
	interrupt, _ = startMake(t, dir, []string{"run", "LISTEN=" + listen}, nil, func() error { return cl.Ping(context.Background()).Err() })
	return interrupt
}

// startMake starts make with args (and env added to the environment) in
// dir, in a process group of its own, and waits up to three minutes (make
// builds the binary first) until ready reports nil. interrupt sends the
// group SIGINT, as a terminal's Ctrl-C does, and waits for make to exit;
// out is what make and its children printed.
func startMake(t *testing.T, dir string, args, env []string, ready func() error) (interrupt func(), out *syncBuffer) {
	t.Helper()
	cmd := exec.Command("make", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for err := ready(); err != nil; err = ready() {
		select {
		case <-done:
			t.Fatalf("make %s exited before it was ready:\n%s", strings.Join(args, " "), out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("make %s not ready: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		t.Helper()
		stopped = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(time.Minute):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Fatalf("make %s did not stop on SIGINT:\n%s", strings.Join(args, " "), out.String())
		}
	}, out
}

// TestMakeRun is the README's first command on a fresh copy of the
// repository, with its default relative state directory: it serves, Ctrl-C
// stops it and every embedded shard, and a second `make run` serves the
// first one's data.
func TestMakeRun(t *testing.T) {
	redistest.Require(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed")
	}
	dir := copyRepoTo(t, freshCopyDir(t))
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	ctx := context.Background()

	interrupt := makeRun(t, dir, listen)
	cl := redis.NewClient(&redis.Options{Addr: listen, Protocol: 2})
	if err := cl.MSet(ctx, "user:1", "alice", "a", 1, "b", 2, "c", 3).Err(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	state := filepath.Join(dir, ".reshard")
	pids := shardPIDs(t, state)
	if len(pids) != 3 {
		t.Fatalf("%d embedded shards in %s, want 3", len(pids), state)
	}
	addrs, err := loadEmbedded(state)
	if err != nil || len(addrs) != 3 {
		t.Fatalf("embedded shards list: %v, %v", addrs, err)
	}
	interrupt()
	for i, pid := range pids {
		if alive(pid) {
			t.Errorf("embedded shard pid %d still runs after Ctrl-C", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if c, err := net.DialTimeout("tcp", addrs[i], 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("embedded shard %s still answers after Ctrl-C", addrs[i])
		}
	}

	interrupt = makeRun(t, dir, listen)
	defer interrupt()
	cl = redis.NewClient(&redis.Options{Addr: listen, Protocol: 2})
	defer cl.Close()
	got, err := cl.MGet(ctx, "user:1", "a", "b", "c").Result()
	if err != nil || len(got) != 4 || got[0] != "alice" || got[3] != "3" {
		t.Errorf("MGET after the second make run = %v, %v; want alice 1 2 3", got, err)
	}
}
