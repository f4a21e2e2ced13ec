package proxy

import (
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
)

// A table swap and a subscribed client: moveTo subscribes it again on the
// shards of the new table while SwapTable holds the barrier.

// moveTo re-subscribes everything on the shards of a new route, then drops
// the connections the new route no longer needs. SwapTable calls it with the
// barrier held, so no message can be published between the two. A
// connection to shard stale is never kept: its address now leads to
// another server (a Sentinel failover; "" for none).
func (p *pubsubLoop) moveTo(r *route, stale string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The names to move are what the shards confirmed: a (un)subscription
	// sent on must be confirmed first.
	p.caughtUp()
	next := map[int]*subConn{}
	oldKey := map[*subConn]int{}
	want := map[int]map[string][]string{} // new key -> kind -> names
	add := func(nk int, kind, name string) {
		if want[nk] == nil {
			want[nk] = map[string][]string{}
		}
		want[nk][kind] = append(want[nk][kind], name)
	}
	for key, sc := range p.conns {
		oldKey[sc] = key
		if sc.mirror {
			continue // home holds the same names
		}
		sc.mu.Lock()
		for kind, names := range sc.names {
			for name := range names {
				if kind == "ssubscribe" {
					add(r.table.ShardOf([]byte(name)), kind, name)
					continue
				}
				add(homeConn, kind, name)
				if mayCarryKeyspace(kind, []byte(name)) {
					for shard := 1; shard < len(r.pools); shard++ {
						add(mirrorKey(shard), kind, name)
					}
				}
			}
		}
		sc.mu.Unlock()
	}
	for nk, kinds := range want {
		// Keep a connection of the same kind already on the right shard.
		var keep *subConn
		for sc, key := range oldKey {
			if sc.addr == r.pools[shardOfKey(nk)].Addr && sc.addr != stale && connKind(key) == connKind(nk) {
				keep = sc
			}
		}
		if keep != nil {
			next[nk] = keep
			continue
		}
		sc, err := p.open(r, nk)
		if err != nil {
			p.s.srv.log.Warn("pub/sub: resubscribe after table swap", zap.Error(err))
			continue
		}
		var raw []byte
		n := 0
		for kind, names := range kinds {
			args := [][]byte{[]byte(kind)}
			for _, nm := range names {
				args = append(args, []byte(nm))
			}
			raw = resp.AppendCommand(raw, args...)
			n += len(names)
		}
		sc.mu.Lock()
		sc.swallow, sc.moved = n, make(chan struct{})
		sc.mu.Unlock()
		if _, err := sc.d.NetConn.Write(raw); err == nil {
			select {
			case <-sc.moved:
			case <-sc.done:
			case <-time.After(2 * time.Second):
				p.s.srv.log.Warn("pub/sub: resubscribe after table swap timed out")
			}
		}
		next[nk] = sc
	}
	var drop []*subConn
	for sc := range oldKey {
		kept := false
		for _, n := range next {
			kept = kept || n == sc
		}
		if !kept {
			drop = append(drop, sc)
		}
	}
	// What the old shards sent before the barrier closed may still be on
	// its way: their pumps forward all of it before the connections close.
	syncConns(p.s.srv, drop)
	for _, sc := range drop {
		p.closeConn(sc)
	}
	p.conns = next
	p.last = manyConns // keys now name other connections
}

// connKind tells home, mirror and shard-channel connection keys apart.
func connKind(key int) int {
	switch {
	case key == homeConn:
		return 0
	case isMirrorKey(key):
		return 1
	}
	return 2
}
