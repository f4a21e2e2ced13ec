package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/reshard/reshard/migrate"
	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/router"
)

// Several proxies in front of the same shards share one routing table
// through etcd. The whole table, with the credentials of its shards, is
// one key (PREFIX/table), so that a commit switches every slot at once in
// one transaction (etcd caps a transaction at 128 operations, so per-slot
// keys could not). Every member Gets it at start, then Watches it from the
// next revision and follows each table committed after its own.
//
// Each member holds a lease with a member key (PREFIX/members/RUN_ID). It
// may serve only while the lease holds: its data plane serves until the
// send time of the last keep-alive etcd acknowledged plus the TTL, less a
// margin (proxy.ServeUntil), on the monotonic clock, so a member that
// cannot reach etcd, or was stopped, stops serving data before its lease
// can have expired on the server, which is when the others may cut over
// without it. It serves again only after it has re-read the table.

// EtcdConfig says where the proxies that share a table meet.
type EtcdConfig struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// Prefix is the key prefix of this group of proxies (DefaultEtcdPrefix).
	Prefix string
	// LeaseTTL is the membership lease's time to live (DefaultLeaseTTL): a
	// member that cannot renew it stops serving within it.
	LeaseTTL time.Duration
	// DialTimeout bounds connecting to etcd and each request.
	DialTimeout time.Duration
}

// The defaults of EtcdConfig.
const (
	DefaultEtcdPrefix = "/reshard/default"
	DefaultLeaseTTL   = 5 * time.Second
)

// ErrNoEtcdTable: etcd holds no table under the prefix, and none was given
// to start it with.
var ErrNoEtcdTable = errors.New("control: etcd holds no routing table")

// Etcd is a proxy's membership of a group that shares a table in etcd. It
// is made before the data plane (OpenEtcd, Table) and run by the Plane
// given it in Config.Etcd, which closes it.
type Etcd struct {
	cfg EtcdConfig
	cli *clientv3.Client
	log *zap.Logger

	closeOnce sync.Once
	closeErr  error
	leaseID   atomic.Int64 // the membership lease, 0 while there is none
	serving   atomic.Int64 // the data plane's serving deadline, unix ns; 0 before the first

	// stale counts the times the proxy stopped serving because it could
	// not tell which table is current (stopServing): run serves again only
	// once it has re-read the table after the last. serveMu orders the two.
	stale   atomic.Uint64
	serveMu sync.Mutex
	wake    chan struct{} // stopServing wakes run
	// fenceMu orders the lift of a fence an earlier cutover left
	// (reconcile) before this member's ack of a later cutover, whose
	// coordinator fences only once every ack is in.
	fenceMu sync.Mutex
	cost    cutoverCost // the last cutover's (etcd_cost.go)
	pauses  *etcdPauses // the group's CLIENT PAUSE (etcd_pause.go); set before run

	// mu guards the fields below and orders a commit against the watch:
	// whichever holds it sees the other's table.
	mu    sync.Mutex
	rev   int64         // the table key's mod revision the proxy serves
	table *router.Table // the table the proxy serves
	auth  proxy.Auth    // its shards' credentials
}

// etcdTable is the table key's value.
type etcdTable struct {
	Table    json.RawMessage `json:"table"` // router.Encode's form
	Username string          `json:"username,omitempty"`
	Password string          `json:"password,omitempty"`
}

// etcdMember is a member key's value.
type etcdMember struct {
	Addr    string `json:"addr"`
	RunID   string `json:"run_id"`
	Epoch   uint64 `json:"epoch"`
	Started string `json:"started"`
}

// OpenEtcd connects to etcd. The client never refuses an etcd older than
// itself: Debian's etcd is 3.4, which the client serves for every call
// made here (internal/etcdtest's smoke test).
func OpenEtcd(cfg EtcdConfig, log *zap.Logger) (*Etcd, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultEtcdPrefix
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.LeaseTTL < time.Second {
		return nil, fmt.Errorf("control: etcd lease TTL must be at least 1s, got %s", cfg.LeaseTTL)
	}
	e := &Etcd{cfg: cfg, log: log.With(zap.String("etcd_prefix", cfg.Prefix)), wake: make(chan struct{}, 1)}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(e.countCutover)},
	})
	if err != nil {
		return nil, fmt.Errorf("control: etcd %v: %w", cfg.Endpoints, err)
	}
	e.cli = cli
	return e, nil
}

func (e *Etcd) tableKey() string              { return e.cfg.Prefix + "/table" }
func (e *Etcd) memberKey(runID string) string { return e.cfg.Prefix + "/members/" + runID }
func (e *Etcd) knownKey(runID string) string  { return e.cfg.Prefix + "/known/" + runID }

// Table returns the table the group serves and its shards' credentials.
// When etcd holds none, start (the table of --shards, with the flags'
// credentials) becomes it, unless another proxy's got there first; with no
// start either, it waits for one until ctx ends (then ErrNoEtcdTable). A
// start that differs from etcd's table loses, with a log line.
func (e *Etcd) Table(ctx context.Context, start *router.Table, auth proxy.Auth) (*router.Table, proxy.Auth, error) {
	if start == nil {
		return e.waitTable(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	val, err := encodeEtcdTable(start, auth)
	if err != nil {
		return nil, proxy.Auth{}, err
	}
	// created only if no proxy has made it yet
	txn, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(e.tableKey()), "=", 0)).
		Then(clientv3.OpPut(e.tableKey(), val)).Commit()
	if err != nil {
		return nil, proxy.Auth{}, fmt.Errorf("control: etcd: %w", err)
	}
	if txn.Succeeded {
		e.log.Info("routing table initialised in etcd", zap.Uint64("epoch", start.Epoch()),
			zap.String("shards", router.FormatSpec(start.Shards())))
		e.set(txn.Header.Revision, start, auth)
		return start, auth, nil
	}
	t, a, rev, err := e.get(ctx)
	if err != nil {
		return nil, proxy.Auth{}, err
	}
	if router.FormatSpec(start.Shards()) != router.FormatSpec(t.Shards()) {
		e.log.Warn("etcd's routing table wins over --shards", zap.Uint64("epoch", t.Epoch()),
			zap.String("etcd", router.FormatSpec(t.Shards())), zap.String("shards_flag", router.FormatSpec(start.Shards())))
	}
	e.set(rev, t, a)
	return t, a, nil
}

// waitTable is Table for a proxy given no --shards: it waits, until ctx
// ends, for a proxy that has them to put the table in etcd, so that the
// proxies of a group may be started in any order.
func (e *Etcd) waitTable(ctx context.Context) (*router.Table, proxy.Auth, error) {
	for logged := false; ; logged = true {
		gctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
		t, a, rev, err := e.get(gctx)
		cancel()
		if err == nil {
			e.set(rev, t, a)
			return t, a, nil
		}
		if !errors.Is(err, ErrNoEtcdTable) {
			return nil, proxy.Auth{}, err
		}
		if !logged {
			e.log.Warn("waiting for a routing table in etcd: start one proxy of the group with --shards")
		}
		select {
		case <-ctx.Done():
			return nil, proxy.Auth{}, fmt.Errorf("%w under %s: give one proxy --shards", ErrNoEtcdTable, e.cfg.Prefix)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// get reads the table key.
func (e *Etcd) get(ctx context.Context) (*router.Table, proxy.Auth, int64, error) {
	resp, err := e.cli.Get(ctx, e.tableKey())
	if err != nil {
		return nil, proxy.Auth{}, 0, fmt.Errorf("control: etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, proxy.Auth{}, 0, ErrNoEtcdTable
	}
	t, a, err := decodeEtcdTable(resp.Kvs[0].Value)
	if err != nil {
		return nil, proxy.Auth{}, 0, err
	}
	return t, a, resp.Kvs[0].ModRevision, nil
}

func (e *Etcd) set(rev int64, t *router.Table, a proxy.Auth) {
	e.mu.Lock()
	e.rev, e.table, e.auth = rev, t, a
	e.mu.Unlock()
}

func encodeEtcdTable(t *router.Table, a proxy.Auth) (string, error) {
	tj, err := router.Encode(t)
	if err != nil {
		return "", err
	}
	v, err := json.Marshal(etcdTable{Table: tj, Username: a.Username, Password: a.Password})
	return string(v), err
}

// decodeEtcdTable reads the table key's value. Its errors never quote the
// value: it holds a password.
func decodeEtcdTable(v []byte) (*router.Table, proxy.Auth, error) {
	var et etcdTable
	if err := json.Unmarshal(v, &et); err != nil {
		return nil, proxy.Auth{}, errors.New("control: etcd's routing table is not valid JSON")
	}
	t, err := router.Decode(et.Table)
	if err != nil {
		return nil, proxy.Auth{}, fmt.Errorf("control: etcd's routing table: %w", err)
	}
	return t, proxy.Auth{Username: et.Username, Password: et.Password}, nil
}

// commit writes to, whose shards take auth, in place of from: the
// cutover's point of no return, one transaction that succeeds only if the
// table key is still the one this proxy serves. The caller holds e.mu.
// jobRev, when not 0, is the revision the cutover's job key was written at
// (etcd_cutover.go): the commit lands only while that job is still there,
// so that no member that gave the job up and resumed on the old table can
// see it land after. An error that leaves the outcome unknown wraps
// migrate.ErrCommitUnknown.
func (e *Etcd) commit(ctx context.Context, from, to *router.Table, auth proxy.Auth, jobRev int64) error {
	if e.table != from {
		return errors.New("the routing table changed since the reshard started")
	}
	val, err := encodeEtcdTable(to, auth)
	if err != nil {
		return err
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(e.tableKey()), "=", e.rev)}
	if jobRev != 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.cutoverKey()), "=", jobRev))
	}
	txn, err := e.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(e.tableKey(), val)).Commit()
	if err != nil {
		return fmt.Errorf("%w: etcd: %w", migrate.ErrCommitUnknown, err)
	}
	if !txn.Succeeded {
		return errors.New("etcd's routing table or the cutover job changed since the cutover began (a member gave it up at its deadline?)")
	}
	e.rev, e.table, e.auth = txn.Header.Revision, to, auth
	return nil
}

// Close ends the client; the member key goes with its lease (run revokes
// it when the plane closes). It is safe to call more than once.
func (e *Etcd) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.cli.Close() })
	return e.closeErr
}

// lostLease is what a data command gets while the proxy may not serve.
const lostLease = "CLUSTERDOWN the proxy cannot renew its etcd lease, so its routing table may be stale; it serves again once it has renewed it and re-read the table"

// run keeps the proxy's membership until ctx ends: the lease, the member
// key, and the data plane's serving deadline.
func (e *Etcd) run(ctx context.Context, p *Plane) {
	ttl := e.cfg.LeaseTTL
	// The margin covers the rate difference of two clocks over a TTL and
	// the scheduling of the keep-alive, with room to spare.
	margin := max(ttl/5, 200*time.Millisecond)
	var lease clientv3.LeaseID
	var deadline time.Time
	member := etcdMember{Addr: p.srv.AnnounceAddr(), RunID: p.srv.RunID(), Started: time.Now().UTC().Format(time.RFC3339)}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), e.cfg.DialTimeout)
		defer cancel()
		if lease != 0 {
			e.cli.Revoke(rctx, lease) // the member key goes with it
		}
		e.cli.Delete(rctx, e.knownKey(member.RunID)) // its shard connections close with it
	}()
	known := false
	read := e.stale.Load() - 1 // the stale count at the last re-read: none yet
	for ctx.Err() == nil {
		stale := e.stale.Load()
		sent := time.Now()
		resuming := deadline.IsZero() || !sent.Before(deadline) || stale != read
		rctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
		err := e.renew(rctx, &lease, ttl)
		e.leaseID.Store(int64(lease))
		if err == nil {
			e.mu.Lock()
			member.Epoch = e.table.Epoch()
			e.mu.Unlock()
			v, _ := json.Marshal(member)
			_, err = e.cli.Put(rctx, e.memberKey(member.RunID), string(v), clientv3.WithLease(lease))
		}
		if err == nil && !known {
			// without a lease: a member whose lease ended while it was
			// stopped still holds shard connections, and is still of the
			// group (it serves nothing before it has re-read the table)
			_, err = e.cli.Put(rctx, e.knownKey(member.RunID), member.Addr)
			known = err == nil
		}
		if err == nil && resuming {
			// serving again, or for the first time: on etcd's table, read
			// after the member key, so that a cutover written from now on
			// waits for this member's ack
			err = e.reconcile(rctx, p)
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("etcd lease not renewed", zap.Error(err), zap.Duration("serving_for", time.Until(deadline).Round(time.Millisecond)))
			}
		} else {
			if resuming {
				read = stale
			}
			e.serveMu.Lock()
			if e.stale.Load() == read { // else: stopped meanwhile, re-read first
				deadline = sent.Add(ttl - margin)
				p.srv.ServeUntil(deadline, lostLease)
				e.serving.Store(deadline.UnixNano())
			}
			e.serveMu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-e.wake:
		case <-time.After(ttl / 4):
		}
	}
}

// unknownTable is what a data command gets after stopServing.
const unknownTable = "CLUSTERDOWN the proxy cannot tell from etcd whether a cutover committed a new routing table; it serves again once it has read the table from etcd"

// stopServing stops the data plane serving at once, until run has re-read
// the table from etcd: the proxy took part in a cutover whose outcome it
// cannot tell, so the table it serves may be stale.
func (e *Etcd) stopServing(p *Plane, why string, fields ...zap.Field) {
	e.serveMu.Lock()
	e.stale.Add(1)
	p.srv.ServeUntil(time.Now(), unknownTable)
	e.serving.Store(time.Now().UnixNano())
	e.serveMu.Unlock()
	e.log.Warn(why+": serving nothing until the routing table is read from etcd", fields...)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// reconcile runs before the proxy serves again: it holds its clients for
// the group's client pause, if one is in effect (etcd_pause.go), serves
// the table etcd holds, ends a cutover job left past its deadline (its
// commit can then no longer land), and lifts a fence that a cutover which
// did not commit left on the shards of that table. The job key and the table are read at one revision; a job
// within its deadline is its members' (pauseFor), and a later one waits for
// this member's ack, which fenceMu holds back until the lift is done.
func (e *Etcd) reconcile(ctx context.Context, p *Plane) error {
	e.fenceMu.Lock()
	defer e.fenceMu.Unlock()
	for {
		txn, err := e.cli.Txn(ctx).Then(clientv3.OpGet(e.cutoverKey()), clientv3.OpGet(e.tableKey()), clientv3.OpGet(e.pauseKey())).Commit()
		if err != nil {
			return err
		}
		if e.pauses != nil {
			val, rev := gotValue((*clientv3.GetResponse)(txn.Responses[2].GetResponseRange()))
			e.pauses.follow(ctx, val, rev)
		}
		if jobs := txn.Responses[0].GetResponseRange().Kvs; len(jobs) > 0 {
			var job cutoverJob
			if json.Unmarshal(jobs[0].Value, &job) == nil && !job.expired() {
				return nil
			}
			end, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(e.cutoverKey()), "=", jobs[0].ModRevision)).
				Then(clientv3.OpDelete(e.cutoverKey())).Commit()
			if err != nil {
				return err
			}
			if end.Succeeded {
				e.log.Warn("ended a cutover job left past its deadline", zap.String("job", job.ID))
			}
			continue // read both again
		}
		if tables := txn.Responses[1].GetResponseRange().Kvs; len(tables) > 0 {
			t, a, err := decodeEtcdTable(tables[0].Value)
			if err != nil {
				return err
			}
			if err := e.adopt(ctx, p, tables[0].ModRevision, t, a); err != nil {
				return err
			}
		}
		e.unfenceServed(p)
		return nil
	}
}

// lease is the membership lease, 0 while there is none.
func (e *Etcd) lease() clientv3.LeaseID { return clientv3.LeaseID(e.leaseID.Load()) }

// renew keeps the lease alive, or grants a new one when it has expired.
func (e *Etcd) renew(ctx context.Context, lease *clientv3.LeaseID, ttl time.Duration) error {
	if *lease != 0 {
		_, err := e.cli.KeepAliveOnce(ctx, *lease)
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		e.log.Warn("etcd lease expired; taking a new one and re-reading the table")
		*lease = 0
	}
	g, err := e.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return err
	}
	*lease = g.ID
	return nil
}

// reread reads the table from etcd and serves it, if it is not the one
// served.
func (e *Etcd) reread(ctx context.Context, p *Plane) error {
	t, a, rev, err := e.get(ctx)
	if err != nil {
		return err
	}
	return e.adopt(ctx, p, rev, t, a)
}

// follow watches the table key and serves each table committed by
// another proxy, until ctx ends.
func (e *Etcd) follow(ctx context.Context, p *Plane) {
	for ctx.Err() == nil {
		e.mu.Lock()
		rev := e.rev
		e.mu.Unlock()
		wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), e.tableKey(), clientv3.WithRev(rev+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				e.log.Warn("etcd watch of the routing table ended; reading it again", zap.Error(err))
				if err := e.reread(ctx, p); err != nil {
					e.log.Warn("etcd routing table not read", zap.Error(err))
				}
				break
			}
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.PUT {
					continue
				}
				t, a, err := decodeEtcdTable(ev.Kv.Value)
				if err != nil {
					e.log.Error("etcd routing table not served", zap.Error(err))
					continue
				}
				if err := e.adopt(ctx, p, ev.Kv.ModRevision, t, a); err != nil {
					e.log.Error("etcd routing table not served", zap.Uint64("epoch", t.Epoch()), zap.Error(err))
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// adopt serves t (with its shards' credentials a), read from etcd at rev,
// unless the proxy serves it or a later one already: it connects to t's
// shards, then swaps inside the barrier.
func (e *Etcd) adopt(ctx context.Context, p *Plane, rev int64, t *router.Table, a proxy.Auth) error {
	e.mu.Lock()
	stale := rev <= e.rev || t.Epoch() <= e.table.Epoch()
	if stale && rev > e.rev && t.Epoch() == e.table.Epoch() {
		e.rev = rev // the same table, written again
	}
	e.mu.Unlock()
	if stale {
		return nil
	}
	prep := p.srv.Prepare(t, a)
	pctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	resume, err := p.srv.Pause(pctx)
	cancel()
	if err != nil {
		p.srv.Discard(prep)
		return fmt.Errorf("barrier: %w", err)
	}
	defer resume()
	e.mu.Lock()
	defer e.mu.Unlock()
	if rev <= e.rev || t.Epoch() <= e.table.Epoch() {
		p.srv.Discard(prep) // this proxy's own commit got there first
		return nil
	}
	p.srv.SwapTable(prep)
	e.rev, e.table, e.auth = rev, t, a
	if p.cfg.StateDir != "" {
		if err := router.Save(p.cfg.StateDir, t); err != nil {
			e.log.Warn("local copy of the routing table not saved", zap.Error(err))
		}
	}
	e.log.Info("serving the routing table another proxy committed", zap.Uint64("epoch", t.Epoch()), zap.Int64("revision", rev))
	return nil
}

// info adds the membership to INFO proxy: the prefix, whether the proxy
// serves data (it holds its lease), and for how long at least.
func (e *Etcd) info(field func(string, any)) {
	field("etcd_prefix", e.cfg.Prefix)
	e.costInfo(field)
	left := time.Duration(e.serving.Load() - time.Now().UnixNano())
	if e.serving.Load() == 0 || left <= 0 {
		field("etcd_lease", "lost")
		return
	}
	field("etcd_lease", "held")
	field("etcd_lease_ms_left", left.Milliseconds())
}

// members lists the live members: one line each, as PROXY SNAPSHOT LIST
// lists snapshots.
func (e *Etcd) members(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DialTimeout)
	defer cancel()
	resp, err := e.cli.Get(ctx, e.cfg.Prefix+"/members/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		var m etcdMember
		if json.Unmarshal(kv.Value, &m) != nil {
			continue
		}
		ttl := "unknown"
		if l, err := e.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
			ttl = strconv.FormatInt(l.TTL, 10) + "s"
		}
		out = append(out, "addr="+m.Addr+" run_id="+m.RunID+" epoch="+strconv.FormatUint(m.Epoch, 10)+" started="+m.Started+" lease_ttl="+ttl)
	}
	return out, nil
}
