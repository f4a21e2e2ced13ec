package backend

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// Pool is the set of backends of one shard: multiplexed connections and
// DedicatedPool ones, for RESP2 sessions and (opened on first use, with HELLO 3)
// for RESP3 sessions. A connection never carries both protocols.
type Pool struct {
	Addr  string
	Conns []*Conn
	ded   *DedicatedPool // dedicated connections for stateful and blocking commands

	resp3Once sync.Once
	conns3    []*Conn
	ded3      *DedicatedPool
	newConns  func(hello []byte) []*Conn

	closeOnce sync.Once
	closed    chan struct{}

	has3 atomic.Bool // conns3 is set
	// Latency is the shard's reply times on the shared connections
	Latency Latency
	hold    atomic.Pointer[Hold] // while set, requests wait before they go (Hold)
	gen     atomic.Int64         // Redial calls
}

// Hold is a pause of one shard's requests: while a Sentinel failover
// moves its primary, requests wait for the new one rather than go to the
// old one, whose writes the promoted replica would not have. The pause
// ends at Release or at its deadline, whichever comes first.
type Hold struct {
	released chan struct{}
	until    time.Time
}

// Wait returns once the hold is released or past its deadline.
func (h *Hold) Wait() {
	d := time.Until(h.until)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-h.released:
	case <-t.C:
	}
}

// Hold pauses the pool's requests for at most d, unless they are already
// paused. A pause past its deadline counts as none: a failover whose end
// was never heard of must not keep the next one from holding.
func (p *Pool) Hold(d time.Duration) {
	h := &Hold{released: make(chan struct{}), until: time.Now().Add(d)}
	for {
		cur := p.hold.Load()
		if cur != nil && time.Now().Before(cur.until) {
			return
		}
		if p.hold.CompareAndSwap(cur, h) {
			if cur != nil {
				close(cur.released)
			}
			return
		}
	}
}

// Held reports whether the pool's requests are paused.
func (p *Pool) Held() bool {
	h := p.hold.Load()
	return h != nil && time.Now().Before(h.until)
}

// Release ends the pause, if there is one.
func (p *Pool) Release() {
	if h := p.hold.Swap(nil); h != nil {
		close(h.released)
	}
}

// Redial makes every connection of the pool anew, at the address the
// dialer resolves now; idle dedicated connections are closed. Gen counts
// the calls.
func (p *Pool) Redial() {
	p.gen.Add(1)
	conns := p.Conns
	if p.has3.Load() { // RESP3 connections made later dial afresh anyway
		conns = append(slices.Clip(conns), p.conns3...)
	}
	for _, c := range conns {
		c.Redial()
	}
	p.ded.dropIdle()
	if p.ded3 != nil {
		p.ded3.dropIdle()
	}
}

// Gen is the number of Redial calls so far.
func (p *Pool) Gen() int64 { return p.gen.Load() }

// Closed is closed once Close has been called.
func (p *Pool) Closed() <-chan struct{} { return p.closed }

// Pick spreads sessions over the pool's connections. A session always uses
// the same connection, so its requests to a shard stay in order.
func (p *Pool) Pick(session uint64, proto int) *Conn {
	conns := p.Conns
	if proto == 3 {
		conns = p.resp3()
	}
	return conns[session%uint64(len(conns))]
}

// DedicatedPool returns the dedicated-connection pool for a protocol.
func (p *Pool) DedicatedPool(proto int) *DedicatedPool {
	if proto == 3 {
		p.resp3()
		return p.ded3
	}
	return p.ded
}

var hello3 = resp.AppendCommand(nil, []byte("HELLO"), []byte("3"))

func (p *Pool) resp3() []*Conn {
	p.resp3Once.Do(func() {
		p.conns3 = p.newConns(hello3)
		p.ded3 = &DedicatedPool{Addr: p.Addr, dialer: p.ded.dialer, hello: hello3, held: &p.hold}
		p.has3.Store(true)
		for _, c := range p.conns3 {
			<-c.FirstTry // as at start: no "connecting" errors for the first commands
		}
	})
	return p.conns3
}

// Busy returns the shard's BUSY reply if a script it runs holds one of
// the pool's connections, else nil.
func (p *Pool) Busy() []byte {
	for _, c := range p.Conns {
		if b := c.busy.Load(); b != nil {
			return *b
		}
	}
	return nil
}

func (p *Pool) Up() bool {
	for _, c := range p.Conns {
		if !c.Up() {
			return false
		}
	}
	return true
}

// NewPool starts the connections of the shard at Addr: cfg.Conns
// multiplexed ones at once, the dedicated ones as they are needed.
func NewPool(addr string, d Dialer, cfg *Config) *Pool {
	p := &Pool{Addr: addr, closed: make(chan struct{})}
	p.ded = &DedicatedPool{Addr: addr, dialer: d, held: &p.hold}
	p.newConns = func(hello []byte) []*Conn {
		conns := make([]*Conn, cfg.Conns)
		for i := range conns {
			conns[i] = newConn(addr, d, hello, cfg, &p.hold, &p.Latency)
		}
		return conns
	}
	p.Conns = p.newConns(nil)
	return p
}

// NewControlPool returns a pool of no shared connections, for a few
// commands of the control plane to a server outside the table (a replica
// Sentinel knows): each runs on a connection of its own, closed after it.
func NewControlPool(addr string, d Dialer) *Pool {
	p := &Pool{Addr: addr, closed: make(chan struct{})}
	p.ded = &DedicatedPool{Addr: addr, dialer: d, held: &p.hold, closed: true}
	return p
}

// Close closes every connection of the pool and opens no more.
func (p *Pool) Close() {
	p.closeOnce.Do(func() { close(p.closed) })
	p.resp3Once.Do(func() {}) // no RESP3 connections from now on
	for _, c := range append(p.Conns, p.conns3...) {
		c.Close()
	}
	p.ded.Close()
	if p.ded3 != nil {
		p.ded3.Close()
	}
}
