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

// makeRun runs `make run` in dir as a user does at a terminal: in a process
// group of its own, so that interrupt reaches make and the proxy together,
// as Ctrl-C does. It returns once the proxy answers.
func makeRun(t *testing.T, dir, listen string) (interrupt func()) {
	t.Helper()
	cmd := exec.Command("make", "run", "LISTEN="+listen)
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
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
	cl := redis.NewClient(&redis.Options{Addr: listen, Protocol: 2, MaxRetries: -1})
	defer cl.Close()
	deadline := time.Now().Add(3 * time.Minute) // make builds the binary first
	for cl.Ping(context.Background()).Err() != nil {
		select {
		case <-done:
			t.Fatalf("make run exited before serving:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run did not serve on %s:\n%s", listen, out.String())
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
			t.Fatalf("make run did not stop on SIGINT:\n%s", out.String())
		}
	}
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
