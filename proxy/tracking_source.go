package proxy

import (
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// A source is one shard's report of the keys modified on it: a RESP3
// connection of the proxy's own in CLIENT TRACKING ON BCAST mode (every key,
// by anyone), read by a goroutine of its own. The tracker keeps one per
// primary of the current table while any client tracks, starts those of a
// new table before the barrier of its swap lifts, and stops those of an
// old one once they have delivered what the old shards reported until the
// swap. A source whose connection fails is started again in the
// background; every tracking client is told to drop its cache both when
// it fails and when it is back, since writes in between were not reported.
//
// sync sends a PING: its reply comes after every report of a write the
// shard had run when the PING arrived, which is how a NOLOOP client's own
// writes are told from others' (tracker.settleOwn).
type source struct {
	t    *tracker
	pool *backend.Pool
	d    *backend.Dedicated

	// PINGs are shared: syncs asked for while one is out wait in next and
	// go with the PING sent when it returns, so a source has at most one
	// out and the shard answers one per round trip, however many
	// pipelines wait. A sync asked for after a write's reply arrived is
	// always sent after it, which is all its meaning needs.
	wmu  sync.Mutex // the connection's writes, next and out
	next []func()   // to run once the next PING's reply comes
	out  []func()   // to run once the PING sent has its reply; nil: none out
	busy bool       // a PING is out

	stopped atomic.Bool
	done    chan struct{} // closed when the reader has ended
}

var (
	trackingOn   = resp.AppendCommandString(nil, "CLIENT", "TRACKING", "ON", "BCAST")
	trackingPing = resp.AppendCommandString(nil, "PING")
	errNotOK     = errors.New("shard refused CLIENT TRACKING ON BCAST")
)

// follow makes the sources those of r's primaries: starts the missing
// ones, and stops the others once they have delivered what they had. It
// fails if a shard cannot be reached; the sources it started stay.
func (t *tracker) follow(r *route) error {
	t.sourceMu.Lock()
	defer t.sourceMu.Unlock()
	return t.followLocked(r)
}

// followLocked is follow, holding t.sourceMu.
func (t *tracker) followLocked(r *route) error {
	var firstErr error
	want := map[*backend.Pool]bool{}
	for _, p := range r.pools {
		want[p] = true
		if t.sourceOf(p) != nil {
			continue
		}
		src, err := t.startSource(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			go t.restart(p) // the clients' caches are dropped once it is up
			continue
		}
		t.setSources(func(m map[*backend.Pool]*source) { m[p] = src })
	}
	var old []*source
	t.setSources(func(m map[*backend.Pool]*source) {
		for p, src := range m {
			if !want[p] {
				old = append(old, src)
				delete(m, p)
			}
		}
	})
	for _, src := range old {
		src.sync(src.stop) // after what the shard reported until now
	}
	return firstErr
}

// followSwap follows a table swap, inside the barrier: the new shards'
// sources are on before any client's write reaches them. A source that
// cannot start in time is started in the background, and the clients'
// caches dropped once it is up.
func (t *tracker) followSwap(r *route) {
	if !t.active.Load() {
		return
	}
	done := make(chan struct{})
	go func() {
		if err := t.follow(r); err != nil {
			t.srv.log.Warn("tracking: a shard of the new table is not reporting yet", zap.Error(err))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.srv.log.Warn("tracking: the new table's shards still not reporting after 1 s")
	}
}

// idle stops the sources once no client tracks, and with them the
// waits for the shards' reports: the data path is as without tracking.
func (t *tracker) idle() {
	t.sourceMu.Lock()
	defer t.sourceMu.Unlock()
	t.mu.Lock()
	none := len(t.clients) == 0
	if none {
		t.active.Store(false)
	}
	t.mu.Unlock()
	if none {
		t.stopAll()
	}
}

// close stops every source, at Server.Close.
func (t *tracker) close() {
	t.sourceMu.Lock()
	defer t.sourceMu.Unlock()
	t.stopAll()
}

// stopAll stops every source. Under t.sourceMu.
func (t *tracker) stopAll() {
	old := t.sources.Swap(nil)
	if old == nil {
		return
	}
	for _, src := range *old {
		src.stop()
	}
}

// sourceOf returns p's source, or nil; lock-free, as every write
// pipeline asks while a client tracks.
func (t *tracker) sourceOf(p *backend.Pool) *source {
	if m := t.sources.Load(); m != nil {
		return (*m)[p]
	}
	return nil
}

// setSources replaces the sources with fn's change of a copy of them.
// Under t.sourceMu.
func (t *tracker) setSources(fn func(map[*backend.Pool]*source)) {
	m := map[*backend.Pool]*source{}
	if old := t.sources.Load(); old != nil {
		maps.Copy(m, *old)
	}
	fn(m)
	t.sources.Store(&m)
}

// startSource connects to p's shard and turns tracking on there.
func (t *tracker) startSource(p *backend.Pool) (*source, error) {
	dp := p.DedicatedPool(3)
	d, err := dp.Get()
	if err != nil {
		return nil, errors.New(dp.DownMessage(err))
	}
	d.NetConn.SetDeadline(time.Now().Add(5 * time.Second))
	replies, err := d.RoundTrip(trackingOn, 1, nil)
	if err == nil && string(replies[0]) != "+OK\r\n" {
		err = errNotOK
	}
	if err != nil {
		d.NetConn.Close()
		return nil, err
	}
	d.NetConn.SetDeadline(time.Time{})
	src := &source{t: t, pool: p, d: d, done: make(chan struct{})}
	go src.read()
	return src, nil
}

// read handles what the shard sends until the connection ends.
func (src *source) read() {
	defer close(src.done)
	t := src.t
	var elems, keys [][]byte
	for {
		reply, err := wire.ReadReply(src.d.R, nil)
		if err != nil {
			src.fail(err)
			return
		}
		if reply[0] != '>' {
			src.pong()
			continue
		}
		elems, _ = wire.ArrayElems(reply, elems[:0])
		if len(elems) != 2 {
			continue
		}
		if kind, _ := wire.BulkText(elems[0]); string(kind) != "invalidate" {
			continue
		}
		if elems[1][0] == '_' || elems[1][0] == '*' && elems[1][1] == '-' {
			t.invalidateAll(true)
			continue
		}
		keys, _ = wire.ArrayElems(elems[1], keys[:0])
		names := make([]string, 0, len(keys))
		for _, k := range keys {
			if b, ok := wire.BulkText(k); ok {
				names = append(names, string(b))
			}
		}
		t.invalidate(names)
	}
}

// sync runs fn once the shard has answered a PING sent after this call,
// so after its reports of every write it had answered before; at once if
// the source is gone.
func (src *source) sync(fn func()) {
	if src == nil {
		fn()
		return
	}
	src.wmu.Lock()
	if src.stopped.Load() {
		src.wmu.Unlock()
		fn()
		return
	}
	src.next = append(src.next, fn)
	var err error
	if !src.busy {
		err = src.pingLocked()
	}
	src.wmu.Unlock()
	if err != nil {
		src.d.NetConn.Close() // the reader fails, and runs what waits
	}
}

// pingLocked sends a PING for what waits in next. Under wmu.
func (src *source) pingLocked() error {
	src.out, src.next, src.busy = src.next, src.out[:0], true
	_, err := src.d.NetConn.Write(trackingPing)
	return err
}

// pong runs what waited for the PING that came back, and sends the next
// one if syncs are waiting.
func (src *source) pong() {
	src.wmu.Lock()
	done := src.out
	src.out = nil
	src.busy = false
	var err error
	if len(src.next) > 0 {
		err = src.pingLocked()
	}
	src.wmu.Unlock()
	for _, fn := range done {
		fn()
	}
	if err != nil {
		src.d.NetConn.Close()
	}
}

// stop closes the connection of a source the table no longer uses.
func (src *source) stop() {
	src.stopped.Store(true)
	src.d.NetConn.Close()
}

// fail ends a source whose connection ended: what waited on a sync runs,
// and unless the source was stopped, every client's cache is dropped and
// the source is started again.
func (src *source) fail(err error) {
	src.wmu.Lock()
	waiting := append(src.out, src.next...)
	src.out, src.next = nil, nil
	stopped := src.stopped.Swap(true)
	src.wmu.Unlock()
	for _, fn := range waiting {
		fn()
	}
	if stopped {
		return
	}
	t := src.t
	t.srv.log.Warn("tracking: lost a shard's reports, clients drop their caches",
		zap.String("shard", src.pool.Addr), zap.Error(err))
	t.sourceMu.Lock()
	t.setSources(func(m map[*backend.Pool]*source) {
		if m[src.pool] == src {
			delete(m, src.pool)
		}
	})
	t.sourceMu.Unlock()
	t.invalidateAll(false)
	go t.restart(src.pool)
}

// restart starts p's source again, for as long as the table uses p, and
// drops the clients' caches once it is up.
func (t *tracker) restart(p *backend.Pool) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		select {
		case <-p.Closed():
			return
		case <-t.srv.ctx.Done():
			return
		case <-time.After(wait):
		}
		if !t.uses(p) || !t.active.Load() {
			return
		}
		t.sourceMu.Lock()
		if t.sourceOf(p) != nil {
			t.sourceMu.Unlock()
			return
		}
		src, err := t.startSource(p)
		if err == nil {
			t.setSources(func(m map[*backend.Pool]*source) { m[p] = src })
		}
		t.sourceMu.Unlock()
		if err == nil {
			t.srv.log.Info("tracking: a shard reports again", zap.String("shard", p.Addr))
			t.invalidateAll(false)
			return
		}
	}
}

// uses reports whether the current table has p as a primary.
func (t *tracker) uses(p *backend.Pool) bool {
	for _, q := range t.srv.route.Load().pools {
		if q == p {
			return true
		}
	}
	return false
}
