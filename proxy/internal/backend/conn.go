package backend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// A Conn is one long-lived, multiplexed connection to a shard. Many client
// sessions submit requests to it at once; a writer goroutine sends whatever
// has gathered in one write, and a reader goroutine frames the replies and
// hands each to the request at the head of the FIFO. Because every request
// that was written gets its reply read, whatever happens to the client that
// sent it, the connection can never fall out of step.
//
// Batching is the point: a write to a loopback or LAN socket costs several
// microseconds of kernel time, about what a shard spends on a small command.
// The writer therefore yields once before taking the buffer, so the sessions
// that the same network poll woke can add their requests first. (Writing from
// the submitting session itself, "combining" without a writer goroutine, was
// measured: it sent about one request per write at pipeline depth 1.)
//
// While the shard cannot be reached, submit fails requests at once with an
// error naming the shard; the backend reconnects in the background with
// exponential backoff.
type Conn struct {
	Addr   string
	log    *zap.Logger
	dialer Dialer
	hello  []byte                            // sent on every new connection (after AUTH), or nil
	stall  time.Duration                     // no reply this long with requests waiting: the connection is dropped; 0 never
	panics *atomic.Int64                     // the server's count of connections dropped on a panic
	hook   func(where string, args [][]byte) // Config.testHook
	// connected runs after each connection is made, before it is used
	connected func()

	mu    sync.Mutex
	nc    net.Conn // nil while down
	why   error    // the last connection error, while down
	wbuf  []byte   // encoded requests not yet written
	queue fifo     // requests written or waiting, in order
	// unsent counts the requests in wbuf; marks, the writes not yet taken
	// by readLoop (latency)
	unsent int
	marks  []sentMark
	lat    *Latency
	wake   chan struct{}

	stop     chan struct{}
	kick     chan struct{} // Redial: dial again now, without waiting out the backoff
	held     *atomic.Pointer[Hold]
	Done     chan struct{}
	once     sync.Once
	FirstTry chan struct{} // closed after the first connection attempt

	Reconnects atomic.Int64
	Requests   atomic.Int64 // requests sent
	Answered   atomic.Int64 // of those, answered or failed
	// ErrorReplies counts the shard's error replies; Failed, the requests
	// failed by the proxy (the connection down, or lost before the reply)
	ErrorReplies, Failed atomic.Int64
	received             atomic.Int64 // bytes read from the shard
	stalled              atomic.Bool  // watch dropped the current connection
	Writes               atomic.Int64 // write calls that sent them

	// busy is the shard's -BUSY reply while a script it runs holds this
	// connection (watch learnt it on a connection of its own): requests
	// submitted meanwhile get it at once, as Redis answers its other
	// clients. The next reply read clears it.
	busy atomic.Pointer[[]byte]
}

// Config is what every connection to the shards of one proxy shares.
type Config struct {
	// Conns is the number of multiplexed connections per shard and
	// protocol (proxy.Config.BackendConns).
	Conns int
	// Stall drops a connection on which requests have waited this long
	// without any reply (proxy.Config.ShardTimeout); 0 never does.
	Stall time.Duration
	// Panics counts the connections dropped because reading them
	// panicked (INFO shard_connection_panics).
	Panics *atomic.Int64
	// Hook, set by tests only, is called with each reply a connection
	// reads ("shard reply"), where a panic must drop the connection and
	// no more.
	Hook func(where string, args [][]byte)
	// Log receives the connections' lines, with the shard's address.
	Log *zap.Logger
	// Connected runs after each new connection to addr is made, before it
	// is used (the shard may have restarted with an empty script cache).
	Connected func(addr string)
}

// newConn starts a multiplexed connection; hello, if not nil, is sent on
// every new connection (HELLO 3 for the RESP3 ones) and its reply checked.
// held is its pool's Hold.
func newConn(addr string, dialer Dialer, hello []byte, cfg *Config, held *atomic.Pointer[Hold], lat *Latency) *Conn {
	c := &Conn{
		lat:       lat,
		kick:      make(chan struct{}, 1),
		held:      held,
		hello:     hello,
		stall:     cfg.Stall,
		panics:    cfg.Panics,
		hook:      cfg.Hook,
		Addr:      addr,
		log:       cfg.Log.With(zap.String("shard", addr)),
		dialer:    dialer,
		why:       errors.New("connecting"),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		Done:      make(chan struct{}),
		FirstTry:  make(chan struct{}),
		connected: func() { cfg.Connected(addr) },
	}
	go c.run()
	return c
}

// Up reports whether the connection is established.
func (c *Conn) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc != nil
}

// Submit queues encoded requests (raw holds them back to back, reqs their
// reply slots in the same order) for the writer.
func (c *Conn) Submit(raw []byte, reqs []Pending) {
	if h := c.held.Load(); h != nil {
		h.Wait()
	}
	if busy := c.busy.Load(); busy != nil {
		for _, p := range reqs {
			p.B.Deliver(p.I, append(p.B.Results[p.I][:0], *busy...))
		}
		return
	}
	c.mu.Lock()
	if c.nc == nil {
		why := c.why
		c.mu.Unlock()
		msg := c.downMessage(why)
		c.Failed.Add(int64(len(reqs)))
		for _, p := range reqs {
			p.B.Fail(p.I, msg)
		}
		return
	}
	c.wbuf = append(c.wbuf, raw...)
	c.unsent += len(reqs)
	for _, p := range reqs {
		c.queue.push(p)
	}
	c.mu.Unlock()
	c.Requests.Add(int64(len(reqs)))
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) downMessage(why error) string {
	return fmt.Sprintf("ERR shard %s is unavailable: %v", c.Addr, why)
}

// Close stops the backend and fails every request still waiting.
func (c *Conn) Close() {
	c.once.Do(func() {
		close(c.stop)
		c.mu.Lock()
		if c.nc != nil {
			c.nc.Close()
		}
		c.mu.Unlock()
	})
	<-c.Done
}

var errShutdown = errors.New("proxy shutting down")

// Redial drops the connection, if there is one, and dials again at once:
// the shard's address now leads elsewhere (a Sentinel failover). What was
// sent and not yet answered fails, as when the connection is lost.
func (c *Conn) Redial() {
	c.mu.Lock()
	if c.nc != nil {
		c.nc.Close()
		// down at once, not when run notices: Up must not report the old
		// connection (a failover releases its held requests on Up)
		c.nc, c.why = nil, errors.New("reconnecting to a new primary")
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Conn) run() {
	defer close(c.Done)
	backoff := 50 * time.Millisecond
	var tried sync.Once
	defer tried.Do(func() { close(c.FirstTry) })
	logged := "" // the last dial error logged: each new one is logged once, not each retry
	for {
		nc, r, err := c.dialer.Dial(c.Addr, c.hello, &c.received)
		if err != nil {
			if err.Error() != logged {
				logged = err.Error()
				c.log.Warn("shard unreachable, retrying", zap.Error(err))
			}
			c.setDown(err)
			tried.Do(func() { close(c.FirstTry) })
			select {
			case <-c.stop:
				c.setDown(errShutdown)
				return
			case <-time.After(backoff):
			case <-c.kick:
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff, logged = 50*time.Millisecond, ""
		c.connected()
		c.mu.Lock()
		select {
		case <-c.stop:
			c.mu.Unlock()
			nc.Close()
			c.setDown(errShutdown)
			return
		default:
		}
		c.nc, c.why = nc, nil
		c.mu.Unlock()
		tried.Do(func() { close(c.FirstTry) })
		c.log.Info("shard connected")
		err = c.serve(nc, r)
		select {
		case <-c.stop:
			c.setDown(errShutdown)
			return
		default:
		}
		c.Reconnects.Add(1)
		c.log.Warn("shard connection lost", zap.Error(err))
		c.setDown(err)
	}
}

// setDown marks the connection down and fails every queued request.
func (c *Conn) setDown(err error) {
	c.busy.Store(nil)
	c.mu.Lock()
	c.nc, c.why = nil, err
	c.wbuf = c.wbuf[:0]
	c.unsent, c.marks = 0, c.marks[:0]
	var failed []Pending
	for c.queue.len() > 0 {
		failed = append(failed, c.queue.pop())
	}
	c.mu.Unlock()
	msg := c.downMessage(err)
	for _, p := range failed {
		p.B.Fail(p.I, msg)
	}
	c.Answered.Add(int64(len(failed)))
	c.Failed.Add(int64(len(failed)))
}

// serve runs the writer on this goroutine and the reader on another until
// either fails or the backend is closed.
func (c *Conn) serve(nc net.Conn, r *bufio.Reader) error {
	readErr := make(chan error, 1)
	go func() { readErr <- c.readLoop(r) }()
	c.stalled.Store(false)
	if c.stall > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go c.watch(nc, stop)
	}
	err := c.writeLoop(wire.NewRawIO(nc), readErr)
	nc.Close()
	<-readErr // writeLoop puts back an error it took, so this cannot block for ever
	return c.stallError(err)
}

// stallError is err, or why the connection was dropped if watch did it.
func (c *Conn) stallError(err error) error {
	if c.stalled.Load() {
		return fmt.Errorf("no reply for %s (--shard-timeout)", c.stall)
	}
	return err
}

// watch closes nc when requests wait and nothing has come from the shard
// for the stall time: no reply and no byte (a large reply arriving slowly
// is progress). A stopped shard, or a host that vanished without closing
// the connection, would otherwise hold every request on the connection, and
// every later one queued behind them, until TCP gives up: minutes, not
// seconds. It looks every half stall (every probeEvery at most) and drops
// the connection once the silence has lasted the stall time, by at most
// one look more. The data path pays an atomic add per reply and per read.
//
// A shard running a long script (EVAL, FCALL) is silent on the connection
// that sent it, which it does not read until the script ends, but it
// answers its other connections with -BUSY once the script passes its
// busy-reply-threshold. So while requests wait in silence, watch asks the
// shard on a connection of its own (probeBusy); a BUSY answer counts as
// progress, keeps the connection for the script's reply, and marks it busy
// (markBusy), so that requests submitted meanwhile get the shard's BUSY at
// once instead of waiting behind the script.
func (c *Conn) watch(nc net.Conn, stop <-chan struct{}) {
	every := min(c.stall/2, probeEvery)
	tick := time.NewTicker(every)
	defer tick.Stop()
	progress := func() int64 { return c.Answered.Load() + c.received.Load() }
	last, lastSeen := progress(), time.Now()
	probed := make(chan []byte, 1) // holds the one probe's answer, so it never blocks
	probing, probeFrom := false, int64(0)
	for {
		select {
		case <-stop:
			return
		case reply := <-probed:
			probing = false
			if bytes.HasPrefix(reply, busyPrefix) && c.markBusy(reply, probeFrom) {
				lastSeen = time.Now()
			}
			continue
		case <-tick.C:
		}
		now := progress()
		if now != last || c.Answered.Load() >= c.Requests.Load() {
			last, lastSeen = now, time.Now()
			continue
		}
		if silent := time.Since(lastSeen); silent > c.stall {
			c.stalled.Store(true)
			nc.Close()
			return
		}
		if !probing {
			probing, probeFrom = true, c.Answered.Load()
			go func() { probed <- c.probeBusy(2 * every) }()
		}
	}
}

// probeEvery bounds how long watch waits between looks, so that a script
// that holds a connection is found soon after the shard says BUSY (Redis's
// own test suite expects BUSY a few hundred milliseconds into a script).
// A look costs a few atomic loads; a probe, one connection to the shard,
// and only while requests wait in silence.
const probeEvery = 100 * time.Millisecond

var busyPrefix = []byte("-BUSY ")

// probeBusy sends PING to the shard over a new connection and returns the
// reply, or nil if there is none within about 2*limit. Its goroutine ends
// on its own by then; watch does not wait for it.
func (c *Conn) probeBusy(limit time.Duration) []byte {
	d := c.dialer
	d.timeout = limit
	nc, r, err := d.Dial(c.Addr, nil, nil)
	if err != nil {
		return nil
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(limit))
	if _, err := nc.Write(pingCommand); err != nil {
		return nil
	}
	reply, err := wire.ReadReply(r, nil)
	if err != nil {
		return nil
	}
	return reply
}

// markBusy marks the connection busy with reply unless a reply came since
// the probe started (answered moved from from): the script has ended then,
// and no later reply would come to clear the mark. It reports whether the
// mark stays. readLoop counts a reply before it clears the mark, and this
// stores the mark before it reads the count: one of the two sees the other.
func (c *Conn) markBusy(reply []byte, from int64) bool {
	c.busy.Store(&reply)
	if c.Answered.Load() != from {
		c.busy.Store(nil)
		return false
	}
	return true
}

func (c *Conn) writeLoop(w io.Writer, readErr chan error) error {
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return errShutdown
		case err := <-readErr:
			readErr <- err
			return err
		}
		runtime.Gosched()
		now := time.Now()
		c.mu.Lock()
		out := c.wbuf
		c.wbuf = spare[:0]
		if c.unsent > 0 {
			c.marks = append(c.marks, sentMark{now, c.unsent})
			c.unsent = 0
		}
		c.mu.Unlock()
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				return err
			}
			c.Writes.Add(1)
		}
		if cap(out) > 4<<20 {
			out = nil // do not keep a huge buffer after a burst
		}
		spare = out
	}
}

// readLoop hands each reply to its request. It takes the requests from the
// queue a whole batch at a time, one lock for all that were written so far;
// those it holds when the connection fails it fails itself, the rest are
// failed by setDown.
//
// A panic here, in code every client shares, would stop the proxy; it is
// turned into the loss of this connection instead: its requests fail, as
// when a shard goes away, and the connection is made again.
func (c *Conn) readLoop(r *bufio.Reader) (err error) {
	var taken []Pending
	next := 0
	// the writes whose replies are due, oldest first from marks[head]; due
	// replies of the current one (sent at sentAt) are left; readAt is when
	// the last read from the shard returned
	var marks []sentMark
	head, left := 0, 0
	var sentAt, readAt time.Time
	defer func() {
		if v := recover(); v != nil {
			c.panics.Add(1)
			c.log.Error("panic while reading a shard connection, dropping the connection",
				zap.Any("panic", v), zap.StackSkip("stack", 1))
			err = fmt.Errorf("proxy internal error: %v", v)
		}
		if next < len(taken) {
			c.failTaken(taken[next:], c.downMessage(c.stallError(err)))
		}
	}()
	takeMarks := func() { // under c.mu
		if head == len(marks) {
			marks, head = marks[:0], 0
		}
		marks = append(marks, c.marks...)
		c.marks = c.marks[:0]
	}
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return err
			}
			readAt = time.Now()
		}
		if next == len(taken) {
			taken, next = taken[:0], 0
			c.mu.Lock()
			for c.queue.len() > 0 {
				taken = append(taken, c.queue.pop())
			}
			takeMarks()
			c.mu.Unlock()
			if len(taken) == 0 {
				return errors.New("reply without a request (out of step)")
			}
		}
		p := taken[next]
		reply, err := wire.ReadReply(r, p.B.Results[p.I][:0])
		if err != nil {
			return err
		}
		if c.hook != nil {
			c.hook("shard reply", [][]byte{reply})
		}
		next++
		c.Answered.Add(1)
		if len(reply) > 0 && (reply[0] == '-' || reply[0] == '!') {
			c.ErrorReplies.Add(1)
		}
		if left == 0 && head == len(marks) { // written after the last refill
			c.mu.Lock()
			takeMarks()
			c.mu.Unlock()
		}
		if left == 0 && head < len(marks) {
			sentAt, left = marks[head].at, marks[head].n
			head++
		}
		if left > 0 {
			c.lat.observe(readAt.Sub(sentAt))
			left--
		}
		if c.busy.Load() != nil { // after the count, which markBusy reads after its store
			c.busy.Store(nil) // before the reply goes: its client sees the mark gone
		}
		p.B.Deliver(p.I, reply)
	}
}

// failTaken fails requests readLoop took and did not answer. Should that
// panic too (after readLoop's own panic, say), the rest are left to wait
// rather than the proxy stopped.
func (c *Conn) failTaken(taken []Pending, msg string) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("panic while failing a shard connection's requests",
				zap.Any("panic", v), zap.StackSkip("stack", 1))
		}
	}()
	for _, p := range taken {
		p.B.Fail(p.I, msg)
		c.Answered.Add(1)
		c.Failed.Add(1)
	}
}

// fifo is a growable ring of pending requests.
type fifo struct {
	buf  []Pending
	head int
	n    int
}

func (q *fifo) len() int { return q.n }

func (q *fifo) push(p Pending) {
	if q.n == len(q.buf) {
		nb := make([]Pending, max(16, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = p
	q.n++
}

func (q *fifo) front() Pending { return q.buf[q.head] }

func (q *fifo) pop() Pending {
	p := q.buf[q.head]
	q.buf[q.head] = Pending{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return p
}
