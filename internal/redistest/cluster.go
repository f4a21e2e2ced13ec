package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/redisproc"
)

// StartCluster starts a Redis Cluster of n masters (no replicas), each a
// cluster-enabled redis-server on free ports, the slots split evenly as
// `redis-cli --cluster create` does, and waits until every node reports
// cluster_state:ok. args go to every node.
func StartCluster(tb testing.TB, n int, args ...string) []*Server {
	tb.Helper()
	nodes := StartClusterNodes(tb, n, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	per := 16384 / n
	for i, s := range nodes {
		from, to := i*per, (i+1)*per-1
		if i == n-1 {
			to = 16383
		}
		if err := s.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", from, to).Err(); err != nil {
			tb.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr(), err)
		}
		if i > 0 {
			if err := nodes[0].Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", s.Port(), busPort(tb, s)).Err(); err != nil {
				tb.Fatalf("CLUSTER MEET %s: %v", s.Addr(), err)
			}
		}
	}
	WaitClusterOK(tb, nodes)
	return nodes
}

// StartClusterNodes starts n empty cluster-enabled redis-servers, each a
// cluster of its own until joined (CLUSTER MEET, redis-cli --cluster
// add-node). Bus ports come from the allocator too: the default,
// port+10000, could be anyone's.
func StartClusterNodes(tb testing.TB, n int, args ...string) []*Server {
	tb.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		bus, err := redisproc.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		nodes[i] = Start(tb, append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-announce-ip", "127.0.0.1",
			"--cluster-node-timeout", "5000",
		}, args...)...)
	}
	return nodes
}

// WaitClusterOK waits until every node reports cluster_state:ok and knows
// all of nodes, for at most 30 s.
func WaitClusterOK(tb testing.TB, nodes []*Server) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	known := "cluster_known_nodes:" + strconv.Itoa(len(nodes)) + "\r\n"
	for _, s := range nodes {
		for {
			info, err := s.Client().ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, known) {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("cluster node %s never reached cluster_state:ok with %d nodes: %q, %v", s.Addr(), len(nodes), info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// busPort reads a node's cluster bus port.
func busPort(tb testing.TB, s *Server) int {
	tb.Helper()
	v, err := s.Client().ConfigGet(context.Background(), "cluster-port").Result()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := strconv.Atoi(v["cluster-port"])
	if err != nil {
		tb.Fatalf("cluster-port %q: %v", v["cluster-port"], err)
	}
	return p
}
