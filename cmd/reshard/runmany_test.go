package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/etcdtest"
	"github.com/reshard/reshard/internal/redistest"
)

// TestMakeRunMany runs `make run-many` as the README tells, in a copy of
// the repository, on free ports: three proxies come up sharing one table
// through etcd (PROXY MEMBERS lists three on any of them, a write through
// one reads back through another), and Ctrl-C stops every process it
// started.
func TestMakeRunMany(t *testing.T) {
	redistest.Require(t)
	etcdtest.Require(t)
	dir := copyRepoTo(t, freshCopyDir(t))
	taken := map[string]string{}
	proxyPort, shardPort, etcdPort := freeRun(t, 3, taken), freeRun(t, 3, taken), freeRun(t, 2, taken)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(proxyPort+i) }
	last := redis.NewClient(&redis.Options{Addr: addr(2), Protocol: 2, MaxRetries: -1})
	defer last.Close()
	ctx := context.Background()
	env := []string{"PROXY_PORT=" + strconv.Itoa(proxyPort), "SHARD_PORT=" + strconv.Itoa(shardPort), "ETCD_PORT=" + strconv.Itoa(etcdPort)}
	interrupt, out := startMake(t, dir, []string{"run-many"}, env, func() error {
		members, err := last.Do(ctx, "PROXY", "MEMBERS").StringSlice()
		if err == nil && len(members) != 3 {
			err = fmt.Errorf("members %q, want 3", members)
		}
		if err == nil {
			err = last.Exists(ctx, "k").Err()
		}
		return err
	})
	first := redis.NewClient(&redis.Options{Addr: addr(0), Protocol: 2})
	defer first.Close()
	if err := first.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := last.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET through the third proxy = %q, %v; want v", got, err)
	}
	interrupt()
	for _, port := range []int{proxyPort, proxyPort + 1, proxyPort + 2, shardPort, shardPort + 1, shardPort + 2, etcdPort} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("port %d still answers after Ctrl-C:\n%s", port, out.String())
		}
	}
	if strings.Contains(out.String(), "not found") {
		t.Errorf("make run-many: %s", out.String())
	}
}

// freeRun returns the first of n consecutive free loopback ports, below
// the ephemeral range (see quietPort), and not in taken, which it adds
// them to.
func freeRun(t *testing.T, n int, taken map[string]string) int {
	t.Helper()
	for range 100 {
		first, err := quietPort(taken)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(first)
		free := true
		for i := 1; i < n && free; i++ {
			port := strconv.Itoa(p + i)
			ln, err := net.Listen("tcp", "127.0.0.1:"+port)
			if _, used := taken[port]; used || err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			for i := range n {
				taken[strconv.Itoa(p+i)] = "run-many"
			}
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}
