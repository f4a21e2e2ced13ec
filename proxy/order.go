package proxy

import (
	"io"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

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
// arrivedWait. The bound is a second, not less: with 100 ms, under the
// race detector and the whole suite loading two cores, the flush overtook
// a blocking command about once in 120 runs
// (TestIntegrationBlockingBeforeFlush), most likely one that was still
// getting its dedicated shard connection when the bound ran out. The wait ends as soon as every session has dispatched what it had,
// so only a session that cannot progress costs the flush the whole bound,
// which a flush of a large shard takes anyway.

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
				waiting = waiting || readable(s.conn.nc) || s.conn.loadState() == connActive
			}
			return true
		})
		if !waiting || time.Now().After(deadline) {
			return
		}
		if i < 8 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
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
	}
	return n, err
}
