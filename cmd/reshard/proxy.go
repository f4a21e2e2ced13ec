package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"
	"github.com/reshard/reshard/snapshot"
	"github.com/reshard/reshard/snapshot/objstore"

	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/sentinel"
)

type proxyFlags struct {
	cfg       proxy.Config
	etcd      control.EtcdConfig
	shards    string
	stateDir  string
	logLevel  string
	embedded  int
	procs     int
	readFrom  string
	metrics   string // --metrics-listen
	logFormat string

	snapRetain      int
	snapRetainNamed bool
	snapEvery       time.Duration
	snapStore       string
	s3              s3Flags
}

func runProxy(ctx context.Context, args []string, stderr io.Writer) error {
	f := proxyFlags{cfg: proxy.DefaultConfig()}
	fs := pflag.NewFlagSet("reshard proxy", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.cfg.Listen, "listen", f.cfg.Listen, "client address (host:port); loopback only unless told otherwise")
	fs.StringVar(&f.cfg.Announce, "announce", f.cfg.Announce, "address given to clients as the proxy's own in CLUSTER SLOTS/SHARDS/NODES (default: the listening address)")
	fs.StringVar(&f.cfg.RequirePass, "requirepass", "", "password clients must give with AUTH (user \"default\"); or set "+envRequirePass+"; never logged")
	fs.StringVar(&f.cfg.AdminPassword, "admin-password", "", "password of the \"admin\" user, required for PROXY and admin commands when set; or set "+envAdminPassword+"; never logged")
	fs.StringVar(&f.cfg.ShardUsername, "shard-user", "", "ACL user for AUTH on the shards (with --shard-password)")
	fs.StringVar(&f.cfg.ShardPassword, "shard-password", "", "password for AUTH on the shards of --shards (a reshard's new shards take PROXY RESHARD ... AUTH, persisted in --state-dir); or set "+envShardPassword+"; never logged")
	fs.StringVar(&f.shards, "shards", "", "topology spec: HOST:PORT[+REPLICA...][=RANGES],... or sentinel:MASTER_NAME[=RANGES],... (RANGES: A-B or A, joined by /); empty starts local redis-server shards")
	fs.StringSliceVar(&f.cfg.Sentinels, "sentinels", nil, "Redis Sentinels (HOST:PORT, comma-separated) that name the primaries of sentinel:MASTER_NAME shards; their failovers are followed")
	fs.StringVar(&f.cfg.SentinelUsername, "sentinel-user", "", "ACL user for AUTH on the sentinels (with --sentinel-password)")
	fs.StringVar(&f.cfg.SentinelPassword, "sentinel-password", "", "password for AUTH on the sentinels; or set "+envSentinelPassword+"; never logged")
	fs.StringVar(&f.stateDir, "state-dir", ".reshard", "state directory: persisted routing table, embedded shards' data")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "console", "log format: console (one readable line per entry) or json (one JSON object per line, for log collectors)")
	fs.StringVar(&f.snapStore, "snapshot-store", "", "where BGSAVE puts snapshots: a directory, or s3://BUCKET/PREFIX in object storage (see --s3-endpoint); empty: STATE_DIR/snapshots")
	f.s3.add(fs)
	fs.IntVar(&f.snapRetain, "snapshot-retain", 0, "keep this many snapshots, deleting the oldest after each new one (0: keep all); named snapshots are kept and not counted unless --snapshot-retain-named")
	fs.BoolVar(&f.snapRetainNamed, "snapshot-retain-named", false, "count named snapshots in --snapshot-retain too, and delete the oldest of them as well")
	fs.DurationVar(&f.snapEvery, "snapshot-every", 0, "take a snapshot at this interval, as BGSAVE does (0: none)")
	fs.StringVar(&f.metrics, "metrics-listen", "", "address (host:port) for Prometheus metrics (/metrics) and health checks (/healthz, /readyz); empty: none; loopback only unless told otherwise")
	fs.IntVar(&f.cfg.MaxClients, "maxclients", f.cfg.MaxClients, "maximum concurrent client connections")
	fs.DurationVar(&f.cfg.IdleTimeout, "timeout", f.cfg.IdleTimeout, "close clients idle this long (0: never)")
	fs.IntVar(&f.cfg.BackendConns, "backend-conns", f.cfg.BackendConns, "multiplexed connections per shard")
	fs.StringVar(&f.readFrom, "read-from", "primary", "where reads go when shards list replicas (PRIMARY+REPLICA in --shards): primary, prefer-replica (a readable replica, else the primary) or replica (a readable replica only); READONLY and READWRITE opt a connection in and out")
	sizeVar(fs, &f.cfg.ReplicaMaxLag, "replica-max-lag", f.cfg.ReplicaMaxLag, "a replica further behind its primary than this (replication stream bytes) is not read from")
	fs.DurationVar(&f.cfg.DialTimeout, "dial-timeout", f.cfg.DialTimeout, "timeout of one connection attempt to a shard")
	fs.DurationVar(&f.cfg.ShardTimeout, "shard-timeout", f.cfg.ShardTimeout, "requests waiting this long on a shard connection with no reply at all fail, and the connection is replaced (0: wait for ever)")
	sizeVar(fs, &f.cfg.MaxBulkLen, "proto-max-bulk-len", f.cfg.MaxBulkLen, "largest bulk argument a client may send (sizes take Redis's units: 512mb, 1gb, 1k)")
	fs.Int64Var(&f.cfg.MaxArgs, "max-args", f.cfg.MaxArgs, "largest argument count of one command")
	sizeVar(fs, &f.cfg.MaxQueryBuffer, "client-query-buffer-limit", f.cfg.MaxQueryBuffer, "largest single client request")
	sizeVar(fs, &f.cfg.MaxOutputBuffer, "client-output-buffer-limit", f.cfg.MaxOutputBuffer, "most reply bytes held for one client pipeline, counted as they arrive from the shards; beyond it the client is disconnected")
	sizeVar(fs, &f.cfg.MaxPubsubOutputBuffer, "pubsub-output-buffer-limit", f.cfg.MaxPubsubOutputBuffer, "most bytes queued for a subscribed client that does not read its messages; beyond it the client is disconnected (Redis's client-output-buffer-limit pubsub, hard limit)")
	sizeVar(fs, &f.cfg.PubsubOutputBufferSoft, "pubsub-output-buffer-soft-limit", f.cfg.PubsubOutputBufferSoft, "bytes queued for a subscribed client that, kept for longer than --pubsub-output-buffer-soft-time, get it disconnected when more comes (Redis's soft limit; 0: none)")
	fs.DurationVar(&f.cfg.PubsubOutputBufferSoftTime, "pubsub-output-buffer-soft-time", f.cfg.PubsubOutputBufferSoftTime, "how long a subscribed client may stay over --pubsub-output-buffer-soft-limit")
	fs.IntVar(&f.procs, "procs", 0, "threads running the proxy's Go code at once (GOMAXPROCS); 0: the GOMAXPROCS environment variable if set, else half the CPUs available, at least 1")
	fs.IntVar(&f.embedded, "embedded-shards", 3, "number of local redis-server shards to start when --shards is empty")
	fs.StringSliceVar(&f.etcd.Endpoints, "etcd", nil, "etcd client URLs (comma-separated): share the routing table with the other proxies of --etcd-prefix; empty: one proxy, the table in --state-dir")
	fs.StringVar(&f.etcd.Prefix, "etcd-prefix", control.DefaultEtcdPrefix, "etcd key prefix of the proxies that share a table")
	fs.DurationVar(&f.etcd.LeaseTTL, "etcd-lease-ttl", control.DefaultLeaseTTL, "membership lease: a proxy that cannot renew it stops serving data commands within it")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: reshard proxy [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	err := fs.Parse(args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.cfg.ReadFrom, err = proxy.ParseReadFrom(f.readFrom); err != nil {
		return err
	}
	secretFromEnv(fs, "requirepass", envRequirePass, &f.cfg.RequirePass)
	secretFromEnv(fs, "admin-password", envAdminPassword, &f.cfg.AdminPassword)
	secretFromEnv(fs, "shard-password", envShardPassword, &f.cfg.ShardPassword)
	secretFromEnv(fs, "sentinel-password", envSentinelPassword, &f.cfg.SentinelPassword)
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	if f.snapRetain < 0 || f.snapEvery < 0 {
		return fmt.Errorf("--snapshot-retain and --snapshot-every must not be negative")
	}
	if f.procs < 0 {
		return fmt.Errorf("--procs must be 0 or more, got %d", f.procs)
	}
	if n := procs(f.procs, os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	log.Info("go threads", zap.Int("procs", runtime.GOMAXPROCS(0)))
	return serveProxy(ctx, f, log)
}

// procs is the GOMAXPROCS the proxy runs with, or 0 to keep the runtime's:
// the flag if given, else what the GOMAXPROCS environment variable says,
// else half of avail (the CPUs the runtime found, cgroup limits included).
//
// Half, because the proxy's work per command is small and mostly system
// calls: handing goroutines between threads (futex wake-ups, context
// switches, the scheduler's spinning) costs more than a second thread gains
// until the load needs more than one core. On the 2-core benchmark machine
// one thread took 11 µs of CPU per command at pipeline depth 1 against
// 14.5 µs with two, and served 20 to 40% more (README, Benchmarks). The
// proxy also usually shares its host with clients or shards, which need
// the other half.
func procs(flag int, env string, avail int) int {
	switch {
	case flag > 0:
		return flag
	case env != "":
		return 0
	default:
		return max(1, avail/2)
	}
}

func serveProxy(ctx context.Context, f proxyFlags, log *zap.Logger) error {
	// Absolute from here on: the state directory is handed to child
	// processes that run elsewhere (the embedded shards run in their own).
	abs, err := filepath.Abs(f.stateDir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	f.stateDir = abs
	if err := os.MkdirAll(f.stateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	unlock, err := lockStateDir(f.stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	// The client port first: a busy one must fail the start before any
	// shard is started or anything is persisted.
	ln, err := listen(f.cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	var metricsLn net.Listener
	if f.metrics != "" {
		if metricsLn, err = listen(f.metrics); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer metricsLn.Close()
	}
	raiseFileLimit(f.cfg.MaxClients, log)
	var (
		table     *router.Table
		etcd      *control.Etcd
		etcdAuth  proxy.Auth
		persisted bool
		shards    []*redisproc.Process
	)
	defer func() {
		for _, p := range shards {
			p.Stop(10 * time.Second)
		}
	}()
	if len(f.etcd.Endpoints) > 0 {
		if etcd, table, etcdAuth, err = etcdTable(ctx, f, log); err != nil {
			return err
		}
		defer etcd.Close()
	} else if table, persisted, shards, err = localTable(ctx, f, log); err != nil {
		return err
	}

	ccfg := control.Config{StateDir: f.stateDir,
		ShardUsername: f.cfg.ShardUsername, ShardPassword: f.cfg.ShardPassword,
		SnapshotRetain: f.snapRetain, SnapshotRetainNamed: f.snapRetainNamed, SnapshotEvery: f.snapEvery}
	if ccfg.SnapshotStore, ccfg.S3, err = snapshotStore(ctx, f); err != nil {
		return err
	}
	if ccfg.SnapshotStore.Local() {
		if stale, err := ccfg.SnapshotStore.RemoveStale(ctx); err != nil {
			return fmt.Errorf("snapshot store %s: %w", ccfg.SnapshotStore, err)
		} else if len(stale) > 0 {
			log.Info("removed unfinished snapshots", zap.String("store", ccfg.SnapshotStore.String()), zap.Strings("dirs", stale))
		}
	} else {
		// An object store that cannot be reached must not keep the proxy
		// from serving: it is checked, and cleaned, in the background.
		go checkBucket(ctx, ccfg.SnapshotStore, log)
	}
	// The data plane dials the shards with the credentials a cutover
	// persisted for this table, if any, else the flags'.
	auth, err := control.TableAuth(ccfg, table, log)
	if err != nil {
		return err
	}
	if etcd != nil {
		auth, ccfg.Etcd = etcdAuth, etcd // they follow the table in etcd
	}
	f.cfg.ShardUsername, f.cfg.ShardPassword = auth.Username, auth.Password
	srv, err := proxy.New(f.cfg, table, log)
	if err != nil {
		return err
	}
	ctl := control.New(ccfg, srv, log)
	// With etcd the local table is a copy, never the authority.
	if !persisted || etcd != nil {
		if err := router.Save(f.stateDir, table); err != nil {
			ctl.Close()
			srv.Close()
			return err
		}
	}
	if metricsLn != nil {
		defer serveMetrics(metricsLn, srv, ctl, log)()
	}
	log.Info("proxy listening", zap.String("addr", ln.Addr().String()),
		zap.Uint64("epoch", table.Epoch()), zap.String("shards", router.FormatSpec(table.Shards())))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for _, p := range shards {
		go func(p *redisproc.Process) {
			select {
			case <-p.Done():
				log.Error("embedded shard exited", zap.String("shard", p.Addr()))
			case <-ctx.Done():
			}
		}(p)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", zap.Duration("bound", shutdownBound))
		ctl.Close() // jobs end first: a reshard not committed aborts
		sctx, cancel := context.WithTimeout(context.Background(), shutdownBound)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("clients still served at the shutdown bound were cut off", zap.Duration("bound", shutdownBound), zap.Error(err))
		}
		<-errc
		return nil
	case err := <-errc:
		ctl.Close()
		srv.Close()
		return err
	}
}

// shutdownBound is how long a signal lets the pipelines in flight finish
// before the proxy closes what is left. A pipeline's commands take
// milliseconds; what outlasts that is a client that does not read its
// replies or a WAIT without replicas, which no wait would end. Ten seconds,
// with the embedded shards' own 10 s to save their data after it, stays
// within the 30 s a service manager commonly gives a process between
// SIGTERM and SIGKILL (Kubernetes' default grace period). A constant, not
// a flag: no flag of the proxy bounds a stop, and one figure does until a
// deployment needs another.
const shutdownBound = 10 * time.Second

// localTable is the table of a proxy alone: the one persisted in the state
// directory, else the embedded shards' (which it starts) or --shards'.
// persisted says whether it was persisted already; shards are the embedded
// shards started, which the caller stops.
func localTable(ctx context.Context, f proxyFlags, log *zap.Logger) (table *router.Table, persisted bool, shards []*redisproc.Process, err error) {
	table, err = router.Load(f.stateDir)
	switch {
	case err == nil:
		if f.shards != "" {
			log.Warn("persisted routing table wins over --shards; to serve --shards instead, start with another --state-dir or remove the persisted table (STATE_DIR/topology.json) while the proxy is stopped",
				zap.String("state_dir", f.stateDir), zap.Uint64("epoch", table.Epoch()), zap.String("persisted", router.FormatSpec(table.Shards())))
		} else {
			log.Info("serving the persisted routing table", zap.Uint64("epoch", table.Epoch()))
		}
	case errors.Is(err, router.ErrNoTable):
		table = nil
	default:
		return nil, false, shards, err
	}
	persisted = table != nil
	if (f.shards == "" && table == nil) || (table != nil && embeddedState(f.stateDir)) {
		if f.cfg.ShardPassword != "" {
			return nil, false, shards, errors.New("--shard-password is for shards given with --shards: the embedded shards have no password")
		}
		shards, table, err = startEmbedded(ctx, f, table, log)
		if err != nil {
			return nil, false, shards, err
		}
	}
	if table == nil {
		spec, err := router.ParseSpec(f.shards)
		if err != nil {
			return nil, false, shards, fmt.Errorf("--shards: %w", err)
		}
		if table, err = router.NewTable(1, spec); err != nil {
			return nil, false, shards, fmt.Errorf("--shards: %w", err)
		}
	}
	if !persisted {
		// The first table is persisted only once every shard has
		// answered: a mistyped address must not become the table the
		// next start is bound to.
		if err := reachShards(ctx, table.Addrs(), f.cfg); err != nil {
			return nil, false, shards, err
		}
	}
	return table, persisted, shards, nil
}

// etcdTable opens etcd and returns the table the proxies of the prefix
// share: etcd's, or --shards' (after every shard answered) when etcd holds
// none yet.
func etcdTable(ctx context.Context, f proxyFlags, log *zap.Logger) (*control.Etcd, *router.Table, proxy.Auth, error) {
	var start *router.Table
	if f.shards != "" {
		spec, err := router.ParseSpec(f.shards)
		if err != nil {
			return nil, nil, proxy.Auth{}, fmt.Errorf("--shards: %w", err)
		}
		if start, err = router.NewTable(1, spec); err != nil {
			return nil, nil, proxy.Auth{}, fmt.Errorf("--shards: %w", err)
		}
	}
	f.etcd.DialTimeout = f.cfg.DialTimeout
	etcd, err := control.OpenEtcd(f.etcd, log)
	if err != nil {
		return nil, nil, proxy.Auth{}, err
	}
	if start != nil {
		// A mistyped address must not become the table of every proxy.
		if err := reachShards(ctx, start.Addrs(), f.cfg); err != nil {
			etcd.Close()
			return nil, nil, proxy.Auth{}, err
		}
	}
	table, auth, err := etcd.Table(ctx, start, proxy.Auth{Username: f.cfg.ShardUsername, Password: f.cfg.ShardPassword})
	if err != nil {
		etcd.Close()
		return nil, nil, proxy.Auth{}, fmt.Errorf("--etcd: %w", err)
	}
	return etcd, table, auth, nil
}

// listen opens the client address, saying what to do when it is taken.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("--listen %s: the address is in use by another process; choose another with --listen (make run LISTEN=127.0.0.1:6390)", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	return ln, nil
}

// reachShards PINGs every shard with the credentials of the flags.
// A sentinel:NAME shard is the primary the sentinels name.
func reachShards(ctx context.Context, addrs []string, cfg proxy.Config) error {
	var sentinels *sentinel.Watcher
	for _, shard := range addrs {
		a := shard
		if name, ok := sentinel.Name(shard); ok {
			if sentinels == nil {
				w, err := sentinel.New(sentinel.Config{Addrs: cfg.Sentinels, Username: cfg.SentinelUsername,
					Password: cfg.SentinelPassword, Timeout: cfg.DialTimeout}, func(sentinel.Event) {})
				if err != nil {
					return err
				}
				defer w.Close()
				sentinels = w
			}
			var err error
			if a, err = sentinels.Resolve(ctx, name); err != nil {
				return fmt.Errorf("shard %s: %w; nothing was persisted: check --sentinels and start again", shard, err)
			}
		}
		cl := redis.NewClient(&redis.Options{Addr: a, Username: cfg.ShardUsername, Password: cfg.ShardPassword,
			DialTimeout: cfg.DialTimeout, ReadTimeout: cfg.DialTimeout, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		err := cl.Ping(ctx).Err()
		cl.Close()
		if err != nil {
			return fmt.Errorf("shard %s does not answer: %w; nothing was persisted: check --shards and start again", shard, err)
		}
	}
	return nil
}

// lockStateDir takes an exclusive lock on the state directory for the
// life of the process: two proxies on one directory would overwrite each
// other's table. The kernel releases the lock when the process dies, so a
// killed proxy leaves nothing to clean up.
func lockStateDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "lock")
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		fh.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another reshard proxy (pid %s); stop it, or give this one another --state-dir",
				dir, strings.TrimSpace(string(owner)))
		}
		return nil, fmt.Errorf("state directory %s: lock: %w", dir, err)
	}
	fh.Truncate(0)
	fh.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { fh.Close() }, nil
}

// Passwords can come from the environment instead of flags: other users of
// the machine can read a process's arguments, not its environment.
const (
	envRequirePass      = "RESHARD_REQUIREPASS"
	envAdminPassword    = "RESHARD_ADMIN_PASSWORD"
	envShardPassword    = "RESHARD_SHARD_PASSWORD"
	envSentinelPassword = "RESHARD_SENTINEL_PASSWORD"
)

// secretFromEnv sets a password flag the command line left out from an
// environment variable.
func secretFromEnv(fs *pflag.FlagSet, flag, env string, dst *string) {
	if !fs.Changed(flag) {
		if v, ok := os.LookupEnv(env); ok {
			*dst = v
		}
	}
}

// raiseFileLimit lifts the soft open-file limit so maxclients can be reached.
func raiseFileLimit(maxClients int, log *zap.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(maxClients) + 256
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < want {
		log.Warn("open file limit is below maxclients", zap.Uint64("limit", lim.Cur), zap.Int("maxclients", maxClients))
	}
}

// snapshotStore opens --snapshot-store (STATE_DIR/snapshots by default)
// and the object store client, which PROXY RESTORE from s3:// sources uses
// too: it is made whenever a bucket is configured or could be named
// (--s3-endpoint given, or AWS credentials in the environment).
func snapshotStore(ctx context.Context, f proxyFlags) (*snapshot.Store, *objstore.Client, error) {
	loc := f.snapStore
	if loc == "" {
		loc = filepath.Join(f.stateDir, "snapshots")
	}
	var c *objstore.Client
	if objstore.IsURL(loc) || f.s3.endpoint != "" || os.Getenv("AWS_ACCESS_KEY_ID") != "" || os.Getenv("AWS_PROFILE") != "" {
		var err error
		if c, err = f.s3.newClient(ctx); err != nil {
			return nil, nil, err
		}
	}
	if !objstore.IsURL(loc) {
		abs, err := filepath.Abs(loc)
		if err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, nil, fmt.Errorf("snapshot directory: %w", err)
		}
		return snapshot.DirStore(abs), c, nil
	}
	// tails of running snapshots are spooled in the state directory; what
	// a crashed job left there is nobody's (the state directory is locked)
	spool := filepath.Join(f.stateDir, "snapshot-spool")
	if err := os.RemoveAll(spool); err != nil {
		return nil, nil, fmt.Errorf("snapshot spool: %w", err)
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, nil, fmt.Errorf("snapshot spool: %w", err)
	}
	st, err := snapshot.OpenStore(loc, c, spool)
	if err != nil {
		return nil, nil, fmt.Errorf("--snapshot-store: %w", err)
	}
	return st, c, nil
}

// checkBucket lists the snapshots of a store in a bucket once, logging
// what it finds or why it cannot, and removes what crashed jobs left.
func checkBucket(ctx context.Context, st *snapshot.Store, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	list, err := st.List(ctx)
	if err != nil {
		log.Warn("snapshot store not readable; BGSAVE will fail until it is", zap.String("store", st.String()), zap.Error(err))
		return
	}
	log.Info("snapshot store", zap.String("store", st.String()), zap.Int("snapshots", len(list)))
	if stale, err := st.RemoveStale(ctx); err != nil {
		log.Warn("snapshot store: removing unfinished snapshots failed", zap.String("store", st.String()), zap.Error(err))
	} else if len(stale) > 0 {
		log.Info("removed unfinished snapshots", zap.String("store", st.String()), zap.Strings("ids", stale))
	}
}
