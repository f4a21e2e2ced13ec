package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/redistest"
)

// reshardArgs: sources fork at once for a replica (Redis 7 waits 5 s by
// default) and every server has DEBUG, for DIGEST-VALUE and POPULATE.
var reshardArgs = append([]string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}, sourceArgs...)

// testProxy stands in for the proxy: writers route by its table pointer
// and hold its gate (a read lock) for each write, as sessions hold the
// proxy's gate for a batch; Pause takes the gate exclusively, as
// proxy.Server.Pause does; Commit swaps the pointer to the table to. A
// test may set seal and commitErr before the job starts.
type testProxy struct {
	gate    sync.RWMutex
	route   atomic.Pointer[router.Table]
	to      *router.Table
	clients map[string]*redis.Client

	seal      func(ctx context.Context) (func(), error) // nil: Seal does nothing
	commitErr error                                     // Commit's error, without a swap

	pauses  atomic.Int32
	commits atomic.Int32
	held    atomic.Int64 // ns the gate was held by the last Pause
}

func newTestProxy(t testing.TB, from *router.Table, servers ...[]*redistest.Server) *testProxy {
	p := &testProxy{clients: map[string]*redis.Client{}}
	p.route.Store(from)
	for _, ss := range servers {
		p.add(t, "", ss)
	}
	return p
}

// add gives the proxy clients of servers that need password ("": none).
func (p *testProxy) add(t testing.TB, password string, servers []*redistest.Server) {
	for _, s := range servers {
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: password, Protocol: 2, DisableIdentity: true, PoolSize: 32, MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		p.clients[s.Addr()] = c
	}
}

func (p *testProxy) Pause(ctx context.Context) (func(), error) {
	got := make(chan struct{})
	go func() {
		p.gate.Lock()
		close(got)
	}()
	select {
	case <-got:
		p.pauses.Add(1)
		start := time.Now()
		var once sync.Once
		return func() {
			once.Do(func() {
				p.held.Store(int64(time.Since(start)))
				p.gate.Unlock()
			})
		}, nil
	case <-ctx.Done():
		go func() {
			<-got
			p.gate.Unlock()
		}()
		return nil, ctx.Err()
	}
}

// paused reports whether a Pause holds the gate.
func (p *testProxy) paused() bool {
	if p.gate.TryRLock() {
		p.gate.RUnlock()
		return false
	}
	return true
}

func (p *testProxy) Seal(ctx context.Context) (func(), error) {
	if p.seal == nil {
		return func() {}, nil
	}
	return p.seal(ctx)
}

func (p *testProxy) Commit(context.Context) error {
	if p.commitErr != nil {
		return p.commitErr
	}
	p.route.Store(p.to)
	p.commits.Add(1)
	return nil
}

// do runs one command on the shard of key by the current table.
func (p *testProxy) do(ctx context.Context, key string, args ...any) *redis.Cmd {
	p.gate.RLock()
	defer p.gate.RUnlock()
	t := p.route.Load()
	return p.clients[t.Addr(t.ShardOf([]byte(key)))].Do(ctx, args...)
}

// client returns the client of key's shard by table t.
func (p *testProxy) client(t *router.Table, key string) *redis.Client {
	return p.clients[t.Addr(t.ShardOf([]byte(key)))]
}

// writerModel is what one writer has had acknowledged.
type writerModel struct {
	strings map[string]int64 // key -> value
	absent  map[string]bool  // keys deleted last
	hash    map[string]int64 // field -> value of w{i}:h
	list    []int64          // w{i}:l
	zset    map[string]int64 // member -> score of w{i}:z
	counter int64            // w{i}:c
	tx      int64            // {wt<i>}:txn, incremented in transactions
}

// writers write increasing sequence numbers to their own keys through a
// testProxy until stopped: strings, a hash, a list, a sorted set, a
// counter, and hash-tagged MSET and DEL of three keys.
type writers struct {
	p      *testProxy
	models []*writerModel
	errs   atomic.Int64
	first  atomic.Value // error
	ops    atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startTestWriters(t testing.TB, p *testProxy, n int) *writers {
	w := &writers{p: p, stop: make(chan struct{})}
	for i := range n {
		m := &writerModel{strings: map[string]int64{}, absent: map[string]bool{}, hash: map[string]int64{}, zset: map[string]int64{}}
		w.models = append(w.models, m)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.run(i, m)
		}()
	}
	t.Cleanup(w.Stop)
	return w
}

func (w *writers) run(i int, m *writerModel) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	tag := fmt.Sprintf("{wt%d}", i)
	for seq := int64(1); ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		var err error
		switch seq % 9 {
		case 0, 1, 2:
			k := fmt.Sprintf("w%d:s:%d", i, rng.IntN(200))
			if err = w.p.do(ctx, k, "SET", k, seq).Err(); err == nil {
				m.strings[k] = seq
				delete(m.absent, k)
			}
		case 3:
			f := "f" + strconv.Itoa(rng.IntN(50))
			k := fmt.Sprintf("w%d:h", i)
			if err = w.p.do(ctx, k, "HSET", k, f, seq).Err(); err == nil {
				m.hash[f] = seq
			}
		case 4:
			k := fmt.Sprintf("w%d:l", i)
			if err = w.p.do(ctx, k, "RPUSH", k, seq).Err(); err == nil {
				m.list = append(m.list, seq)
			}
		case 5:
			k := fmt.Sprintf("w%d:z", i)
			mem := "m" + strconv.Itoa(rng.IntN(50))
			if err = w.p.do(ctx, k, "ZADD", k, seq, mem).Err(); err == nil {
				m.zset[mem] = seq
			}
		case 6:
			k := fmt.Sprintf("w%d:c", i)
			if err = w.p.do(ctx, k, "INCR", k).Err(); err == nil {
				m.counter++
			}
		case 8:
			// A transaction, as the proxy sends one to the slot's shard.
			ks, kn := tag+":txs", tag+":txn"
			err = func() error {
				w.p.gate.RLock()
				defer w.p.gate.RUnlock()
				_, err := w.p.client(w.p.route.Load(), ks).TxPipelined(ctx, func(pl redis.Pipeliner) error {
					pl.Set(ctx, ks, seq, 0)
					pl.Incr(ctx, kn)
					return nil
				})
				return err
			}()
			if err == nil {
				m.strings[ks] = seq
				m.tx++
			}
		case 7:
			a, b, c := tag+":a", tag+":b", tag+":c"
			if rng.IntN(4) == 0 {
				if err = w.p.do(ctx, a, "DEL", a, b, c).Err(); err == nil {
					for _, k := range []string{a, b, c} {
						delete(m.strings, k)
						m.absent[k] = true
					}
				}
			} else if err = w.p.do(ctx, a, "MSET", a, seq, b, seq, c, seq).Err(); err == nil {
				for _, k := range []string{a, b, c} {
					m.strings[k] = seq
					delete(m.absent, k)
				}
			}
		}
		if err != nil {
			w.errs.Add(1)
			w.first.CompareAndSwap(nil, err)
			return
		}
		w.ops.Add(1)
	}
}

// Stop stops the writers and waits for them; it may be called twice.
func (w *writers) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

func (w *writers) noErrors(t testing.TB) {
	t.Helper()
	if n := w.errs.Load(); n > 0 {
		t.Errorf("writers saw %d errors, the first: %v", n, w.first.Load())
	}
}

// keys lists every key the writers may have created.
func (w *writers) keys() map[string]bool {
	out := map[string]bool{}
	for i, m := range w.models {
		for k := range m.strings {
			out[k] = true
		}
		for k := range m.absent {
			out[k] = true
		}
		for _, k := range []string{"h", "l", "z", "c"} {
			out[fmt.Sprintf("w%d:%s", i, k)] = true
		}
		out[fmt.Sprintf("{wt%d}:txn", i)] = true
	}
	return out
}

// check verifies that every acknowledged write is on the shard table t
// says, with the value last acknowledged.
func (w *writers) check(t *testing.T, table *router.Table) {
	t.Helper()
	ctx := context.Background()
	for i, m := range w.models {
		for k, v := range m.strings {
			got, err := w.p.client(table, k).Get(ctx, k).Int64()
			if err != nil || got != v {
				t.Errorf("writer %d: %s = %d (%v), want %d", i, k, got, err, v)
			}
		}
		for k := range m.absent {
			if n := w.p.client(table, k).Exists(ctx, k).Val(); n != 0 {
				t.Errorf("writer %d: %s exists, its DEL was acknowledged", i, k)
			}
		}
		hk := fmt.Sprintf("w%d:h", i)
		h := w.p.client(table, hk).HGetAll(ctx, hk).Val()
		if len(h) != len(m.hash) {
			t.Errorf("writer %d: %s has %d fields, want %d", i, hk, len(h), len(m.hash))
		}
		for f, v := range m.hash {
			if h[f] != strconv.FormatInt(v, 10) {
				t.Errorf("writer %d: %s %s = %q, want %d", i, hk, f, h[f], v)
			}
		}
		lk := fmt.Sprintf("w%d:l", i)
		l := w.p.client(table, lk).LRange(ctx, lk, 0, -1).Val()
		if len(l) != len(m.list) {
			t.Errorf("writer %d: %s has %d elements, want %d", i, lk, len(l), len(m.list))
		} else {
			for j, v := range m.list {
				if l[j] != strconv.FormatInt(v, 10) {
					t.Errorf("writer %d: %s[%d] = %s, want %d", i, lk, j, l[j], v)
					break
				}
			}
		}
		zk := fmt.Sprintf("w%d:z", i)
		z := w.p.client(table, zk).ZRangeWithScores(ctx, zk, 0, -1).Val()
		if len(z) != len(m.zset) {
			t.Errorf("writer %d: %s has %d members, want %d", i, zk, len(z), len(m.zset))
		}
		for _, e := range z {
			if int64(e.Score) != m.zset[e.Member.(string)] {
				t.Errorf("writer %d: %s %v = %v, want %d", i, zk, e.Member, e.Score, m.zset[e.Member.(string)])
			}
		}
		tk := fmt.Sprintf("{wt%d}:txn", i)
		if m.tx > 0 {
			if got, err := w.p.client(table, tk).Get(ctx, tk).Int64(); err != nil || got != m.tx {
				t.Errorf("writer %d: %s = %d (%v), want %d", i, tk, got, err, m.tx)
			}
		}
		ck := fmt.Sprintf("w%d:c", i)
		if m.counter > 0 {
			if got, err := w.p.client(table, ck).Get(ctx, ck).Int64(); err != nil || got != m.counter {
				t.Errorf("writer %d: %s = %d (%v), want %d", i, ck, got, err, m.counter)
			}
		}
	}
}

// fillDataset writes n keys of several types through the table's routing
// (each source holds only its own slots, as behind the proxy): strings,
// hashes, lists, sets, sorted sets and streams, a fifth with an hour's
// TTL. It returns the keys.
func fillDataset(t testing.TB, p *testProxy, table *router.Table, n int) []string {
	t.Helper()
	ctx := context.Background()
	pipes := map[string]redis.Pipeliner{}
	for i := range table.NumShards() {
		pipes[table.Addr(i)] = p.clients[table.Addr(i)].Pipeline()
	}
	flush := func(force bool) {
		for _, pl := range pipes {
			if force || pl.Len() >= 2000 {
				if _, err := pl.Exec(ctx); err != nil {
					t.Fatalf("fill: %v", err)
				}
			}
		}
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	keys := make([]string, 0, n)
	for i := range n {
		var k string
		switch i % 20 {
		case 0, 1:
			k = "d:hash:" + strconv.Itoa(i)
		case 2, 3:
			k = "d:list:" + strconv.Itoa(i)
		case 4:
			k = "d:set:" + strconv.Itoa(i)
		case 5:
			k = "d:zset:" + strconv.Itoa(i)
		case 6:
			k = "d:stream:" + strconv.Itoa(i)
		default:
			k = "d:str:" + strconv.Itoa(i)
		}
		pl := pipes[table.Addr(table.ShardOf([]byte(k)))]
		v := strconv.Itoa(i)
		switch i % 20 {
		case 0, 1:
			pl.HSet(ctx, k, "a", v, "b", "x"+v, "c", "3")
		case 2, 3:
			pl.RPush(ctx, k, v, "b", "c", v)
		case 4:
			pl.SAdd(ctx, k, v, "s1", "s2")
		case 5:
			pl.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: "m1"}, redis.Z{Score: 1.5, Member: "m2"})
		case 6:
			pl.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []any{"f", v}})
		default:
			pl.Set(ctx, k, "value-"+v, 0)
		}
		if i%5 == 1 {
			pl.PExpireAt(ctx, k, time.UnixMilli(exp+int64(i)))
		}
		keys = append(keys, k)
		flush(false)
	}
	flush(true)
	return keys
}

// compareKeys checks that each key holds the same value (DEBUG
// DIGEST-VALUE) and the same absolute expiry (PEXPIRETIME) on the shard
// table from says and on the shard table to says, pipelined.
func compareKeys(t *testing.T, p *testProxy, from, to *router.Table, keys []string) {
	t.Helper()
	ctx := context.Background()
	const batch = 2000
	bad := 0
	for start := 0; start < len(keys); start += batch {
		part := keys[start:min(start+batch, len(keys))]
		read := func(table *router.Table) ([]*redis.Cmd, []*redis.DurationCmd) {
			pls := map[*redis.Client]redis.Pipeliner{}
			digests := make([]*redis.Cmd, len(part))
			expiries := make([]*redis.DurationCmd, len(part))
			for i, k := range part {
				c := p.client(table, k)
				pl := pls[c]
				if pl == nil {
					pl = c.Pipeline()
					pls[c] = pl
				}
				digests[i] = pl.Do(ctx, "DEBUG", "DIGEST-VALUE", k)
				expiries[i] = pl.PExpireTime(ctx, k)
			}
			for _, pl := range pls {
				if _, err := pl.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
					t.Fatalf("compare: %v", err)
				}
			}
			return digests, expiries
		}
		sd, se := read(from)
		td, te := read(to)
		for i, k := range part {
			if fmt.Sprint(sd[i].Val()) != fmt.Sprint(td[i].Val()) || se[i].Val() != te[i].Val() {
				bad++
				if bad <= 10 {
					t.Errorf("key %q: source digest %v expiry %d, target digest %v expiry %d", k, sd[i].Val(), se[i].Val(), td[i].Val(), te[i].Val())
				}
			}
		}
	}
	if bad > 10 {
		t.Errorf("%d keys differ in all", bad)
	}
}

// checkPlacement checks that every key on a target belongs there by the
// table, and returns the total number of keys.
func checkPlacement(t *testing.T, p *testProxy, table *router.Table) int {
	t.Helper()
	total := 0
	for i := range table.NumShards() {
		keys := allKeys(t, p.clients[table.Addr(i)])
		total += len(keys)
		wrong := 0
		for _, k := range keys {
			if table.ShardOf([]byte(k)) != i {
				wrong++
				if wrong <= 5 {
					t.Errorf("key %q is on %s, its slot %d belongs to %s", k, table.Addr(i), router.Slot([]byte(k)), table.Addr(table.ShardOf([]byte(k))))
				}
			}
		}
	}
	return total
}

func mustTable(t testing.TB, epoch uint64, shards []router.Shard) *router.Table {
	t.Helper()
	tb, err := router.NewTable(epoch, shards)
	must(t, err)
	return tb
}

// waitState polls the job until it reaches state (or ends).
func waitState(t testing.TB, j *ReshardJob, want ReshardState, within time.Duration) ReshardStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := j.Status()
		if st.State == want {
			return st
		}
		if st.State.final() {
			t.Fatalf("job ended in state %s (%v) waiting for %s", st.State, st.Err, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still in state %s after %s waiting for %s", st.State, within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits for the job to end and returns its final status.
func waitDone(t testing.TB, j *ReshardJob, within time.Duration) ReshardStatus {
	t.Helper()
	select {
	case <-j.Done():
	case <-time.After(within):
		t.Fatalf("job not done after %s: %+v", within, j.Status())
	}
	return j.Status()
}

// reshardRig is the usual setup: sources holding data by from, empty
// targets, a testProxy over all of them, and a config.
type reshardRig struct {
	sources, targets []*redistest.Server
	from, to         *router.Table
	proxy            *testProxy
	cfg              ReshardConfig
}

func newRig(t *testing.T, nSources, nTargets int, sourceExtra ...string) *reshardRig {
	t.Helper()
	r := &reshardRig{}
	r.sources = redistest.StartN(t, nSources, append(append([]string(nil), reshardArgs...), sourceExtra...)...)
	r.targets = redistest.StartN(t, nTargets, reshardArgs...)
	r.from = mustTable(t, 1, evenShards(t, r.sources))
	if nTargets == 5 {
		r.to = mustTable(t, 2, uneven5(addrsOf(r.targets)))
	} else {
		r.to = mustTable(t, 2, evenShards(t, r.targets))
	}
	r.proxy = newTestProxy(t, r.from, r.sources, r.targets)
	r.cfg = testReshardConfig(t, r.proxy, r.from, r.to)
	return r
}

// testReshardConfig is the default config of a reshard from one table to
// another through p.
func testReshardConfig(tb testing.TB, p *testProxy, from, to *router.Table) ReshardConfig {
	cfg := DefaultReshardConfig()
	cfg.From, cfg.To = from, to
	cfg.WorkDir = tb.TempDir()
	p.to = to
	cfg.Proxy = p
	return cfg
}

func (r *reshardRig) start(t *testing.T) *ReshardJob {
	t.Helper()
	j, err := StartReshard(context.Background(), r.cfg)
	if err != nil {
		t.Fatalf("StartReshard: %v", err)
	}
	t.Cleanup(func() {
		j.Abort()
		<-j.Done()
	})
	return j
}
