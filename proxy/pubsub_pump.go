package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Subscription connections and their pumps, and the syncs that tell the
// pub/sub loop the shards have answered all it sent: what the client's
// subscribed mode is counted from.

var (
	// syncToken marks the proxy's own PINGs on subscription connections.
	syncToken = func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return "__reshard_sync_" + hex.EncodeToString(b)
	}()
	syncPing     = resp.AppendCommand(nil, []byte("PING"), []byte(syncToken))
	syncPongSub  = resp.AppendBulkString(resp.AppendBulkString(resp.AppendArrayHeader(nil, 2), "pong"), syncToken)
	syncPongBulk = resp.AppendBulkString(nil, syncToken)
)

// subConn is one subscription connection and its pump.
type subConn struct {
	d       *backend.Dedicated
	addr    string
	mirror  bool          // a mirror (keyspace notifications): its confirmations are not the client's
	count   atomic.Int64  // subscriptions the shard last reported on it
	closing atomic.Bool   // the session closes it: not a shard failure
	synced  chan struct{} // a sync PING came back, or the reply to a HELLO
	done    chan struct{} // the pump stopped

	// hello, while the loop switches the connection's protocol, is what
	// the pump waits on once it has swallowed HELLO's reply, so that no
	// message in the new protocol reaches the client before the client's
	// own reply to HELLO
	hello atomic.Pointer[chan struct{}]

	// What the shard confirmed, kept so a table swap can subscribe again
	// on the new shards; and confirmations of such a resubscription, which
	// the client must not see.
	mu      sync.Mutex
	names   map[string]map[string]bool // "subscribe"|"psubscribe"|"ssubscribe" -> names
	kinds   *[3]atomic.Int64           // the session's count of names by kind (subKind)
	swallow int
	moved   chan struct{} // closed when the last swallowed confirmation came
}

// open starts a subscription connection for key on route r, and its pump.
func (p *pubsubLoop) open(r *route, key int) (*subConn, error) {
	pl := r.pools[shardOfKey(key)].DedicatedPool(p.s.proto)
	d, err := pl.Get()
	if err != nil {
		return nil, errors.New(pl.DownMessage(err))
	}
	sc := &subConn{d: d, addr: pl.Addr, mirror: isMirrorKey(key), synced: make(chan struct{}, 1), done: make(chan struct{}),
		names: map[string]map[string]bool{"subscribe": {}, "psubscribe": {}, "ssubscribe": {}},
		kinds: &p.s.sub.kinds}
	go p.pump(sc)
	return sc, nil
}

// pump forwards what a subscription connection receives to the client.
func (p *pubsubLoop) pump(sc *subConn) {
	defer close(sc.done)
	defer p.s.srv.contain(p.s, func() {}) // the loop's read fails and ends the client
	r := sc.d.R
	for {
		reply, err := wire.ReadReply(r, nil)
		if err != nil {
			if !sc.closing.Load() {
				// A shard that dies takes the client's subscriptions with
				// it: close the client, as a Redis that went away would.
				p.s.srv.log.Warn("subscription connection lost, closing client", zap.Error(err))
				p.out.nc.Close()
			}
			return
		}
		if h := p.s.srv.cfg.testHook; h != nil {
			h("pump", [][]byte{reply})
		}
		if wait := sc.hello.Load(); wait != nil && !isMessage(reply) {
			// the reply to the loop's HELLO
			sc.hello.Store(nil)
			p.out.Flush()
			sc.synced <- struct{}{}
			<-*wait
			continue
		}
		if bytes.Equal(reply, syncPongSub) || bytes.Equal(reply, syncPongBulk) {
			if r.Buffered() == 0 {
				p.out.Flush()
			}
			sc.synced <- struct{}{}
			continue
		}
		if kind, name, n, ok := confirmation(reply); ok {
			sc.count.Store(n)
			if sc.noted(kind, name) {
				continue // a resubscription after a table swap
			}
		}
		p.out.WriteRaw(reply)
		if r.Buffered() == 0 {
			p.out.Flush()
		}
	}
}

// isMessage reports whether a subscription connection's reply is a push:
// a message or a confirmation, in RESP3 or RESP2.
func isMessage(reply []byte) bool {
	if reply[0] == '>' {
		return true
	}
	elems, ok := wire.ArrayElems(reply, nil)
	if !ok || len(elems) < 3 {
		return false
	}
	k, _ := wire.BulkText(elems[0])
	return bytes.HasSuffix(k, []byte("message")) || bytes.HasSuffix(k, []byte("subscribe"))
}

// noted records a confirmation and reports whether it is one to swallow.
func (sc *subConn) noted(kind, name string) (swallow bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	counted := !sc.mirror // home counts what the mirrors hold
	switch kind {
	case "subscribe", "psubscribe", "ssubscribe":
		if !sc.names[kind][name] {
			sc.names[kind][name] = true
			if counted {
				sc.kinds[subKind(kind)].Add(1)
			}
		}
		if sc.swallow > 0 {
			sc.swallow--
			if sc.swallow == 0 {
				close(sc.moved)
			}
			return true
		}
	case "unsubscribe", "punsubscribe", "sunsubscribe":
		sub := strings.Replace(kind, "un", "", 1) // the kind it ends
		if sc.names[sub][name] {
			delete(sc.names[sub], name)
			if counted {
				sc.kinds[subKind(sub)].Add(-1)
			}
		}
	}
	return sc.mirror
}

// The kinds of subscription, as CLIENT LIST counts them.
const (
	subChannel = iota // SUBSCRIBE: sub
	subPattern        // PSUBSCRIBE: psub
	subShard          // SSUBSCRIBE: ssub
)

func subKind(kind string) int {
	switch kind {
	case "psubscribe":
		return subPattern
	case "ssubscribe":
		return subShard
	}
	return subChannel
}

// forgetAll ends the count of what a closed connection was subscribed to.
func (sc *subConn) forgetAll() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for kind, names := range sc.names {
		if !sc.mirror {
			sc.kinds[subKind(kind)].Add(-int64(len(names)))
		}
		clear(names)
	}
}

// confirmation parses a (un)subscribe confirmation: kind, name, count.
func confirmation(reply []byte) (kind, name string, count int64, ok bool) {
	elems, ok := wire.ArrayElems(reply, nil)
	if !ok || len(elems) != 3 {
		return "", "", 0, false
	}
	k, ok := wire.BulkText(elems[0])
	if !ok || !bytes.HasSuffix(k, []byte("subscribe")) {
		return "", "", 0, false
	}
	nm, _ := wire.BulkText(elems[1])
	count, ok = wire.IntReply(elems[2])
	return string(k), string(nm), count, ok
}

var errSyncTimeout = errors.New("proxy: subscription connection did not answer")

// caughtUp waits until every subscription connection has answered all that
// was sent on it.
func (p *pubsubLoop) caughtUp() {
	if p.unsynced {
		p.sync()
		p.unsynced = false
	}
}

// settle waits until every subscription connection has answered all that
// was sent on it, then reports whether any subscription is left; with none
// left it closes the connections.
func (p *pubsubLoop) settle() bool {
	p.caughtUp()
	for _, sc := range p.conns {
		if sc.count.Load() > 0 && !sc.mirror { // home holds what the mirrors hold
			return true
		}
	}
	p.closeAll()
	return false
}

// sync waits until every subscription connection has answered all that was
// sent on it before.
func (p *pubsubLoop) sync() {
	conns := make([]*subConn, 0, len(p.conns))
	for _, sc := range p.conns {
		conns = append(conns, sc)
	}
	syncConns(p.s.srv, conns)
}

// syncConns waits until each subscription connection has answered all that
// was sent on it before, and its pump has forwarded all that came before.
func syncConns(srv *Server, conns []*subConn) {
	for _, sc := range conns {
		if _, err := sc.d.NetConn.Write(syncPing); err != nil {
			continue
		}
		select {
		case <-sc.synced:
		case <-sc.done:
		case <-time.After(5 * time.Second):
			srv.log.Warn("pub/sub sync", zap.Error(errSyncTimeout))
		}
	}
}

// closeAll closes every subscription connection and waits for its pump.
func (p *pubsubLoop) closeAll() {
	for k, sc := range p.conns {
		p.closeConn(sc)
		delete(p.conns, k)
	}
}

// closeConn closes a subscription connection and waits for its pump; its
// subscriptions end with it.
func (p *pubsubLoop) closeConn(sc *subConn) {
	sc.closing.Store(true)
	sc.d.NetConn.Close()
	<-sc.done
	sc.forgetAll()
}
