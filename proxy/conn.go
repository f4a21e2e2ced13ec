package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// clientConn is one client connection: requests come from its reader,
// replies gather in out and go to the client in one write per pipeline.
//
// Only the session's goroutine uses it, except after a SUBSCRIBE or MONITOR:
// then the pub/sub loop's pumps or the monitor's writer write too, and
// shared makes them take locks: mu to add to out, wmu to write it. A write
// blocks for as long as the client does not read, so it is made holding
// wmu alone: the others can still add replies meanwhile, and none of them
// waits for that client. Other goroutines may only close nc (CLIENT KILL,
// Server.Close), which makes the next read or write fail.
//
// Writes to the client never happen while the barrier's gate is held (see
// session.serve): a client that stops reading would hold the barrier, and
// with it every client of the proxy, until it read again.
//
// A subscribed client's replies go out through a writer of their own
// (stream): its pumps and its loop only queue, so none of them ever waits
// for the client, and a client that lets more than a limit pile up is
// dropped, as Redis drops a subscriber at client-output-buffer-limit pubsub.
type clientConn struct {
	nc net.Conn
	rw io.ReadWriter // nc's reads and writes (wire.NewRawIO)
	// consumed counts the bytes read from nc, added after the read and
	// after arrivalReader marks the connection active (order.go)
	consumed atomic.Int64
	addr     string
	rd       *wire.Reader
	out      []byte

	shared  atomic.Bool // set by share before any other goroutine writes
	mu      sync.Mutex
	wmu     sync.Mutex
	spare   []byte // out's other buffer, while shared; under wmu
	closing bool   // the serving loop writes what is queued and ends after this pipeline

	pending []wire.Request // commands read but not yet handed out by ReadCommand

	st atomic.Pointer[streamer] // set while a writer of its own writes the connection

	state atomic.Int32 // a connState: where the connection is in its life (connstate.go)
}

// outputLimit is a streamed connection's limits, as Redis's
// client-output-buffer-limit: more than hard bytes queued, or more than
// soft for longer than softFor, and the connection is dropped.
type outputLimit struct {
	hard, soft int64
	softFor    time.Duration
}

// streamer is the writer of a streamed connection (clientConn.stream).
type streamer struct {
	limit  outputLimit
	onCut  func(queued int, why string)
	wake   chan struct{}
	stop   chan struct{}
	exited chan struct{}

	// under the connection's mu
	writing   int       // bytes the writer took and is writing
	err       error     // the write failed, or the limit was passed: nothing more is queued
	softSince time.Time // when the queue last went over the soft limit, zero while under it
}

var errOutputLimit = errors.New("proxy: client output buffer limit reached")

func newClientConn(nc net.Conn, cfg *Config) *clientConn {
	return &clientConn{nc: nc, rw: wire.NewRawIO(nc), addr: nc.RemoteAddr().String(), rd: wire.NewReader(cfg.limits())}
}

// WriteRaw queues reply bytes for the client.
func (cc *clientConn) WriteRaw(b []byte) {
	if !cc.shared.Load() {
		cc.out = append(cc.out, b...)
		return
	}
	cc.mu.Lock()
	st := cc.st.Load()
	if st == nil {
		cc.out = append(cc.out, b...)
		cc.mu.Unlock()
		return
	}
	if st.err != nil {
		cc.mu.Unlock()
		return
	}
	queued := len(cc.out) + st.writing + len(b)
	if why := st.over(int64(queued)); why != "" {
		st.err, cc.out = errOutputLimit, nil
		cc.mu.Unlock()
		st.onCut(queued, why)
		cc.nc.Close() // the loop's read fails and ends the client
		return
	}
	cc.out = append(cc.out, b...)
	cc.mu.Unlock()
}

// over reports which limit queued bytes pass, "hard" or "soft", or "". As
// in Redis, the soft limit is passed when the queue has stayed over it for
// longer than its time, checked as more is queued. Under the connection's
// mu.
func (st *streamer) over(queued int64) string {
	if queued > st.limit.hard {
		return "hard"
	}
	if st.limit.soft == 0 || queued <= st.limit.soft {
		st.softSince = time.Time{}
		return ""
	}
	now := time.Now()
	if st.softSince.IsZero() {
		st.softSince = now
		return ""
	}
	if now.Sub(st.softSince) > st.limit.softFor {
		return "soft"
	}
	return ""
}

// Flush writes the queued replies; on a streamed connection it only wakes
// the writer, and reports whether the writer has failed.
func (cc *clientConn) Flush() error {
	var err error
	if !cc.shared.Load() {
		cc.out, err = cc.write(cc.out)
		return err
	}
	if st := cc.st.Load(); st != nil {
		cc.mu.Lock()
		err = st.err
		cc.mu.Unlock()
		select {
		case st.wake <- struct{}{}:
		default:
		}
		return err
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.mu.Lock()
	out := cc.out
	cc.out, cc.spare = cc.spare[:0], nil
	cc.mu.Unlock()
	cc.spare, err = cc.write(out)
	return err
}

// write writes out and gives its buffer back emptied, or nil after a burst
// (a huge buffer is not kept).
func (cc *clientConn) write(out []byte) ([]byte, error) {
	if len(out) == 0 {
		return out, nil
	}
	_, err := cc.rw.Write(out)
	if cap(out) > wire.KeptReadBuf {
		return nil, err
	}
	return out[:0], err
}

// stream starts a writer of the connection's own: from now on WriteRaw only
// queues, and Flush hands what is queued to the writer without waiting.
// Past the limit, counting bytes queued or being written, the connection is
// closed and onCut told which limit it passed. The connection must be
// shared.
func (cc *clientConn) stream(limit outputLimit, onCut func(queued int, why string)) {
	st := &streamer{limit: limit, onCut: onCut, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), exited: make(chan struct{})}
	cc.st.Store(st)
	go cc.writeStream(st)
}

// queued returns the bytes queued on a shared connection and not yet
// taken by a write.
func (cc *clientConn) queued() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.out)
}

// streamed returns the bytes queued or being written on a streamed
// connection (CLIENT LIST's omem), 0 on any other.
func (cc *clientConn) streamed() int {
	st := cc.st.Load()
	if st == nil {
		return 0 // out is the session goroutine's alone
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.out) + st.writing
}

// unstream stops the writer once it has written what is queued; the caller
// writes on its own from then on. No other goroutine may queue meanwhile.
func (cc *clientConn) unstream() {
	st := cc.st.Load()
	if st == nil {
		return
	}
	close(st.stop)
	<-st.exited
	cc.st.Store(nil)
}

// writeStream is the writer of a streamed connection.
func (cc *clientConn) writeStream(st *streamer) {
	defer close(st.exited)
	var spare []byte
	for {
		stopping := false
		select {
		case <-st.wake:
		case <-st.stop:
			stopping = true
		}
		cc.mu.Lock()
		out := cc.out
		cc.out = spare[:0]
		st.writing = len(out)
		cc.mu.Unlock()
		cc.wmu.Lock()
		var err error
		spare, err = cc.write(out)
		cc.wmu.Unlock()
		cc.mu.Lock()
		st.writing = 0
		if err != nil && st.err == nil {
			st.err = err
		}
		cc.mu.Unlock()
		if err != nil {
			cc.nc.Close() // the loop's read fails and ends the client
			return
		}
		if stopping {
			return
		}
	}
}

// Close writes what is queued and closes the connection.
func (cc *clientConn) Close() error {
	cc.unstream()
	cc.Flush()
	cc.closing = true
	return cc.nc.Close()
}

// drop closes the connection without writing what is queued, as Redis
// drops a client past its output buffer limit.
func (cc *clientConn) drop() {
	cc.closing = true
	cc.nc.Close()
}

// share marks the connection as written by more than one goroutine from now
// on; it must be called before any other goroutine writes.
func (cc *clientConn) share() { cc.shared.Store(true) }

// fd returns the connection's file descriptor (CLIENT LIST's fd), or -1.
func (cc *clientConn) fd() int {
	sc, ok := cc.nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// isShared reports whether share was called; any goroutine may ask.
func (cc *clientConn) isShared() bool { return cc.shared.Load() }

func (cc *clientConn) RemoteAddr() string { return cc.addr }
func (cc *clientConn) NetConn() net.Conn  { return cc.nc }

// ReadCommand returns the next command, for the pub/sub loop, which handles
// one at a time. The command is valid until the next call.
func (cc *clientConn) ReadCommand() (wire.Request, error) {
	for len(cc.pending) == 0 {
		reqs, err := cc.rd.Next(backend.CountingReader{R: cc.rw, N: &cc.consumed})
		cc.pending = reqs
		if err != nil {
			if len(reqs) > 0 {
				// serve what came before the error; the error comes back
				// at the next read
				break
			}
			return wire.Request{}, err
		}
	}
	r := cc.pending[0]
	cc.pending = cc.pending[1:]
	return r, nil
}

// answerProtocolError answers a malformed request, as Redis does before it
// closes the connection, and counts the error in INFO errorstats; other
// read errors get no reply.
func (srv *Server) answerProtocolError(c *clientConn, err error) {
	var perr *wire.ProtocolError
	if errors.As(err, &perr) {
		reply := wire.AppendError(nil, "ERR "+perr.Error())
		srv.stats.countError(reply, srv.log)
		c.WriteRaw(reply)
		c.Flush()
	}
}

// serveConn runs one client connection until it closes or is detached.
func (srv *Server) serveConn(nc net.Conn) {
	if srv.counters.clients.Add(1) > int64(srv.cfg.MaxClients) {
		srv.counters.unregistered.Add(-1)
		srv.counters.clients.Add(-1)
		srv.counters.rejected.Add(1)
		nc.Write([]byte("-ERR max number of clients reached\r\n"))
		nc.Close()
		return
	}
	srv.counters.accepted.Add(1)
	c := newClientConn(nc, &srv.cfg)
	sess := newSession(srv, srv.counters.nextID.Add(1), c)
	srv.register(sess)
	srv.counters.unregistered.Add(-1)
	if !srv.trackConn(c) {
		srv.endSession(sess)
		return
	}
	srv.serveClient(sess, nil)
}

// serveClient serves a client's pipelines, starting with reqs, which were
// read already, until the connection closes or goes to a pub/sub loop.
func (srv *Server) serveClient(sess *session, reqs []wire.Request) {
	defer srv.contain(sess, func() { srv.endSession(sess) })
	c := sess.conn
	in := &arrivalReader{r: c.rw, c: c}
	for {
		var err error
		if len(reqs) == 0 {
			if srv.cfg.IdleTimeout > 0 {
				// Redis times out neither monitors (replicas to it) nor
				// subscribers (detach)
				deadline := time.Time{}
				if sess.mon.active == nil {
					deadline = time.Now().Add(srv.cfg.IdleTimeout)
				}
				c.nc.SetReadDeadline(deadline)
			}
			reqs, err = c.rd.Next(in)
			srv.counters.commands.Add(int64(len(reqs)))
		}
		if len(reqs) > 0 {
			c.setState(connActive) // reqs read before: handed back by a pub/sub loop
			sess.serve(reqs[0], reqs[1:])
			reqs = nil
			if sess.sub.detachWith.Raw != nil {
				sess.served(connHijacked)
				sess.detach()
				return
			}
			sess.served(connIdle)
		}
		if c.closing {
			c.Flush() // QUIT's reply; on a dropped connection the write fails at once
			break
		}
		if err != nil {
			srv.answerProtocolError(c, err)
			if !errors.As(err, new(*wire.ProtocolError)) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				srv.log.Debug("client connection ended", zap.Uint64("client", sess.id), zap.Error(err))
			}
			c.Flush()
			break
		}
		if err := c.Flush(); err != nil {
			break
		}
		if srv.isDraining() {
			break // Shutdown: the pipeline is answered and its replies written
		}
	}
	srv.endSession(sess)
}

// contain, deferred by a goroutine that serves one client, turns a panic into
// the end of that client alone: it logs the panic with its stack, closes
// the connection and runs end to free what the session held. Left to run, a
// panic would stop the proxy and every client with it. The locks such a
// goroutine takes are released by defers on the way up, or held only around
// code that cannot panic, so none stays held (TestIntegrationPanic).
func (srv *Server) contain(sess *session, end func()) {
	v := recover()
	if v == nil {
		return
	}
	srv.counters.panics.Add(1)
	srv.log.Error("panic while serving a client, closing its connection",
		zap.Uint64("client", sess.id), zap.Any("panic", v), zap.StackSkip("stack", 1))
	sess.conn.nc.Close()
	defer func() {
		if v := recover(); v != nil {
			srv.log.Error("panic while closing a client after a panic",
				zap.Uint64("client", sess.id), zap.Any("panic", v), zap.StackSkip("stack", 1))
		}
	}()
	end()
}

// endSession frees what a closed client connection held.
func (srv *Server) endSession(sess *session) {
	sess.conn.nc.Close()
	srv.untrackConn(sess.conn)
	sess.release()
	srv.unregister(sess)
	sess.conn.setState(connClosed)
	srv.counters.clients.Add(-1)
}
