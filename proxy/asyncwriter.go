package proxy

import (
	"sync"

	"go.uber.org/zap"
)

// asyncWriter queues bytes for one client and writes them from a goroutine
// of its own, so that whoever feeds it (another client's session, a
// shard's invalidation reader) never waits for that client to read. It
// serves MONITOR's lines and CLIENT TRACKING's invalidation messages. The
// client's connection must be shared (clientConn.share) before it starts:
// the session's own replies and the writer's bytes then go out whole, each
// after the other. A client that lets more than the output buffer limit
// pile up is disconnected, as Redis drops a client at its
// client-output-buffer-limit.
//
// The session owns the writer's goroutine: stop ends it, and the session
// calls it before the session ends (release) or leaves the mode.
type asyncWriter struct {
	s     *session
	what  string // for the log: "monitor", "tracking"
	limit int64

	mu     sync.Mutex
	buf    []byte // bytes not yet written
	cut    bool   // disconnected at the output buffer limit: fed nothing more
	wake   chan struct{}
	done   chan struct{} // closed by stop: run returns
	exited chan struct{} // closed when run has returned
}

// newAsyncWriter returns a writer for s's connection. What it is fed
// waits in its buffer until the caller, having shared the connection and
// queued what must go out first, starts run.
func newAsyncWriter(s *session, what string) *asyncWriter {
	return &asyncWriter{s: s, what: what, limit: s.srv.cfg.MaxOutputBuffer,
		wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
}

// run writes what is fed until stop; its own goroutine.
func (w *asyncWriter) run() {
	defer close(w.exited)
	var spare []byte
	for {
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
		w.mu.Lock()
		out := w.buf
		w.buf = spare[:0]
		w.mu.Unlock()
		w.s.conn.WriteRaw(out)
		if err := w.s.conn.Flush(); err != nil {
			w.s.conn.nc.Close() // the session's read fails and ends it
		}
		spare = out[:0]
	}
}

// stop ends the writer and queues on the connection what it had not
// taken, for the session to write after what run wrote. It waits for run,
// which waits for the client to read, so it must not be called inside the
// barrier's gate. Nothing may be fed after it.
func (w *asyncWriter) stop() {
	close(w.done)
	<-w.exited
	// run may have taken some of buf before it saw done, which is why
	// this waits for it to return
	w.mu.Lock()
	rest := w.buf
	w.buf = nil
	w.mu.Unlock()
	w.s.conn.WriteRaw(rest)
}

// queued returns the bytes not yet taken by the writer.
func (w *asyncWriter) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf)
}

// queueNow puts b on the connection's queue at once, behind what is
// already there and before whatever anyone queues next, and has run write
// it: for a message that must precede the replies the session sends after
// it (an invalidation before the reply to a later command). The bytes
// queued on the connection count toward the limit. The connection must be
// shared.
func (w *asyncWriter) queueNow(b []byte) {
	w.mu.Lock()
	if w.cut {
		w.mu.Unlock()
		return
	}
	over := int64(w.s.conn.queued()+len(b)) > w.limit
	if over {
		w.cut = true
	} else {
		w.s.conn.WriteRaw(b)
	}
	w.mu.Unlock()
	w.wakeOrCut(over)
}

// feed queues b without waiting for the client.
func (w *asyncWriter) feed(b []byte) {
	w.mu.Lock()
	if w.cut {
		w.mu.Unlock()
		return
	}
	over := int64(len(w.buf)+len(b)) > w.limit
	if over {
		w.cut, w.buf = true, nil
	} else {
		w.buf = append(w.buf, b...)
	}
	w.mu.Unlock()
	w.wakeOrCut(over)
}

// wakeOrCut wakes the writer, or, over the limit, closes the client.
func (w *asyncWriter) wakeOrCut(over bool) {
	if over {
		w.s.srv.log.Warn(w.what+" client output buffer limit reached, closing it",
			zap.Uint64("client", w.s.id), zap.Int64("limit", w.limit))
		w.s.conn.nc.Close()
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
