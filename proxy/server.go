package proxy

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/reshard/reshard/internal/sentinel"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/proxy/internal/backend"
)

// Version is the proxy's version, reported by INFO and HELLO.
const Version = "0.1.0"

// Server is the proxy: a RESP front end that routes every command through
// the current routing table to the shards' backends.
//
// Its life, as net/http's Server's: New connects to the shards, Serve
// accepts clients, and Shutdown ends it gracefully, Close at once. The
// goroutines it starts (the accept loop, a serving loop per client and the
// pub/sub loops and writers those start, the backends, the ops sampler,
// the retiring of former tables' pools) are its own: Shutdown ends them
// all and waits for them.
type Server struct {
	cpause        clientPause       // CLIENT PAUSE (clientpause.go)
	sentinels     *sentinel.Watcher // nil without sentinel:NAME shards (failover.go)
	failoverMu    sync.Mutex
	failoverHooks []func(addr string) // OnFailover
	replicasKick  chan struct{}       // a failover: list the sentinel: shards' replicas again
	cfg           Config
	log           *zap.Logger
	started       time.Time

	route   atomic.Pointer[route]
	swapMu  sync.Mutex
	swapped chan struct{} // closed and replaced at every SwapTable
	gate    gate          // the write barrier (barrier.go)

	pauses     prometheus.Histogram       // every barrier's hold (metrics.go)
	lastPause  atomic.Int64               // µs the last barrier was held
	pauseStart atomic.Int64               // unix ns the last barrier closed
	pauseEnd   atomic.Int64               // unix ns it opened again
	scripts    scriptCache                // the scripts EVALSHA may need on any shard (scripts.go)
	ctl        Controller                 // the control plane (controller.go); set before Serve
	lease      atomic.Pointer[leaseState] // until when data commands are served (lease.go); nil: always
	backends   backend.Config             // what every shard connection shares
	ctx        context.Context
	cancel     context.CancelFunc

	version atomic.Pointer[string] // the shards' redis_version
	runID   string                 // INFO's run_id; names the shard connections (setnameCommand)

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*clientConn]struct{} // open client connections, closed by Close
	closed   bool
	serving  int           // Serve calls still accepting, which Shutdown waits for
	retiring int           // retire goroutines that have pools to close, which Shutdown waits for
	draining chan struct{} // closed, under mu, when Shutdown starts (shutdown.go)

	sessions    sync.Map // id -> *session, for CLIENT LIST/KILL
	subscribers sync.Map // *pubsubLoop -> true, moved at every SwapTable
	monitors    monitors
	tracker     *tracker    // CLIENT TRACKING (tracking.go)
	counters    serverStats // INFO's clients, stats and proxy figures (serverstats.go)
	stats       *cmdStats   // INFO commandstats and errorstats (cmdstats.go)

	slowlogMaxLen     atomic.Int64  // bounds the merged slow log (slowlog.go)
	slowlogSlowerThan atomic.Int64  // µs, what makes a pipeline one the slow log may show (slowlog.go)
	slowWitnesses     slowWitnesses // the latest slow pipelines (slowlog.go)
	ownSlowlog        ownSlowlog    // the commands the proxy answers itself (slowlog.go)
	ownLatency        ownLatency    // their LATENCY HISTOGRAM (latency_own.go)
	stopSample        chan struct{} // stops counters' sampler
}

// route pairs a routing table with the backends of its shards, so that one
// atomic load gives a consistent view of both. The credentials belong to
// the route too: after a cutover onto shards with a password of their own,
// every new connection to them, however it is made, must use theirs.
type route struct {
	table *router.Table
	auth  Auth            // of every shard of the table
	pools []*backend.Pool // the shards' primaries', in the table's order

	// replicas are each shard's replicas (replicas.go); nil when no shard
	// has any. A pipeline stages a shard's commands at the shard's index
	// and reads from its replica j at replicaStage[shard]+j: stagePools
	// is pools followed by every replica's pool, in stage order.
	replicas     [][]*replica
	replicaStage []int
	stagePools   []*backend.Pool

	sentinel bool    // some shard is sentinel:NAME (failover.go)
	srv      *Server // for the replicas Sentinel knows (Route.Replicas)
}

// busyReply returns a BUSY reply of a shard whose script holds a
// connection, else nil.
func (srv *Server) busyReply() []byte {
	for _, p := range srv.route.Load().pools {
		if b := p.Busy(); b != nil {
			return b
		}
	}
	return nil
}

// New returns a proxy that routes through table. It starts connecting to the
// shards at once; Serve starts accepting clients.
func New(cfg Config, table *router.Table, log *zap.Logger) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if table == nil {
		return nil, errors.New("proxy: no routing table")
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: log, started: time.Now(), stopSample: make(chan struct{}), conns: map[*clientConn]struct{}{},
		draining: make(chan struct{}), stats: newCmdStats(), runID: newRunID(), pauses: newPauseHistogram()}
	s.backends = backend.Config{Conns: cfg.BackendConns, Stall: cfg.ShardTimeout, Panics: &s.counters.shardPanics,
		Hook: cfg.testHook, Log: log, Connected: s.scripts.shardConnected}
	auth := Auth{cfg.ShardUsername, cfg.ShardPassword}
	s.ctx, s.cancel = context.WithCancel(context.Background()) // retired pools wait until Close
	s.tracker = newTracker(s)
	if err := s.startSentinels(table); err != nil {
		s.cancel()
		return nil, err
	}
	r := s.newRoute(table, auth, nil)
	s.route.Store(r)
	s.swapped = make(chan struct{})
	// Serve only once every shard has had its first connection attempt, so
	// the first commands do not fail while connections are being made.
	r.waitFirstTry()
	// HELLO and INFO report the shards' version from the first command on:
	// wait for the probe, but not long if the first shard is slow.
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		s.probeVersion(s.dialer(auth), table.Addr(0))
	}()
	select {
	case <-probed:
	case <-time.After(time.Second):
	}
	s.slowlogMaxLen.Store(defaultSlowlogMaxLen)
	s.ownLatency = newOwnLatency()
	s.slowlogSlowerThan.Store(defaultSlowlogSlowerThan)
	go s.counters.sample(s.stopSample)
	return s, nil
}

// Serve accepts clients on ln until Close or Shutdown. It always returns a
// non-nil error; after Close or Shutdown that error is net.ErrClosed.
func (srv *Server) Serve(ln net.Listener) error {
	srv.mu.Lock()
	if srv.closed || srv.isDraining() {
		srv.mu.Unlock()
		return net.ErrClosed
	}
	srv.ln = ln
	srv.serving++
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		srv.serving--
		srv.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			srv.mu.Lock()
			closed := srv.closed || srv.isDraining()
			srv.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return net.ErrClosed
			}
			// out of file descriptors and the like: wait and go on, as
			// net/http does
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			srv.log.Warn("accept failed, retrying", zap.Error(err), zap.Duration("delay", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		srv.counters.unregistered.Add(1) // until serveConn registers its session
		go srv.serveConn(nc)
	}
}

// ListenAndServe listens on cfg.Listen and serves.
func (srv *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", srv.cfg.Listen)
	if err != nil {
		return err
	}
	return srv.Serve(ln)
}

// Close closes the server at once: it stops accepting clients and closes
// every client connection, whatever it is doing, and the connections to the
// shards. A client in the middle of a pipeline may get some of its replies
// or none. For a graceful stop, which lets the pipelines in flight finish,
// use Shutdown.
//
// Close returns nil. It is safe to call more than once, and during or after
// Shutdown, which it then cuts short.
func (srv *Server) Close() error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return nil
	}
	srv.closed = true
	if srv.ln != nil {
		srv.ln.Close()
	}
	for c := range srv.conns {
		c.nc.Close()
	}
	srv.mu.Unlock()
	srv.cancel()
	close(srv.stopSample)
	srv.tracker.close()
	for _, p := range srv.route.Load().stagePools {
		p.Close()
	}
	if srv.sentinels != nil {
		srv.sentinels.Close()
	}
	return nil
}

// AnnounceAddr is the address the proxy gives clients as its own.
func (srv *Server) AnnounceAddr() string {
	if srv.cfg.Announce != "" {
		return srv.cfg.Announce
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.ln == nil {
		return srv.cfg.Listen
	}
	return srv.ln.Addr().String()
}

// newRoute builds the route of table, whose shards take auth, reusing the
// pools of old (if any) whose addresses it still has, when old's shards
// take the same credentials: a connection made with others would be
// refused, or would be a different ACL user.
func (srv *Server) newRoute(table *router.Table, auth Auth, old *route) *route {
	reuse := map[string]*backend.Pool{}
	reuseReplica := map[string]*replica{} // by primary+replica address
	if old != nil && old.auth == auth {
		for _, p := range old.pools {
			reuse[p.Addr] = p
		}
		for _, rs := range old.replicas {
			for _, rp := range rs {
				reuseReplica[rp.primary.Addr+"+"+rp.pool.Addr] = rp
			}
		}
	}
	r := &route{table: table, auth: auth, srv: srv}
	d := srv.dialer(auth)
	if names := sentinelNames(table); len(names) > 0 {
		r.sentinel = true
		if srv.sentinels != nil {
			srv.sentinels.Follow(names...)
		}
	}
	for _, addr := range table.Addrs() {
		if p, ok := reuse[addr]; ok {
			r.pools = append(r.pools, p)
			continue
		}
		r.pools = append(r.pools, backend.NewPool(addr, d, &srv.backends))
	}
	r.stagePools = slices.Clone(r.pools)
	replicaAddrs := table.Replicas
	if r.sentinel {
		byShard := make([][]string, len(r.pools))
		for i, p := range r.pools {
			byShard[i] = srv.readReplicas(p.Addr)
		}
		replicaAddrs = func(i int) []string { return append(table.Replicas(i), byShard[i]...) }
	}
	hasReplicas := false
	for i := range r.pools {
		hasReplicas = hasReplicas || len(replicaAddrs(i)) > 0
	}
	if hasReplicas {
		r.replicas = make([][]*replica, len(r.pools))
		r.replicaStage = make([]int, len(r.pools))
		for i, primary := range r.pools {
			r.replicaStage[i] = len(r.stagePools)
			for _, addr := range replicaAddrs(i) {
				rp, ok := reuseReplica[primary.Addr+"+"+addr]
				if !ok {
					rp = &replica{pool: backend.NewPool(addr, d, &srv.backends), primary: primary}
					go rp.monitor(srv.cfg.ReplicaMaxLag)
				}
				r.replicas[i] = append(r.replicas[i], rp)
				r.stagePools = append(r.stagePools, rp.pool)
			}
		}
	}
	return r
}

// dialer makes the connections to shards that take auth.
func (srv *Server) dialer(auth Auth) backend.Dialer {
	return backend.NewDialer(srv.cfg.DialTimeout, auth.Username, auth.Password, setnameCommand(srv.runID)).
		WithResolver(srv.resolveSentinel)
}

func (r *route) waitFirstTry() {
	for _, p := range r.pools {
		for _, c := range p.Conns {
			<-c.FirstTry
		}
	}
}

// PrepareTable connects to the shards of t that the proxy does not use yet,
// ahead of a SwapTable, so the swap itself does not wait for connections.
// They take the credentials of the current table's shards. It returns the
// route to pass to SwapTable, or to Discard.
func (srv *Server) PrepareTable(t *router.Table) Route {
	return srv.Prepare(t, srv.route.Load().auth)
}

// Prepare is PrepareTable for shards that take auth.
func (srv *Server) Prepare(t *router.Table, auth Auth) Route {
	r := srv.newRoute(t, auth, srv.route.Load())
	r.waitFirstTry()
	return Route{r}
}

// Discard closes the connections of a prepared route that was never
// swapped in, except those it shares with the route in use.
func (srv *Server) Discard(p Route) {
	inUse := map[*backend.Pool]bool{}
	for _, pl := range srv.route.Load().stagePools {
		inUse[pl] = true
	}
	for _, pl := range p.r.stagePools {
		if !inUse[pl] {
			pl.Close()
		}
	}
}

// SwapTable makes the prepared table the one every new batch routes by. Call
// it with the barrier held (Pause), after the new shards hold every write:
// no batch is in flight then, so none straddles the swap. Sessions waiting
// on a shard outside any batch (blocked commands, subscriptions) are told
// through Swapped and move to the new table themselves. Pools the new table
// no longer uses are closed after sessions have had time to move.
func (srv *Server) SwapTable(p Route) {
	old := srv.route.Swap(p.r)
	srv.swapMu.Lock()
	close(srv.swapped)
	srv.swapped = make(chan struct{})
	srv.swapMu.Unlock()
	// Subscribers move before the barrier lifts: no message can be
	// published to the new shards before they listen there.
	var wg sync.WaitGroup
	srv.subscribers.Range(func(k, _ any) bool {
		wg.Add(1)
		go func(l *pubsubLoop) {
			defer wg.Done()
			l.moveTo(p.r, "")
		}(k.(*pubsubLoop))
		return true
	})
	// The new shards report modified keys before any write reaches them.
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.tracker.followSwap(p.r)
	}()
	moved := make(chan struct{})
	go func() { wg.Wait(); close(moved) }()
	select {
	case <-moved:
	case <-time.After(time.Second):
		srv.log.Warn("subscribers still moving to the new table after 1 s")
	}
	srv.log.Info("routing table swapped", zap.Uint64("epoch", p.r.table.Epoch()),
		zap.String("shards", router.FormatSpec(p.r.table.Shards())))
	srv.retireUnused(old, p.r)
}

// retireUnused closes, after a while (retire), the pools of old that now
// does not use.
func (srv *Server) retireUnused(old, now *route) {
	keep := map[*backend.Pool]bool{}
	for _, pl := range now.stagePools {
		keep[pl] = true
	}
	var retired []*backend.Pool
	for _, pl := range old.stagePools {
		if !keep[pl] {
			retired = append(retired, pl)
		}
	}
	if len(retired) > 0 {
		srv.mu.Lock()
		srv.retiring++
		srv.mu.Unlock()
		go srv.retire(retired)
	}
}

// retire closes pools of a previous table once sessions have moved off them.
func (srv *Server) retire(pools []*backend.Pool) {
	select {
	case <-time.After(30 * time.Second):
	case <-srv.ctx.Done():
	}
	for _, p := range pools {
		p.Close()
	}
	srv.mu.Lock()
	srv.retiring--
	srv.mu.Unlock()
}

// Swapped returns a channel closed at the next SwapTable.
func (srv *Server) Swapped() <-chan struct{} {
	srv.swapMu.Lock()
	defer srv.swapMu.Unlock()
	return srv.swapped
}

// Table returns the routing table in use.
func (srv *Server) Table() *router.Table { return srv.route.Load().table }

// trackConn records an open client connection, so Close can close it; it
// reports false once the server is closed or shutting down.
func (srv *Server) trackConn(c *clientConn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed || srv.isDraining() {
		return false
	}
	srv.conns[c] = struct{}{}
	return true
}

func (srv *Server) untrackConn(c *clientConn) {
	srv.mu.Lock()
	delete(srv.conns, c)
	srv.mu.Unlock()
}
