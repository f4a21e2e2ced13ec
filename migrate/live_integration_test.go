package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/proxyname"
	"github.com/reshard/reshard/internal/redistest"
)

// namedConn opens a connection to s named as the shard connections of the
// proxy with run id runID are, held until the test ends.
func namedConn(t *testing.T, s *redistest.Server, runID string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, ClientName: proxyname.Name(runID), PoolSize: 1})
	t.Cleanup(func() { c.Close() })
	must(t, c.Ping(context.Background()).Err())
}

// TestIntegrationRestoreRefusesLiveTargets: a restore into a shard of the
// running proxy's table, or into a shard that any reshard proxy is
// connected to, is refused before anything is written, with Flush,
// Replace and DryRun alike; the refusal names the shard and what serves
// it. Before the check, Flush emptied the live shards and wrote keys
// under the restore's layout.
func TestIntegrationRestoreRefusesLiveTargets(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	for i := range 50 {
		must(t, src.Client().Set(ctx, fmt.Sprint("k:", i), i, 0).Err())
	}
	file := saveRDB(t, src, "a.rdb")
	ts := redistest.StartN(t, 2)
	for i := range 30 {
		must(t, ts[0].Client().Set(ctx, fmt.Sprint("live:", i), i, 0).Err())
	}
	before := dbsizes(t, ts)

	for _, tc := range []struct {
		name   string
		mod    func(*RestoreConfig)
		setup  func(t *testing.T) // before the restore
		wanted []string
	}{
		{"other proxy, flush", func(c *RestoreConfig) { c.Flush = true }, func(t *testing.T) { namedConn(t, ts[0], "other1") },
			[]string{"target " + ts[0].Addr() + " is a live shard of reshard proxy run_id other1", "stop that proxy first"}},
		{"other proxy, replace", func(c *RestoreConfig) { c.Replace = true }, func(t *testing.T) { namedConn(t, ts[1], "other2") },
			[]string{"target " + ts[1].Addr() + " is a live shard of reshard proxy run_id other2"}},
		{"other proxy, dry run", func(c *RestoreConfig) { c.DryRun, c.Flush = true, true }, func(t *testing.T) { namedConn(t, ts[0], "other3") },
			[]string{"run_id other3"}},
		{"own table, flush", func(c *RestoreConfig) {
			c.Flush = true
			c.Proxy = ProxyInfo{RunID: "self", Shards: []string{"127.0.0.1:1", ts[1].Addr()}, Epoch: 3}
		}, func(t *testing.T) { namedConn(t, ts[1], "self") },
			[]string{"target " + ts[1].Addr() + " is a shard of this proxy's routing table (epoch 3)", "use PROXY RESHARD"}},
		{"own connections, not in the table", func(c *RestoreConfig) {
			c.Flush = true
			c.Proxy = ProxyInfo{RunID: "self", Shards: []string{"127.0.0.1:1"}, Epoch: 3}
		}, func(t *testing.T) { namedConn(t, ts[0], "self") },
			[]string{"target " + ts[0].Addr() + " is connected to this proxy (run_id self"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			cfg := testConfig([]string{file}, evenShards(t, ts))
			tc.mod(&cfg)
			rep, err := Restore(ctx, cfg)
			if !errors.Is(err, ErrTargetLive) || !errors.Is(err, ErrPreflight) {
				t.Fatalf("Restore = %v, want ErrTargetLive", err)
			}
			for _, w := range tc.wanted {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := dbsizes(t, ts); !slices.Equal(got, before) {
				t.Errorf("DBSIZE of the targets %v after the refusal, want %v as before", got, before)
			}
			if n := keysWritten(rep); n != 0 {
				t.Errorf("report: %d keys written", n)
			}
			// the check alone, as PROXY RESTORE runs it before its job
			if err := CheckTargets(ctx, cfg); !errors.Is(err, ErrTargetLive) {
				t.Errorf("CheckTargets = %v, want ErrTargetLive", err)
			}
		})
	}

	// With the named connections gone the same restore goes ahead.
	cfg := testConfig([]string{file}, evenShards(t, ts))
	cfg.Flush = true
	if _, err := Restore(ctx, cfg); err != nil {
		t.Fatalf("restore with no proxy connected: %v", err)
	}
	if got := dbsizes(t, ts); got[0]+got[1] != 50 {
		t.Errorf("DBSIZE after the restore %v, want 50 in all", got)
	}
}

// TestIntegrationReshardRefusesLiveTargets: a reshard onto a shard another
// reshard proxy is connected to is refused before anything is written,
// FLUSH or not; the connections of the proxy running the reshard (RunID)
// do not count, since a rollback's targets are the shards it left.
func TestIntegrationReshardRefusesLiveTargets(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 1, 2)
	must(t, r.proxy.clients[r.from.Addr(0)].Set(ctx, "k", "v", 0).Err())
	live := r.proxy.clients[r.to.Addr(1)]
	must(t, live.Set(ctx, "served", "v", 0).Err())
	other := live.Conn()
	t.Cleanup(func() { other.Close() })
	must(t, other.ClientSetName(ctx, proxyname.Name("other")).Err())
	sizes := func() []int64 {
		return []int64{r.proxy.clients[r.to.Addr(0)].DBSize(ctx).Val(), live.DBSize(ctx).Val()}
	}
	before := sizes()
	for _, flush := range []bool{false, true} {
		cfg := r.cfg
		cfg.Flush, cfg.RunID = flush, "self"
		_, err := StartReshard(ctx, cfg)
		if !errors.Is(err, ErrTargetLive) || !strings.Contains(err.Error(), "target "+r.to.Addr(1)+" is a live shard of reshard proxy run_id other") {
			t.Errorf("flush %v: StartReshard = %v, want ErrTargetLive naming the target and run_id other", flush, err)
		}
		if got := sizes(); !slices.Equal(got, before) {
			t.Errorf("flush %v: DBSIZE of the targets %v after the refusal, want %v", flush, got, before)
		}
	}

	// this proxy's own connection is no other proxy's
	must(t, other.ClientSetName(ctx, proxyname.Name("self")).Err())
	cfg := r.cfg
	cfg.Flush, cfg.RunID = true, "self"
	j, err := StartReshard(ctx, cfg)
	if err != nil {
		t.Fatalf("StartReshard onto shards with this proxy's own connections: %v", err)
	}
	if st := waitDone(t, j, 20*time.Second); st.State != ReshardDone {
		t.Fatalf("state %s, error %v", st.State, st.Err)
	}
}
