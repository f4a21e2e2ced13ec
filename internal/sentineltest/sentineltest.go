// Package sentineltest starts Redis Sentinels for tests: real
// redis-server --sentinel processes on free loopback ports, monitoring a
// primary that internal/redistest started, with short failure detection
// so that a failover takes a few seconds.
package sentineltest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
)

// DownAfter is how long the sentinels wait before they call a silent
// primary down.
const DownAfter = time.Second

// Sentinel is one redis-server --sentinel process owned by a test.
type Sentinel struct {
	*redisproc.Process
	tb testing.TB
}

// Start starts n sentinels monitoring primary under name, with a quorum
// of a majority of them, and waits until each has found the others and
// the primary's replicas.
func Start(tb testing.TB, name string, primary *redistest.Server, n int) []*Sentinel {
	tb.Helper()
	redistest.Require(tb)
	host, port, _ := net.SplitHostPort(primary.Addr())
	conf := fmt.Sprintf("sentinel monitor %s %s %s %d\n", name, host, port, n/2+1) +
		fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", name, DownAfter.Milliseconds()) +
		fmt.Sprintf("sentinel failover-timeout %s 10000\n", name) +
		fmt.Sprintf("sentinel parallel-syncs %s 1", name)
	out := make([]*Sentinel, n)
	for i := range out {
		p, err := redisproc.Start(context.Background(), redisproc.Config{Dir: tb.TempDir(), Sentinel: conf})
		if err != nil {
			tb.Fatalf("start sentinel: %v", err)
		}
		tb.Cleanup(func() { p.Stop(5 * time.Second) })
		out[i] = &Sentinel{Process: p, tb: tb}
	}
	for _, s := range out {
		s.waitKnown(name, n-1)
	}
	return out
}

// Client is a go-redis client of the sentinel, closed at cleanup.
func (s *Sentinel) Client() *redis.SentinelClient {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// Primary is the address the sentinel gives for name's primary.
func (s *Sentinel) Primary(name string) (string, error) {
	addr, err := s.Client().GetMasterAddrByName(context.Background(), name).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(addr[0], addr[1]), nil
}

// waitKnown waits until the sentinel knows the others watching name.
func (s *Sentinel) waitKnown(name string, others int) {
	s.tb.Helper()
	c := s.Client()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		peers, err := c.Sentinels(context.Background(), name).Result()
		if err == nil && len(peers) >= others {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("sentinel %s knows %d other sentinels of %s after 20s, want %d: %v", s.Addr(), len(peers), name, others, err)
		}
	}
}

// WaitNamed waits until every sentinel of ss names want as name's primary
// and returns when the first of them did.
func WaitNamed(tb testing.TB, ss []*Sentinel, name, want string) time.Time {
	tb.Helper()
	var first time.Time
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		all := true
		for _, s := range ss {
			if got, err := s.Primary(name); err != nil || got != want {
				all = false
			} else if first.IsZero() {
				first = time.Now()
			}
		}
		if all {
			return first
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the sentinels do not all name %s as %s's primary after 30s", want, name)
		}
	}
}

// Addrs are the sentinels' addresses.
func Addrs(ss []*Sentinel) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Addr()
	}
	return out
}
