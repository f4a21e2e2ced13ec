package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/sentinel"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
	"github.com/reshard/reshard/router"
)

// Shards given as sentinel:NAME are followed through Redis Sentinel
// (internal/sentinel). Their connections dial the primary the sentinels
// name, confirmed by ROLE (backend.Dialer). When a failover starts (a
// replica was selected; the leader promotes it about 100 ms later), the
// shard's requests are held, so that no write reaches the old primary
// after its replica stopped following it; when the sentinels name the new
// primary, the shard's connections are made anew there and the held
// requests go. A failover given up releases them where they were. A
// request sent before the hold and unanswered when a connection drops
// gets an error: it may have run, so it is never sent twice. A command a
// demoted primary refused with -READONLY did not run: it is sent again to
// the primary Sentinel names next (retryRefused).

// failoverHold bounds how long a shard's requests wait for a failover
// that started to end: past it they go where the connections lead.
const failoverHold = 5 * time.Second

// refusedWait bounds how long a command refused with -READONLY waits for
// its shard's connections to lead to a primary again.
const refusedWait = 5 * time.Second

// startSentinels follows the sentinel:NAME shards of table, if it has any.
func (srv *Server) startSentinels(table *router.Table) error {
	names := sentinelNames(table)
	if len(names) == 0 && len(srv.cfg.Sentinels) == 0 {
		return nil
	}
	w, err := sentinel.New(sentinel.Config{Addrs: srv.cfg.Sentinels, Username: srv.cfg.SentinelUsername,
		Password: srv.cfg.SentinelPassword, Timeout: srv.cfg.DialTimeout, Log: srv.log}, srv.sentinelEvent)
	if err != nil {
		return err
	}
	srv.sentinels = w
	w.Follow(names...)
	srv.replicasKick = make(chan struct{}, 1)
	go srv.followReplicas()
	return nil
}

func sentinelNames(t *router.Table) []string {
	var names []string
	for _, a := range t.Addrs() {
		if n, ok := sentinel.Name(a); ok {
			names = append(names, n)
		}
	}
	return names
}

// resolveSentinel is the backend dialer's Resolver.
func (srv *Server) resolveSentinel(addr string, fresh bool) (string, error) {
	name, _ := sentinel.Name(addr)
	if srv.sentinels == nil {
		return "", errors.New("shard " + addr + " needs --sentinels")
	}
	ctx, cancel := context.WithTimeout(srv.ctx, 2*srv.cfg.DialTimeout)
	defer cancel()
	if fresh {
		return srv.sentinels.Resolve(ctx, name)
	}
	return srv.sentinels.Primary(ctx, name)
}

// sentinelEvent acts on a failover of a shard of the current route.
func (srv *Server) sentinelEvent(e sentinel.Event) {
	addr := sentinel.Prefix + e.Name
	var pool *backend.Pool
	for _, p := range srv.route.Load().pools {
		if p.Addr == addr {
			pool = p
		}
	}
	if pool == nil {
		return
	}
	if e.Kind != sentinel.Aborted {
		srv.failoverMu.Lock()
		hooks := srv.failoverHooks
		srv.failoverMu.Unlock()
		for _, f := range hooks {
			f(addr)
		}
	}
	switch e.Kind {
	case sentinel.Starting:
		srv.counters.failovers.Add(1)
		pool.Hold(failoverHold)
	case sentinel.Aborted:
		pool.Release()
	case sentinel.Switched:
		srv.log.Warn("shard primary moved, reconnecting", zap.String("shard", addr), zap.String("primary", e.Addr))
		pool.Redial()
		select {
		case srv.replicasKick <- struct{}{}:
		default:
		}
		go func() {
			for deadline := time.Now().Add(failoverHold); !pool.Up() && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			srv.moveSubscribers(addr)
			pool.Release()
		}()
	}
}

// moveSubscribers subscribes the clients' subscriptions on shard addr
// again on its new primary, before the shard's held requests (PUBLISH
// among them) go: the old primary, alive after a SENTINEL FAILOVER,
// would keep the subscriptions and never see a message again.
func (srv *Server) moveSubscribers(addr string) {
	r := srv.route.Load()
	var wg sync.WaitGroup
	srv.subscribers.Range(func(k, _ any) bool {
		wg.Go(func() { k.(*pubsubLoop).moveTo(r, addr) })
		return true
	})
	wg.Wait()
}

var readonlyPrefix = []byte("-READONLY ")

// retryRefused sends again the requests of the pipeline that a
// sentinel:NAME shard refused with -READONLY (its server was a replica by
// then, so it ran none of them), from the first refused one of each shard
// on, in order, once the shard's connections lead elsewhere. The
// requests after the first refused one are sent again too, though a read
// among them may have been answered: so the shard runs the pipeline's
// commands in the client's order.
func (s *session) retryRefused(r *route) {
	for attempt := 0; attempt < 3; attempt++ {
		var total int32
		for i, p := range r.pools {
			st := &s.stages[i]
			if !strings.HasPrefix(p.Addr, sentinel.Prefix) || len(st.reqs) == 0 {
				st.reqs = st.reqs[:0]
				continue
			}
			k := -1
			for j, q := range st.reqs {
				if bytes.HasPrefix(s.b.Results[q.I], readonlyPrefix) {
					k = j
					break
				}
			}
			if k < 0 {
				st.reqs = st.reqs[:0]
				continue
			}
			off := 0
			for j := 0; j < k; j++ {
				n, err := wire.ReplyLen(st.raw[off:]) // a staged command is a RESP array
				if err != nil {
					return // cannot happen: the proxy staged it
				}
				off += n
			}
			if !s.srv.awaitNewPrimary(p, s.gens[i]) {
				return // the refusals stand: Sentinel named no other primary in time
			}
			st.raw, st.reqs = st.raw[off:], st.reqs[k:]
			total += int32(len(st.reqs))
			s.srv.counters.refusedRetried.Add(int64(len(st.reqs)))
		}
		if total == 0 {
			return
		}
		s.b.Remaining.Store(total)
		s.noteGens(r)
		for i, p := range r.pools {
			if st := &s.stages[i]; len(st.reqs) > 0 {
				p.Pick(s.id, s.proto).Submit(st.raw, st.reqs)
			}
		}
		<-s.b.Done
	}
}

// noteGens notes each pool's Redial count before the pipeline's requests
// go, for awaitNewPrimary.
func (s *session) noteGens(r *route) {
	s.gens = s.gens[:0]
	for _, p := range r.pools {
		s.gens = append(s.gens, p.Gen())
	}
}

// awaitNewPrimary waits until p's connections have been made anew since
// gen and are up, at most refusedWait, asking the sentinels meanwhile:
// the refusal may be the first sign of a failover. It reports whether
// they were.
func (srv *Server) awaitNewPrimary(p *backend.Pool, gen int64) bool {
	name, _ := sentinel.Name(p.Addr)
	deadline := time.Now().Add(refusedWait)
	for time.Now().Before(deadline) {
		if p.Gen() != gen && p.Up() {
			return true
		}
		if srv.sentinels != nil && p.Gen() == gen {
			ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.DialTimeout)
			srv.sentinels.Resolve(ctx, name) // a new primary reaches sentinelEvent
			cancel()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// sentinelReplicas returns the replicas the sentinels list for name, as
// Shards that take auth.
func (srv *Server) sentinelReplicas(name string, auth Auth) []Shard {
	if srv.sentinels == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(srv.ctx, 2*srv.cfg.DialTimeout)
	defer cancel()
	replicas, err := srv.sentinels.Replicas(ctx, name)
	if err != nil {
		srv.log.Warn("cannot list the replicas of a sentinel: shard", zap.String("master", name), zap.Error(err))
		return nil
	}
	out := make([]Shard, len(replicas))
	for i, r := range replicas {
		out[i] = Shard{backend.NewControlPool(r.Addr, srv.dialer(auth))}
	}
	return out
}

// readReplicas returns the replicas of a sentinel:NAME shard to read
// from: those the sentinels list and do not flag down, but its primary.
// Nil for another shard, or when the sentinels cannot say.
func (srv *Server) readReplicas(addr string) []string {
	name, ok := sentinel.Name(addr)
	if !ok || srv.sentinels == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(srv.ctx, 2*srv.cfg.DialTimeout)
	defer cancel()
	replicas, err := srv.sentinels.Replicas(ctx, name)
	if err != nil {
		return nil
	}
	primary, _ := srv.sentinels.Known(name)
	var out []string
	for _, r := range replicas {
		if !r.Down && r.Addr != primary {
			out = append(out, r.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// sentinelReplicasEvery is how often the replicas of the sentinel:NAME
// shards are listed again, besides after each failover.
const sentinelReplicasEvery = 5 * time.Second

// followReplicas keeps the route's replicas of sentinel:NAME shards the
// ones the sentinels list: every sentinelReplicasEvery, and at once after
// a failover (replicasKick). A change makes a route with the same table
// and pools but the new replicas; it replaces the route in use unless a
// cutover replaced it meanwhile.
func (srv *Server) followReplicas() {
	tick := time.NewTicker(sentinelReplicasEvery)
	defer tick.Stop()
	for {
		select {
		case <-srv.ctx.Done():
			return
		case <-tick.C:
		case <-srv.replicasKick:
		}
		old := srv.route.Load()
		if !old.sentinel {
			continue
		}
		r := srv.newRoute(old.table, old.auth, old)
		if slices.EqualFunc(old.stagePools, r.stagePools, func(a, b *backend.Pool) bool { return a == b }) ||
			!srv.route.CompareAndSwap(old, r) {
			srv.Discard(Route{r})
			continue
		}
		srv.log.Info("replicas of sentinel: shards changed", zap.Int("replicas", len(r.stagePools)-len(r.pools)))
		srv.retireUnused(old, r)
	}
}

// OnFailover registers f, called with a sentinel:NAME shard's address
// when a failover of the shard starts or its primary moves: a job reading
// or writing the shard's primary must not go on (proxy/control).
func (srv *Server) OnFailover(f func(addr string)) {
	srv.failoverMu.Lock()
	defer srv.failoverMu.Unlock()
	srv.failoverHooks = append(slices.Clip(srv.failoverHooks), f)
}

// ResolveTable returns t with every sentinel:NAME shard replaced by the
// address the sentinels give for its primary now, and the replicas they
// list and do not flag down as its replicas, for the jobs, which dial the
// addresses of a table (a snapshot then captures from a replica in sync, a
// reshard waits for the targets' replicas); t itself when it has none.
func (srv *Server) ResolveTable(ctx context.Context, t *router.Table) (*router.Table, error) {
	if len(sentinelNames(t)) == 0 {
		return t, nil
	}
	if srv.sentinels == nil {
		return nil, errors.New("sentinel:NAME shards need --sentinels")
	}
	shards := t.Shards()
	for i, sh := range shards {
		if name, ok := sentinel.Name(sh.Addr); ok {
			addr, err := srv.sentinels.Resolve(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("shard %s: %w", sh.Addr, err)
			}
			shards[i].Addr = addr
			shards[i].Replicas = srv.readReplicas(sh.Addr)
		}
	}
	return router.NewTable(t.Epoch(), shards)
}
