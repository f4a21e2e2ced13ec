package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/atomicfile"
	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/router"
)

// The embedded shards live in STATE_DIR/embedded: shard-N holds the data of
// the Nth, and embeddedList records the address each was first given. A
// restart brings every one back on its address, and that is all it may
// bring back: after a reshard onto other shards, the routing table names
// addresses the proxy does not own, and starting redis-server there would
// either fail or serve the embedded shards' pre-reshard data as current.
const (
	embeddedMarker = "embedded"
	embeddedList   = "shards.json"
)

func embeddedState(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, embeddedMarker))
	return err == nil
}

type embeddedFile struct {
	Shards []string `json:"shards"`
}

// loadEmbedded reads the embedded shards' addresses, by index; nil when the
// list was never written.
func loadEmbedded(stateDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, embeddedMarker, embeddedList))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f embeddedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("embedded shards list %s: %w", embeddedList, err)
	}
	return f.Shards, nil
}

func saveEmbedded(stateDir string, addrs []string) error {
	b, err := json.Marshal(embeddedFile{Shards: addrs})
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(stateDir, embeddedMarker), embeddedList, append(b, '\n'), 0o644)
}

// startEmbedded starts local redis-server shards with their data in the state
// directory. On the first start (table nil) it starts --embedded-shards of
// them on free ports and builds and persists their table. On a restart it
// brings back every embedded shard on its recorded port: those of the
// persisted table, which must start, and those a reshard moved away from,
// kept running, as the proxy keeps them before a restart, so that a reshard
// back onto them remains a rollback; these may fail to start (their port
// taken since) with a warning.
func startEmbedded(ctx context.Context, f proxyFlags, table *router.Table, log *zap.Logger) ([]*redisproc.Process, *router.Table, error) {
	if _, err := redisproc.LookPath(""); err != nil {
		return nil, nil, fmt.Errorf("no --shards given and %w", err)
	}
	var procs []*redisproc.Process
	stopAll := func() {
		for _, q := range procs {
			q.Stop(5 * time.Second)
		}
	}
	start := func(i, port int) (*redisproc.Process, error) {
		dir := filepath.Join(f.stateDir, embeddedMarker, fmt.Sprintf("shard-%d", i))
		if err := stopOrphan(dir, log); err != nil {
			return nil, err
		}
		return redisproc.Start(ctx, redisproc.Config{
			Dir:  dir,
			Port: port,
			// No replica but the proxy's own captures ever syncs from
			// an embedded shard, so Redis's 5 s wait for more replicas
			// before the fork would only delay every BGSAVE and reshard.
			Args: []string{"--appendonly", "yes", "--pidfile", filepath.Join(dir, pidFile),
				"--repl-diskless-sync-delay", "0"},
		})
	}

	if table != nil {
		addrs, err := embeddedAddrs(f.stateDir, table, log)
		if err != nil {
			return nil, nil, err
		}
		for i, a := range addrs {
			_, p, _ := net.SplitHostPort(a)
			port, err := strconv.Atoi(p)
			if err != nil || port <= 0 {
				stopAll()
				return nil, nil, fmt.Errorf("embedded shards list: bad address %q", a)
			}
			routed := slices.Contains(table.Addrs(), a)
			proc, err := start(i, port)
			switch {
			case err != nil && routed:
				stopAll()
				return nil, nil, fmt.Errorf("embedded shard %d: %w", i, err)
			case err != nil:
				log.Warn("embedded shard not restarted; the routing table no longer uses it", zap.String("shard", a), zap.Error(err))
				continue
			}
			log.Info("embedded shard started", zap.String("shard", proc.Addr()), zap.Int("pid", proc.PID()),
				zap.String("dir", proc.Dir()), zap.Bool("routed", routed))
			procs = append(procs, proc)
		}
		return procs, table, nil
	}

	if f.embedded < 1 {
		return nil, nil, fmt.Errorf("--embedded-shards must be at least 1, got %d", f.embedded)
	}
	var addrs []string
	for i := 0; i < f.embedded; i++ {
		proc, err := start(i, 0)
		if err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("embedded shard %d: %w", i, err)
		}
		log.Info("embedded shard started", zap.String("shard", proc.Addr()), zap.Int("pid", proc.PID()),
			zap.String("dir", proc.Dir()), zap.Bool("routed", true))
		procs = append(procs, proc)
		addrs = append(addrs, proc.Addr())
	}
	// The list goes first: a table naming shards that are not on the list
	// would be taken, at the next start, for shards someone else runs. The
	// caller persists the table once the proxy is up.
	err := saveEmbedded(f.stateDir, addrs)
	if err == nil {
		var spec []router.Shard
		if spec, err = router.ParseShardArgs(addrs); err == nil {
			table, err = router.NewTable(1, spec)
		}
	}
	if err != nil {
		stopAll()
		return nil, nil, err
	}
	return procs, table, nil
}

// embeddedAddrs returns the recorded addresses of the embedded shards. A
// state directory written before the list existed has none; its table is
// the embedded shards' own only while it is the first one, epoch 1.
func embeddedAddrs(stateDir string, table *router.Table, log *zap.Logger) ([]string, error) {
	addrs, err := loadEmbedded(stateDir)
	if err != nil || addrs != nil {
		return addrs, err
	}
	if table.Epoch() != 1 {
		log.Warn("no list of embedded shards and the routing table has changed since they were started: none is restarted",
			zap.String("state_dir", stateDir), zap.Uint64("epoch", table.Epoch()))
		return nil, nil
	}
	addrs = table.Addrs()
	return addrs, saveEmbedded(stateDir, addrs)
}

// pidFile is where an embedded shard's redis-server writes its pid (Redis
// writes --pidfile even when it does not daemonize).
const pidFile = "redis.pid"

// stopOrphan stops a redis-server left running on an embedded shard's
// directory by a proxy that was killed (SIGKILL gives it no chance to stop
// its shards, which run in process groups of their own). Such a server
// holds the shard's port and its append-only file; it is stopped with
// SIGTERM, which makes Redis write its data out, and the caller starts the
// shard again as usual. A pid is taken for the shard's only when that
// process runs in the shard's directory, so a recycled pid is left alone.
func stopOrphan(dir string, log *zap.Logger) error {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return nil // never started, or stopped cleanly (Redis removes the file)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if !runsIn(pid, abs) {
		return nil
	}
	log.Warn("stopping an embedded shard left running by a proxy that did not stop it", zap.Int("pid", pid), zap.String("dir", dir))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // gone meanwhile
	}
	deadline := time.Now().Add(30 * time.Second)
	for runsIn(pid, abs) {
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded shard in %s (pid %d) left running by an earlier proxy did not stop within 30s", dir, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// runsIn tells whether process pid is alive and runs in directory dir (a
// zombie has no working directory).
func runsIn(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return err == nil && cwd == dir
}
