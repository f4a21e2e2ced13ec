package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Dedicated connections serve the commands that hold state on their
// connection or block it: transactions (WATCH ... EXEC), blocking pops, WAIT.
// A session borrows one from its shard's pool for the length of that command
// (or from WATCH to EXEC) and returns it only in a clean state; a connection
// whose state is unknown (a client vanished while it was blocked) is closed
// instead, which also makes the shard forget the blocked client.

// dconn is a plain request/response connection to one shard, used by one
// session at a time.
type dconn struct {
	nc net.Conn
	r  *bufio.Reader
	id []byte // the shard's CLIENT ID of this connection, for CLIENT UNBLOCK
	// made while a script ran on the shard, which answered CLIENT ID with
	// BUSY: not kept, so no blocking command gets a connection it cannot
	// unblock
	noReuse bool
}

// roundTrip writes raw (n commands) and reads n replies into dst.
func (d *dconn) roundTrip(raw []byte, n int, dst [][]byte) ([][]byte, error) {
	if len(raw) > 0 {
		if _, err := d.nc.Write(raw); err != nil {
			return dst, err
		}
	}
	for i := 0; i < n; i++ {
		reply, err := wire.ReadReply(d.r, nil)
		if err != nil {
			return dst, err
		}
		dst = append(dst, reply)
	}
	return dst, nil
}

// dpool keeps the idle dedicated connections of one shard.
type dpool struct {
	addr   string
	dialer shardDialer
	hello  []byte // HELLO 3 for RESP3 sessions' connections, or nil

	mu     sync.Mutex
	idle   []*dconn
	closed bool
}

const maxIdleDedicated = 32

func (p *dpool) get() (*dconn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		d := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return d, nil
	}
	p.mu.Unlock()
	nc, r, err := p.dialer.dial(p.addr, p.hello, nil)
	if err != nil {
		return nil, err
	}
	d := &dconn{nc: nc, r: r}
	replies, err := d.roundTrip(cmdClientID, 1, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if n, ok := wire.IntReply(replies[0]); ok {
		d.id = []byte(strconv.FormatInt(n, 10))
	} else if bytes.HasPrefix(replies[0], busyPrefix) {
		d.noReuse = true
	}
	return d, nil
}

// put returns a connection in a clean state (no WATCH, no MULTI, not
// blocked); put(nil) is a no-op.
func (p *dpool) put(d *dconn) {
	if d == nil {
		return
	}
	p.mu.Lock()
	if p.closed || d.noReuse || len(p.idle) >= maxIdleDedicated || d.r.Buffered() > 0 {
		p.mu.Unlock()
		d.nc.Close()
		return
	}
	p.idle = append(p.idle, d)
	p.mu.Unlock()
}

func (p *dpool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, d := range p.idle {
		d.nc.Close()
	}
	p.idle = nil
}

// do runs one command on a connection of the pool and returns its reply, or
// an error reply naming the shard.
func (p *dpool) do(raw []byte) []byte { return p.doBy(raw, time.Time{}) }

// doBy is do with a deadline (none if zero): a shard that has not answered
// by then gives the error reply, and the connection is closed.
func (p *dpool) doBy(raw []byte, deadline time.Time) []byte {
	d, err := p.get()
	if err != nil {
		return wire.AppendError(nil, p.downMessage(err))
	}
	if !deadline.IsZero() {
		d.nc.SetDeadline(deadline)
	}
	replies, err := d.roundTrip(raw, 1, nil)
	if err != nil {
		d.nc.Close()
		return wire.AppendError(nil, p.downMessage(err))
	}
	if !deadline.IsZero() {
		d.nc.SetDeadline(time.Time{})
	}
	p.put(d)
	return replies[0]
}

// onEveryShard makes c a sync step that runs it on every shard at once, each
// over a dedicated connection, and merges the replies with m, as a fan-out
// over the shared connections would. It serves WAIT, and the commands that
// can keep a shard busy for long (KEYS over a large keyspace, a synchronous
// FLUSHALL): on a shared connection the watchdog would take that silence
// for a stopped shard after --shard-timeout and fail every request on the
// connection, theirs included. mayBlock runs the step outside the barrier's
// gate (see runSync): right for WAIT and KEYS, not for a FLUSHALL, which a
// cutover must not split.
func (s *session) onEveryShard(c wire.Request, mayBlock bool, m merger) {
	s.onEveryShardWithin(c, mayBlock, 0, m)
}

// onEveryShardWithin is onEveryShard where each shard must answer within
// limit (0: no limit), or the reply is an error naming it.
func (s *session) onEveryShardWithin(c wire.Request, mayBlock bool, limit time.Duration, m merger) {
	s.step.mayBlock = mayBlock
	s.step.next = func(r *route) []byte {
		if mayBlock {
			s.flushClient() // inside the gate the replies wait: a write may block (clientConn)
		}
		all := call{first: s.nslots, n: int32(len(r.pools)), args: c.Args}
		for range r.pools {
			s.slot() // all reserved before any is filled: slot may grow the slice
		}
		var wg sync.WaitGroup
		for i, pl := range r.pools {
			wg.Add(1)
			go func(slot int32, p *dpool) {
				defer wg.Done()
				var deadline time.Time
				if limit > 0 {
					deadline = time.Now().Add(limit)
				}
				s.b.results[slot] = p.doBy(c.Raw, deadline)
			}(all.first+int32(i), pl.dedicated(s.proto))
		}
		wg.Wait()
		s.out = m(s, &all, s.out[:0])
		return s.out
	}
}

// errClientGone reports that the client hung up while its command blocked.
var errClientGone = errors.New("client disconnected")

var (
	cmdClientID = resp.AppendCommand(nil, []byte("CLIENT"), []byte("ID"))
	clientBytes = []byte("CLIENT")
	unblockWord = []byte("UNBLOCK")
)

// unblock asks the shard, over another connection of the pool, to end d's
// blocked command as if it had timed out. An element the shard already
// popped for d still arrives as d's reply: nothing is lost.
func (p *dpool) unblock(d *dconn) error {
	if d.id == nil {
		return errors.New("no client id")
	}
	u, err := p.get()
	if err != nil {
		return err
	}
	if _, err := u.roundTrip(resp.AppendCommand(nil, clientBytes, unblockWord, d.id), 1, nil); err != nil {
		u.nc.Close()
		return err
	}
	p.put(u)
	return nil
}

// roundTripWatching is roundTrip for a command that may block for long: it
// watches the client's socket meanwhile, and if the client hangs up it closes
// d (so the shard drops the blocked command) and returns errClientGone. When
// swapped closes (the routing table changed), it unblocks the command on the
// shard and reports interrupted, so the caller can run it on the new table.
// sent runs once the command is written. When stop closes (Shutdown), it
// ends as if the client had hung up.
func roundTripWatching(d *dconn, p *dpool, raw []byte, client net.Conn, swapped, stop <-chan struct{}, sent func()) (reply []byte, interrupted bool, err error) {
	type result struct {
		replies [][]byte
		err     error
	}
	if _, err := d.nc.Write(raw); err != nil {
		return nil, false, err
	}
	sent()
	done := make(chan result, 1)
	go func() {
		replies, err := d.roundTrip(nil, 1, nil)
		done <- result{replies, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			if res.err != nil {
				return nil, interrupted, res.err
			}
			return res.replies[0], interrupted, nil
		case <-swapped:
			swapped = nil
			if err := p.unblock(d); err == nil {
				interrupted = true
			}
			continue
		case <-tick.C:
			if !hungUp(client) {
				continue
			}
		case <-stop:
		}
		d.nc.Close()
		<-done
		return nil, interrupted, errClientGone
	}
}

// hungUp reports whether the peer of c has closed its side, without reading
// from it (the bytes belong to the RESP reader).
func hungUp(c net.Conn) bool {
	revents, err := pollNow(c, unix.POLLRDHUP)
	if err == errNoSocket {
		return false
	}
	return err != nil || revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}

func (p *dpool) downMessage(err error) string {
	return "ERR shard " + p.addr + " is unavailable: " + err.Error()
}
