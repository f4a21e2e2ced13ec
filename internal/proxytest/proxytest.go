package proxytest

import (
	"errors"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/redistest"
)

// Cluster is a proxy and its shards.
type Cluster struct {
	Shards   []*redistest.Server
	Replicas [][]*redistest.Server // each shard's, with Options.Replicas
	Proxy    *proxy.Server
	Control  *control.Plane
	Table    *router.Table
	Addr     string // the proxy's client address
	tb       testing.TB

	password string // the proxy's requirepass, for Client

}

// Options tune a test cluster; the zero value is 3 shards, default config,
// even slot split.
type Options struct {
	Shards    int
	Config    *proxy.Config
	Control   *control.Config  // state and snapshot directories; nil: none
	Ranges    [][]router.Range // per shard; nil splits evenly
	ShardArgs []string         // extra redis-server arguments
	Replicas  int              // replicas per shard, in the table (PRIMARY+REPLICA)
	Log       *zap.Logger
}

// Start starts the shards and the proxy.
func Start(tb testing.TB, opt Options) *Cluster {
	tb.Helper()
	if opt.Shards == 0 {
		opt.Shards = 3
	}
	c := &Cluster{tb: tb, Shards: redistest.StartN(tb, opt.Shards, opt.ShardArgs...)}
	addrs := make([]string, len(c.Shards))
	for i, s := range c.Shards {
		addrs[i] = s.Addr()
	}
	spec, err := router.ParseShardArgs(addrs)
	if err != nil {
		tb.Fatal(err)
	}
	if opt.Ranges != nil {
		for i := range spec {
			spec[i].Ranges = opt.Ranges[i]
		}
	}
	if opt.Replicas > 0 {
		c.Replicas = make([][]*redistest.Server, len(c.Shards))
		for i, s := range c.Shards {
			for range opt.Replicas {
				r := redistest.StartReplica(tb, s, opt.ShardArgs...)
				c.Replicas[i] = append(c.Replicas[i], r)
				spec[i].Replicas = append(spec[i].Replicas, r.Addr())
			}
		}
	}
	if c.Table, err = router.NewTable(1, spec); err != nil {
		tb.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	if opt.Config != nil {
		cfg = *opt.Config
	}
	cfg.Listen = "127.0.0.1:0"
	c.password = cfg.RequirePass
	var ccfg control.Config
	if opt.Control != nil {
		ccfg = *opt.Control
	}
	ccfg.ShardUsername, ccfg.ShardPassword = cfg.ShardUsername, cfg.ShardPassword
	auth, err := control.TableAuth(ccfg, c.Table, opt.Log)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ShardUsername, cfg.ShardPassword = auth.Username, auth.Password
	if c.Proxy, err = proxy.New(cfg, c.Table, opt.Log); err != nil {
		tb.Fatal(err)
	}
	c.Control = control.New(ccfg, c.Proxy, opt.Log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c.Addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- c.Proxy.Serve(ln) }()
	tb.Cleanup(func() {
		c.Control.Close()
		c.Proxy.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			tb.Errorf("proxy serve: %v", err)
		}
	})
	c.waitUp()
	return c
}

// waitUp waits until the proxy answers a command that reaches every shard.
func (c *Cluster) waitUp() {
	c.tb.Helper()
	cl := c.Client()
	for i := 0; i < 200; i++ {
		if err := cl.DBSize(c.tb.Context()).Err(); err == nil {
			return
		}
		redistest.Sleep(10)
	}
	c.tb.Fatalf("proxy at %s did not reach its shards", c.Addr)
}

// Client returns a go-redis client of the proxy, closed at cleanup.
func (c *Cluster) Client() *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: c.Addr, Protocol: 2, DisableIdentity: true, Password: c.password})
	c.tb.Cleanup(func() { cl.Close() })
	return cl
}

// ShardOf returns the shard server that owns key in the cluster's table.
func (c *Cluster) ShardOf(key string) *redistest.Server {
	return c.Shards[c.Table.ShardOf([]byte(key))]
}
