package proxy

import (
	"context"
	"time"
)

// Shutdown stops the server gracefully, as net/http's Server.Shutdown does:
// it closes the listener, so new connections are refused; it closes every
// idle connection at once, and every active one as soon as the pipeline it
// is serving has been answered and its replies written. A blocked command
// (BLPOP, XREAD BLOCK, ...) ends as if its client had hung up, without a
// reply, and subscribers' and monitors' connections are closed. Once no
// client connection is left, Shutdown closes the connections to the shards,
// as Close does, waits for those of former tables to close, and returns
// nil.
//
// If ctx ends first, Shutdown closes what is left, as Close does, and
// returns ctx's error. What can hold a connection active until then: a
// client that does not read its replies, a WAIT that its shards' replicas
// do not answer.
//
// Once Shutdown has been called, Serve returns net.ErrClosed. Close may be
// called meanwhile, to end it at once, or after it. Shutdown ends only the
// Server's own goroutines: the serving loops, the accept loop, the
// sampler, the backends and the retiring of former tables' pools.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	if !srv.isDraining() {
		close(srv.draining)
	}
	if srv.ln != nil {
		srv.ln.Close()
	}
	srv.mu.Unlock()
	err := srv.waitUntil(ctx, srv.closeIdle)
	srv.Close()
	if err != nil {
		return err
	}
	return srv.waitUntil(ctx, srv.retired)
}

// isDraining reports whether Shutdown has started. The serving loop asks
// once per pipeline.
func (srv *Server) isDraining() bool {
	select {
	case <-srv.draining:
		return true
	default:
		return false
	}
}

// closeIdle ends the client connections that serve no pipeline, and
// reports whether none is left. An idle or new connection is not closed
// from here: its read is cut short, and its serving loop ends the session.
// That loop marks the connection idle before it writes the replies of the
// pipeline it answered (session.served), and those must go out. The cut is
// made again at every call, because the loop sets a read deadline of its
// own before each read (Config.IdleTimeout), which may undo it.
func (srv *Server) closeIdle() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		switch c.loadState() {
		case connNew, connIdle:
			c.nc.SetReadDeadline(aLongTimeAgo)
		case connHijacked:
			c.nc.Close() // the pub/sub loop's read fails, and it ends the session
		}
	}
	// unregistered first: a connection leaves it only once it is counted
	// in clients, which it leaves once its session has ended
	return srv.serving == 0 && srv.counters.unregistered.Load() == 0 && srv.counters.clients.Load() == 0
}

// aLongTimeAgo is a read deadline that has passed, which makes a read
// blocked in the poller return at once.
var aLongTimeAgo = time.Unix(1, 0)

// retired reports whether every pool of a former table has been closed.
func (srv *Server) retired() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.retiring == 0
}

// shutdownPollMax bounds how long Shutdown waits before it looks again at
// the connections left. It starts at once and doubles from a millisecond,
// as net/http's Shutdown does (to 500 ms there): less here, because a
// serving loop that set its own read deadline after closeIdle cut it (see
// there) stays open until the next look.
const shutdownPollMax = 100 * time.Millisecond

// waitUntil polls done until it reports true, or ctx ends.
func (srv *Server) waitUntil(ctx context.Context, done func() bool) error {
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, shutdownPollMax)
		t.Reset(wait)
	}
	return nil
}
