package proxy

import (
	"context"
	"sync"
	"time"
)

// The write barrier gives a consistent cut across shards: while it is held,
// no session dispatches a new batch, and every batch already dispatched has
// been answered. Snapshots (and later the cutover) read each shard's
// replication offset inside it.
//
// Sessions hold the gate shared for one batch: plan, submit, wait. Steps that
// may block for long (blocking commands, WAIT) run outside it, so a BLPOP
// cannot hold a barrier up. sync.RWMutex blocks new readers once a writer
// waits, which is the rule wanted: new commands queue, in order per client,
// behind the barrier, while in-flight ones drain.
type gate struct {
	mu sync.RWMutex
}

// Pause closes the barrier and returns once every in-flight batch has been
// answered; resume reopens it. ctx bounds the wait for the drain.
func (srv *Server) Pause(ctx context.Context) (resume func(), err error) {
	got := make(chan struct{})
	go func() {
		srv.gate.mu.Lock()
		close(got)
	}()
	select {
	case <-got:
		start := time.Now()
		var once sync.Once
		return func() {
			once.Do(func() {
				end := time.Now()
				srv.lastPause.Store(int64(end.Sub(start) / time.Microsecond))
				srv.pauses.Observe(end.Sub(start).Seconds())
				srv.pauseStart.Store(start.UnixNano())
				srv.pauseEnd.Store(end.UnixNano())
				srv.gate.mu.Unlock()
				srv.repauseShards()
			})
		}, nil
	case <-ctx.Done():
		// The lock will still be taken when the drain completes: give it
		// back at once, so the proxy is never left paused.
		go func() {
			<-got
			srv.gate.mu.Unlock()
		}()
		return nil, ctx.Err()
	}
}

// LastPause returns when the last barrier closed (every in-flight command
// answered, none new dispatched) and when it opened again; zero times if
// there was none.
func (srv *Server) LastPause() (closed, opened time.Time) {
	if srv.pauseEnd.Load() == 0 {
		return time.Time{}, time.Time{}
	}
	return time.Unix(0, srv.pauseStart.Load()), time.Unix(0, srv.pauseEnd.Load())
}
