package snapshot

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// Integration test helpers: real redis-server processes through
// internal/redistest, real redis-check-rdb and redis-cli.

// Sync modes the tests run a source in. The diskless one has no delay; one
// test alone pays Redis's default 5 s delay.
var (
	diskArgs     = []string{"--repl-diskless-sync", "no"}
	disklessArgs = []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
)

// withArgs returns base plus extra without sharing base's array.
func withArgs(base []string, extra ...string) []string {
	return append(append([]string(nil), base...), extra...)
}

// startSource starts a shard with DEBUG enabled for loopback (POPULATE,
// DIGEST) plus args.
func startSource(t testing.TB, args ...string) *redistest.Server {
	t.Helper()
	return redistest.Start(t, append([]string{"--enable-debug-command", "local"}, args...)...)
}

// patientClient is a client for commands that take long on a busy
// machine (DEBUG POPULATE, SAVE), closed at cleanup.
func patientClient(t testing.TB, s *redistest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true, ReadTimeout: 5 * time.Minute})
	t.Cleanup(func() { c.Close() })
	return c
}

// populate fills s with n keys of size-byte values (DEBUG POPULATE).
func populate(t testing.TB, s *redistest.Server, n, size int) {
	t.Helper()
	c := patientClient(t, s)
	if err := c.Do(context.Background(), "DEBUG", "POPULATE", n, "key", size).Err(); err != nil {
		t.Fatalf("DEBUG POPULATE %d: %v", n, err)
	}
}

// captureConfig returns a config for s with files in a fresh directory.
func captureConfig(t testing.TB, s *redistest.Server) CaptureConfig {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultCaptureConfig()
	cfg.Addr = s.Addr()
	cfg.RDBPath = filepath.Join(dir, "shard.rdb")
	cfg.TailPath = filepath.Join(dir, "shard.tail.aof")
	cfg.LinkTimeout = 20 * time.Second
	return cfg
}

func startCapture(t testing.TB, cfg CaptureConfig) *Stream {
	t.Helper()
	st, err := Capture(context.Background(), cfg)
	if err != nil {
		t.Fatalf("capture %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitPhase waits until the capture has reached phase (or later).
func waitPhase(t testing.TB, st *Stream, phase Phase) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for Phase(st.phase.Load()) < phase {
		select {
		case <-st.Done():
			t.Fatalf("capture ended waiting for phase %s: %v", phase, st.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture still in phase %s", st.Progress().Phase)
		}
		redistest.Sleep(5)
	}
}

func infoField(t testing.TB, c *redis.Client, section, field string) string {
	t.Helper()
	text, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	for _, line := range strings.Split(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return ""
}

func masterOffset(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	n, err := strconv.ParseInt(infoField(t, c, "replication", "master_repl_offset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func digest(t testing.TB, c *redis.Client) string {
	t.Helper()
	d, err := c.Do(context.Background(), "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatalf("DEBUG DIGEST: %v", err)
	}
	return d
}

// checkRDB runs redis-check-rdb on path; it also serves as a Verify hook.
func checkRDB(path string) error {
	out, err := exec.Command("redis-check-rdb", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-check-rdb: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "RDB looks OK") {
		return fmt.Errorf("redis-check-rdb: %s", out)
	}
	return nil
}

// rebuild starts a fresh redis-server on the captured RDB and replays the
// tail with redis-cli --pipe, as an operator would.
func rebuild(t testing.TB, res Result) *redistest.Server {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, res.RDBPath, filepath.Join(dir, "dump.rdb"))
	s := redistest.Start(t, "--dir", dir, "--dbfilename", "dump.rdb", "--enable-debug-command", "local")
	tail, err := os.Open(res.TailPath)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	cmd := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port()), "--pipe")
	cmd.Stdin = tail
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --pipe: %v\n%s", err, out)
	}
	want := fmt.Sprintf("errors: 0, replies: %d", res.TailCommands)
	if !strings.Contains(string(out), want) {
		t.Fatalf("redis-cli --pipe: want %q in\n%s", want, out)
	}
	return s
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// tailKinds counts the commands of a tail file by kind.
func tailKinds(t testing.TB, path string) map[cmdKind]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := cmdParser{r: bufio.NewReader(f)}
	kinds := map[cmdKind]int{}
	for {
		_, kind, err := p.next(io.Discard)
		if err == io.EOF {
			return kinds
		}
		if err != nil {
			t.Fatalf("tail %s does not parse: %v", path, err)
		}
		kinds[kind]++
	}
}

func assertRemoved(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after a failed capture (stat: %v)", p, err)
		}
	}
}

// writers is a write load: each writer writes increasing sequence numbers
// to its own keys, in databases 0 and 1, in transactions, with expiries
// and now and then a large value. Pause blocks new writes and waits for
// those in flight, so the test can read a consistent view of the source.
type writers struct {
	mu   sync.RWMutex
	stop chan struct{}
	wg   sync.WaitGroup
	last []atomic.Int64
	errs chan error
}

func startWriters(t testing.TB, s *redistest.Server, n int) *writers {
	t.Helper()
	w := &writers{stop: make(chan struct{}), last: make([]atomic.Int64, n), errs: make(chan error, n)}
	db0 := s.Client()
	db1 := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: 1, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { db1.Close() })
	big := strings.Repeat("v", 64<<10)
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			ctx := context.Background()
			for seq := int64(1); ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				w.mu.RLock()
				err := writeOne(ctx, db0, db1, i, seq, big)
				w.mu.RUnlock()
				if err != nil {
					w.errs <- fmt.Errorf("writer %d seq %d: %w", i, seq, err)
					return
				}
				w.last[i].Store(seq)
			}
		}()
	}
	t.Cleanup(w.Stop)
	return w
}

func writeOne(ctx context.Context, db0, db1 *redis.Client, i int, seq int64, big string) error {
	key := func(s string) string { return fmt.Sprintf("w:%d:%s", i, s) }
	switch {
	case seq%5 == 0:
		_, err := db0.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, key("ctr"))
			p.HSet(ctx, key("h"), fmt.Sprintf("f%d", seq%10), seq)
			p.Set(ctx, key("last"), seq, 0)
			return nil
		})
		return err
	case seq%7 == 0:
		if err := db1.Set(ctx, key("db1"), seq, 0).Err(); err != nil {
			return err
		}
	case seq%11 == 0:
		if err := db0.Set(ctx, key("ttl"), seq, time.Hour).Err(); err != nil {
			return err
		}
	case seq%97 == 0:
		if err := db0.Set(ctx, key("big"), big, 0).Err(); err != nil {
			return err
		}
	default:
		if err := db0.RPush(ctx, key("list"), seq).Err(); err != nil {
			return err
		}
	}
	return db0.Set(ctx, key("last"), seq, 0).Err()
}

// Pause blocks new writes and waits for the ones in flight.
func (w *writers) Pause() { w.mu.Lock() }

// Resume lets the writers go on.
func (w *writers) Resume() { w.mu.Unlock() }

// Stop ends the writers; it is idempotent.
func (w *writers) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *writers) check(t testing.TB) {
	t.Helper()
	select {
	case err := <-w.errs:
		t.Fatal(err)
	default:
	}
}
