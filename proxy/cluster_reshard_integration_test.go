package proxy_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
)

// nodeWatch is hooked into every node client of the test's ClusterClients.
// It sees what a cluster client learns and does on its own, which the
// commands' results do not show: the connections it dials, the slot maps
// of its CLUSTER SLOTS reloads, and any MOVED or ASK it gets.
type nodeWatch struct {
	proxy string // the only address a client may ever use
	slots string // what the proxy announced before the load, rendered

	dials, reloads atomic.Int64

	mu       sync.Mutex
	nodes    []*redis.Client
	problems []string
}

func (w *nodeWatch) newNode(n *redis.Client) {
	n.AddHook(w)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nodes = append(w.nodes, n)
	if addr := n.Options().Addr; addr != w.proxy {
		w.problems = append(w.problems, "a cluster client created a node client for "+addr)
	}
}

func (w *nodeWatch) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

func (w *nodeWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		w.dials.Add(1)
		if addr != w.proxy {
			w.problem("a cluster client dialed %s", addr)
		}
		return next(ctx, network, addr)
	}
}

func (w *nodeWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		w.saw(cmd)
		return err
	}
}

func (w *nodeWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			w.saw(cmd)
		}
		return err
	}
}

func (w *nodeWatch) saw(cmd redis.Cmder) {
	if s, ok := cmd.(*redis.ClusterSlotsCmd); ok && s.Err() == nil {
		w.reloads.Add(1)
		if got := fmt.Sprint(s.Val()); got != w.slots {
			w.problem("a cluster client loaded CLUSTER SLOTS %s, the proxy had announced %s", got, w.slots)
		}
	}
	if err := cmd.Err(); err != nil && (strings.HasPrefix(err.Error(), "MOVED ") || strings.HasPrefix(err.Error(), "ASK ")) {
		w.problem("%v: redirected: %v", cmd.Args(), err)
	}
}

// staleConns is how many connections the cluster clients have dropped from
// their pools (broken, or found closed by the peer), every pool counted.
func (w *nodeWatch) staleConns() (n uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.nodes {
		st := c.PoolStats()
		n += st.StaleConns
		if st.PipelineStats != nil {
			n += st.PipelineStats.StaleConns
		}
	}
	return n
}

// objectValues reads every key preloadTypes wrote (its type is i%6 there)
// with whether it has a TTL, rendered for comparison.
func objectValues(t *testing.T, cl *redis.Client, keys []string) []string {
	t.Helper()
	ctx := t.Context()
	out := make([]string, 0, len(keys))
	for start := 0; start < len(keys); start += 2000 {
		pipe := cl.Pipeline()
		var vals []redis.Cmder
		var ttls []*redis.DurationCmd
		for i := start; i < min(start+2000, len(keys)); i++ {
			k := keys[i]
			switch i % 6 {
			case 0:
				vals = append(vals, pipe.Get(ctx, k))
			case 1:
				vals = append(vals, pipe.HGetAll(ctx, k))
			case 2:
				vals = append(vals, pipe.LRange(ctx, k, 0, -1))
			case 3:
				vals = append(vals, pipe.SMembers(ctx, k))
			case 4:
				vals = append(vals, pipe.ZRangeWithScores(ctx, k, 0, -1))
			case 5:
				vals = append(vals, pipe.XRange(ctx, k, "-", "+"))
			}
			ttls = append(ttls, pipe.TTL(ctx, k))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("reading the preloaded keys: %v", err)
		}
		for j, v := range vals {
			if s, ok := v.(*redis.StringSliceCmd); ok && (start+j)%6 == 3 {
				v = redis.NewStringSliceResult(slices.Sorted(slices.Values(s.Val())), nil) // set order is the shard's hash table's
			}
			out = append(out, fmt.Sprintf("%s ttl:%t", v, ttls[j].Val() > 0))
		}
	}
	return out
}

// TestIntegrationReshardClusterClient: go-redis ClusterClients, which route
// by the slot map they load from CLUSTER SLOTS, keep working through a live
// reshard. The proxy is the one node of every map they load before, during
// and after it, so they never follow a redirect nor connect elsewhere, and
// single keys, hash-tagged MGET/MSET, INCR, pipelines and MULTI/EXEC go on
// without an error or a lost write.
func TestIntegrationReshardClusterClient(t *testing.T) {
	c, _ := reshardCluster(t)
	ctx := t.Context()
	admin := c.Client()
	objects := preloadTypes(t, admin, 12000)
	preloaded := objectValues(t, admin, objects)

	announced, err := admin.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(announced) != 1 || announced[0].Start != 0 || announced[0].End != 16383 ||
		len(announced[0].Nodes) != 1 || announced[0].Nodes[0].Addr != c.Addr {
		t.Fatalf("CLUSTER SLOTS before the reshard = %+v, want 0-16383 at the proxy, %s", announced, c.Addr)
	}
	watch := &nodeWatch{proxy: c.Addr, slots: fmt.Sprint(announced)}

	const writers = 8
	load := &writerLoad{stop: make(chan struct{})}
	fail := func(err error) {
		load.errors.Add(1)
		load.first.CompareAndSwap(nil, err.Error())
	}
	failed := make([]bool, writers)  // writer i stopped on an error: its last write may be unacknowledged
	acks := make([][]int64, writers) // every acknowledged value of writer i's counter, in order
	last := make([]string, writers)  // the value writer i last saw acknowledged for {cci}a and {cci}b
	clients := make([]*redis.ClusterClient, writers)
	for i := range clients {
		// MaxRedirects -1: a MOVED or ASK is an error, not a retry, so the
		// load would count it. A reload interval far below go-redis's
		// default 60 s makes every client load CLUSTER SLOTS again every
		// few hundred milliseconds, through the cutover too. Half speak
		// RESP3, which uses the proxy's other set of shard connections.
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: []string{c.Addr}, MaxRedirects: -1, Protocol: 2 + i%2,
			ClusterStateReloadInterval: 50 * time.Millisecond,
		})
		cc.OnNewNode(watch.newNode)
		t.Cleanup(func() { cc.Close() })
		clients[i] = cc
	}

	// round runs writer i's mix once; n numbers the round's values.
	round := func(i, n int) error {
		cc := clients[i]
		val := fmt.Sprintf("%d:%d", i, n)
		key := fmt.Sprintf("cc:%d:%d", i, n%64) // 64 slots per writer
		tagA, tagB, counter := fmt.Sprintf("{cc%d}a", i), fmt.Sprintf("{cc%d}b", i), fmt.Sprintf("{cc%d}n", i)
		ack := func(v int64) error {
			if want := int64(len(acks[i])) + 1; v != want {
				return fmt.Errorf("INCR %s = %d, want %d", counter, v, want)
			}
			acks[i] = append(acks[i], v)
			return nil
		}

		if err := cc.Set(ctx, key, val, 0).Err(); err != nil {
			return fmt.Errorf("SET %s: %w", key, err)
		}
		if got, err := cc.Get(ctx, key).Result(); err != nil || got != val {
			return fmt.Errorf("GET %s = %q (%v) after SET %q", key, got, err, val)
		}
		if err := cc.MSet(ctx, tagA, val, tagB, val).Err(); err != nil {
			return fmt.Errorf("MSET: %w", err)
		}
		last[i] = val
		if got, err := cc.MGet(ctx, tagA, tagB).Result(); err != nil || fmt.Sprint(got) != fmt.Sprintf("[%s %s]", val, val) {
			return fmt.Errorf("MGET %s %s = %v (%v), want %s twice", tagA, tagB, got, err, val)
		}
		v, err := cc.Incr(ctx, counter).Result()
		if err != nil {
			return fmt.Errorf("INCR %s: %w", counter, err)
		}
		if err := ack(v); err != nil {
			return err
		}

		// A pipeline over several slots, which the client maps by node.
		pipe := cc.Pipeline()
		var gets []*redis.StringCmd
		for j := 0; j < 4; j++ {
			k := fmt.Sprintf("cc:%d:p%d", i, j)
			pipe.Set(ctx, k, val, 0)
			gets = append(gets, pipe.Get(ctx, k))
		}
		incr := pipe.Incr(ctx, counter)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		for _, g := range gets {
			if g.Val() != val {
				return fmt.Errorf("pipelined %s = %q, want %q", g.Args()[1], g.Val(), val)
			}
		}
		if err := ack(incr.Val()); err != nil {
			return err
		}

		// MULTI/EXEC on the writer's hash-tagged slot.
		tx := cc.TxPipeline()
		incr = tx.Incr(ctx, counter)
		tx.MSet(ctx, tagA, val+"x", tagB, val+"x")
		mget := tx.MGet(ctx, tagA, tagB)
		if _, err := tx.Exec(ctx); err != nil {
			return fmt.Errorf("MULTI/EXEC: %w", err)
		}
		last[i] = val + "x"
		if fmt.Sprint(mget.Val()) != fmt.Sprintf("[%sx %sx]", val, val) {
			return fmt.Errorf("MGET in MULTI/EXEC = %v, want %sx twice", mget.Val(), val)
		}
		return ack(incr.Val())
	}

	// One round each before counting connections: every client has then
	// loaded its slot map and opened the connections its mix uses.
	for i := range clients {
		if err := round(i, 0); err != nil {
			t.Fatalf("writer %d before the load: %v", i, err)
		}
	}
	// A client's reload runs in the background, beside its own commands,
	// and takes a second connection from the pool when the first is busy:
	// a ClusterClient opens connections by itself, so a new connection at
	// the proxy is not a reconnect. What a reconnect leaves behind is a
	// connection the client dropped (broken, or closed by the proxy, which
	// go-redis finds when it next takes it from the pool). So: every
	// connection the proxy accepts must be one the clients dialed, and no
	// client may drop one.
	dialsBefore, staleBefore := watch.dials.Load(), watch.staleConns()
	acceptedBefore := acceptedConns(t, admin)

	for i := range clients {
		load.wg.Add(1)
		go func(i int) {
			defer load.wg.Done()
			for n := 1; n <= 5000; n++ { // bounded, whatever the machine's speed
				select {
				case <-load.stop:
					return
				default:
				}
				if err := round(i, n); err != nil {
					fail(fmt.Errorf("writer %d: %w", i, err))
					failed[i] = true
					return
				}
			}
		}(i)
	}
	time.Sleep(300 * time.Millisecond)

	targets := redistest.StartN(t, 5, debugArgs...)
	ranges := []string{"0-1499", "1500-1600", "1601-8999", "9000-15799", "15800-16383"}
	args := []any{"PROXY", "RESHARD"}
	for i, s := range targets {
		args = append(args, s.Addr()+"="+ranges[i])
	}
	reloadsBefore := watch.reloads.Load()
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	st := waitReshard(t, admin, "done", "failed", "aborted")
	time.Sleep(300 * time.Millisecond) // load on the new table
	load.halt()
	// The reshard itself may take only tens of milliseconds; the maps
	// loaded from its start to here include the ones after the swap.
	reloads := watch.reloads.Load() - reloadsBefore
	// Let the last background reloads (each followed by go-redis's 200 ms
	// cooldown) finish, so that connection counts hold still.
	time.Sleep(400 * time.Millisecond)
	if !strings.Contains(st, "state:done") {
		t.Fatalf("reshard did not finish:\n%s", st)
	}
	if got := c.Proxy.Table().Epoch(); got != 2 {
		t.Errorf("proxy epoch after the reshard = %d, want 2", got)
	}

	if n := load.errors.Load(); n != 0 {
		t.Errorf("%d cluster client errors during the reshard, first: %v", n, load.first.Load())
	}
	watch.mu.Lock()
	for _, p := range watch.problems[:min(len(watch.problems), 5)] {
		t.Error(p)
	}
	if len(watch.problems) > 5 {
		t.Errorf("... and %d more", len(watch.problems)-5)
	}
	watch.mu.Unlock()
	if reloads == 0 {
		t.Errorf("no cluster client loaded CLUSTER SLOTS during or after the reshard: the test did not test that")
	}
	// Counted before a cluster client runs anything again.
	dials := watch.dials.Load() - dialsBefore
	accepted := acceptedConns(t, admin) - acceptedBefore
	stale := watch.staleConns() - staleBefore
	if accepted != dials {
		t.Errorf("the proxy accepted %d connections during the load, the cluster clients dialed %d", accepted, dials)
	}
	if stale != 0 {
		t.Errorf("the cluster clients dropped %d connections during the load: they reconnected", stale)
	}
	for _, cmd := range []*redis.ClusterSlotsCmd{admin.ClusterSlots(ctx), clients[0].ClusterSlots(ctx)} {
		if after, err := cmd.Result(); err != nil || fmt.Sprint(after) != watch.slots {
			t.Errorf("CLUSTER SLOTS after the reshard = %v (%v), before it %s", after, err, watch.slots)
		}
	}

	// Acknowledged values rose by one each (checked as they came), so the
	// final counter must be their count, and the last one the largest. A
	// writer that stopped on an error may have had one more INCR applied
	// and its last MSET too, unacknowledged: that is reported above already.
	incrs := 0
	for i := range acks {
		incrs += len(acks[i])
		counter := fmt.Sprintf("{cc%d}n", i)
		final, err := admin.Get(ctx, counter).Int64()
		if err != nil {
			t.Errorf("GET %s: %v", counter, err)
			continue
		}
		if n := int64(len(acks[i])); final != n && !(failed[i] && final == n+1) {
			t.Errorf("%s = %d through the proxy, %d INCRs acknowledged", counter, final, n)
		}
		if n := len(acks[i]); n > 0 && acks[i][n-1] > final {
			t.Errorf("%s = %d through the proxy, an INCR acknowledged %d", counter, final, acks[i][n-1])
		}
		if failed[i] {
			continue
		}
		for _, k := range []string{fmt.Sprintf("{cc%d}a", i), fmt.Sprintf("{cc%d}b", i)} {
			if got, err := admin.Get(ctx, k).Result(); err != nil || got != last[i] {
				t.Errorf("%s = %q (%v) through the proxy, last acknowledged %q", k, got, err, last[i])
			}
		}
	}
	after := objectValues(t, admin, objects)
	diff := 0
	for j := range preloaded {
		if after[j] != preloaded[j] {
			if diff++; diff <= 5 {
				t.Errorf("preloaded %s after the reshard: %s, before: %s", objects[j], after[j], preloaded[j])
			}
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d preloaded keys read back differently", diff, len(objects))
	}
	t.Logf("%d INCRs acknowledged over %d writers; %d CLUSTER SLOTS reloads from the reshard's start; %d connections dialed by the clients, %d accepted by the proxy during the load\n%s",
		incrs, writers, reloads, dials, accepted, st)
}
