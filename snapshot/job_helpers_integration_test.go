package snapshot

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/router"
)

// testBarrier is a write barrier that really stops writers, as the proxy's
// does: every test write holds its read lock from send to reply (the
// proxy's sessions hold the gate per batch), and Pause takes the write
// lock, so it returns only once every write in flight has been answered
// and lets none start until resume. gen counts pauses: a writer reads it
// under the read lock, so each acknowledged write knows on which side of
// each pause it ran.
type testBarrier struct {
	mu      sync.RWMutex
	gen     atomic.Int64
	refuse  error  // Pause fails with it
	onPause func() // runs while paused
}

func (b *testBarrier) Pause(ctx context.Context) (func(), error) {
	if b.refuse != nil {
		return nil, b.refuse
	}
	got := make(chan struct{})
	go func() {
		b.mu.Lock()
		close(got)
	}()
	select {
	case <-got:
	case <-ctx.Done():
		go func() {
			<-got
			b.mu.Unlock()
		}()
		return nil, ctx.Err()
	}
	b.gen.Add(1)
	if b.onPause != nil {
		b.onPause()
	}
	var once sync.Once
	return func() { once.Do(b.mu.Unlock) }, nil
}

// write runs one client write inside the barrier and returns the number
// of pauses before it.
func (b *testBarrier) write(fn func() error) (int64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.gen.Load(), fn()
}

// cluster is n shards and the table that routes to them.
type cluster struct {
	servers []*redistest.Server
	clients []*redis.Client
	table   *router.Table
}

func startCluster(t testing.TB, args ...[]string) *cluster {
	t.Helper()
	c := &cluster{}
	var shards []router.Shard
	for _, a := range args {
		s := startSource(t, a...)
		c.servers = append(c.servers, s)
		c.clients = append(c.clients, s.Client())
		shards = append(shards, router.Shard{Addr: s.Addr()})
	}
	spec := router.FormatSpec(shards)
	parsed, err := router.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if c.table, err = router.NewTable(7, parsed); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) client(key string) *redis.Client {
	return c.clients[c.table.ShardOf([]byte(key))]
}

func (c *cluster) jobConfig(t testing.TB, b Barrier) JobConfig {
	t.Helper()
	cfg := DefaultJobConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "snapshots")
	cfg.Table = c.table
	cfg.Barrier = b
	cfg.LinkTimeout = 20 * time.Second
	cfg.Verify = checkRDB
	return cfg
}

// runJob runs a job to its end within a minute.
func runJob(t testing.TB, cfg JobConfig) (*Job, error) {
	t.Helper()
	j, err := StartJob(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartJob: %v", err)
	}
	t.Cleanup(j.Cancel)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = j.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("job still %s after a minute: %+v", j.Status().Phase, j.Status())
	}
	return j, err
}

// rebuildSnapshot starts one fresh redis-server per shard of a snapshot on
// its RDB and replays its tail with redis-cli --pipe.
func rebuildSnapshot(t testing.TB, dir string, m Manifest) []*redis.Client {
	t.Helper()
	out := make([]*redis.Client, len(m.Shards))
	for i, sh := range m.Shards {
		s := rebuild(t, Result{
			RDBPath:      filepath.Join(dir, sh.RDBFile),
			TailPath:     filepath.Join(dir, sh.TailFile),
			TailCommands: sh.TailCommands,
		})
		out[i] = s.Client()
	}
	return out
}

// clusterLoad is writers that each write increasing sequence numbers to
// their own keys, spread over every shard, through the test barrier, and
// record every acknowledged write with its barrier generation. Per
// writer, seq%10==0 is a MULTI/EXEC on the writer's hash-tagged keys, an
// even seq an INCR of one of 8 counters, an odd one a SET of a new key.
type clusterLoad struct {
	c    *cluster
	b    *testBarrier
	stop chan struct{}
	wg   sync.WaitGroup
	acks [][]loadAck // acks[i] is writer i's, read after Stop
	n    []atomic.Int64
	errs chan error
}

type loadAck struct{ seq, gen int64 }

func startLoad(t testing.TB, c *cluster, b *testBarrier, writers int) *clusterLoad {
	t.Helper()
	l := &clusterLoad{c: c, b: b, stop: make(chan struct{}), acks: make([][]loadAck, writers),
		n: make([]atomic.Int64, writers), errs: make(chan error, writers)}
	for i := 0; i < writers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx := context.Background()
			for seq := int64(1); ; seq++ {
				select {
				case <-l.stop:
					return
				default:
				}
				gen, err := b.write(func() error { return l.writeOne(ctx, i, seq) })
				if err != nil {
					l.errs <- fmt.Errorf("writer %d seq %d: %w", i, seq, err)
					return
				}
				l.acks[i] = append(l.acks[i], loadAck{seq, gen})
				l.n[i].Add(1)
			}
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

func txTag(i int) string               { return "{w" + strconv.Itoa(i) + "}" }
func setKey(i int, seq int64) string   { return fmt.Sprintf("w%d:s%d", i, seq) }
func counterKey(i int, j int64) string { return fmt.Sprintf("w%d:c%d", i, j) }
func txKey(i int, seq int64) string    { return fmt.Sprintf("%s:t%d", txTag(i), seq) }
func txCounter(i int) string           { return txTag(i) + ":tn" }

func (l *clusterLoad) writeOne(ctx context.Context, i int, seq int64) error {
	switch {
	case seq%10 == 0:
		_, err := l.c.client(txTag(i)).TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, txKey(i, seq), seq, 0)
			p.Incr(ctx, txCounter(i))
			return nil
		})
		return err
	case seq%2 == 0:
		k := counterKey(i, seq%8)
		return l.c.client(k).Incr(ctx, k).Err()
	default:
		k := setKey(i, seq)
		return l.c.client(k).Set(ctx, k, seq, 0).Err()
	}
}

// Stop ends the writers; it is idempotent.
func (l *clusterLoad) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *clusterLoad) total() int64 {
	var n int64
	for i := range l.n {
		n += l.n[i].Load()
	}
	return n
}

func (l *clusterLoad) checkErrs(t testing.TB) {
	t.Helper()
	select {
	case err := <-l.errs:
		t.Fatal(err)
	default:
	}
}

// check verifies, against shards rebuilt from a snapshot whose cut was
// the first pause, that every write acknowledged before it is there and
// none acknowledged after it is. It returns the counts of both.
func (l *clusterLoad) check(t testing.TB, rebuilt []*redis.Client) (before, after int64) {
	t.Helper()
	want := map[string]string{} // "" for absent
	for i, acks := range l.acks {
		counters := map[string]int64{}
		var txs int64
		for j := int64(0); j < 8; j++ {
			counters[counterKey(i, j)] = 0
		}
		for _, a := range acks {
			in := a.gen == 0
			if in {
				before++
			} else {
				after++
			}
			switch {
			case a.seq%10 == 0:
				want[txKey(i, a.seq)] = ""
				if in {
					want[txKey(i, a.seq)] = strconv.FormatInt(a.seq, 10)
					txs++
				}
			case a.seq%2 == 0:
				if in {
					counters[counterKey(i, a.seq%8)]++
				}
			default:
				want[setKey(i, a.seq)] = ""
				if in {
					want[setKey(i, a.seq)] = strconv.FormatInt(a.seq, 10)
				}
			}
		}
		for k, n := range counters {
			want[k] = ""
			if n > 0 {
				want[k] = strconv.FormatInt(n, 10)
			}
		}
		want[txCounter(i)] = ""
		if txs > 0 {
			want[txCounter(i)] = strconv.FormatInt(txs, 10)
		}
	}
	ctx := context.Background()
	byShard := make([][]string, len(rebuilt))
	for k := range want {
		s := l.c.table.ShardOf([]byte(k))
		byShard[s] = append(byShard[s], k)
	}
	bad := 0
	for s, keys := range byShard {
		p := rebuilt[s].Pipeline()
		cmds := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		p.Exec(ctx)
		for i, k := range keys {
			got, err := cmds[i].Result()
			if err == redis.Nil {
				got, err = "", nil
			}
			if err != nil {
				t.Fatalf("GET %s on rebuilt shard %d: %v", k, s, err)
			}
			if got != want[k] {
				if bad++; bad <= 10 {
					t.Errorf("rebuilt shard %d: %s = %q, want %q (\"\" = absent)", s, k, got, want[k])
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d keys differ from the writes acknowledged before the pause", bad, len(want))
	}
	return before, after
}
