package proxy

import (
	"io"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Each client has a goroutine of its own, so two clients' commands that
// reach the proxy microseconds apart may be dispatched in either order: Go's
// scheduler wakes the two goroutines as it likes, and measured it often
// runs the later one first (a client whose blocking XREADGROUP was sent
// just before another client's FLUSHALL got NOGROUP in about half the runs,
// where Redis, reading its sockets in arrival order, unblocks it with the
// "no longer exists" error). For most commands either order is one Redis
// could have chosen too; a flush is where it shows, and it is rare and slow
// anyway. So a flush first lets go every command that had reached the proxy
// when the flush was read (letArrivedFirst): every session that is serving
// a pipeline, or has unread bytes waiting in its socket, or a connection
// waiting to be accepted, goes as far as dispatching what it has (its
// blocking command sent, or its pipeline answered) before the flush runs.
// The wait is bounded: a session that cannot progress (its client does not
// read its replies, say) does not hold the flush up for more than
// arrivedWait. The wait ends as soon as every session has dispatched what
// it had, so only a session that cannot progress costs the flush the
// whole bound, which a flush of a large shard takes anyway.
//
// Two windows must be closed for the order to hold every time
// (TestIntegrationBlockingBeforeFlush). A client's bytes may have been read from
// its socket by its goroutine, which has not yet marked the session
// active: the socket then reads as empty. So the kernel's count of bytes
// received on the connection (TCP_INFO) is compared with the count the
// proxy has read (unread). And a blocking command sent to its shard over a
// dedicated connection and the flush sent over another may reach the
// shard in either order, so the flush also waits until the shard lists
// each blocking command sent within arrivedWait as blocked, or its reply
// has come (letBlockedFirst, one CLIENT LIST per such command).

// letArrivedFirst reads the sessions' connection states (connstate.go):
// it waits for an active one, and for a new or idle one with bytes in its
// socket; a blocked or hijacked one has nothing to dispatch it could wait
// for.

const arrivedWait = time.Second

// served records that the session has dispatched what it had read: its
// pipeline answered, or its blocking command sent to the shard.
func (s *session) served(state connState) {
	s.progress.Add(1)
	s.conn.setState(state)
}

// letArrivedFirst waits until every other session has dispatched what had
// reached the proxy before now, or arrivedWait has passed.
func (srv *Server) letArrivedFirst(self *session) {
	was := self.conn.loadState() // active, or hijacked for a RESP3 subscriber's flush
	self.conn.setState(connBlocked)
	defer self.conn.setState(was)
	deadline := time.Now().Add(arrivedWait)
	seen := map[*session]uint64{} // progress when first seen
	for i := 0; ; i++ {
		waiting := srv.acceptPending()
		srv.sessions.Range(func(_, v any) bool {
			s := v.(*session)
			if s == self {
				return true
			}
			p := s.progress.Load() // before the state: a later step bumps it
			at, ok := seen[s]
			if !ok {
				seen[s], at = p, p
			}
			if p != at {
				return true // it moved on since
			}
			switch s.conn.loadState() {
			case connActive:
				waiting = true
			case connNew, connIdle:
				// bytes in the socket, or read from it since the state
				// was loaded (arrivalReader marks the session serving
				// right after the read)
				waiting = waiting || readable(s.conn.nc) || unread(s.conn) || s.conn.loadState() == connActive
			}
			return true
		})
		if !waiting || time.Now().After(deadline) {
			srv.letBlockedFirst(self, deadline)
			return
		}
		if i < 8 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// blockedCmd is a blocking command a session sent on dedicated
// connection d of pool.
type blockedCmd struct {
	pool  *backend.DedicatedPool
	d     *backend.Dedicated
	since time.Time
}

// letBlockedFirst waits until the shards have run the blocking commands
// that other sessions sent within arrivedWait, or the deadline passes.
// Sent is not enough: a blocking command and the flush travel to the
// shard over two connections, and the shard may read the flush's first.
// A command is run once its shard lists its connection blocked (CLIENT
// LIST flag b), or once the session has its reply.
func (srv *Server) letBlockedFirst(self *session, deadline time.Time) {
	var pending []*session
	srv.sessions.Range(func(_, v any) bool {
		s := v.(*session)
		if b := s.blockedOn.Load(); s != self && b != nil && time.Since(b.since) < arrivedWait {
			pending = append(pending, s)
		}
		return true
	})
	for _, s := range pending {
		for {
			b := s.blockedOn.Load()
			if b == nil || b.pool.Blocked(b.d, deadline) || time.Now().After(deadline) || s.blockedOn.Load() != b {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// acceptPending reports whether a client connection waits to be accepted,
// or to have its session registered.
func (srv *Server) acceptPending() bool {
	if srv.counters.unregistered.Load() > 0 {
		return true
	}
	srv.mu.Lock()
	ln := srv.ln
	srv.mu.Unlock()
	return ln != nil && readable(ln)
}

// readable reports whether c (a connection or a listener) has something to
// read, without reading it.
func readable(c any) bool {
	revents, err := wire.PollNow(c, unix.POLLIN)
	return err == nil && revents&unix.POLLIN != 0
}

// arrivalReader is the client connection's reader for the serving loop: a
// read that returns bytes marks the connection active at once, so that
// letArrivedFirst, finding the socket drained, finds the session busy.
type arrivalReader struct {
	r io.Reader
	c *clientConn
}

func (a *arrivalReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.c.setState(connActive)
		a.c.consumed.Add(int64(n))
	}
	return n, err
}

// unread reports whether the kernel has received bytes on c that the
// proxy has not counted as read: in its socket, or read by a goroutine
// that has not marked the connection active yet. readable alone misses
// the latter: the read has emptied the socket.
func unread(c *clientConn) bool {
	got, ok := wire.BytesReceived(c.nc)
	return ok && got > uint64(c.consumed.Load())
}
